"""SQL of the chat service (schema `conversations`, and reads of `accounts`).

Small functions with the SQL in the open. A conversation a user is not a member of is
treated as absent everywhere (None), so callers answer 404 and never reveal existence.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from services.common.media import MESSAGE_MEDIA_SQL

Row = dict[str, Any]

CONVERSATION_COLUMNS = "c.id, c.type, c.title, c.created_at, c.last_seq"
MESSAGE_COLUMNS = (
    "m.id, m.conversation_id, m.seq, m.sender_id, m.client_msg_id, m.body, m.created_at, "
    "m.expires_at, m.deleted_at, m.stored_at, m.encrypted, m.reply_to, m.edited_at, m.media_id, "
    + MESSAGE_MEDIA_SQL
)
# How long after sending its sender may still edit a message (the contract: 15 minutes).
EDIT_WINDOW = timedelta(minutes=15)


def direct_key(a: str, b: str) -> str:
    low, high = sorted((str(a), str(b)))
    return f"{low}:{high}"


def existing_users(conn: psycopg.Connection, user_ids: list[str]) -> set[str]:
    rows = conn.execute("SELECT id FROM accounts.users WHERE id = ANY(%s::uuid[])", (user_ids,)).fetchall()
    return {str(r["id"]) for r in rows}


MAX_GROUP_MEMBERS = 256


def members_of(conn: psycopg.Connection, conversation_id: str) -> list[Row]:
    """Each member's user_id, role and visible_after_seq (it sees only seqs above it)."""
    return conn.execute(
        """
        SELECT user_id, role, visible_after_seq FROM conversations.members
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
        SELECT {CONVERSATION_COLUMNS}, me.role AS my_role, me.read_seq, me.delivered_seq,
               me.visible_after_seq
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
    seed_session_marks(conn, conversation_id, [creator, other])
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
    seed_session_marks(conn, conversation_id, [m[1] for m in members])
    return conversation_id


class GroupFull(Exception):
    """The group has MAX_GROUP_MEMBERS members already."""


def add_member(conn: psycopg.Connection, conversation_id: str, user_id: str) -> bool:
    """Add a member who sees only what comes after now; False when already a member.

    The conversation's row lock (the one senders take to allocate a seq) makes "now" exact:
    every message with a seq up to the last_seq read here is committed, every later one
    is above it. Raises GroupFull at MAX_GROUP_MEMBERS."""
    # The lock first, alone: the counts below are read after it, in a snapshot of their own
    # (in one statement, a sub-select would still see what was there before the wait).
    row = conn.execute(
        "SELECT last_seq FROM conversations.conversations WHERE id = %s FOR UPDATE", (conversation_id,)
    ).fetchone()
    if row is None:
        return False
    row |= conn.execute(
        """
        SELECT count(*) AS members, coalesce(bool_or(user_id = %(user)s), false) AS present
        FROM conversations.members WHERE conversation_id = %(id)s
        """,
        {"id": conversation_id, "user": user_id},
    ).fetchone()
    if row["present"]:
        return False
    if int(row["members"]) >= MAX_GROUP_MEMBERS:
        raise GroupFull
    conn.execute(
        """
        INSERT INTO conversations.members
            (conversation_id, user_id, role, visible_after_seq, delivered_seq, read_seq)
        VALUES (%(id)s, %(user)s, 'member', %(seq)s, %(seq)s, %(seq)s)
        """,
        {"id": conversation_id, "user": user_id, "seq": int(row["last_seq"])},
    )
    seed_session_marks(conn, conversation_id, [user_id])
    return True


def blockers_among(conn: psycopg.Connection, user_id: str, among: list[str]) -> set[str]:
    """Which of `among` have blocked `user_id`."""
    if not among:
        return set()
    rows = conn.execute(
        "SELECT blocker_id FROM accounts.blocks WHERE blocked_id = %s AND blocker_id = ANY(%s::uuid[])",
        (user_id, among),
    ).fetchall()
    return {str(r["blocker_id"]) for r in rows}


def blockers_of(conn: psycopg.Connection, user_id: str) -> set[str]:
    """Everyone who has blocked `user_id`."""
    rows = conn.execute("SELECT blocker_id FROM accounts.blocks WHERE blocked_id = %s", (user_id,)).fetchall()
    return {str(r["blocker_id"]) for r in rows}


def remove_member(conn: psycopg.Connection, conversation_id: str, user_id: str) -> bool:
    row = conn.execute(
        "DELETE FROM conversations.members WHERE conversation_id = %s AND user_id = %s RETURNING 1",
        (conversation_id, user_id),
    ).fetchone()
    return row is not None  # the member's session marks go with it (foreign key)


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


def list_conversations(
    conn: psycopg.Connection, viewer: str, *, limit: int, before: tuple[datetime, str] | None = None
) -> list[Row]:
    """A page of `viewer`'s conversations, newest activity first (then id, descending), with
    last message and unread count, each counting only what the viewer may see; `before`:
    the (activity, id) of the previous page's last entry."""
    rows = conn.execute(
        f"""
        SELECT * FROM (
            SELECT {CONVERSATION_COLUMNS}, me.read_seq,
                   lm.id AS lm_id, lm.seq AS lm_seq, lm.sender_id AS lm_sender_id,
                   lm.client_msg_id AS lm_client_msg_id, lm.body AS lm_body,
                   lm.created_at AS lm_created_at, lm.expires_at AS lm_expires_at,
                   COALESCE(lm.created_at, c.created_at) AS activity_at,
                   (SELECT count(*) FROM conversations.messages u
                    WHERE u.conversation_id = c.id AND u.seq > me.read_seq
                      AND u.seq > me.visible_after_seq
                      AND u.sender_id <> %(viewer)s AND u.body IS NOT NULL
                      AND (u.expires_at IS NULL OR u.expires_at > now())) AS unread_count
            FROM conversations.members me
            JOIN conversations.conversations c ON c.id = me.conversation_id
            LEFT JOIN LATERAL (
                SELECT m.* FROM conversations.messages m
                WHERE m.conversation_id = c.id AND m.body IS NOT NULL
                  AND m.seq > me.visible_after_seq
                  AND (m.expires_at IS NULL OR m.expires_at > now())
                ORDER BY m.seq DESC LIMIT 1
            ) lm ON true
            WHERE me.user_id = %(viewer)s
        ) page
        WHERE %(before_at)s::timestamptz IS NULL
           OR (page.activity_at, page.id) < (%(before_at)s, %(before_id)s::uuid)
        ORDER BY page.activity_at DESC, page.id DESC
        LIMIT %(limit)s
        """,
        {
            "viewer": viewer,
            "limit": limit,
            "before_at": before[0] if before else None,
            "before_id": before[1] if before else None,
        },
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


def delete_message(conn: psycopg.Connection, message_id: str, sender: str) -> Row | None:
    """Erase a message's body (and its reactions) for everyone; None unless `sender` sent it
    (and it still exists)."""
    row = conn.execute(
        f"""
        UPDATE conversations.messages m SET body = NULL, deleted_at = COALESCE(deleted_at, now())
        WHERE m.id = %s AND m.sender_id = %s AND m.body IS NOT NULL
        RETURNING {MESSAGE_COLUMNS}
        """,
        (message_id, sender),
    ).fetchone()
    if row is not None:
        conn.execute("DELETE FROM conversations.reactions WHERE message_id = %s", (message_id,))
    return row


def message_for(conn: psycopg.Connection, message_id: str, viewer: str, *, lock: bool = False) -> Row | None:
    """The message as `viewer` may see it (a member, the seq after its view begins, not
    expired), with `deleted_at` set when deleted for everyone and `conversation_type`;
    None otherwise. `lock`: the row locked for this transaction (an edit)."""
    return conn.execute(
        f"""
        SELECT {MESSAGE_COLUMNS}, c.type AS conversation_type
        FROM conversations.messages m
        JOIN conversations.conversations c ON c.id = m.conversation_id
        JOIN conversations.members me ON me.conversation_id = m.conversation_id AND me.user_id = %(viewer)s
        WHERE m.id = %(id)s AND m.seq > me.visible_after_seq
          AND (m.expires_at IS NULL OR m.expires_at > now())
          AND (m.body IS NOT NULL OR m.deleted_at IS NOT NULL)
        {"FOR UPDATE OF m" if lock else ""}
        """,
        {"id": message_id, "viewer": viewer},
    ).fetchone()


def edit_message(conn: psycopg.Connection, message_id: str, body: str) -> Row:
    """Replace the body of a message (checked and locked by the caller); the row after."""
    return conn.execute(
        f"""
        UPDATE conversations.messages m SET body = %s, edited_at = now()
        WHERE m.id = %s RETURNING {MESSAGE_COLUMNS}
        """,
        (body, message_id),
    ).fetchone()


def set_reaction(conn: psycopg.Connection, message_id: str, user_id: str, emoji: str | None) -> bool:
    """The member's one reaction on the message (None: removed); whether anything changed."""
    if emoji is None:
        row = conn.execute(
            "DELETE FROM conversations.reactions WHERE message_id = %s AND user_id = %s RETURNING 1",
            (message_id, user_id),
        ).fetchone()
    else:
        row = conn.execute(
            """
            INSERT INTO conversations.reactions AS r (message_id, user_id, emoji) VALUES (%s, %s, %s)
            ON CONFLICT (message_id, user_id) DO UPDATE SET emoji = EXCLUDED.emoji, reacted_at = now()
            WHERE r.emoji IS DISTINCT FROM EXCLUDED.emoji
            RETURNING 1
            """,
            (message_id, user_id, emoji),
        ).fetchone()
    return row is not None


def reactions_of(conn: psycopg.Connection, message_ids: list[str]) -> dict[str, list[Row]]:
    """Each message's reactions `[{user_id, emoji}]`, oldest first."""
    if not message_ids:
        return {}
    rows = conn.execute(
        """
        SELECT message_id, user_id, emoji FROM conversations.reactions
        WHERE message_id = ANY(%s) ORDER BY reacted_at, user_id
        """,
        (message_ids,),
    ).fetchall()
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(r["message_id"], []).append({"user_id": str(r["user_id"]), "emoji": r["emoji"]})
    return out


def replies_allowed(
    conn: psycopg.Connection, wanted: list[tuple[str, str, str]]
) -> set[tuple[str, str, str]]:
    """Which (conversation, sender, reply_to) name a message of that conversation the sender
    may see (after its view begins, not deleted, not expired), in one query."""
    if not wanted:
        return set()
    rows = conn.execute(
        """
        SELECT v.conversation_id, v.sender_id, v.reply_to
        FROM unnest(%s::uuid[], %s::uuid[], %s::text[]) AS v(conversation_id, sender_id, reply_to)
        JOIN conversations.members me ON me.conversation_id = v.conversation_id AND me.user_id = v.sender_id
        JOIN conversations.messages m ON m.id = v.reply_to AND m.conversation_id = v.conversation_id
        WHERE m.seq > me.visible_after_seq AND m.body IS NOT NULL
          AND (m.expires_at IS NULL OR m.expires_at > now())
        """,
        ([w[0] for w in wanted], [w[1] for w in wanted], [w[2] for w in wanted]),
    ).fetchall()
    return {(str(r["conversation_id"]), str(r["sender_id"]), r["reply_to"]) for r in rows}


def mark_receipt(  # noqa: PLR0913 - the session is keyword-only
    conn: psycopg.Connection,
    conversation_id: str,
    user_id: str,
    up_to_seq: int,
    status: str,
    *,
    session_id: str | None = None,
) -> int | None:
    """Move the member's delivered (and for `read`, read) mark forward, and the delivered
    mark of `session_id` (the socket's session: where its next catch-up starts); never past
    last_seq. One statement.

    Returns the member's mark now in force, or None when the user is no member.
    """
    # A read mark is also a delivered mark; delivered alone leaves read_seq as it was.
    read_update = "read_seq = GREATEST(me.read_seq, LEAST(%(seq)s, c.last_seq))," if status == "read" else ""
    mark = "read_seq" if status == "read" else "delivered_seq"
    row = conn.execute(
        f"""
        WITH member AS (
            UPDATE conversations.members me
            SET {read_update}
                delivered_seq = GREATEST(me.delivered_seq, LEAST(%(seq)s, c.last_seq))
            FROM conversations.conversations c
            WHERE c.id = me.conversation_id AND me.conversation_id = %(id)s AND me.user_id = %(user)s
            RETURNING me.{mark} AS mark, LEAST(%(seq)s, c.last_seq) AS up_to
        ), session AS (
            INSERT INTO conversations.session_marks AS sm
                (session_id, conversation_id, user_id, delivered_seq)
            SELECT %(sid)s::uuid, %(id)s, %(user)s, member.up_to FROM member WHERE %(sid)s::uuid IS NOT NULL
            ON CONFLICT (session_id, conversation_id)
            DO UPDATE SET delivered_seq = GREATEST(sm.delivered_seq, EXCLUDED.delivered_seq)
        )
        SELECT mark FROM member
        """,
        {"seq": up_to_seq, "id": conversation_id, "user": user_id, "sid": session_id},
    ).fetchone()
    return None if row is None else int(row["mark"])


def seed_session_marks(conn: psycopg.Connection, conversation_id: str, user_ids: list[str]) -> None:
    """The users joined the conversation: each of their sessions starts its catch-up there
    where their view of it begins (so a session offline now misses nothing of it)."""
    conn.execute(
        """
        INSERT INTO conversations.session_marks (session_id, conversation_id, user_id, delivered_seq)
        SELECT s.id, me.conversation_id, me.user_id, me.delivered_seq
        FROM conversations.members me JOIN accounts.sessions s ON s.user_id = me.user_id
        WHERE me.conversation_id = %s AND me.user_id = ANY(%s::uuid[])
        ON CONFLICT (session_id, conversation_id) DO NOTHING
        """,
        (conversation_id, user_ids),
    )


def memberships(conn: psycopg.Connection, user_id: str, session_id: str | None = None) -> list[Row]:
    """Each conversation of the user with the seq to catch up from: the session's own
    delivered mark, made now (at the member's mark) where the session has none yet; without
    a session, the member's mark (what any of its clients reported delivered)."""
    if session_id is None:
        return conn.execute(
            """
            SELECT me.conversation_id, me.delivered_seq, c.last_seq
            FROM conversations.members me JOIN conversations.conversations c ON c.id = me.conversation_id
            WHERE me.user_id = %s
            """,
            (user_id,),
        ).fetchall()
    return conn.execute(
        """
        WITH seeded AS (
            INSERT INTO conversations.session_marks (session_id, conversation_id, user_id, delivered_seq)
            SELECT %(sid)s, me.conversation_id, me.user_id, me.delivered_seq
            FROM conversations.members me WHERE me.user_id = %(user)s
            ON CONFLICT (session_id, conversation_id) DO NOTHING
            RETURNING conversation_id, delivered_seq
        )
        SELECT me.conversation_id, c.last_seq,
               COALESCE(sm.delivered_seq, seeded.delivered_seq, me.delivered_seq) AS delivered_seq
        FROM conversations.members me
        JOIN conversations.conversations c ON c.id = me.conversation_id
        LEFT JOIN conversations.session_marks sm
          ON sm.session_id = %(sid)s AND sm.conversation_id = me.conversation_id
        LEFT JOIN seeded ON seeded.conversation_id = me.conversation_id
        WHERE me.user_id = %(user)s
        """,
        {"user": user_id, "sid": session_id},
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


def still_unstored(conn: psycopg.Connection, message_ids: list) -> set:
    """Which of `message_ids` are unstored now (the outbox relay's second look)."""
    rows = conn.execute(
        "SELECT id FROM conversations.messages WHERE id = ANY(%s) AND stored_at IS NULL", (message_ids,)
    ).fetchall()
    return {row["id"] for row in rows}


def watchers_of(conn: psycopg.Connection, user_id: str) -> list[str]:
    """Users who have `user_id` as a contact, minus any it blocked, narrowed by its
    last_seen_visibility: the rule is services/common/watchers.py's, shared with scheduled_jobs."""
    # Imported here, not at the top: this function is the only part of the module that
    # depends on the shared rule.
    from services.common.watchers import query_watchers  # noqa: PLC0415

    return query_watchers(conn, user_id)


def record_last_seen(conn: psycopg.Connection, user_id: str, seen_at: datetime) -> None:
    conn.execute("SELECT accounts.record_last_seen(%s, %s)", (user_id, seen_at))


# ---- the accept path in batches (services/chat/accept.py) ----------------------------------


def senders_may_post(conn: psycopg.Connection, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Row]:
    """sender_may_post for many (conversation, sender) pairs in one query; absent: no member."""
    rows = conn.execute(
        """
        SELECT v.conversation_id, v.sender_id, c.type,
               EXISTS (SELECT 1 FROM conversations.members o
                       JOIN accounts.blocks b ON b.blocker_id = o.user_id AND b.blocked_id = v.sender_id
                       WHERE o.conversation_id = c.id AND o.user_id <> v.sender_id
                         AND c.type = 'direct') AS blocked
        FROM unnest(%s::uuid[], %s::uuid[]) AS v(conversation_id, sender_id)
        JOIN conversations.conversations c ON c.id = v.conversation_id
        JOIN conversations.members me ON me.conversation_id = c.id AND me.user_id = v.sender_id
        """,
        ([c for c, _ in pairs], [s for _, s in pairs]),
    ).fetchall()
    return {(str(r["conversation_id"]), str(r["sender_id"])): r for r in rows}


def lock_conversations(conn: psycopg.Connection, conversation_ids: list[str]) -> None:
    """Row locks on the conversations, always taken in id order: two instances' batches that
    share conversations wait for each other instead of deadlocking."""
    conn.execute(
        "SELECT id FROM conversations.conversations WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
        (sorted(conversation_ids),),
    ).fetchall()


def find_by_client_msg_ids(
    conn: psycopg.Connection, keys: list[tuple[str, str, str]]
) -> dict[tuple[str, str, str], Row]:
    """Accepted messages by (conversation, sender, client_msg_id), in one query."""
    rows = conn.execute(
        f"""
        SELECT {MESSAGE_COLUMNS} FROM conversations.messages m
        JOIN unnest(%s::uuid[], %s::uuid[], %s::text[]) AS v(conversation_id, sender_id, client_msg_id)
          ON m.conversation_id = v.conversation_id AND m.sender_id = v.sender_id
         AND m.client_msg_id = v.client_msg_id
        """,
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    ).fetchall()
    return {(str(r["conversation_id"]), str(r["sender_id"]), r["client_msg_id"]): r for r in rows}


def allocate_seqs(conn: psycopg.Connection, counts: dict[str, int]) -> dict[str, int]:
    """Take `n` seqs per conversation (locked already); the last seq taken of each."""
    ids = sorted(counts)
    rows = conn.execute(
        """
        UPDATE conversations.conversations c SET last_seq = c.last_seq + v.n
        FROM unnest(%s::uuid[], %s::bigint[]) AS v(id, n)
        WHERE c.id = v.id
        RETURNING c.id, c.last_seq
        """,
        (ids, [counts[i] for i in ids]),
    ).fetchall()
    return {str(r["id"]): int(r["last_seq"]) for r in rows}


def insert_messages(conn: psycopg.Connection, messages: list[Row]) -> list[Row]:
    """Record many messages (id, conversation_id, seq, sender_id, client_msg_id, body,
    ttl_seconds, encrypted?, reply_to?, media_id?) in one statement; the recorded rows, in
    seq order per conversation."""
    rows = conn.execute(
        f"""
        INSERT INTO conversations.messages AS m
            (id, conversation_id, seq, sender_id, client_msg_id, body, expires_at, encrypted, reply_to,
             media_id)
        SELECT v.id, v.conversation_id, v.seq, v.sender_id, v.client_msg_id, v.body,
               CASE WHEN v.ttl IS NULL THEN NULL ELSE now() + make_interval(secs => v.ttl) END,
               v.encrypted, v.reply_to, v.media_id
        FROM unnest(%s::text[], %s::uuid[], %s::bigint[], %s::uuid[], %s::text[], %s::text[], %s::int[],
                    %s::boolean[], %s::text[], %s::uuid[])
             AS v(id, conversation_id, seq, sender_id, client_msg_id, body, ttl, encrypted, reply_to,
                  media_id)
        RETURNING {MESSAGE_COLUMNS}
        """,
        (
            [m["id"] for m in messages],
            [m["conversation_id"] for m in messages],
            [m["seq"] for m in messages],
            [m["sender_id"] for m in messages],
            [m["client_msg_id"] for m in messages],
            [m["body"] for m in messages],
            [m["ttl_seconds"] for m in messages],
            [bool(m.get("encrypted")) for m in messages],
            [m.get("reply_to") for m in messages],
            [m.get("media_id") for m in messages],
        ),
    ).fetchall()
    return sorted(rows, key=lambda r: (str(r["conversation_id"]), int(r["seq"])))


# ---- media -------------------------------------------------------------------------------

MEDIA_COLUMNS = "x.id, x.uploader_id, x.content_type, x.size, x.sha256, x.created_at"


def insert_media(  # noqa: PLR0913 - the row's columns, named
    conn: psycopg.Connection, *, media_id: str, uploader: str, content_type: str, size: int, sha256: str
) -> Row:
    return conn.execute(
        f"""
        INSERT INTO conversations.media AS x (id, uploader_id, content_type, size, sha256)
        VALUES (%s, %s, %s, %s, %s) RETURNING {MEDIA_COLUMNS}
        """,
        (media_id, uploader, content_type, size, sha256),
    ).fetchone()


def media_for(conn: psycopg.Connection, media_id: str, viewer: str) -> Row | None:
    """The file if `viewer` may fetch it: its uploader, or a member of a conversation with a
    live message carrying it within the history that member sees; None otherwise."""
    return conn.execute(
        f"""
        SELECT {MEDIA_COLUMNS} FROM conversations.media x
        WHERE x.id = %(id)s AND (
            x.uploader_id = %(viewer)s
            OR EXISTS (
                SELECT 1 FROM conversations.messages m
                JOIN conversations.members me
                  ON me.conversation_id = m.conversation_id AND me.user_id = %(viewer)s
                WHERE m.media_id = x.id AND m.seq > me.visible_after_seq AND m.body IS NOT NULL
                  AND (m.expires_at IS NULL OR m.expires_at > now())
            )
        )
        """,
        {"id": media_id, "viewer": viewer},
    ).fetchone()


def own_media(conn: psycopg.Connection, wanted: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (uploader, media_id) pairs name an upload of that user, in one query."""
    if not wanted:
        return set()
    rows = conn.execute(
        """
        SELECT x.uploader_id, x.id FROM conversations.media x
        JOIN unnest(%s::uuid[], %s::uuid[]) AS v(uploader_id, id)
          ON x.id = v.id AND x.uploader_id = v.uploader_id
        """,
        ([w[0] for w in wanted], [w[1] for w in wanted]),
    ).fetchall()
    return {(str(r["uploader_id"]), str(r["id"])) for r in rows}


def messages_in_range(
    conn: psycopg.Connection, conversation_id: str, after_seq: int, before_seq: int
) -> list[Row]:
    """Recorded messages with after_seq < seq < before_seq (a connection's gap), in seq order."""
    return conn.execute(
        f"""
        SELECT {MESSAGE_COLUMNS} FROM conversations.messages m
        WHERE m.conversation_id = %s AND m.seq > %s AND m.seq < %s
        ORDER BY m.seq
        """,
        (conversation_id, after_seq, before_seq),
    ).fetchall()
