"""SQL of the user service (schema `accounts`), one small function per question.

Functions take an open connection (dict rows) so callers choose the transaction; they
return rows as dicts, None when there is no such row, or whether a change happened.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg

from services.common.media import MESSAGE_MEDIA_SQL

Row = dict[str, Any]
ID = uuid.UUID | str

# Reads of users that another user will see also return `is_contact`: whether the viewer
# keeps that user as a contact, which decides whether the phone number is shown.


# ---- users -------------------------------------------------------------------------------


def create_user(conn: psycopg.Connection, *, phone: str, display_name: str, password_hash: str) -> Row | None:
    """The new user, or None when the phone number is taken."""
    return conn.execute(
        """
        INSERT INTO accounts.users AS u (phone, display_name, password_hash)
        VALUES (%(phone)s, %(display_name)s, %(password_hash)s)
        ON CONFLICT (phone) DO NOTHING
        RETURNING u.id, u.phone, u.display_name, u.about, u.avatar_url, u.created_at
        """,
        {"phone": phone, "display_name": display_name, "password_hash": password_hash},
    ).fetchone()


def get_login(conn: psycopg.Connection, phone: str) -> Row | None:
    """The user with their password hash, for login only."""
    return conn.execute(
        """
        SELECT u.id, u.phone, u.display_name, u.about, u.avatar_url, u.created_at, u.password_hash
        FROM accounts.users u WHERE u.phone = %(phone)s
        """,
        {"phone": phone},
    ).fetchone()


def get_user(conn: psycopg.Connection, user_id: ID, *, viewer: ID) -> Row | None:
    """The user as `viewer` sees them: with `is_contact` (viewer keeps them as a contact)
    and `last_seen_visibility` (shown to the user only; routes decide)."""
    return conn.execute(
        """
        SELECT u.id, u.phone, u.display_name, u.about, u.avatar_url, u.created_at,
               u.last_seen_visibility,
               EXISTS (SELECT 1 FROM accounts.contacts c
                       WHERE c.owner_id = %(viewer)s AND c.contact_id = u.id) AS is_contact
        FROM accounts.users u WHERE u.id = %(id)s
        """,
        {"id": user_id, "viewer": viewer},
    ).fetchone()


def find_users_by_phone(conn: psycopg.Connection, phone: str, *, viewer: ID) -> list[Row]:
    return conn.execute(
        """
        SELECT u.id, u.phone, u.display_name, u.about, u.avatar_url, u.created_at,
               EXISTS (SELECT 1 FROM accounts.contacts c
                       WHERE c.owner_id = %(viewer)s AND c.contact_id = u.id) AS is_contact
        FROM accounts.users u WHERE u.phone = %(phone)s
        """,
        {"phone": phone, "viewer": viewer},
    ).fetchall()


PROFILE_FIELDS = ("display_name", "about", "avatar_url", "last_seen_visibility")


def update_profile(conn: psycopg.Connection, user_id: ID, changes: dict[str, Any]) -> Row | None:
    """Set the given fields among PROFILE_FIELDS; the user after, or None."""
    return conn.execute(
        """
        UPDATE accounts.users AS u SET
            display_name = CASE WHEN %(set_display_name)s THEN %(display_name)s ELSE u.display_name END,
            about = CASE WHEN %(set_about)s THEN %(about)s ELSE u.about END,
            avatar_url = CASE WHEN %(set_avatar_url)s THEN %(avatar_url)s ELSE u.avatar_url END,
            last_seen_visibility = CASE WHEN %(set_last_seen_visibility)s
                                        THEN %(last_seen_visibility)s ELSE u.last_seen_visibility END
        WHERE u.id = %(id)s
        RETURNING u.id, u.phone, u.display_name, u.about, u.avatar_url, u.created_at,
                  u.last_seen_visibility
        """,
        {
            "id": user_id,
            **{f"set_{name}": name in changes for name in PROFILE_FIELDS},
            **{name: changes.get(name) for name in PROFILE_FIELDS},
        },
    ).fetchone()


def get_presence(conn: psycopg.Connection, user_id: ID, *, viewer: ID) -> Row | None:
    """`last_seen` of a user, its `last_seen_visibility`, whether it blocked the viewer (who
    then sees nothing) and whether it keeps the viewer as a contact (`viewer_is_contact`)."""
    return conn.execute(
        """
        SELECT u.last_seen, u.last_seen_visibility,
               EXISTS (SELECT 1 FROM accounts.blocks b
                       WHERE b.blocker_id = u.id AND b.blocked_id = %(viewer)s) AS blocked_viewer,
               EXISTS (SELECT 1 FROM accounts.contacts c
                       WHERE c.owner_id = u.id AND c.contact_id = %(viewer)s) AS viewer_is_contact
        FROM accounts.users u WHERE u.id = %(id)s
        """,
        {"id": user_id, "viewer": viewer},
    ).fetchone()


# ---- contacts and blocks -----------------------------------------------------------------


def list_contacts(conn: psycopg.Connection, owner_id: ID) -> list[Row]:
    return conn.execute(
        """
        SELECT u.id, u.phone, u.display_name, u.about, u.avatar_url, u.created_at, true AS is_contact
        FROM accounts.contacts c JOIN accounts.users u ON u.id = c.contact_id
        WHERE c.owner_id = %(owner)s
        ORDER BY u.display_name, u.id
        """,
        {"owner": owner_id},
    ).fetchall()


def add_contact(conn: psycopg.Connection, owner_id: ID, contact_id: ID) -> bool:
    """False when `contact_id` is no user; adding a contact twice is not an error."""
    try:
        # A savepoint (or its own transaction): the violation must not abort the caller's.
        with conn.transaction():
            conn.execute(
                """
                INSERT INTO accounts.contacts (owner_id, contact_id) VALUES (%(owner)s, %(contact)s)
                ON CONFLICT DO NOTHING
                """,
                {"owner": owner_id, "contact": contact_id},
            )
    except psycopg.errors.ForeignKeyViolation:
        return False
    return True


def remove_contact(conn: psycopg.Connection, owner_id: ID, contact_id: ID) -> bool:
    cur = conn.execute(
        "DELETE FROM accounts.contacts WHERE owner_id = %(owner)s AND contact_id = %(contact)s",
        {"owner": owner_id, "contact": contact_id},
    )
    return cur.rowcount > 0


def list_blocks(conn: psycopg.Connection, blocker_id: ID) -> list[Row]:
    return conn.execute(
        """
        SELECT u.id, u.phone, u.display_name, u.about, u.avatar_url, u.created_at,
               EXISTS (SELECT 1 FROM accounts.contacts c
                       WHERE c.owner_id = %(viewer)s AND c.contact_id = u.id) AS is_contact
        FROM accounts.blocks b JOIN accounts.users u ON u.id = b.blocked_id
        WHERE b.blocker_id = %(viewer)s
        ORDER BY u.display_name, u.id
        """,
        {"viewer": blocker_id},
    ).fetchall()


def add_block(conn: psycopg.Connection, blocker_id: ID, blocked_id: ID) -> bool:
    """False when `blocked_id` is no user; blocking twice is not an error."""
    try:
        with conn.transaction():
            conn.execute(
                """
                INSERT INTO accounts.blocks (blocker_id, blocked_id) VALUES (%(blocker)s, %(blocked)s)
                ON CONFLICT DO NOTHING
                """,
                {"blocker": blocker_id, "blocked": blocked_id},
            )
    except psycopg.errors.ForeignKeyViolation:
        return False
    return True


def remove_block(conn: psycopg.Connection, blocker_id: ID, blocked_id: ID) -> bool:
    cur = conn.execute(
        "DELETE FROM accounts.blocks WHERE blocker_id = %(blocker)s AND blocked_id = %(blocked)s",
        {"blocker": blocker_id, "blocked": blocked_id},
    )
    return cur.rowcount > 0


# ---- devices -----------------------------------------------------------------------------


# The contract's bound on push targets per user.
MAX_DEVICES_PER_USER = 20


class TooManyDevices(Exception):
    """The user has MAX_DEVICES_PER_USER push targets already (and this is not one of them)."""


class SessionEnded(Exception):
    """The access token's session is gone (its sessions row was pruned)."""


