"""Sessions (one per login or registration: a refresh-token family) on a real PostgreSQL and
Redis: `device_name` and `session_id` on register and login, GET /sessions with `current`,
DELETE /sessions/{id} for the caller's own live sessions only, POST /auth/logout-all, each
revocation marked ended in Redis (what closes the sockets), and the prune of sessions whose
tokens are gone.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
import redis
from psycopg.rows import dict_row
from real_backends import redis_url
from service_helpers import bearer, user_app

from services.common.sessions import ENDED_KEY
from services.common.times import utcnow
from services.scheduled_jobs.tokens import delete_sessions_without_tokens
from services.user.context import user_context

PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account


@pytest.fixture(scope="module")
def backends(dsn):
    with redis_url() as url:
        app = user_app(WHATSAPP_POSTGRES_DSN=dsn, WHATSAPP_REDIS_URL=url)
        yield app, redis.Redis.from_url(url)
        with app.app_context():
            user_context().db.close()


@pytest.fixture
def client(backends):
    return backends[0].test_client()


@pytest.fixture
def ended(backends):
    """Whether Redis holds the ended mark of a session (what chat closes sockets by)."""
    return lambda sid: backends[1].get(ENDED_KEY.format(sid=sid)) is not None


def register(client, device_name: str | None = None) -> tuple[str, dict]:
    phone = "+1999" + str(uuid.uuid4().int)[:10]
    body = {"phone": phone, "password": PASSWORD, "display_name": "Sam"}
    if device_name is not None:
        body["device_name"] = device_name
    answer = client.post("/api/v1/auth/register", json=body)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return phone, answer.get_json()


def login(client, phone: str, device_name: str | None = None) -> dict:
    body = {"phone": phone, "password": PASSWORD} | ({"device_name": device_name} if device_name else {})
    answer = client.post("/api/v1/auth/login", json=body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def sessions(client, pair: dict) -> list[dict]:
    answer = client.get("/api/v1/sessions", headers=bearer(pair["access_token"]))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["sessions"]


def refreshes(client, pair: dict) -> int:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code


def test_each_login_is_a_session_with_its_device_name_and_the_caller_is_current(client):
    phone, phone_pair = register(client, "Pixel 8")
    laptop = login(client, phone, "Firefox on the laptop")
    unnamed = login(client, phone)
    assert len({phone_pair["session_id"], laptop["session_id"], unnamed["session_id"]}) == 3
    listed = sessions(client, laptop)
    assert {s["id"]: s["device_name"] for s in listed} == {
        phone_pair["session_id"]: "Pixel 8",
        laptop["session_id"]: "Firefox on the laptop",
        unnamed["session_id"]: None,
    }
    assert [s["id"] for s in listed if s["current"]] == [laptop["session_id"]]
    assert all(s["created_at"].endswith("Z") and s["last_used_at"] for s in listed)
    # A refresh keeps the session (same id, still listed once) and moves its last use.
    before = next(s for s in listed if s["id"] == laptop["session_id"])["last_used_at"]
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]}).get_json()
    assert rotated["session_id"] == laptop["session_id"]
    after = [s for s in sessions(client, rotated) if s["id"] == laptop["session_id"]]
    assert len(after) == 1 and after[0]["last_used_at"] >= before


@pytest.mark.parametrize("bad", ["", " ", "x" * 65, 7])
def test_a_bad_device_name_is_a_validation_error(client, bad):
    answer = client.post(
        "/api/v1/auth/register",
        json={"phone": "+19995550101", "password": PASSWORD, "display_name": "S", "device_name": bad},
    )
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "validation_error"


def test_deleting_a_session_revokes_it_and_ends_it_and_only_the_owners(client, ended):
    phone, first = register(client, "phone")
    second = login(client, phone, "laptop")
    _, stranger = register(client, "someone else")
    # Someone else's session, a malformed id, an unknown one: 404, nothing revoked.
    for target in (stranger["session_id"], "not-a-uuid", str(uuid.uuid4())):
        answer = client.delete(f"/api/v1/sessions/{target}", headers=bearer(first["access_token"]))
        assert answer.status_code == 404, target
        assert answer.get_json()["error"]["code"] == "not_found"
    assert refreshes(client, stranger) == 200 and not ended(stranger["session_id"])

    answer = client.delete(f"/api/v1/sessions/{second['session_id']}", headers=bearer(first["access_token"]))
    assert answer.status_code == 204
    assert ended(second["session_id"]) and not ended(first["session_id"])
    assert refreshes(client, second) == 401
    assert [s["id"] for s in sessions(client, first)] == [first["session_id"]]
    # Revoked already: 404 the second time.
    again = client.delete(f"/api/v1/sessions/{second['session_id']}", headers=bearer(first["access_token"]))
    assert again.status_code == 404


def test_logout_all_ends_every_session_of_the_caller_and_no_other(client, ended):
    phone, first = register(client, "phone")
    others = [login(client, phone, f"device {n}") for n in range(3)]
    _, stranger = register(client)
    answer = client.post("/api/v1/auth/logout-all", headers=bearer(others[0]["access_token"]))
    assert answer.status_code == 204
    for pair in [first, *others]:
        assert ended(pair["session_id"])
        assert refreshes(client, pair) == 401
    assert not ended(stranger["session_id"]) and refreshes(client, stranger) == 200
    # The routes want an access token.
    assert client.get("/api/v1/sessions").status_code == 401
    assert client.post("/api/v1/auth/logout-all").status_code == 401


def test_sessions_whose_tokens_are_gone_are_pruned_and_live_ones_stay(client, dsn):
    phone, live = register(client, "kept")
    gone = login(client, phone, "pruned")
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("DELETE FROM accounts.refresh_tokens WHERE family_id = %s", (gone["session_id"],))
        # Not older than the cutoff yet: kept.
        assert delete_sessions_without_tokens(conn, utcnow() - timedelta(days=1), 100) == 0
        assert delete_sessions_without_tokens(conn, utcnow() + timedelta(seconds=1), 100) >= 1
        left = Counter(
            str(row["id"])
            for row in conn.execute(
                "SELECT id FROM accounts.sessions WHERE id IN (%s, %s)",
                (live["session_id"], gone["session_id"]),
            )
        )
    assert left == Counter({live["session_id"]: 1})
