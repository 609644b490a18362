"""Receipts, one path for `POST .../read` and the WebSocket's `receipt` frame.

The mark only moves forward (services/chat/store.py mark_receipt, per session too); the
`receipt` frame goes to the members who see the conversation up to that seq (never to who
blocked the reader), and a read also to the reader's own other sockets (its other sessions
and tabs), so their unread counts follow; never back to the socket it came from."""

from __future__ import annotations

from services.chat import store
from services.chat.context import ChatContext
from services.common.errors import NotFound


def mark_and_announce(  # noqa: PLR0913 - keyword-only: the receipt's fields, named
    ctx: ChatContext,
    *,
    conversation_id: str,
    reader: str,
    up_to_seq: int,
    status: str,
    session_id: str | None,
    from_conn: str | None = None,
) -> int:
    """Record the receipt and send its frame; the mark it reached. 404 for a non-member."""
    with ctx.db.connection() as db:
        mark = store.mark_receipt(db, conversation_id, reader, up_to_seq, status, session_id=session_id)
    if mark is None:
        raise NotFound("no such conversation")
    audience = ctx.hub.audience(conversation_id, reader, seq=mark)
    if status == "read":
        audience = [*audience, reader]
    ctx.hub.publish_event(
        audience,
        {
            "type": "receipt",
            "conversation_id": conversation_id,
            "user_id": reader,
            "up_to_seq": mark,
            "status": status,
        },
        except_conn=from_conn if status == "read" else None,
    )
    return mark
