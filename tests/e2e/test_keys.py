"""The contract's key distribution through nginx: each session uploads its public keys, a
contact fetches one entry per device, one-time prekeys are claimed once each even when
claims run at once, a block is honoured."""

from __future__ import annotations

import base64
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from stack_client import User

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module", autouse=True)
def stack(deployed_stack):
    assert deployed_stack[0].returncode == 0, "the deploy failed: see the deploy test"


def key(size: int = 32) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def keys(prekeys: range) -> dict:
    return {
        "identity_key": key(),
        "signed_prekey": {"key_id": 1, "public_key": key(), "signature": key(64)},
        "one_time_prekeys": [{"key_id": n, "public_key": key()} for n in prekeys],
    }


def test_two_devices_publish_keys_and_each_claim_takes_a_prekey_from_each():
    bob, alice = User("Bob with keys"), User("Alice fetching keys")
    laptop = bob.second_session().api
    assert bob.api.call("PUT", "/keys", keys(range(5))).status_code == 204
    assert laptop.call("PUT", "/keys", keys(range(100, 103))).status_code == 204
    assert bob.api.call("GET", "/keys/count").json() == {"one_time_prekeys": 5}
    answer = alice.api.call("GET", f"/users/{bob.id}/keys")
    assert answer.status_code == 200, answer.text
    devices = answer.json()["devices"]
    assert len(devices) == 2
    assert sorted(d["one_time_prekey"]["key_id"] for d in devices) == [0, 100]
    assert bob.api.call("GET", "/keys/count").json() == {"one_time_prekeys": 4}
    assert laptop.call("GET", "/keys/count").json() == {"one_time_prekeys": 2}
    # A bad key is the contract's validation error, and nothing is stored.
    bad = bob.api.call("PUT", "/keys", {"identity_key": "not base64"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"


def test_concurrent_claims_never_hand_out_a_prekey_twice():
    bob = User("Bob with ten prekeys")
    assert bob.api.call("PUT", "/keys", keys(range(10))).status_code == 204
    claimers = [User(f"claimer {n}") for n in range(15)]

    def claim(user: User) -> int | None:
        answer = user.api.call("GET", f"/users/{bob.id}/keys")
        assert answer.status_code == 200, answer.text
        (device,) = answer.json()["devices"]
        return device.get("one_time_prekey", {}).get("key_id")

    with ThreadPoolExecutor(max_workers=15) as pool:
        got = list(pool.map(claim, claimers))
    assert sorted(k for k in got if k is not None) == list(range(10)), got
    assert got.count(None) == 5


def test_a_user_who_blocked_the_caller_hands_out_no_keys():
    bob, alice = User("Bob blocking"), User("Alice blocked")
    assert bob.api.call("PUT", "/keys", keys(range(2))).status_code == 204
    assert bob.api.call("POST", "/blocks", {"user_id": alice.id}).status_code in (200, 201, 204)
    refused = alice.api.call("GET", f"/users/{bob.id}/keys")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "blocked"
    assert bob.api.call("GET", "/keys/count").json() == {"one_time_prekeys": 2}
