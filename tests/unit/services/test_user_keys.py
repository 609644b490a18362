"""End-to-end encryption key distribution on a real PostgreSQL (and Redis for the app):
PUT /keys per session, GET /keys/count, GET /users/{id}/keys claiming one one-time prekey per
session, atomically: 50 concurrent claims against 20 keys get 20 distinct keys and 30
answers without one. Bounds (100 per upload, 500 in stock, repeated key ids), bad keys,
blocks and unknown users, and revoked sessions left out.
"""

from __future__ import annotations

import base64
import os
import threading
import uuid

import pytest
import redis
from real_backends import redis_url, throwaway_database
from service_helpers import bearer, user_app

from services.user.context import user_context

PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account


def key(size: int = 32) -> str:
    return base64.b64encode(os.urandom(size)).decode()


@pytest.fixture(scope="module")
def app():
    with throwaway_database(["accounts"]) as dsn, redis_url() as url:
        app = user_app(WHATSAPP_POSTGRES_DSN=dsn, WHATSAPP_REDIS_URL=url)
        yield app
        with app.app_context():
            user_context().db.close()
        redis.Redis.from_url(url).close()


@pytest.fixture
def client(app):
    return app.test_client()


def register(client) -> dict:
    phone = "+1999" + str(uuid.uuid4().int)[:10]
    answer = client.post(
        "/api/v1/auth/register", json={"phone": phone, "password": PASSWORD, "display_name": "K"}
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return answer.get_json() | {"phone": phone}


def login(client, account: dict) -> dict:
    answer = client.post("/api/v1/auth/login", json={"phone": account["phone"], "password": PASSWORD})
    assert answer.status_code == 200
    return answer.get_json()


def upload(client, pair: dict, *, prekeys: range | list = range(0), with_identity: bool = True):
    body: dict = {"one_time_prekeys": [{"key_id": n, "public_key": key()} for n in prekeys]}
    if with_identity:
        body |= {
            "identity_key": key(),
            "signed_prekey": {"key_id": 1, "public_key": key(), "signature": key(64)},
        }
    return client.put("/api/v1/keys", json=body, headers=bearer(pair["access_token"]))


def count(client, pair: dict) -> int:
    answer = client.get("/api/v1/keys/count", headers=bearer(pair["access_token"]))
    assert answer.status_code == 200
    return answer.get_json()["one_time_prekeys"]


def claim(client, caller: dict, target: dict):
    return client.get(f"/api/v1/users/{target['user']['id']}/keys", headers=bearer(caller["access_token"]))


def test_each_session_uploads_its_keys_and_each_claim_takes_one_prekey_per_session(client):
    bob, alice = register(client), register(client)
    laptop = login(client, bob)
    assert upload(client, bob, prekeys=range(3)).status_code == 204
    assert upload(client, laptop, prekeys=range(10, 12)).status_code == 204
    assert (count(client, bob), count(client, laptop)) == (3, 2)

    answer = claim(client, alice, bob)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    devices = {d["session_id"]: d for d in answer.get_json()["devices"]}
    assert set(devices) == {bob["session_id"], laptop["session_id"]}
    assert set(devices[bob["session_id"]]["signed_prekey"]) == {"key_id", "public_key", "signature"}
    assert devices[bob["session_id"]]["one_time_prekey"]["key_id"] in range(3)
    assert (count(client, bob), count(client, laptop)) == (2, 1)
    # Claims drain the stock; then the entry has no one-time prekey, the rest stays.
    for _ in range(2):
        claim(client, alice, bob)
    last = {d["session_id"]: d for d in claim(client, alice, bob).get_json()["devices"]}
    assert "one_time_prekey" not in last[laptop["session_id"]]
    assert last[laptop["session_id"]]["identity_key"] == devices[laptop["session_id"]]["identity_key"]


def test_leaving_out_the_identity_key_keeps_it_and_a_session_without_one_is_not_listed(client):
    bob, alice = register(client), register(client)
    assert upload(client, bob, prekeys=[], with_identity=False).status_code == 204
    assert claim(client, alice, bob).get_json() == {"devices": []}
    assert upload(client, bob).status_code == 204
    first = claim(client, alice, bob).get_json()["devices"][0]["identity_key"]
    assert upload(client, bob, prekeys=range(2), with_identity=False).status_code == 204
    again = claim(client, alice, bob).get_json()["devices"][0]
    assert again["identity_key"] == first and again["one_time_prekey"]["key_id"] in (0, 1)


def test_fifty_concurrent_claims_against_twenty_keys_hand_out_each_key_once(app):
    client = app.test_client()
    bob = register(client)
    assert upload(client, bob, prekeys=range(20)).status_code == 204
    claimers = [register(client) for _ in range(50)]
    got: list[int | None] = []
    lock, start = threading.Lock(), threading.Barrier(50)

    def one(caller: dict) -> None:
        start.wait()
        answer = claim(app.test_client(), caller, bob)
        assert answer.status_code == 200
        (device,) = answer.get_json()["devices"]
        with lock:
            got.append(device.get("one_time_prekey", {}).get("key_id"))

    threads = [threading.Thread(target=one, args=(c,)) for c in claimers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    handed = [k for k in got if k is not None]
    assert len(got) == 50
    assert sorted(handed) == list(range(20)), "a key was handed out twice, or one was lost"
    assert got.count(None) == 30
    assert count(client, bob) == 0


def test_the_bounds_of_the_stock_and_of_one_upload(client):
    bob = register(client)
    for start in range(0, 500, 100):
        assert upload(client, bob, prekeys=range(start, start + 100)).status_code == 204
    full = upload(client, bob, prekeys=[500])
    assert full.status_code == 409 and full.get_json()["error"]["code"] == "conflict"
    assert count(client, bob) == 500
    other = register(client)
    assert upload(client, other, prekeys=range(101)).status_code == 400  # 100 per upload
    assert upload(client, other, prekeys=[7]).status_code == 204
    assert upload(client, other, prekeys=[7]).status_code == 409  # in the stock already
    assert upload(client, other, prekeys=[8, 8]).status_code == 409  # twice in one upload
    assert count(client, other) == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"identity_key": "not base64!"},
        {"identity_key": base64.b64encode(b"short").decode()},
        {"identity_key": base64.b64encode(os.urandom(257)).decode()},
        {"identity_key": base64.urlsafe_b64encode(b"\xfb" * 32).decode()},  # the URL alphabet
        {"signed_prekey": {"key_id": 1, "public_key": base64.b64encode(os.urandom(32)).decode()}},
        {"one_time_prekeys": [{"key_id": -1, "public_key": base64.b64encode(os.urandom(32)).decode()}]},
        {"one_time_prekeys": [{"key_id": "1", "public_key": base64.b64encode(os.urandom(32)).decode()}]},
        {"private_key": base64.b64encode(os.urandom(32)).decode()},
    ],
)
def test_a_bad_key_is_a_validation_error_and_stores_nothing(client, bad):
    bob = register(client)
    answer = client.put("/api/v1/keys", json=bad, headers=bearer(bob["access_token"]))
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["error"]["code"] == "validation_error"
    assert count(client, bob) == 0


def test_blocked_unknown_and_revoked(client):
    bob, alice = register(client), register(client)
    assert upload(client, bob, prekeys=range(2)).status_code == 204
    blocked = client.post(
        "/api/v1/blocks", json={"user_id": alice["user"]["id"]}, headers=bearer(bob["access_token"])
    )
    assert blocked.status_code in (200, 201, 204), blocked.get_data(as_text=True)
    refused = claim(client, alice, bob)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "blocked"
    assert count(client, bob) == 2  # nothing claimed
    unknown = client.get(f"/api/v1/users/{uuid.uuid4()}/keys", headers=bearer(alice["access_token"]))
    assert unknown.status_code == 404
    # A revoked session's keys are not handed out.
    carol = register(client)
    assert upload(client, carol).status_code == 204
    assert client.post("/api/v1/auth/logout-all", headers=bearer(carol["access_token"])).status_code == 204
    assert claim(client, alice, carol).get_json() == {"devices": []}
