"""The send path shared by `POST .../messages` and the WebSocket's `message.send`.

1. check membership (404 otherwise) and blocks (403 `blocked`);
2. an already accepted (sender, client_msg_id) is the same message: publish it again (the
   processor stores by id, so a repeat is harmless) and answer with it;
3. otherwise take the conversation's next seq and record the message in PostgreSQL, in
   one transaction;
4. publish it persistent to RabbitMQ and wait for the broker's confirm;
5. only then is it acknowledged. If the publish fails the caller gets 503 and no ack;
   the recorded row is re-published by the outbox relay, and a re-send with the same
   client_msg_id returns the same message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.chat import store
from services.chat.context import ChatContext
from services.common.amqp import PublishError
from services.common.errors import Forbidden, NotFound, Unavailable
from services.common.times import rfc3339


def message_json(row: dict[str, Any]) -> dict[str, Any]:
    """`message` of the contract, from a PostgreSQL row or a MongoDB document."""
    message: dict[str, Any] = {
        "id": str(row.get("id") or row.get("_id")),
        "conversation_id": str(row["conversation_id"]),
        "seq": int(row["seq"]),
        "sender_id": str(row["sender_id"]),
        "client_msg_id": row["client_msg_id"],
        "body": row["body"] if row.get("body") is not None else "",
        "created_at": rfc3339(row["created_at"]),
        "status": "deleted" if row.get("deleted") or row.get("deleted_at") else "sent",
    }
    if row.get("expires_at") is not None:
        message["expires_at"] = rfc3339(row["expires_at"])
    return message


def queue_payload(row: dict[str, Any], request_id: str | None) -> dict[str, Any]:
    """What message_processor receives: the message plus the request id that caused it."""
    return {"message": message_json(row), "request_id": request_id}


def publish(ctx: ChatContext, row: dict[str, Any], request_id: str | None) -> None:
    settings = ctx.settings
    try:
        ctx.publisher.publish(
            settings.messages_exchange,
            settings.messages_routing_key,
            queue_payload(row, request_id),
            message_id=str(row["id"]),
            headers={"x-request-id": request_id or ""},
        )
    except PublishError:
        raise Unavailable(
            "the message could not be queued; send it again with the same client_msg_id"
        ) from None


def send_message(  # noqa: PLR0913 - keyword-only: the frame's fields, named
    ctx: ChatContext,
    *,
    sender: str,
    conversation_id: str,
    client_msg_id: str,
    body: str,
    ttl_seconds: int | None,
    request_id: str | None,
) -> tuple[dict[str, Any], bool]:
    """(message, created): accepted durably once this returns; raises NotFound/Forbidden/Unavailable."""
    created = False
    try:
        # One transaction: membership and blocks, the repeat check, then (for a new message)
        # the seq and the record. A repeat never reaches the conversation's row lock.
        with ctx.db.transaction() as conn:
            allowed = store.sender_may_post(conn, conversation_id, sender)
            if allowed is None:
                raise NotFound("no such conversation")
            if allowed["blocked"]:
                raise Forbidden("you cannot message this user", code="blocked")
            row = store.find_by_client_msg_id(conn, conversation_id, sender, client_msg_id)
            if row is None:
                row = store.insert_message(
                    conn,
                    conversation_id=conversation_id,
                    sender=sender,
                    client_msg_id=client_msg_id,
                    body=body,
                    ttl_seconds=ttl_seconds,
                )
                created = True
    except store.DuplicateMessage as duplicate:  # accepted meanwhile by another instance
        row, created = duplicate.row, False
    if row.get("body") is None and not row.get("deleted_at"):
        # Expired already: nothing to deliver, but the answer stays the same message.
        return message_json(row), created
    if created or row.get("stored_at") is None:
        publish(ctx, row, request_id)
    ctx.metrics.messages_accepted.labels("new" if created else "repeat").inc()
    return message_json(row), created


def expired(row: dict[str, Any], now: datetime) -> bool:
    return row.get("expires_at") is not None and row["expires_at"] <= now
