"""PostgreSQL work of message_processor (schema `conversations`: read and write rights;
`accounts`: read)."""

from __future__ import annotations

from typing import Any

import psycopg

from services.common.presence import PushTarget

Row = dict[str, Any]


def mark_stored(conn: psycopg.Connection, message_ids: list[str]) -> list[Row]:
    """Mark messages stored in MongoDB; returns each with `erased` (deleted or expired since)
    and `edited_at` (edited since it was queued when set; then `body` is the last body, else
    None: the body is not sent back for every message)."""
    return conn.execute(
        """
        UPDATE conversations.messages SET stored_at = COALESCE(stored_at, now())
        WHERE id = ANY(%s)
        RETURNING id, conversation_id, (body IS NULL) AS erased, edited_at,
                  CASE WHEN edited_at IS NOT NULL THEN body END AS body
        """,
        (message_ids,),
    ).fetchall()


def touch_conversations(conn: psycopg.Connection, last_message_at: dict[str, Any]) -> None:
    """Move each conversation's last_message_at forward, in one statement.

    Rows that chat holds locked right now (a sender taking the next seq) are skipped: this is
    best-effort metadata, and waiting on them made chat and the processor queue behind each
    other once many conversations were busy. A later batch of the same conversation catches up.
    """
    ids = list(last_message_at)
    conn.execute(
        """
        UPDATE conversations.conversations c
        SET last_message_at = GREATEST(COALESCE(c.last_message_at, t.at), t.at)
        FROM unnest(%(ids)s::uuid[], %(ats)s::timestamptz[]) AS t(id, at)
        WHERE c.id = t.id
          AND c.id IN (SELECT id FROM conversations.conversations
                       WHERE id = ANY(%(ids)s::uuid[]) FOR UPDATE SKIP LOCKED)
        """,
        {"ids": ids, "ats": [last_message_at[i] for i in ids]},
    )


def push_targets(conn: psycopg.Connection, user_ids: list[str]) -> dict[str, list[PushTarget]]:
    """The push targets of these users, by user (users without any are left out)."""
    rows = conn.execute(
        """
        SELECT user_id, id, session_id FROM accounts.devices
        WHERE user_id = ANY(%s::uuid[]) ORDER BY user_id, created_at, id
        """,
        (user_ids,),
    ).fetchall()
    out: dict[str, list[PushTarget]] = {}
    for row in rows:
        session = str(row["session_id"]) if row["session_id"] is not None else None
        out.setdefault(str(row["user_id"]), []).append(PushTarget(str(row["id"]), session))
    return out
