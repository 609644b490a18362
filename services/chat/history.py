"""Reading message history from MongoDB (written by message_processor).

A stored message document: `{_id: message id, conversation_id, seq, sender_id,
client_msg_id, body, created_at, expires_at, deleted}`. Deleted and expired messages are
never returned, even before scheduled_jobs has swept them away.
"""

from __future__ import annotations

from typing import Any

import pymongo
from pymongo.database import Database

from services.common.mongo import MESSAGES
from services.common.times import utcnow


def _visible(conversation_id: str, seq_filter: dict[str, int]) -> dict[str, Any]:
    # "Not expired" as `$not: {$lte: now}` (matches null, a missing field and a future
    # date), not as an `$or` of the two cases: with the `$or`, the MongoDB stand-in scans
    # the whole collection instead of the (conversation_id, seq) index (0.44 s instead of
    # 3 ms per query at 40,000 messages; MongoDB itself uses the index either way).
    return {
        "conversation_id": conversation_id,
        "seq": seq_filter,
        "deleted": False,
        "expires_at": {"$not": {"$lte": utcnow()}},
    }


def page_before(
    db: Database, conversation_id: str, before_seq: int | None, limit: int, after_seq: int = 0
) -> list[dict[str, Any]]:
    """Up to `limit` messages with after_seq < seq < before_seq (no upper bound when None),
    newest first; `after_seq`: where the reader's view of the conversation begins."""
    seq_filter: dict[str, int] = {"$gt": after_seq}
    if before_seq is not None:
        seq_filter["$lt"] = before_seq
    cursor = (
        db[MESSAGES].find(_visible(conversation_id, seq_filter)).sort("seq", pymongo.DESCENDING).limit(limit)
    )
    return list(cursor)


def after(db: Database, conversation_id: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` messages with seq > after_seq, oldest first (a reconnect's catch-up)."""
    cursor = (
        db[MESSAGES]
        .find(_visible(conversation_id, {"$gt": after_seq}))
        .sort("seq", pymongo.ASCENDING)
        .limit(limit)
    )
    return list(cursor)
