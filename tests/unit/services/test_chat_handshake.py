"""chat's WebSocket opening handshake (services.chat.handshake): a malformed upgrade to
`GET /ws` is 400 `validation_error` in the contract's shape, never a 500.

Three layers: the `check_upgrade` hook alone (a small app whose /ws view only says it was
reached), chat's own app (the hook runs before the token check), and simple_websocket's
Server behind the hook on a fake socket, fuzzed with hypothesis: whatever the headers, the
answer is a 400 before any byte of an upgrade is written, or a real 101.
"""

from __future__ import annotations

import base64
import os
import uuid

import pytest
from flask import Flask
from flask_sock import Sock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_chat_units import chat_env, token
from werkzeug.test import EnvironBuilder

from services.chat import create_app
from services.chat.handshake import check_upgrade
from services.chat.settings import ChatSettings
from services.common.errors import register_error_handlers

KEY = base64.b64encode(b"0123456789abcdef").decode()
GOOD = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": KEY,
    "Sec-WebSocket-Version": "13",
}


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in GOOD.items() if k != name}


def refused(response, status: int = 400, code: str = "validation_error") -> str:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    return body["error"]["message"]


@pytest.fixture(scope="module")
def hook_app() -> Flask:
    app = Flask("handshake-test")
    app.config["TESTING"] = True
    register_error_handlers(app)
    app.before_request(check_upgrade)

    @app.route("/ws", websocket=True)
    def ws():
        return "passed"

    @app.get("/other")
    def other():
        return "other"

    return app


@pytest.fixture
def client(hook_app):
    return hook_app.test_client()


def call_raw(app: Flask, headers: dict[str, str], host: str, method: str = "GET") -> tuple[str, bytes]:
    """Through the WSGI app itself: werkzeug's test client cannot send a Host it cannot
    decode (it builds the request's URL from it)."""
    environ = EnvironBuilder(path="/ws", method=method, headers=headers).get_environ()
    environ["HTTP_HOST"] = host
    started: list[str] = []
    body = b"".join(app(environ, lambda status, _headers, _exc=None: started.append(status)))
    return started[0], body


# ---- the hook -------------------------------------------------------------------------------


def test_a_correct_handshake_passes_the_hook(client):
    response = client.get("/ws", headers=GOOD)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "passed"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({**GOOD, "Upgrade": "WebSocket", "Connection": "keep-alive, UPGRADE"}, id="case"),
        pytest.param({**GOOD, "Sec-WebSocket-Version": " 13 "}, id="spaces-around-the-version"),
        pytest.param(
            {**GOOD, "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}, id="deflate"
        ),
        pytest.param(
            {**GOOD, "Sec-WebSocket-Extensions": "permessage-deflate; server_max_window_bits=10"},
            id="deflate-bits",
        ),
        pytest.param({**GOOD, "Sec-WebSocket-Protocol": "chat, superchat"}, id="subprotocols"),
        pytest.param({**GOOD, "Origin": "http://example.com"}, id="origin"),
    ],
)
def test_handshake_variants_the_rfc_allows_pass(client, headers):
    assert client.get("/ws", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("not base64 at all!", id="not-base64"),
        pytest.param(base64.b64encode(b"x" * 15).decode(), id="15-bytes"),
        pytest.param(base64.b64encode(b"x" * 17).decode(), id="17-bytes"),
        pytest.param(KEY.rstrip("="), id="no-padding"),
        pytest.param(KEY[:-3] + "!==", id="bad-character"),
        pytest.param(f"{KEY}, {KEY}", id="sent-twice"),
        pytest.param(KEY + "AAAA", id="too-long"),
    ],
)
def test_a_bad_key_is_400(client, key):
    assert "Sec-WebSocket-Key" in refused(client.get("/ws", headers={**GOOD, "Sec-WebSocket-Key": key}))


def test_a_missing_key_is_400(client):
    assert "Sec-WebSocket-Key" in refused(client.get("/ws", headers=without("Sec-WebSocket-Key")))


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8", "thirteen", ""])
def test_a_wrong_version_is_400_naming_the_supported_one(client, version):
    response = client.get("/ws", headers={**GOOD, "Sec-WebSocket-Version": version})
    assert "Sec-WebSocket-Version" in refused(response)
    assert response.headers["Sec-WebSocket-Version"] == "13"


