"""PostgreSQL work of message_processor (schema `conversations`: read and write rights)."""

from __future__ import annotations

from typing import Any

import psycopg

Row = dict[str, Any]


def mark_stored(conn: psycopg.Connection, message_ids: list[str]) -> list[Row]:
    """Mark messages stored in MongoDB; returns each with `erased` (deleted or expired since)."""
    return conn.execute(
        """
        UPDATE conversations.messages SET stored_at = COALESCE(stored_at, now())
        WHERE id = ANY(%s)
        RETURNING id, conversation_id, (body IS NULL) AS erased
        """,
        (message_ids,),
    ).fetchall()


def touch_conversations(conn: psycopg.Connection, last_message_at: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """
            UPDATE conversations.conversations
            SET last_message_at = GREATEST(COALESCE(last_message_at, %(at)s), %(at)s)
            WHERE id = %(id)s
            """,
            [{"id": cid, "at": at} for cid, at in last_message_at.items()],
        )


def members_by_conversation(conn: psycopg.Connection, conversation_ids: list[str]) -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT conversation_id, user_id FROM conversations.members WHERE conversation_id = ANY(%s::uuid[])",
        (conversation_ids,),
    ).fetchall()
    members: dict[str, list[str]] = {cid: [] for cid in conversation_ids}
    for row in rows:
        members.setdefault(str(row["conversation_id"]), []).append(str(row["user_id"]))
    return members
