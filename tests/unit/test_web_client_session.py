"""Layer 2, unit: the web client keeps its socket's authority (roles/nginx/files/web/js:
api.js's Session and socket.js's LiveSocket) under node, with a stand-in WebSocket class.

A refreshed access token (here or in another tab) reaches the open socket as an `auth`
frame, so it outlives the token it opened with; a socket the server ends with 4401
reconnects with a refreshed token, not the one that was refused.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import ROOT

WEB_JS = ROOT / "roles" / "nginx" / "files" / "web" / "js"

SCENARIOS = r"""
const sockets = [];
class FakeWebSocket {
  static OPEN = 1;
  constructor(url) { this.url = url; this.readyState = 0; this.sent = []; sockets.push(this); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.readyState = 3; }
  open() { this.readyState = 1; this.onopen(); }
  end(code) { this.readyState = 3; this.onclose({ code }); }
}
globalThis.WebSocket = FakeWebSocket;
globalThis.location = { protocol: "http:", host: "127.0.0.1" };
globalThis.addEventListener = () => {};
globalThis.removeEventListener = () => {};
const { Session } = await import("API_URL");
const { LiveSocket } = await import("SOCKET_URL");

const jwt = (exp, n) => ["h", btoa(JSON.stringify({ exp, n })), "s"].join(".");
const memory = () => {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, v),
           removeItem: (k) => m.delete(k) };
};
const out = {};
const tick = () => new Promise((r) => setTimeout(r, 0));

const session = new Session(memory());
const announced = [];
session.onAccessToken = (token) => announced.push(token);
const exp = Math.floor(Date.now() / 1000) + 900;
session._adopt({ access_token: jwt(exp, 1), refresh_token: "r1" }, { id: "me" });
session._adopt({ access_token: jwt(exp, 1), refresh_token: "r1" }, { id: "me" });
session._adopt({ access_token: jwt(exp, 2), refresh_token: "r2" }, { id: "me" });
out.announced = announced.map((t) => JSON.parse(atob(t.split(".")[1])).n);
clearTimeout(session.timer);

const asked = [];
const live = new LiveSocket({
  tokenFor: (force) => { asked.push(force); return Promise.resolve(`token-${asked.length}`); },
  onFrame: () => {}, onState: () => {}, onOpen: () => {},
});
live.start();
await tick();
sockets[0].open();
out.renewed = live.renew("fresh");
out.sentOnOpenSocket = sockets[0].sent;
sockets[0].end(4401);
clearTimeout(live.retryTimer);
await live._connect();
out.forcedRefresh = asked;
out.reconnectedWith = sockets[1].url.split("access_token=")[1];
live.stop();
out.renewWhileClosed = live.renew("late");
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def result() -> dict:
    node = shutil.which("node")
    assert node, "node is needed for this test (scripts/test.sh installs nodejs)"
    script = SCENARIOS.replace("API_URL", (WEB_JS / "api.js").as_uri()).replace(
        "SOCKET_URL", (WEB_JS / "socket.js").as_uri()
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_each_new_access_token_is_announced_once(result):
    assert result["announced"] == [1, 2]


def test_the_open_socket_is_renewed_with_an_auth_frame(result):
    assert result["renewed"] is True
    assert result["sentOnOpenSocket"] == [{"type": "auth", "access_token": "fresh"}]
    assert result["renewWhileClosed"] is False


def test_a_socket_ended_with_4401_reconnects_with_a_refreshed_token(result):
    assert result["forcedRefresh"] == [False, True]
    assert result["reconnectedWith"] == "token-2"


DEVICE_NAMES = r"""
const { deviceName } = await import("API_URL");
console.log(JSON.stringify([
  deviceName("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"),
  deviceName("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Version/17.0 Safari/604.1"),
  deviceName("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"),
  deviceName(""),
  deviceName("x".repeat(500)),
]));
"""


def test_a_browser_session_is_named_after_its_browser_and_system_within_64_characters():
    node = shutil.which("node")
    assert node, "node is needed for this test (scripts/test.sh installs nodejs)"
    script = DEVICE_NAMES.replace("API_URL", (WEB_JS / "api.js").as_uri())
    done = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    names = json.loads(done.stdout)
    assert names[:4] == [
        "Chrome on Linux (web)",
        "Safari on iPhone (web)",
        "Firefox on Windows (web)",
        "Browser (web)",
    ]
    assert all(1 <= len(name) <= 64 for name in names)