def test_a_missing_version_is_400_naming_the_supported_one(client):
    response = client.get("/ws", headers=without("Sec-WebSocket-Version"))
    refused(response)
    assert response.headers["Sec-WebSocket-Version"] == "13"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-upgrade-headers"),
        pytest.param(without("Upgrade"), id="no-upgrade"),
        pytest.param({**GOOD, "Upgrade": "h2c"}, id="upgrade-h2c"),
        pytest.param({**GOOD, "Upgrade": "websocket, h2c"}, id="upgrade-two"),
        pytest.param(without("Connection"), id="no-connection"),
        pytest.param({**GOOD, "Connection": "keep-alive"}, id="connection-keep-alive"),
        pytest.param({**GOOD, "Connection": "upgraded"}, id="connection-not-the-token"),
    ],
)
def test_no_upgrade_is_400(client, headers):
    assert "Upgrade" in refused(client.get("/ws", headers=headers))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_not_get_is_400(client, method):
    response = client.open("/ws", method=method, headers=GOOD)
    assert response.status_code == 400
    if method != "HEAD":  # a HEAD answer has no body
        assert "GET" in refused(response)


def test_http_1_0_is_400(client):
    response = client.get("/ws", headers=GOOD, environ_overrides={"SERVER_PROTOCOL": "HTTP/1.0"})
    assert "HTTP/1.1" in refused(response)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({**GOOD, "Sec-WebSocket-Protocol": "chät"}, id="non-ascii-subprotocol"),
        pytest.param({**GOOD, "Connection": "Upgrade, ké"}, id="non-ascii-connection"),
        pytest.param({**GOOD, "Sec-WebSocket-Extensions": "permessage-deflaté"}, id="non-ascii-extension"),
        pytest.param({**GOOD, "Sec-WebSocket-Key": "\x01" + KEY}, id="control-character-in-key"),
    ],
)
def test_headers_wsproto_reads_as_ascii_must_be_ascii(client, headers):
    assert "ASCII" in refused(client.get("/ws", headers=headers))


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; client_max_window_bits=abc",
        'permessage-deflate; server_max_window_bits="10"',
        "permessage-deflate; server_max_window_bits=",
        "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=1.5",
    ],
)
def test_a_deflate_offer_with_a_window_size_that_is_no_number_is_400(client, offer):
    assert "window size" in refused(client.get("/ws", headers={**GOOD, "Sec-WebSocket-Extensions": offer}))


@pytest.mark.parametrize("host", ["xn--zz", "a." + "x" * 64 + ".com", "xn--a-.com"])
def test_a_host_wsproto_cannot_decode_is_400(hook_app, host):
    status, body = call_raw(hook_app, GOOD, host)
    assert status.startswith("400"), (status, body)
    assert b'"code":"validation_error"' in body


def test_an_empty_host_is_400(hook_app):
    status, body = call_raw(hook_app, GOOD, "")
    assert status.startswith("400") and b'"code":"validation_error"' in body


def test_other_paths_are_not_checked(client):
    odd = {"Sec-WebSocket-Key": "bad", "Sec-WebSocket-Version": "1"}
    assert client.get("/other", headers=odd).status_code == 200
    assert client.get("/other").status_code == 200


# ---- in chat's app ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_client():
    app = create_app(ChatSettings.from_env(chat_env()), background=False)
    app.config["TESTING"] = True
    return app.test_client()


def test_chat_refuses_an_upgrade_without_a_key_with_400_not_500(chat_client):
    # The case that was a 500: a valid token, Connection and Upgrade, no Sec-WebSocket-Key.
    headers = {**without("Sec-WebSocket-Key"), "Authorization": f"Bearer {token()}"}
    assert "Sec-WebSocket-Key" in refused(chat_client.get("/ws", headers=headers))


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="plain-get"),
        pytest.param({**GOOD, "Sec-WebSocket-Version": "8"}, id="wrong-version"),
        pytest.param({**GOOD, "Sec-WebSocket-Key": "short"}, id="bad-key"),
    ],
)
def test_chat_checks_the_handshake_before_the_token(chat_client, headers):
    refused(chat_client.get("/ws", headers=headers))
    refused(chat_client.get("/ws", headers={**headers, "Authorization": f"Bearer {token()}"}))


def test_chat_still_answers_401_to_a_correct_handshake_without_a_valid_token(chat_client):
    refused(chat_client.get("/ws", headers=GOOD), 401, "unauthorized")
    refused(chat_client.get("/ws?access_token=garbage", headers=GOOD), 401, "unauthorized")


# ---- simple_websocket behind the hook -----------------------------------------------------------


