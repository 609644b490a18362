"""SQL of the chat service (schema `conversations`, and reads of `accounts`).

Small functions with the SQL in the open. A conversation a user is not a member of is
treated as absent everywhere (None), so callers answer 404 and never reveal existence.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg

Row = dict[str, Any]

CONVERSATION_COLUMNS = "c.id, c.type, c.title, c.created_at, c.last_seq"
MESSAGE_COLUMNS = (
    "m.id, m.conversation_id, m.seq, m.sender_id, m.client_msg_id, m.body, m.created_at, "
    "m.expires_at, m.deleted_at, m.stored_at"
)


def direct_key(a: str, b: str) -> str:
    low, high = sorted((str(a), str(b)))
    return f"{low}:{high}"


def existing_users(conn: psycopg.Connection, user_ids: list[str]) -> set[str]:
    rows = conn.execute("SELECT id FROM accounts.users WHERE id = ANY(%s::uuid[])", (user_ids,)).fetchall()
    return {str(r["id"]) for r in rows}


def members_of(conn: psycopg.Connection, conversation_id: str) -> list[Row]:
    return conn.execute(
        """
        SELECT user_id, role FROM conversations.members
        WHERE conversation_id = %s ORDER BY joined_at, user_id
        """,
        (conversation_id,),
    ).fetchall()


def member_ids(conn: psycopg.Connection, conversation_id: str) -> list[str]:
    return [str(r["user_id"]) for r in members_of(conn, conversation_id)]


def get_conversation(conn: psycopg.Connection, conversation_id: str, viewer: str) -> Row | None:
    """The conversation with its members, or None when `viewer` is not a member."""
    row = conn.execute(
        f"""
        SELECT {CONVERSATION_COLUMNS}, me.role AS my_role, me.read_seq, me.delivered_seq
        FROM conversations.conversations c
        JOIN conversations.members me ON me.conversation_id = c.id AND me.user_id = %(viewer)s
        WHERE c.id = %(id)s
        """,
        {"id": conversation_id, "viewer": viewer},
    ).fetchone()
    if row is None:
        return None
    row["members"] = members_of(conn, conversation_id)
    return row


def find_direct(conn: psycopg.Connection, a: str, b: str) -> str | None:
    row = conn.execute(
        "SELECT id FROM conversations.conversations WHERE direct_key = %s", (direct_key(a, b),)
    ).fetchone()
    return str(row["id"]) if row else None


def create_direct(conn: psycopg.Connection, creator: str, other: str) -> tuple[str, bool]:
    """(conversation id, created?): the pair's one direct conversation."""
    row = conn.execute(
        """
        INSERT INTO conversations.conversations (type, direct_key, created_by)
        VALUES ('direct', %s, %s)
        ON CONFLICT (direct_key) DO NOTHING
        RETURNING id
        """,
        (direct_key(creator, other), creator),
    ).fetchone()
    if row is None:  # the pair has one already (perhaps created a moment ago by the other)
        existing = find_direct(conn, creator, other)
        assert existing is not None
        return existing, False
    conversation_id = str(row["id"])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO conversations.members (conversation_id, user_id, role) VALUES (%s, %s, 'member')",
            [(conversation_id, creator), (conversation_id, other)]
            if creator != other
            else [(conversation_id, creator)],
        )
    return conversation_id, True


def create_group(conn: psycopg.Connection, creator: str, title: str, member_ids_: list[str]) -> str:
    row = conn.execute(
        """
        INSERT INTO conversations.conversations (type, title, created_by)
        VALUES ('group', %s, %s) RETURNING id
        """,
        (title, creator),
    ).fetchone()
    conversation_id = str(row["id"])
    members = [(conversation_id, creator, "admin")] + [
        (conversation_id, m, "member") for m in dict.fromkeys(member_ids_) if m != creator
    ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO conversations.members (conversation_id, user_id, role) VALUES (%s, %s, %s)", members
        )
    return conversation_id


def add_member(conn: psycopg.Connection, conversation_id: str, user_id: str) -> bool:
    """False when already a member."""
    row = conn.execute(
        """
        INSERT INTO conversations.members (conversation_id, user_id, role) VALUES (%s, %s, 'member')
        ON CONFLICT DO NOTHING RETURNING 1
        """,
        (conversation_id, user_id),
    ).fetchone()
    return row is not None


def remove_member(conn: psycopg.Connection, conversation_id: str, user_id: str) -> bool:
    row = conn.execute(
        "DELETE FROM conversations.members WHERE conversation_id = %s AND user_id = %s RETURNING 1",
        (conversation_id, user_id),
    ).fetchone()
    return row is not None


