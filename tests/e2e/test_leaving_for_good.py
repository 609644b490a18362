"""The contract's "Leaving for good" through nginx: the export holds everything stored about
the caller; deleting the account (password asked again) closes its sockets with 4401,
erases its messages for every member (`message.deleted`, gone from history), leaves its
groups with an admin handed over, removes its keys and profile, refuses its login and frees
its phone for a new registration."""

from __future__ import annotations

import base64
import os
import time

import pytest
from stack_client import PASSWORD, User, auth_call

pytestmark = pytest.mark.docker

CLOSE_UNAUTHORIZED = 4401
ENDS_WITHIN_SECONDS = 5.0


@pytest.fixture(scope="module", autouse=True)
def stack(deployed_stack):
    assert deployed_stack[0].returncode == 0, "the deploy failed: see the deploy test"


def key(size: int = 32) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def test_export_then_delete_for_good():  # noqa: PLR0915 - one story, step by step
    alice, bob, carol = User("Alice leaving"), User("Bob staying"), User("Carol staying")
    group = alice.group("Alice's group", [bob, carol])["id"]
    direct = alice.direct_with(bob)
    in_group = alice.post_message(group, "group hello")
    in_direct = alice.post_message(direct, "direct hello")
    kept = bob.post_message(direct, "bob's own words")
    assert bob.api.call("PUT", f"/messages/{in_direct['id']}/reaction", {"emoji": "👍"}).status_code == 204
    assert alice.api.call("POST", "/contacts", {"user_id": bob.id}).status_code == 201
    assert alice.api.call("POST", "/blocks", {"user_id": carol.id}).status_code == 201
    keys = {
        "identity_key": key(),
        "signed_prekey": {"key_id": 1, "public_key": key(), "signature": key(64)},
        "one_time_prekeys": [{"key_id": 1, "public_key": key()}],
    }
    assert alice.api.call("PUT", "/keys", keys).status_code == 204

    exported = alice.api.call("GET", "/users/me/export")
    assert exported.status_code == 200, exported.text
    data = exported.json()
    assert data["user"]["id"] == alice.id and data["user"]["phone"] == alice.phone
    assert [u["id"] for u in data["contacts"]] == [bob.id] and [u["id"] for u in data["blocks"]] == [carol.id]
    assert {c["id"]: c["role"] for c in data["conversations"]} == {group: "admin", direct: "member"}
    assert [m["id"] for m in data["messages"]] == [in_group["id"], in_direct["id"]]
    assert [s["current"] for s in data["sessions"]] == [True]

    wrong = alice.api.call("DELETE", "/users/me", {"password": "not my password"})
    assert wrong.status_code == 401, wrong.text
    with bob.socket() as watcher:
        sock = alice.socket()
        started = time.monotonic()
        gone = alice.api.call("DELETE", "/users/me", {"password": PASSWORD})
        assert gone.status_code == 204, gone.text
        sock.reader.join(timeout=ENDS_WITHIN_SECONDS)
        assert not sock.reader.is_alive(), "the deleted account's socket is still open"
        assert sock.closed is not None and sock.closed.rcvd is not None
        assert sock.closed.rcvd.code == CLOSE_UNAUTHORIZED
        assert time.monotonic() - started < ENDS_WITHIN_SECONDS + 2
        for message, conversation in ((in_group, group), (in_direct, direct)):
            watcher.wait_for(
                lambda f, m=message: f.get("type") == "message.deleted" and f["message_id"] == m["id"]
            )
            watcher.wait_for(
                lambda f, c=conversation: (
                    f.get("type") == "member.removed"
                    and f["conversation_id"] == c
                    and f["user_id"] == alice.id
                )
            )

    # Erased for everyone, and out of every conversation; the others' words stay.
    assert [m["id"] for m in bob.history(direct)] == [kept["id"]]
    assert bob.history(group) == []
    members = bob.api.call("GET", f"/conversations/{group}").json()["members"]
    assert sorted(m["user_id"] for m in members) == sorted([bob.id, carol.id])
    assert [m["role"] for m in members].count("admin") == 1  # the longest-standing member took over
    # The account itself: no login, no profile, no keys; the phone registers anew.
    login = auth_call("/auth/login", {"phone": alice.phone, "password": PASSWORD})
    assert login.status_code == 401, login.text
    assert bob.api.call("GET", f"/users/{alice.id}").status_code == 404
    assert bob.api.call("GET", f"/users/{alice.id}/keys").status_code == 404
    again = auth_call(
        "/auth/register", {"phone": alice.phone, "password": PASSWORD, "display_name": "New Alice"}
    )
    assert again.status_code == 201, again.text
    assert again.json()["user"]["id"] != alice.id