def add_device(  # noqa: PLR0913 - the session and the bound are keyword-only
    conn: psycopg.Connection,
    user_id: ID,
    platform: str,
    token: str,
    *,
    session_id: ID | None = None,
    limit: int = MAX_DEVICES_PER_USER,
) -> uuid.UUID | None:
    """The device's id; registering the same (platform, token) again returns the same id,
    at the limit too, and hands the device to `session_id` (the app logged in again).
    TooManyDevices when the user has `limit` other devices.

    None when `user_id` is no user: a valid access token can outlive its account.
    """
    params = {"user": user_id, "platform": platform, "token": token, "limit": limit, "session": session_id}
    try:
        # A savepoint (or its own transaction): the violation must not abort the caller's.
        with conn.transaction():
            # The user's row locked first: concurrent registrations of one user take turns,
            # and the count below (a new statement, so a new snapshot) sees every device
            # committed before. NO KEY UPDATE conflicts with itself, not with the KEY SHARE
            # that other rows' foreign keys to the user take.
            if (
                conn.execute(
                    "SELECT 1 FROM accounts.users WHERE id = %(user)s FOR NO KEY UPDATE", params
                ).fetchone()
                is None
            ):
                return None
            row = conn.execute(
                """
                INSERT INTO accounts.devices (user_id, platform, token, session_id)
                SELECT %(user)s, %(platform)s, %(token)s, %(session)s
                WHERE (SELECT count(*) FROM accounts.devices d WHERE d.user_id = %(user)s) < %(limit)s
                   OR EXISTS (SELECT 1 FROM accounts.devices d
                              WHERE d.user_id = %(user)s AND d.platform = %(platform)s
                                AND d.token = %(token)s)
                ON CONFLICT (user_id, platform, token) DO UPDATE SET session_id = EXCLUDED.session_id
                RETURNING id
                """,
                params,
            ).fetchone()
    except psycopg.errors.ForeignKeyViolation as exc:
        if exc.diag.constraint_name == "devices_session_id_fkey":
            raise SessionEnded("the session of this token has ended") from None
        return None
    if row is None:
        raise TooManyDevices(f"at most {limit} push targets per user")
    return row["id"]


