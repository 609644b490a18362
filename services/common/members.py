"""Who may see a conversation's messages: one query shared by the services that fan out
(message_processor's `message.new`, scheduled_jobs' `message.deleted` for expiries).

A member sees only messages with a seq above its `visible_after_seq` (the conversation's
last seq when it was added: joining a group is not reading its past).
"""

from __future__ import annotations

import psycopg

# Per conversation: {member: visible_after_seq}.
MemberMarks = dict[str, dict[str, int]]


def members_by_conversation(conn: psycopg.Connection, conversation_ids: list[str]) -> MemberMarks:
    rows = conn.execute(
        """
        SELECT conversation_id, user_id, visible_after_seq FROM conversations.members
        WHERE conversation_id = ANY(%s::uuid[]) ORDER BY conversation_id, user_id
        """,
        (conversation_ids,),
    ).fetchall()
    members: MemberMarks = {cid: {} for cid in conversation_ids}
    for row in rows:
        of_conversation = members.setdefault(str(row["conversation_id"]), {})
        of_conversation[str(row["user_id"])] = int(row["visible_after_seq"])
    return members


def seeing(marks: dict[str, int], seq: int) -> list[str]:
    """The members whose view holds the message with this seq."""
    return [user for user, visible_after in marks.items() if seq > visible_after]
