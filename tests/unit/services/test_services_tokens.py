"""Refresh tokens: the rotation/re-use decision, and what the issuer does with it."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import redis
from service_helpers import UNREACHABLE_REDIS, signer, verifier

from services.common.errors import Unauthorized
from services.user import store, tokens
from services.user.tokens import RefreshAction, RefreshTokenRecord, TokenIssuer, decide_refresh

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def record(**overrides) -> RefreshTokenRecord:
    fields = {
        "id": uuid.uuid4(),
        "family_id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "expires_at": NOW + timedelta(days=1),
        "used_at": None,
        "revoked_at": None,
    }
    fields.update(overrides)
    return RefreshTokenRecord(**fields)


def test_fresh_token_rotates():
    assert decide_refresh(record(), NOW) is RefreshAction.ROTATE


def test_spent_token_revokes_the_family():
    assert decide_refresh(record(used_at=NOW - timedelta(minutes=5)), NOW) is RefreshAction.REVOKE_FAMILY


def test_spent_and_expired_token_still_revokes_the_family():
    spent = record(used_at=NOW - timedelta(days=2), expires_at=NOW - timedelta(days=1))
    assert decide_refresh(spent, NOW) is RefreshAction.REVOKE_FAMILY


@pytest.mark.parametrize(
    "stored",
    [
        None,
        record(expires_at=NOW),
        record(expires_at=NOW - timedelta(seconds=1)),
        record(revoked_at=NOW - timedelta(hours=1)),
        record(revoked_at=NOW - timedelta(hours=1), used_at=NOW - timedelta(hours=2)),
    ],
    ids=["unknown", "expires-now", "expired", "revoked", "revoked-after-use"],
)
def test_unknown_expired_or_revoked_token_is_rejected(stored):
    assert decide_refresh(stored, NOW) is RefreshAction.REJECT


def test_refresh_tokens_are_opaque_random_and_stored_hashed():
    first, second = tokens.new_refresh_token(), tokens.new_refresh_token()
    assert first != second
    assert len(first) >= 43  # 32 random bytes, base64url
    digest = tokens.hash_refresh_token(first)
    assert len(digest) == 64 and first not in digest
    assert digest == tokens.hash_refresh_token(first)


# ---- the issuer's flow, with the store replaced by a recorder ------------------------------


class FakeDatabase:
    """Records whether each transaction committed or rolled back."""

    def __init__(self):
        self.outcomes: list[str] = []

    @contextmanager
    def transaction(self):
        try:
            yield object()
        except BaseException:
            self.outcomes.append("rollback")
            raise
        self.outcomes.append("commit")


@pytest.fixture
def fake_store(monkeypatch):
    calls: dict[str, list] = {"insert": [], "used": [], "revoked": [], "sessions": []}
    stored: dict[str, dict] = {}
    monkeypatch.setattr(store, "insert_refresh_token", lambda conn, token: calls["insert"].append(token))
    monkeypatch.setattr(
        store,
        "insert_session",
        lambda conn, session_id, user_id, device_name, now: calls["sessions"].append(
            (session_id, device_name)
        ),
    )
    monkeypatch.setattr(store, "lock_refresh_token", lambda conn, token_hash: stored.get(token_hash))
    monkeypatch.setattr(
        store, "mark_refresh_token_used", lambda conn, token_id, now: calls["used"].append(token_id)
    )
    monkeypatch.setattr(
        store, "revoke_refresh_family", lambda conn, family_id, now: calls["revoked"].append(family_id)
    )
    return calls, stored


def stored_row(rec: RefreshTokenRecord) -> dict:
    return {name: getattr(rec, name) for name in RefreshTokenRecord.__dataclass_fields__}


def issuer() -> TokenIssuer:
    # Ending a session tells chat through Redis; unreachable here: the revocation in
    # PostgreSQL still stands (test_services_sessions.py has a real Redis).
    unreachable = redis.Redis.from_url(UNREACHABLE_REDIS, socket_connect_timeout=0.2, socket_timeout=0.2)
    return TokenIssuer(signer(), refresh_ttl_seconds=3600, redis_client=unreachable)


def test_issue_pair_returns_the_contract_shape_and_stores_only_the_hash(fake_store):
    calls, _ = fake_store
    user_id = uuid.uuid4()
    pair = issuer().issue_pair(object(), user_id, device_name="phone", now=NOW)
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in", "session_id"}
    assert (pair["token_type"], pair["expires_in"]) == ("Bearer", 900)
    (saved,) = calls["insert"]
    assert saved.token_hash == tokens.hash_refresh_token(pair["refresh_token"])
    assert saved.expires_at == NOW + timedelta(hours=1)
    assert saved.user_id == user_id
    # The access token names its session: the refresh token's family.
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert claims["sid"] == str(saved.family_id) == pair["session_id"]
    # A new family is a new session, with its device's name.
    assert calls["sessions"] == [(saved.family_id, "phone")]


def test_rotation_marks_used_and_stays_in_the_family(fake_store):
    calls, stored = fake_store
    live = record(expires_at=datetime.now(UTC) + timedelta(days=1))
    presented = tokens.new_refresh_token()
    stored[tokens.hash_refresh_token(presented)] = stored_row(live)
    db = FakeDatabase()
    pair = issuer().rotate(db, presented)
    assert calls["used"] == [live.id]
    assert calls["insert"][0].family_id == live.family_id
    assert calls["sessions"] == []  # the same session
    assert verifier().verify(pair["access_token"])["sub"] == str(live.user_id)
    assert pair["refresh_token"] != presented
    assert db.outcomes == ["commit"]


def test_reuse_revokes_the_family_commits_then_answers_401(fake_store):
    calls, stored = fake_store
    spent = record(used_at=datetime.now(UTC) - timedelta(minutes=1))
    stored[tokens.hash_refresh_token("spent-token")] = stored_row(spent)
    db = FakeDatabase()
    with pytest.raises(Unauthorized):
        issuer().rotate(db, "spent-token")
    assert calls["revoked"] == [spent.family_id]
    # The revocation must survive the 401: the transaction committed before the error.
    assert db.outcomes == ["commit"]
    assert calls["insert"] == []


def test_unknown_token_changes_nothing(fake_store):
    calls, _ = fake_store
    with pytest.raises(Unauthorized):
        issuer().rotate(FakeDatabase(), "never-issued")
    assert calls == {"insert": [], "used": [], "revoked": [], "sessions": []}


def test_logout_revokes_only_the_callers_own_family(fake_store):
    calls, stored = fake_store
    mine = record()
    stored[tokens.hash_refresh_token("mine")] = stored_row(mine)
    issuer().revoke_family_of(FakeDatabase(), "mine", str(uuid.uuid4()))
    assert calls["revoked"] == []
    issuer().revoke_family_of(FakeDatabase(), "mine", str(mine.user_id))
    assert calls["revoked"] == [mine.family_id]