def delete_device(conn: psycopg.Connection, user_id: ID, device_id: ID) -> bool:
    """Only the owner's own device is deleted; someone else's looks like no device at all."""
    cur = conn.execute(
        "DELETE FROM accounts.devices WHERE id = %(id)s AND user_id = %(user)s",
        {"id": device_id, "user": user_id},
    )
    return cur.rowcount > 0


# ---- refresh tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class NewRefreshToken:
    family_id: ID
    user_id: ID
    token_hash: str
    issued_at: datetime
    expires_at: datetime


def insert_refresh_token(conn: psycopg.Connection, token: NewRefreshToken) -> None:
    conn.execute(
        """
        INSERT INTO accounts.refresh_tokens (family_id, user_id, token_hash, issued_at, expires_at)
        VALUES (%(family_id)s, %(user_id)s, %(token_hash)s, %(issued_at)s, %(expires_at)s)
        """,
        asdict(token),
    )


def lock_refresh_token(conn: psycopg.Connection, token_hash: str) -> Row | None:
    """The token's record, row-locked until the caller's transaction ends."""
    return conn.execute(
        """
        SELECT id, family_id, user_id, expires_at, used_at, revoked_at
        FROM accounts.refresh_tokens WHERE token_hash = %(hash)s
        FOR UPDATE
        """,
        {"hash": token_hash},
    ).fetchone()


