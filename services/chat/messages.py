"""The send path shared by `POST .../messages` and the WebSocket's `message.send`.

1. check membership (404 otherwise) and blocks (403 `blocked`);
2. an already accepted (sender, client_msg_id) is the same message: publish it again if
   it is not stored yet (the processor stores by id, so a repeat is harmless) and answer
   with it;
3. otherwise take the conversation's next seq and record the message in PostgreSQL, in
   one transaction;
4. publish it persistent to RabbitMQ and wait for the broker's confirm;
5. only then is it acknowledged. If the publish fails the caller gets 503 and no ack;
   the recorded row is re-published by the outbox relay, and a re-send with the same
   client_msg_id returns the same message.
Steps 1-4 run for many senders at once in services/chat/accept.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.chat.accept import SendRequest
from services.chat.context import ChatContext
from services.chat.shapes import message_json, queue_payload

__all__ = ["expired", "message_json", "queue_payload", "send_message"]


def send_message(  # noqa: PLR0913 - keyword-only: the frame's fields, named
    ctx: ChatContext,
    *,
    sender: str,
    conversation_id: str,
    client_msg_id: str,
    body: str,
    ttl_seconds: int | None,
    request_id: str | None,
    encrypted: bool = False,
    reply_to: str | None = None,
    media_id: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """(message, created): accepted durably once this returns; raises NotFound/Forbidden/Unavailable.

    The request joins the acceptor's next batch (services/chat/accept.py): one transaction
    and one confirmed publish for every message sent meanwhile."""
    assert ctx.acceptor is not None, "the chat context has no acceptor"
    accepted = ctx.acceptor.submit(
        SendRequest(
            sender=sender,
            conversation_id=conversation_id,
            client_msg_id=client_msg_id,
            body=body,
            ttl_seconds=ttl_seconds,
            request_id=request_id,
            encrypted=encrypted,
            reply_to=reply_to,
            media_id=media_id,
        )
    )
    assert accepted.row is not None
    return message_json(accepted.row), accepted.created


def expired(row: dict[str, Any], now: datetime) -> bool:
    return row.get("expires_at") is not None and row["expires_at"] <= now