class FakeSocket:
    """What simple_websocket finds as `werkzeug.socket`: records what is written, and reads
    end of stream (the client hung up right after its handshake)."""

    def __init__(self) -> None:
        self.sent = b""

    def send(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    sendall = send

    def recv(self, _size: int) -> bytes:
        return b""

    def close(self) -> None:
        pass


def socket_app(with_hook: bool) -> Flask:
    app = Flask(f"handshake-socket-{uuid.uuid4().hex[:6]}")
    app.config["TESTING"] = True
    register_error_handlers(app)
    if with_hook:
        app.before_request(check_upgrade)
    sock = Sock(app)

    @sock.route("/ws")
    def ws(_ws):
        return None

    return app


@pytest.fixture(scope="module")
def bare_server_app() -> Flask:
    return socket_app(with_hook=False)


@pytest.fixture(scope="module")
def guarded_server_app() -> Flask:
    return socket_app(with_hook=True)


def upgrade(app: Flask, headers: dict[str, str]):
    fake = FakeSocket()
    response = app.test_client().get("/ws", headers=headers, environ_overrides={"werkzeug.socket": fake})
    return response, fake


@pytest.mark.parametrize(
    ("headers", "needs_version"),
    [
        pytest.param(without("Sec-WebSocket-Key"), False, id="no-key"),
        pytest.param({**GOOD, "Sec-WebSocket-Version": "8"}, True, id="wrong-version"),
        pytest.param(without("Sec-WebSocket-Version"), True, id="no-version"),
        pytest.param({**GOOD, "X-Odd": "a\x0cb"}, False, id="a-header-http-forbids"),
    ],
)
def test_what_wsproto_refuses_is_400_without_the_hook_too(bare_server_app, headers, needs_version):
    """The net behind the hook: wsproto's RemoteProtocolError is rendered as 400, with the
    headers wsproto asks for, and nothing was written to the socket before it."""
    response, fake = upgrade(bare_server_app, headers)
    assert refused(response) == "invalid WebSocket handshake"
    assert fake.sent == b""
    if needs_version:
        assert response.headers["Sec-WebSocket-Version"] == "13"


def test_a_correct_handshake_upgrades_behind_the_hook(guarded_server_app):
    response, fake = upgrade(guarded_server_app, GOOD)
    assert response.status_code == 200  # werkzeug mode: the socket has already answered
    assert fake.sent.startswith(b"HTTP/1.1 101 ")


HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x09, max_codepoint=0xFF, exclude_characters="\n\r\x0b"),
    max_size=40,
)


def header_value(valid: str | None, *odd: str) -> st.SearchStrategy[str | None]:
    """The valid value 7 times in 10 (so a fair share of the handshakes upgrade), else
    none, a known odd one or any text."""
    choices: list[st.SearchStrategy[str | None]] = [st.just(valid)] * 7
    choices += [st.none(), st.sampled_from(odd), HEADER_TEXT]
    return st.integers(0, len(choices) - 1).flatmap(lambda index: choices[index])


HANDSHAKE_HEADERS = st.fixed_dictionaries(
    {
        "Upgrade": header_value("websocket", "WebSocket", "h2c", "websocket, h2c"),
        "Connection": header_value("Upgrade", "keep-alive, Upgrade", "keep-alive", "close"),
        "Sec-WebSocket-Key": st.one_of(
            header_value(KEY, f"{KEY}, {KEY}", KEY.rstrip("=")),
            st.binary(min_size=0, max_size=24).map(lambda b: base64.b64encode(b).decode()),
        ),
        "Sec-WebSocket-Version": header_value("13", "8", "13, 13", "14", ""),
        "Sec-WebSocket-Extensions": header_value(
            None,
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=99",
            "permessage-deflate; server_max_window_bits=x",
        ),
        "Sec-WebSocket-Protocol": header_value(None, "chat", "a, b"),
        "X-Extra": header_value(None, "ok", "été"),
    }
)


@settings(
    max_examples=int(os.environ.get("WHATSAPP_HANDSHAKE_EXAMPLES", "150")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(HANDSHAKE_HEADERS)
def test_no_handshake_headers_end_in_a_500(guarded_server_app, drawn):
    headers = {name: value for name, value in drawn.items() if value is not None}
    response, fake = upgrade(guarded_server_app, headers)
    if fake.sent:  # upgraded: simple_websocket answered on the socket itself
        assert fake.sent.startswith(b"HTTP/1.1 101 "), fake.sent[:80]
        assert response.status_code == 200
    else:
        refused(response)