def mark_refresh_token_used(conn: psycopg.Connection, token_id: ID, now: datetime) -> None:
    conn.execute(
        "UPDATE accounts.refresh_tokens SET used_at = %(now)s WHERE id = %(id)s",
        {"id": token_id, "now": now},
    )


# ---- sessions (a session is a refresh-token family: migrations 0004) -----------------------


def insert_session(
    conn: psycopg.Connection, session_id: ID, user_id: ID, device_name: str | None, now: datetime
) -> None:
    conn.execute(
        """
        INSERT INTO accounts.sessions (id, user_id, device_name, created_at)
        VALUES (%(id)s, %(user)s, %(device)s, %(now)s)
        """,
        {"id": session_id, "user": user_id, "device": device_name, "now": now},
    )


def list_sessions(conn: psycopg.Connection, user_id: ID, now: datetime) -> list[Row]:
    """The user's live sessions (a token not used, revoked nor expired), newest use first."""
    return conn.execute(
        """
        SELECT s.id, s.device_name, s.created_at, max(t.issued_at) AS last_used_at
        FROM accounts.sessions s
        JOIN accounts.refresh_tokens t ON t.family_id = s.id
        WHERE s.user_id = %(user)s
        GROUP BY s.id
        HAVING bool_or(t.used_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > %(now)s)
        ORDER BY last_used_at DESC, s.id
        """,
        {"user": user_id, "now": now},
    ).fetchall()


def revoke_sessions(
    conn: psycopg.Connection, user_id: ID, now: datetime, session_id: ID | None = None
) -> list[str]:
    """Revoke the user's live sessions (only `session_id` when given); their ids."""
    rows = conn.execute(
        """
        WITH live AS (
            SELECT DISTINCT family_id FROM accounts.refresh_tokens
            WHERE user_id = %(user)s AND (%(session)s::uuid IS NULL OR family_id = %(session)s::uuid)
              AND used_at IS NULL AND revoked_at IS NULL AND expires_at > %(now)s
        )
        UPDATE accounts.refresh_tokens t SET revoked_at = %(now)s
        FROM live WHERE t.family_id = live.family_id AND t.revoked_at IS NULL
        RETURNING t.family_id
        """,
        {"user": user_id, "now": now, "session": session_id},
    ).fetchall()
    ended = sorted({str(row["family_id"]) for row in rows})
    forget_push_targets(conn, ended)
    return ended


def revoke_refresh_family(conn: psycopg.Connection, family_id: ID, now: datetime) -> int:
    cur = conn.execute(
        """
        UPDATE accounts.refresh_tokens SET revoked_at = %(now)s
        WHERE family_id = %(family)s AND revoked_at IS NULL
        """,
        {"family": family_id, "now": now},
    )
    forget_push_targets(conn, [family_id])
    return cur.rowcount


def forget_push_targets(conn: psycopg.Connection, session_ids: list[ID]) -> None:
    """A revoked session's push targets go with it (in the revocation's transaction): a
    logged-out phone gets no more pushes."""
    if session_ids:
        conn.execute(
            "DELETE FROM accounts.devices WHERE session_id = ANY(%s::uuid[])",
            ([str(s) for s in session_ids],),
        )


# ---- end-to-end encryption keys (migrations 0005): public keys per session ----------------

# The contract's bounds on one-time prekeys: per upload, and in a session's stock.
MAX_PREKEYS_PER_UPLOAD = 100
MAX_PREKEYS_PER_SESSION = 500


class TooManyPrekeys(Exception):
    """The upload would take the session's stock above MAX_PREKEYS_PER_SESSION."""


class RepeatedPrekey(Exception):
    """A key_id of the upload is in the session's stock already."""


