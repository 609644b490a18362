"""The contract's safety rules about accounts, against the deployed stack: failed logins
throttled per phone whatever the address, at most 20 push targets, and presence privacy
(`last_seen_visibility` on GET /users/{id}/presence and on `presence` frames).

REST goes to the gateway's published port (accounts_helpers) so each failed login can come
from its own client address: the gateway takes the client's address from the right-most
X-Forwarded-For entry (gateway_trusted_proxy_count 1, as nginx appends it), so an address
written there is a different client to it, with its own per-address budget. One attempt
goes through nginx too. Sockets go through nginx (stack_client). Every test makes its own
accounts, with random phone numbers, so reruns never collide; the failure records of those
phones expire with their window.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from accounts_helpers import BASE_URL, DEPLOYED, Account, assert_error, call, random_phone, register
from conftest import tail
from stack_client import ADDRESS, GROUP_VARS, Socket

pytestmark = pytest.mark.docker

MAX_FAILURES = int(DEPLOYED["user_login_max_failures"])
WINDOW = int(DEPLOYED["user_login_failure_window_seconds"])
MAX_DEVICES = 20
NGINX_API = f"http://{ADDRESS}:{GROUP_VARS['nginx_http_port']}/api/v1"
THROTTLED = "failed logins"  # in the throttle's message, not in the gateway's per-address 429


@pytest.fixture(scope="module")
def stack(deployed_stack):
    result = deployed_stack[0]
    assert result.returncode == 0, tail(result, 120)
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{BASE_URL}/api/v1/health", timeout=3).status_code == 200:
                return result
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "the gateway's /api/v1/health did not turn 200 in 60 s"
        time.sleep(1)


# ---- failed logins, per phone --------------------------------------------------------------


def login_from(address: str, phone: str, password: str, *, via_nginx: bool = False) -> requests.Response:
    """One login attempt as the client at `address`; a per-address 429 (the gateway's or
    nginx's, not the phone's throttle) is waited out and sent again."""
    url = f"{NGINX_API}/auth/login" if via_nginx else f"{BASE_URL}/api/v1/auth/login"
    headers = {} if via_nginx else {"X-Forwarded-For": address}
    for _ in range(10):
        answer = requests.post(url, json={"phone": phone, "password": password}, headers=headers, timeout=30)
        if answer.status_code != 429 or THROTTLED in answer.text:
            return answer
        time.sleep(float(answer.headers.get("Retry-After", "1")))
    return answer


def assert_throttled(answer: requests.Response) -> int:
    message = assert_error(answer, 429, "rate_limited")
    assert THROTTLED in message, message
    retry_after = int(answer.headers["Retry-After"])
    # The window started with the first failure, a few seconds ago.
    assert WINDOW - 120 <= retry_after <= WINDOW, retry_after
    return retry_after


def fail_logins(phone: str, times: int) -> None:
    for n in range(times):
        answer = login_from(f"203.0.113.{n + 1}", phone, "not the password")
        assert_error(answer, 401, "unauthorized")


@pytest.fixture
def throttle_applies():
    if MAX_FAILURES > 30:
        pytest.skip(f"user_login_max_failures {MAX_FAILURES} needs too many bcrypt checks to reach")


def test_the_failed_login_after_the_limit_is_429_from_any_address_even_with_the_password(
    stack, throttle_applies
):
    account = register("Throttled")
    # MAX_FAILURES failures, each from an address of its own: the count is the phone's.
    fail_logins(account.phone, MAX_FAILURES)
    # The next attempt from yet another address, with a wrong password...
    assert_throttled(login_from("198.51.100.7", account.phone, "still not it"))
    # ...and with the right one, from another address and through nginx: refused alike.
    assert_throttled(login_from("198.51.100.8", account.phone, account.password))
    assert_throttled(login_from("127.0.0.1", account.phone, account.password, via_nginx=True))
    # The account itself is untouched: its tokens still work.
    assert call("GET", "/users/me", token=account.access_token).status_code == 200


def test_unknown_phones_are_throttled_like_accounts(stack, throttle_applies):
    phone = random_phone()  # no account: the answers must not tell
    fail_logins(phone, MAX_FAILURES)
    assert_throttled(login_from("198.51.100.9", phone, "anything"))


def test_a_successful_login_below_the_limit_is_not_throttled(stack, throttle_applies):
    account = register("Careful")
    fail_logins(account.phone, MAX_FAILURES - 1)
    answer = login_from("198.51.100.10", account.phone, account.password)
    assert answer.status_code == 200, answer.text


# ---- push targets ----------------------------------------------------------------------------


def add_device(account: Account, token: str) -> requests.Response:
    return call("POST", "/devices", token=account.access_token, json_body={"platform": "fcm", "token": token})


def test_a_user_has_at_most_twenty_push_targets(stack):
    account = register("Many devices")
    ids = []
    for n in range(MAX_DEVICES):
        answer = add_device(account, f"fcm-token-{n}")
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    assert len(set(ids)) == MAX_DEVICES
    assert_error(add_device(account, "fcm-token-one-more"), 409, "conflict")
    # Registering one of the twenty again stays idempotent: the same device, 201.
    again = add_device(account, "fcm-token-3")
    assert again.status_code == 201 and again.json()["id"] == ids[3]
    # Room again after a removal.
    assert call("DELETE", f"/devices/{ids[0]}", token=account.access_token).status_code == 204
    assert add_device(account, "fcm-token-one-more").status_code == 201


# ---- presence privacy --------------------------------------------------------------------------


def set_visibility(account: Account, visibility: str) -> None:
    answer = call(
        "PATCH", "/users/me", token=account.access_token, json_body={"last_seen_visibility": visibility}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["last_seen_visibility"] == visibility
    me = call("GET", "/users/me", token=account.access_token).json()
    assert me["last_seen_visibility"] == visibility


def keep_as_contact(owner: Account, *others: Account) -> None:
    for other in others:
        answer = call("POST", "/contacts", token=owner.access_token, json_body={"user_id": other.id})
        assert answer.status_code == 201, answer.text


def presence_of(target: Account, viewer: Account) -> dict[str, Any]:
    answer = call("GET", f"/users/{target.id}/presence", token=viewer.access_token)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def circle(stack):
    """`target`; `mutual` keeps target and target keeps mutual; `follower` keeps target only;
    `stranger` has no tie. `control` (visibility everyone) is kept by both watchers: its
    frames show when the target's would have arrived."""
    people = {
        name: register(name.title()) for name in ("target", "mutual", "follower", "stranger", "control")
    }
    keep_as_contact(people["mutual"], people["target"], people["control"])
    keep_as_contact(people["follower"], people["target"], people["control"])
    keep_as_contact(people["target"], people["mutual"])
    set_visibility(people["control"], "everyone")
    return people


