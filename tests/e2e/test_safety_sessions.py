"""The contract's safety rules about tokens and sockets, against the deployed stack through
nginx: no token in any container's log, sockets that end with their session (logout, the
re-use of a spent refresh token) or with their token (expiry, unless an `auth` frame
renewed it), and at most ws_max_sockets_per_user sockets per user. And the contract's
"Sessions and several devices" routes: a session per login with its device's name, the
list, revoking one (a lost device), logging out everywhere, each closing that session's
sockets."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from typing import Any

import pytest
import requests
import yaml
from accounts_helpers import claims_for, signed_with_dev_key
from conftest import ROOT
from stack_client import ADDRESS, API, GROUP_VARS, PASSWORD, WS_URL, Api, Socket, auth_call, random_phone
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.docker

CLOSE_UNAUTHORIZED = 4401
ENDS_WITHIN_SECONDS = 5.0
CHAT_DEFAULTS = yaml.safe_load((ROOT / "roles/chat/defaults/main.yml").read_text())
MAX_SOCKETS = int(CHAT_DEFAULTS["chat_ws_max_sockets_per_user"])
NGINX = f"http://{ADDRESS}:{GROUP_VARS['nginx_http_port']}"


@pytest.fixture(scope="module", autouse=True)
def stack(deployed_stack):
    assert deployed_stack[0].returncode == 0, "the deploy failed: see the deploy test"


class Session:
    """One login of a user: its token pair, through nginx."""

    def __init__(self, phone: str, pair: dict[str, Any]):
        self.phone = phone
        self.user_id: str = pair["user"]["id"]
        self.access_token: str = pair["access_token"]
        self.refresh_token: str = pair["refresh_token"]
        self.session_id: str = pair["session_id"]
        self.api = Api(self.access_token)

    @classmethod
    def register(cls, device_name: str | None = None) -> Session:
        phone = random_phone()
        body = {"phone": phone, "password": PASSWORD, "display_name": "S"}
        answer = auth_call("/auth/register", body | ({"device_name": device_name} if device_name else {}))
        assert answer.status_code == 201, answer.text
        return cls(phone, answer.json())

    def login_again(self, device_name: str | None = None) -> Session:
        body = {"phone": self.phone, "password": PASSWORD}
        answer = auth_call("/auth/login", body | ({"device_name": device_name} if device_name else {}))
        assert answer.status_code == 200, answer.text
        return Session(self.phone, answer.json())

    def refresh_status(self) -> int:
        return auth_call("/auth/refresh", {"refresh_token": self.refresh_token}).status_code

    def socket(self, **kwargs: Any) -> Socket:
        return Socket(self.access_token, **kwargs)


def wait_closed(sock: Socket, timeout: float = ENDS_WITHIN_SECONDS) -> tuple[int | None, float]:
    """(close code the server sent, seconds it took); fails if the socket stays open."""
    started = time.monotonic()
    sock.reader.join(timeout=timeout)
    took = time.monotonic() - started
    assert not sock.reader.is_alive(), f"the socket is still open after {timeout} s"
    assert sock.closed is not None
    received = sock.closed.rcvd
    return (received.code if received else None), took


def still_open(sock: Socket) -> bool:
    """The socket answers a ping frame."""
    before = len(sock.of_type("pong"))
    sock.send({"type": "ping"})
    try:
        sock.wait_for(lambda f: f.get("type") == "pong" and len(sock.of_type("pong")) > before, timeout=5)
    except AssertionError:
        return False
    return True


def upgrade_status(token: str) -> int:
    try:
        with connect(WS_URL, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def test_logout_closes_every_socket_of_that_session_and_no_other():
    phone_session = Session.register()
    laptop = phone_session.login_again()
    first, second = phone_session.socket(), phone_session.socket(via_query=True)
    other = laptop.socket()
    try:
        for sock in (first, second, other):
            assert still_open(sock)
        answer = phone_session.api.call(
            "POST", "/auth/logout", {"refresh_token": phone_session.refresh_token}
        )
        assert answer.status_code == 204, answer.text
        for sock in (first, second):
            code, took = wait_closed(sock)
            assert code == CLOSE_UNAUTHORIZED, f"closed with {code}"
            assert took < ENDS_WITHIN_SECONDS
        # The same user's other session keeps its socket; the ended session opens none.
        assert still_open(other)
        assert upgrade_status(phone_session.access_token) == 401
        assert upgrade_status(laptop.access_token) == 101
    finally:
        for sock in (first, second, other):
            sock.close()


def test_reusing_a_spent_refresh_token_closes_the_sockets_of_its_family():
    session = Session.register()
    spent = session.refresh_token
    answer = Api().call("POST", "/auth/refresh", {"refresh_token": spent})
    assert answer.status_code == 200, answer.text
    renewed = answer.json()
    with Socket(renewed["access_token"]) as sock:
        assert still_open(sock)
        replay = Api().call("POST", "/auth/refresh", {"refresh_token": spent})
        assert replay.status_code == 401, replay.text
        code, _ = wait_closed(sock)
        assert code == CLOSE_UNAUTHORIZED


def test_an_expired_token_closes_its_socket_unless_an_auth_frame_renews_it():
    session = Session.register()
    other = Session.register()
    short = claims_for(session.user_id, exp=int(time.time()) + 3)
    lapsing = Socket(signed_with_dev_key(short))
    renewed = Socket(signed_with_dev_key(dict(short, jti=secrets.token_hex(8))))
    hijacked = Socket(signed_with_dev_key(dict(short, jti=secrets.token_hex(8))))
    try:
        renewed.send({"type": "auth", "access_token": session.access_token})
        ok = renewed.wait_for(lambda f: f.get("type") in ("auth.ok", "error"))
        assert ok["type"] == "auth.ok", ok
        assert ok["expires_at"].endswith("Z")
        # An invalid token changes nothing (an error frame, the socket stays).
        renewed.send({"type": "auth", "access_token": "not-a-token"})
        refused = renewed.wait_for(lambda f: f.get("type") == "error")
        assert refused["code"] == "unauthorized"
        # Another session's token is refused too: a socket stays its session's.
        elsewhere = session.login_again("elsewhere")
        renewed.send({"type": "auth", "access_token": elsewhere.access_token})
        foreign = renewed.wait_for(lambda f: f.get("type") == "error" and "session" in f.get("message", ""))
        assert foreign["code"] == "unauthorized", foreign
        # Another user's token ends the socket.
        hijacked.send({"type": "auth", "access_token": other.access_token})
        wrong = hijacked.wait_for(lambda f: f.get("type") == "error")
        assert wrong["code"] == "unauthorized"
        code, _ = wait_closed(hijacked)
        assert code == CLOSE_UNAUTHORIZED

        code, took = wait_closed(lapsing, timeout=3 + ENDS_WITHIN_SECONDS)
        assert code == CLOSE_UNAUTHORIZED
        time.sleep(1.5)
        assert still_open(renewed), "a socket renewed with an auth frame was closed at the old expiry"
    finally:
        for sock in (lapsing, renewed, hijacked):
            sock.close()


def test_a_user_has_at_most_the_configured_number_of_sockets():
    session = Session.register()
    sockets = [session.socket() for _ in range(MAX_SOCKETS)]
    try:
        assert all(still_open(s) for s in sockets[:1])
        assert upgrade_status(session.access_token) == 429
        sockets.pop().close()
        time.sleep(1.0)  # the closed socket leaves the shared count
        assert upgrade_status(session.access_token) == 101
    finally:
        for sock in sockets:
            sock.close()


def stack_containers() -> list[str]:
    names = subprocess.run(
        [
            "docker",
            "ps",
            "--filter",
            f"label=com.whatsapp.stack={GROUP_VARS['whatsapp_stack_name']}",
            "--format",
            "{{.Names}}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert "whatsapp-nginx" in names and "whatsapp-chat" in names, names
    return names


def test_no_token_appears_in_any_container_log():
    """A real session (register, sockets by header and by query, a message, refresh, a
    refused token, a too-large request on /ws that nginx's error log quotes, logout), then
    every container's log is searched for each token it used."""
    session = Session.register()
    peer = Session.register()
    conversation = session.api.call("POST", "/conversations", {"type": "direct", "member_id": peer.user_id})
    assert conversation.status_code in (200, 201), conversation.text
    with session.socket(via_query=True) as sock, peer.socket() as peer_sock:
        ack = sock.send_message(conversation.json()["id"], "hello")
        assert ack["type"] == "message.ack", ack
        peer_sock.wait_for(lambda f: f.get("type") == "message.new")
    renewed = requests.post(f"{API}/auth/refresh", json={"refresh_token": session.refresh_token}, timeout=10)
    assert renewed.status_code == 200, renewed.text
    pair = renewed.json()
    marker = "MARKER" + secrets.token_hex(8)
    assert requests.get(f"{NGINX}/ws?access_token={marker}", timeout=10).status_code in (400, 401)
    too_large = requests.post(f"{NGINX}/ws?access_token={marker}x", data=b"x" * (128 * 1024), timeout=10)
    assert too_large.status_code == 413
    logout = requests.post(
        f"{API}/auth/logout",
        json={"refresh_token": pair["refresh_token"]},
        headers={"Authorization": f"Bearer {pair['access_token']}"},
        timeout=10,
    )
    assert logout.status_code == 204, logout.text
    time.sleep(1.0)  # log lines are written after the answers
    secrets_used = {
        "registration access token": session.access_token,
        "registration refresh token": session.refresh_token,
        "rotated access token": pair["access_token"],
        "rotated refresh token": pair["refresh_token"],
        "refused query token": marker,
    }
    found = []
    nginx_log = ""
    for name in stack_containers():
        logs = subprocess.run(["docker", "logs", name], check=True, capture_output=True, text=True)
        text = logs.stdout + logs.stderr
        if name == "whatsapp-nginx":
            nginx_log = text
        found += [f"{what} in {name}" for what, value in secrets_used.items() if value in text]
    assert found == []
    # nginx logged those requests, redacted, in the access log and in the error log.
    access = [json.loads(line) for line in nginx_log.splitlines() if line.startswith("{")]
    assert any(line.get("uri") == "/ws?access_token=REDACTED" for line in access)
    assert "too large body" in nginx_log and 'request: "POST /ws?access_token=REDACTED' in nginx_log


# ---- sessions and several devices ----------------------------------------------------------


def test_sessions_are_listed_and_one_revoked_closes_its_sockets_only():
    phone = Session.register(device_name="Pixel 8")
    laptop = phone.login_again(device_name="Firefox on the laptop")
    tablet = phone.login_again()
    listed = laptop.api.call("GET", "/sessions")
    assert listed.status_code == 200, listed.text
    sessions = listed.json()["sessions"]
    assert {s["id"]: s["device_name"] for s in sessions} == {
        phone.session_id: "Pixel 8",
        laptop.session_id: "Firefox on the laptop",
        tablet.session_id: None,
    }
    assert [s["id"] for s in sessions if s["current"]] == [laptop.session_id]

    lost, kept, also_kept = phone.socket(), laptop.socket(), tablet.socket(via_query=True)
    try:
        for sock in (lost, kept, also_kept):
            assert still_open(sock)
        # The lost phone, signed out from the laptop.
        answer = laptop.api.call("DELETE", f"/sessions/{phone.session_id}")
        assert answer.status_code == 204, answer.text
        code, took = wait_closed(lost)
        assert code == CLOSE_UNAUTHORIZED and took < ENDS_WITHIN_SECONDS, (code, took)
        assert still_open(kept) and still_open(also_kept)
        assert phone.refresh_status() == 401
        assert upgrade_status(phone.access_token) == 401
        remaining = {s["id"] for s in laptop.api.call("GET", "/sessions").json()["sessions"]}
        assert remaining == {laptop.session_id, tablet.session_id}
        # Not the caller's (another user's, gone, not a session): 404 with the error shape.
        stranger = Session.register()
        for target in (stranger.session_id, phone.session_id, "nope"):
            refused = laptop.api.call("DELETE", f"/sessions/{target}")
            assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found", target
        assert stranger.refresh_status() == 200
    finally:
        for sock in (lost, kept, also_kept):
            sock.close()


def test_logout_all_closes_every_socket_of_every_session_of_the_caller():
    phone = Session.register(device_name="phone")
    laptop = phone.login_again(device_name="laptop")
    stranger = Session.register()
    sockets = [phone.socket(), laptop.socket(), laptop.socket(via_query=True)]
    bystander = stranger.socket()
    try:
        for sock in [*sockets, bystander]:
            assert still_open(sock)
        answer = laptop.api.call("POST", "/auth/logout-all")
        assert answer.status_code == 204, answer.text
        for sock in sockets:
            code, took = wait_closed(sock)
            assert code == CLOSE_UNAUTHORIZED and took < ENDS_WITHIN_SECONDS, (code, took)
        assert phone.refresh_status() == 401 and laptop.refresh_status() == 401
        assert still_open(bystander) and stranger.refresh_status() == 200
    finally:
        for sock in [*sockets, bystander]:
            sock.close()