@dataclass(frozen=True)
class KeyUpload:
    """What one PUT /keys of one session brings: None keeps the stored identity key or signed
    prekey."""

    session_id: ID
    user_id: ID
    identity_key: str | None
    signed_prekey: dict[str, Any] | None
    one_time_prekeys: list[dict[str, Any]]


def put_keys(
    conn: psycopg.Connection, upload: KeyUpload, now: datetime, limit: int = MAX_PREKEYS_PER_SESSION
) -> None:
    """Store the session's keys in the caller's transaction: an identity key or signed prekey
    left out keeps the stored one; one-time prekeys are added to the stock. The upsert locks
    the session's row first, so concurrent uploads of one session count the stock in turn."""
    session_id, user_id = upload.session_id, upload.user_id
    identity_key, signed_prekey, one_time_prekeys = (
        upload.identity_key,
        upload.signed_prekey,
        upload.one_time_prekeys,
    )
    conn.execute(
        """
        INSERT INTO accounts.session_keys AS k (session_id, user_id, identity_key,
            signed_prekey_id, signed_prekey, signed_prekey_signature, updated_at)
        VALUES (%(session)s, %(user)s, %(identity)s, %(spk_id)s, %(spk)s, %(spk_sig)s, %(now)s)
        ON CONFLICT (session_id) DO UPDATE SET
            identity_key = coalesce(EXCLUDED.identity_key, k.identity_key),
            signed_prekey_id = CASE WHEN %(spk)s::text IS NULL
                                    THEN k.signed_prekey_id ELSE EXCLUDED.signed_prekey_id END,
            signed_prekey = coalesce(EXCLUDED.signed_prekey, k.signed_prekey),
            signed_prekey_signature = coalesce(EXCLUDED.signed_prekey_signature, k.signed_prekey_signature),
            updated_at = EXCLUDED.updated_at
        """,
        {
            "session": session_id,
            "user": user_id,
            "identity": identity_key,
            "spk_id": signed_prekey["key_id"] if signed_prekey else None,
            "spk": signed_prekey["public_key"] if signed_prekey else None,
            "spk_sig": signed_prekey["signature"] if signed_prekey else None,
            "now": now,
        },
    )
    # The upsert holds the session's row lock until the transaction ends.
    if not one_time_prekeys:
        return
    if count_prekeys(conn, session_id) + len(one_time_prekeys) > limit:
        raise TooManyPrekeys
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO accounts.one_time_prekeys (session_id, key_id, public_key)
                VALUES (%(session)s, %(key_id)s, %(public_key)s)
                """,
                [{"session": session_id, **key} for key in one_time_prekeys],
            )
    except psycopg.errors.UniqueViolation:
        raise RepeatedPrekey from None


def count_prekeys(conn: psycopg.Connection, session_id: ID) -> int:
    return conn.execute(
        "SELECT count(*) AS n FROM accounts.one_time_prekeys WHERE session_id = %(s)s", {"s": session_id}
    ).fetchone()["n"]


def claim_keys(conn: psycopg.Connection, user_id: ID, now: datetime) -> list[Row]:
    """One entry per live session of the user that uploaded an identity key and a signed
    prekey, each with one of its one-time prekeys claimed (deleted) when it has one. Runs in
    the caller's transaction; SKIP LOCKED lets concurrent claims take different keys, and a
    key is deleted as it is handed out, so none is ever handed out twice."""
    sessions = conn.execute(
        """
        SELECT k.session_id, k.identity_key, k.signed_prekey_id, k.signed_prekey, k.signed_prekey_signature
        FROM accounts.session_keys k
        WHERE k.user_id = %(user)s AND k.identity_key IS NOT NULL AND k.signed_prekey IS NOT NULL
          AND EXISTS (
              SELECT 1 FROM accounts.refresh_tokens t
              WHERE t.family_id = k.session_id AND t.used_at IS NULL AND t.revoked_at IS NULL
                AND t.expires_at > %(now)s)
        ORDER BY k.session_id
        """,
        {"user": user_id, "now": now},
    ).fetchall()
    out = []
    for row in sessions:
        claimed = conn.execute(
            """
            DELETE FROM accounts.one_time_prekeys
            WHERE (session_id, key_id) = (
                SELECT session_id, key_id FROM accounts.one_time_prekeys
                WHERE session_id = %(s)s ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING key_id, public_key
            """,
            {"s": row["session_id"]},
        ).fetchone()
        out.append({**row, "one_time_prekey": claimed})
    return out


def blocked_by(conn: psycopg.Connection, blocker_id: ID, blocked_id: ID) -> bool | None:
    """Whether `blocker_id` blocks `blocked_id`; None when `blocker_id` is no user."""
    row = conn.execute(
        """
        SELECT EXISTS (SELECT 1 FROM accounts.blocks b
                       WHERE b.blocker_id = u.id AND b.blocked_id = %(blocked)s) AS blocked
        FROM accounts.users u WHERE u.id = %(blocker)s
        """,
        {"blocker": blocker_id, "blocked": blocked_id},
    ).fetchone()
    return None if row is None else bool(row["blocked"])


# ---- leaving for good: export and deletion ---------------------------------------------------


def password_hash_of(conn: psycopg.Connection, user_id: ID) -> str | None:
    row = conn.execute("SELECT password_hash FROM accounts.users WHERE id = %s", (user_id,)).fetchone()
    return row["password_hash"] if row else None


def list_devices(conn: psycopg.Connection, user_id: ID) -> list[Row]:
    return conn.execute(
        """
        SELECT id, platform, token, created_at FROM accounts.devices
        WHERE user_id = %s ORDER BY created_at, id
        """,
        (user_id,),
    ).fetchall()


def my_conversations(conn: psycopg.Connection, user_id: ID) -> list[Row]:
    """The user's conversations with its role in each (schema conversations, read only)."""
    return conn.execute(
        """
        SELECT c.id, c.type, c.title, me.role FROM conversations.members me
        JOIN conversations.conversations c ON c.id = me.conversation_id
        WHERE me.user_id = %s ORDER BY me.joined_at, c.id
        """,
        (user_id,),
    ).fetchall()


def my_messages(conn: psycopg.Connection, user_id: ID) -> list[Row]:
    """Every message the user sent that is neither deleted nor expired, oldest first."""
    return conn.execute(
        f"""
        SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.client_msg_id, m.body, m.created_at,
               m.expires_at, m.deleted_at, m.encrypted, m.reply_to, m.edited_at, {MESSAGE_MEDIA_SQL}
        FROM conversations.messages m
        WHERE m.sender_id = %s AND m.body IS NOT NULL AND (m.expires_at IS NULL OR m.expires_at > now())
        ORDER BY m.created_at, m.conversation_id, m.seq
        """,
        (user_id,),
    ).fetchall()


def session_ids(conn: psycopg.Connection, user_id: ID) -> list[str]:
    rows = conn.execute("SELECT id FROM accounts.sessions WHERE user_id = %s", (user_id,)).fetchall()
    return [str(r["id"]) for r in rows]


def delete_account(conn: psycopg.Connection, user_id: ID) -> list[Row]:
    """Remove the account in the caller's transaction: first its part of schema conversations
    (conversations.leave_for_good, migration conversations 0005: bodies erased, reactions
    removed, every conversation left, admins handed over), then the user row, whose removal
    cascades to sessions, refresh tokens, devices, keys, contacts and blocks both ways.
    Returns leave_for_good's events (`event`, `conv_id`, `msg_id`, `msg_seq`)."""
    events = conn.execute("SELECT * FROM conversations.leave_for_good(%s)", (user_id,)).fetchall()
    conn.execute("DELETE FROM accounts.users WHERE id = %s", (user_id,))
    return events
