"""Token pairs: a short-lived access JWT and an opaque, rotating refresh token.

Refresh tokens are `secrets.token_urlsafe(32)`, stored only as SHA-256 digests. Every use
rotates: the presented token is marked used and a new one is issued in the same family.
A token presented again after its use means it was stolen or replayed, so the whole family is
revoked (the thief's and the owner's sessions both end) and the answer is 401.
The decision is `decide_refresh`, a pure function; the SQL lives in store.py.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
import redis

from services.common.auth import AccessTokenSigner
from services.common.db import Database
from services.common.errors import Unauthorized
from services.common.sessions import end_sessions
from services.common.times import utcnow
from services.user import store

REFRESH_REFUSED = "refresh token is spent, expired or revoked"


class RefreshAction(enum.Enum):
    ROTATE = "rotate"  # valid: mark used, issue a new pair in the same family
    REVOKE_FAMILY = "revoke_family"  # spent token re-used: revoke every token of its family, 401
    REJECT = "reject"  # unknown, expired or revoked: 401, nothing to change


@dataclass(frozen=True)
class RefreshTokenRecord:
    id: uuid.UUID
    family_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RefreshTokenRecord:
        return cls(**{field: row[field] for field in cls.__dataclass_fields__})


def decide_refresh(record: RefreshTokenRecord | None, now: datetime) -> RefreshAction:
    """What to do with a presented refresh token, given its stored record (None: unknown)."""
    if record is None or record.revoked_at is not None:
        return RefreshAction.REJECT
    if record.used_at is not None:
        return RefreshAction.REVOKE_FAMILY
    if record.expires_at <= now:
        return RefreshAction.REJECT
    return RefreshAction.ROTATE


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenIssuer:
    """Issues, rotates and revokes token pairs; the SQL is in store.py."""

    def __init__(self, signer: AccessTokenSigner, *, refresh_ttl_seconds: int, redis_client: redis.Redis):
        self.signer = signer
        self.refresh_ttl = timedelta(seconds=refresh_ttl_seconds)
        self.redis = redis_client

    def issue_pair(
        self,
        conn: psycopg.Connection,
        user_id: uuid.UUID | str,
        *,
        family_id: uuid.UUID | None = None,
        device_name: str | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """A new access token and refresh token (stored hashed); a new family, a new session
        (named `device_name`), unless given one. The family is the session: its id is the
        access token's `sid` and the answer's `session_id`."""
        now = now or utcnow()
        refresh_token = new_refresh_token()
        if family_id is None:
            family_id = uuid.uuid4()
            store.insert_session(conn, family_id, user_id, device_name, now)
        store.insert_refresh_token(
            conn,
            store.NewRefreshToken(
                family_id=family_id,
                user_id=user_id,
                token_hash=hash_refresh_token(refresh_token),
                issued_at=now,
                expires_at=now + self.refresh_ttl,
            ),
        )
        return {
            "access_token": self.signer.issue(str(user_id), session_id=str(family_id), now=now.timestamp()),
            "refresh_token": refresh_token,
            "token_type": "Bearer",
            "expires_in": self.signer.ttl_seconds,
            "session_id": str(family_id),
        }

    def rotate(self, db: Database, token: str) -> dict[str, Any]:
        """Exchange a refresh token for a new pair, or Unauthorized (after revoking on re-use)."""
        now = utcnow()
        with db.transaction() as conn:
            # FOR UPDATE: two concurrent uses of one token are serialized, so the second
            # one is seen as a re-use instead of both rotating.
            row = store.lock_refresh_token(conn, hash_refresh_token(token))
            record = RefreshTokenRecord.from_row(row) if row else None
            action = decide_refresh(record, now)
            if action is RefreshAction.ROTATE and record is not None:
                store.mark_refresh_token_used(conn, record.id, now)
                return self.issue_pair(conn, record.user_id, family_id=record.family_id, now=now)
            revoked = action is RefreshAction.REVOKE_FAMILY and record is not None
            if revoked and record is not None:
                store.revoke_refresh_family(conn, record.family_id, now)
        # Only after the transaction committed: the revocation must stand.
        if revoked and record is not None:
            self.end_session(record.family_id)
        raise Unauthorized(REFRESH_REFUSED)

    def end_session(self, family_id: uuid.UUID | str) -> None:
        """The session's sockets end too (every chat instance is told through Redis)."""
        end_sessions(self.redis, [str(family_id)], access_ttl_seconds=self.signer.ttl_seconds)

    def revoke_sessions(self, db: Database, user_id: str, session_id: str | None = None) -> list[str]:
        """Revoke the user's live sessions (only `session_id` when given) and end their sockets;
        the ids revoked (empty: no such live session of this user)."""
        with db.transaction() as conn:
            ended = store.revoke_sessions(conn, user_id, utcnow(), session_id)
        # Only after the transaction committed: the revocation must stand.
        for sid in ended:
            self.end_session(sid)
        return ended

    def revoke_family_of(self, db: Database, token: str, user_id: str, session_id: str | None = None) -> None:
        """Logout: revoke the family of the caller's own refresh token (others' are left alone)
        and end its sockets; `session_id` (the caller's access token's) ends with it."""
        ended = {session_id} if session_id else set()
        with db.transaction() as conn:
            row = store.lock_refresh_token(conn, hash_refresh_token(token))
            if row is not None and str(row["user_id"]) == user_id:
                store.revoke_refresh_family(conn, row["family_id"], utcnow())
                ended.add(str(row["family_id"]))
        for sid in ended:
            self.end_session(sid)