def test_last_seen_visibility_defaults_to_contacts_and_refuses_other_values(stack):
    account = register("Private")
    assert call("GET", "/users/me", token=account.access_token).json()["last_seen_visibility"] == "contacts"
    for bad in ("friends", None, 3):
        answer = call(
            "PATCH", "/users/me", token=account.access_token, json_body={"last_seen_visibility": bad}
        )
        assert_error(answer, 400, "validation_error")


@pytest.mark.parametrize(
    ("visibility", "allowed"),
    [
        ("everyone", {"target", "mutual", "follower", "stranger"}),
        ("contacts", {"target", "mutual"}),
        ("nobody", {"target"}),
    ],
)
def test_get_presence_follows_last_seen_visibility(circle, visibility, allowed):
    target = circle["target"]
    set_visibility(target, visibility)
    with Socket(target.access_token):
        deadline = time.monotonic() + 10
        while not presence_of(target, target)["online"]:
            assert time.monotonic() < deadline, "the target did not show online to itself"
            time.sleep(0.2)
        for name in ("target", "mutual", "follower", "stranger"):
            seen = presence_of(target, circle[name])
            assert seen["user_id"] == target.id
            if name in allowed:
                assert seen["online"] is True, (name, seen)
            else:
                assert (seen["online"], seen["last_seen"]) == (None, None), (name, seen)


def presence_frames(sock: Socket, user_id: str, online: bool) -> list[dict[str, Any]]:
    return [f for f in sock.of_type("presence") if f["user_id"] == user_id and f["online"] is online]


def test_presence_frames_follow_last_seen_visibility(circle):
    target, control = circle["target"], circle["control"]
    cases = [("everyone", {"mutual", "follower"}), ("contacts", {"mutual"}), ("nobody", set())]
    with Socket(circle["mutual"].access_token) as mutual, Socket(circle["follower"].access_token) as follower:
        watchers = {"mutual": mutual, "follower": follower}
        for visibility, told in cases:
            set_visibility(target, visibility)
            for online in (True, False):
                if online:
                    target_socket, control_socket = Socket(target.access_token), Socket(control.access_token)
                else:
                    target_socket.close()
                    control_socket.close()
                # The control's frame reaches both watchers after the target's would have:
                # the target came (or went) first, and chat announces in order.
                for sock in watchers.values():
                    sock.wait_for(
                        lambda f, online=online: (
                            f["type"] == "presence" and f["user_id"] == control.id and f["online"] is online
                        )
                    )
                time.sleep(0.3)  # a second chat replica's announcement, if any, lands too
                for name, sock in watchers.items():
                    frames = presence_frames(sock, target.id, online)
                    assert bool(frames) == (name in told), (visibility, online, name, frames)
                    with sock.cond:
                        sock.frames.clear()
            # Fully offline before the next case, so its first socket is announced again.
            deadline = time.monotonic() + 10
            while presence_of(target, target)["online"]:
                assert time.monotonic() < deadline, "the target stayed online after its socket closed"
                time.sleep(0.2)