def promote_oldest_if_no_admin(conn: psycopg.Connection, conversation_id: str) -> None:
    """A group never stays without an admin: the longest-standing member becomes one."""
    conn.execute(
        """
        UPDATE conversations.members SET role = 'admin'
        WHERE conversation_id = %(id)s AND user_id = (
            SELECT user_id FROM conversations.members WHERE conversation_id = %(id)s
            ORDER BY joined_at, user_id LIMIT 1)
          AND NOT EXISTS (SELECT 1 FROM conversations.members
                          WHERE conversation_id = %(id)s AND role = 'admin')
        """,
        {"id": conversation_id},
    )


def list_conversations(conn: psycopg.Connection, viewer: str) -> list[Row]:
    """Every conversation of `viewer`, newest activity first, with last message and unread count."""
    rows = conn.execute(
        f"""
        SELECT {CONVERSATION_COLUMNS}, me.read_seq,
               lm.id AS lm_id, lm.seq AS lm_seq, lm.sender_id AS lm_sender_id,
               lm.client_msg_id AS lm_client_msg_id, lm.body AS lm_body,
               lm.created_at AS lm_created_at, lm.expires_at AS lm_expires_at,
               (SELECT count(*) FROM conversations.messages u
                WHERE u.conversation_id = c.id AND u.seq > me.read_seq
                  AND u.sender_id <> %(viewer)s AND u.body IS NOT NULL
                  AND (u.expires_at IS NULL OR u.expires_at > now())) AS unread_count
        FROM conversations.members me
        JOIN conversations.conversations c ON c.id = me.conversation_id
        LEFT JOIN LATERAL (
            SELECT m.* FROM conversations.messages m
            WHERE m.conversation_id = c.id AND m.body IS NOT NULL
              AND (m.expires_at IS NULL OR m.expires_at > now())
            ORDER BY m.seq DESC LIMIT 1
        ) lm ON true
        WHERE me.user_id = %(viewer)s
        ORDER BY COALESCE(lm.created_at, c.created_at) DESC, c.id
        """,
        {"viewer": viewer},
    ).fetchall()
    if not rows:
        return []
    members = conn.execute(
        """
        SELECT conversation_id, user_id, role FROM conversations.members
        WHERE conversation_id = ANY(%s::uuid[]) ORDER BY joined_at, user_id
        """,
        ([str(r["id"]) for r in rows],),
    ).fetchall()
    by_conversation: dict[str, list[Row]] = {}
    for m in members:
        by_conversation.setdefault(str(m["conversation_id"]), []).append(m)
    for row in rows:
        row["members"] = by_conversation.get(str(row["id"]), [])
    return rows


# ---- messages ----------------------------------------------------------------------------


def sender_may_post(conn: psycopg.Connection, conversation_id: str, sender: str) -> Row | None:
    """None when `sender` is no member; else `{type, blocked}` (blocked: a direct peer blocked them)."""
    return conn.execute(
        """
        SELECT c.type,
               EXISTS (SELECT 1 FROM conversations.members o
                       JOIN accounts.blocks b ON b.blocker_id = o.user_id AND b.blocked_id = %(sender)s
                       WHERE o.conversation_id = c.id AND o.user_id <> %(sender)s
                         AND c.type = 'direct') AS blocked
        FROM conversations.conversations c
        JOIN conversations.members me ON me.conversation_id = c.id AND me.user_id = %(sender)s
        WHERE c.id = %(id)s
        """,
        {"id": conversation_id, "sender": sender},
    ).fetchone()


def find_by_client_msg_id(
    conn: psycopg.Connection, conversation_id: str, sender: str, client_msg_id: str
) -> Row | None:
    return conn.execute(
        f"""
        SELECT {MESSAGE_COLUMNS} FROM conversations.messages m
        WHERE m.conversation_id = %s AND m.sender_id = %s AND m.client_msg_id = %s
        """,
        (conversation_id, sender, client_msg_id),
    ).fetchone()


class DuplicateMessage(Exception):
    """The same (sender, client_msg_id) was accepted meanwhile; roll back the seq taken."""

    def __init__(self, row: Row):
        super().__init__(row["id"])
        self.row = row


def insert_message(  # noqa: PLR0913 - keyword-only, named at the call
    conn: psycopg.Connection,
    *,
    conversation_id: str,
    sender: str,
    client_msg_id: str,
    body: str,
    ttl_seconds: int | None,
) -> Row:
    """Take the conversation's next seq and record the message, inside the caller's transaction.

    The UPDATE locks the conversation row, so senders of one conversation take seqs one after
    another and a concurrent duplicate is visible once the lock is ours: DuplicateMessage.
    """
    seq = conn.execute(
        "UPDATE conversations.conversations SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq",
        (conversation_id,),
    ).fetchone()["last_seq"]
    existing = find_by_client_msg_id(conn, conversation_id, sender, client_msg_id)
    if existing is not None:
        raise DuplicateMessage(existing)
    expires = "now() + make_interval(secs => %(ttl)s)" if ttl_seconds else "NULL"
    return conn.execute(
        f"""
        INSERT INTO conversations.messages AS m
            (id, conversation_id, seq, sender_id, client_msg_id, body, expires_at)
        VALUES (%(id)s, %(conversation)s, %(seq)s, %(sender)s, %(client_msg_id)s, %(body)s, {expires})
        RETURNING {MESSAGE_COLUMNS}
        """,
        {
            "id": str(uuid.uuid4()),
            "conversation": conversation_id,
            "seq": seq,
            "sender": sender,
            "client_msg_id": client_msg_id,
            "body": body,
            "ttl": ttl_seconds,
        },
    ).fetchone()


def delete_message(conn: psycopg.Connection, message_id: str, sender: str) -> Row | None:
    """Erase a message's body for everyone; None unless `sender` sent it (and it still exists)."""
    return conn.execute(
        f"""
        UPDATE conversations.messages m SET body = NULL, deleted_at = COALESCE(deleted_at, now())
        WHERE m.id = %s AND m.sender_id = %s AND m.body IS NOT NULL
        RETURNING {MESSAGE_COLUMNS}
        """,
        (message_id, sender),
    ).fetchone()


def mark_receipt(
    conn: psycopg.Connection, conversation_id: str, user_id: str, up_to_seq: int, status: str
) -> int | None:
    """Move the member's delivered (and for `read`, read) mark forward; never past last_seq.

    Returns the mark now in force, or None when the user is no member.
    """
    # A read mark is also a delivered mark; delivered alone leaves read_seq as it was.
    read_update = "read_seq = GREATEST(me.read_seq, LEAST(%(seq)s, c.last_seq))," if status == "read" else ""
    mark = "read_seq" if status == "read" else "delivered_seq"
    row = conn.execute(
        f"""
        UPDATE conversations.members me
        SET {read_update}
            delivered_seq = GREATEST(me.delivered_seq, LEAST(%(seq)s, c.last_seq))
        FROM conversations.conversations c
        WHERE c.id = me.conversation_id AND me.conversation_id = %(id)s AND me.user_id = %(user)s
        RETURNING me.{mark} AS mark
        """,
        {"seq": up_to_seq, "id": conversation_id, "user": user_id},
    ).fetchone()
    return None if row is None else int(row["mark"])


def memberships(conn: psycopg.Connection, user_id: str) -> list[Row]:
    """Each conversation of the user with the seq its clients reported delivered."""
    return conn.execute(
        """
        SELECT me.conversation_id, me.delivered_seq, c.last_seq
        FROM conversations.members me JOIN conversations.conversations c ON c.id = me.conversation_id
        WHERE me.user_id = %s
        """,
        (user_id,),
    ).fetchall()


def unstored_messages(conn: psycopg.Connection, older_than: timedelta, limit: int = 500) -> list[Row]:
    return conn.execute(
        f"""
        SELECT {MESSAGE_COLUMNS} FROM conversations.messages m
        WHERE m.stored_at IS NULL AND m.created_at < now() - %s
        ORDER BY m.created_at LIMIT %s
        """,
        (older_than, limit),
    ).fetchall()


def watchers_of(conn: psycopg.Connection, user_id: str) -> list[str]:
    """Users who have `user_id` as a contact (they see its presence), minus any it blocked."""
    rows = conn.execute(
        """
        SELECT c.owner_id FROM accounts.contacts c
        WHERE c.contact_id = %(user)s
          AND NOT EXISTS (SELECT 1 FROM accounts.blocks b
                          WHERE b.blocker_id = %(user)s AND b.blocked_id = c.owner_id)
        """,
        {"user": user_id},
    ).fetchall()
    return [str(r["owner_id"]) for r in rows]


def record_last_seen(conn: psycopg.Connection, user_id: str, seen_at: datetime) -> None:
    conn.execute("SELECT accounts.record_last_seen(%s, %s)", (user_id, seen_at))
