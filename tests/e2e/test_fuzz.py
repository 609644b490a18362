"""End to end: schemathesis fuzzes every operation of docs/api/openapi.yaml through nginx.

A user is registered through the API first and every request carries its Bearer token, so
the generated inputs reach the handlers behind the gateway's token check. Each operation
gets a few valid and a few invalid (negative) examples, derandomized so a run is
reproducible, without shrinking (a failure is reported as found, not replayed dozens of
times). The requests are paced below nginx's rate limits (API 100 r/s, auth 10 r/s per
address); a 429 that still happens is a valid contract answer and is checked like any error.

Checks on every answer: no 5xx, and every 4xx body in the contract's error shape
`{"error": {"code": "<snake_case>", "message": "..."}}`. The WebSocket upgrade (/ws) is
left out of schemathesis: it is not a request/response operation (tests/e2e/test_messaging.py
covers the sockets). Two hand-made layers follow it: hostile JSON bodies (nested 5,000
deep, integers of 5,000 digits, NaN, not UTF-8, duplicate keys, other charsets...) against
a few body-reading routes, each answered 400 `validation_error`; and hypothesis fuzzing the
/ws handshake headers (Upgrade, Connection, Sec-WebSocket-Key, -Version, -Extensions,
-Protocol, present, missing or random) with a valid token, never answered 5xx.
The counts (operations, requests, statuses) are printed at the end and kept in
.test-logs/fuzz.log.

WHATSAPP_FUZZ_MAX_EXAMPLES raises the examples per operation for a deeper local run, and
WHATSAPP_FUZZ_HANDSHAKE_EXAMPLES the handshakes tried (40 by default, a few seconds).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import pytest
import requests
import schemathesis
from conftest import LOG_DIR, ROOT
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.core import NotSet
from stack_client import ADDRESS, GROUP_VARS, User

BASE_URL = f"http://{ADDRESS}:{GROUP_VARS['nginx_http_port']}"
OPENAPI = ROOT / "docs/api/openapi.yaml"
MAX_EXAMPLES = int(os.environ.get("WHATSAPP_FUZZ_MAX_EXAMPLES", "8"))
# Requests per second, below nginx's limits (nginx_rate_limit_auth 10r/s, _api 100r/s).
AUTH_RATE = 6.0
API_RATE = 40.0
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
HANDSHAKE_EXAMPLES = int(os.environ.get("WHATSAPP_FUZZ_HANDSHAKE_EXAMPLES", "40"))


class Pacer:
    """Keeps requests of one class (auth or API) at most `rate` per second."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            if self.next_at > now:
                time.sleep(self.next_at - now)
            self.next_at = max(now, self.next_at) + self.interval


AUTH_PACER = Pacer(AUTH_RATE)
API_PACER = Pacer(API_RATE)

requests_by_operation: Counter[str] = Counter()
statuses: Counter[int] = Counter()
statuses_by_operation: dict[str, Counter[int]] = defaultdict(Counter)
problems: list[str] = []


@pytest.fixture(scope="module")
def fuzz_user(deployed_stack) -> User:
    assert deployed_stack[0].returncode == 0, "the stack did not deploy (see test_site)"
    return User("Fuzz")


@pytest.fixture(scope="module", autouse=True)
def fuzz_report(request):
    """Prints the counts once every operation of the module has run."""
    started = time.monotonic()
    yield
    _report(request, time.monotonic() - started)


def _report(request, seconds: float) -> None:
    lines = [
        f"fuzzing through nginx at {BASE_URL}: {len(requests_by_operation)} operations, "
        f"{sum(requests_by_operation.values())} requests in {seconds:.0f} s, "
        f"{MAX_EXAMPLES} examples per operation and mode",
        "statuses: " + ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items())),
        f"{'operation':<52} {'requests':>8}  statuses",
    ]
    for label, count in sorted(requests_by_operation.items()):
        spread = ", ".join(f"{s}x{n}" for s, n in sorted(statuses_by_operation[label].items()))
        lines.append(f"{label:<52} {count:>8}  {spread}")
    lines += [f"problem: {p}" for p in problems] or ["problems: none"]
    LOG_DIR.mkdir(exist_ok=True)
    (LOG_DIR / "fuzz.log").write_text("\n".join(lines) + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    for line in lines:
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line)


def describe(case, response) -> str:
    sent = "-" if isinstance(case.body, NotSet) else json.dumps(case.body, default=str)[:300]
    answer = " ".join(response.text[:300].split())
    return f"{case.method} {response.request.url} body={sent} -> {response.status_code} {answer}"


def contract_problem(response) -> str | None:
    """Why the answer breaks the contract, or None."""
    status = response.status_code
    if status >= 500:
        return "a 5xx answer (the contract: no input a client can send is answered with a 500)"
    if status < 400:
        return None
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return "a 4xx body not in the shape {'error': {'code', 'message'}}"
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    rules = [
        (isinstance(code, str) and ERROR_CODE.match(code), "error.code is not a snake_case string"),
        (isinstance(error.get("message"), str), "error.message is not a string"),
        (status != 429 or "Retry-After" in response.headers, "a 429 without Retry-After"),
    ]
    return next((why for ok, why in rules if not ok), None)


# Media uploads are raw bodies: small files of each declared type, their first bytes right
# (201) or not (400), so both answers are drawn; kept small (a few KiB) for the run's time.
MAGIC = {
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "image/png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "audio/ogg": b"OggS\x00\x02\x00\x00",
    "audio/mpeg": b"ID3\x04\x00\x00\x00\x00\x00\x00",
    "video/mp4": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    "application/pdf": b"%PDF-1.7\n",
}
for _type, _magic in MAGIC.items():
    schemathesis.openapi.media_type(
        _type,
        st.builds(
            lambda head, tail: head + tail,
            st.sampled_from([_magic, b"", b"not the type's bytes"]),
            st.binary(min_size=0, max_size=4096),
        ),
    )

# The document is a local file: loading it needs no stack, so the operations are known at
# collection (one test per operation).
schema = schemathesis.openapi.from_path(OPENAPI).exclude(path="/ws")
schema.config.update(base_url=BASE_URL, request_timeout=15, request_retries=0)
schema.config.generation.update(
    max_examples=MAX_EXAMPLES,
    deterministic=True,
    no_shrink=True,
    database="none",
    with_security_parameters=False,
)


@pytest.fixture
def operation_problems():
    """Every contract break of one operation's examples, asserted once they have all run (so
    one break does not hide the others, and each is reported with its request and answer)."""
    found: list[str] = []
    yield found
    assert not found, f"{len(found)} answers broke the contract:\n" + "\n".join(found)


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_operation(case, fuzz_user: User, operation_problems: list[str]):
    pacer = AUTH_PACER if case.operation.path.startswith("/api/v1/auth/") else API_PACER
    pacer.wait()
    response = case.call(headers={"Authorization": f"Bearer {fuzz_user.token}"})
    label = case.operation.label
    requests_by_operation[label] += 1
    statuses[response.status_code] += 1
    statuses_by_operation[label][response.status_code] += 1
    problem = contract_problem(response)
    if problem:
        line = f"{label}: {problem}: {describe(case, response)}"
        operation_problems.append(line)
        problems.append(line)


# ---- hostile JSON bodies ------------------------------------------------------------------

JSON = "application/json"
# (name, body, Content-Type): each one a 400 `validation_error` from the service's one body
# parser (services/common/bodies.py), never a 500 or a slow answer.
HOSTILE_BODIES: list[tuple[str, bytes, str]] = [
    ("arrays nested 5,000 deep", b"[" * 5000 + b"]" * 5000, JSON),
    ("objects nested 5,000 deep", b'{"a": ' * 5000 + b"1" + b"}" * 5000, JSON),
    ("arrays opened 60,000 deep", b"[" * 60_000, JSON),
    ("an object holding deep arrays", b'{"type": "direct", "a": ' + b"[" * 3000 + b"]" * 3000 + b"}", JSON),
    ("escaped quotes never closed", b'"\\"' * 15_000, JSON),
    ("an integer of 5,000 digits", b'{"a": ' + b"1" * 5000 + b"}", JSON),
    ("the integer 2**63", b'{"a": 9223372036854775808}', JSON),
    ("NaN", b'{"a": NaN}', JSON),
    ("-Infinity", b'{"a": -Infinity}', JSON),
    ("a float overflowing to infinity", b'{"a": 1e999}', JSON),
    ("invalid UTF-8", b'{"a": "\xff\xfe"}', JSON),
    ("a UTF-8-encoded surrogate", b'{"a": "\xed\xa0\x80"}', JSON),
    ("a UTF-8 byte order mark", b"\xef\xbb\xbf{}", JSON),
    ("UTF-16", '{"type": "direct"}'.encode("utf-16"), JSON),
    ("UTF-32 without a BOM", '{"type": "direct"}'.encode("utf-32-le"), JSON),
    ("duplicate keys", b'{"type": "direct", "type": "group"}', JSON),
    ("a bare string", b'"text"', JSON),
    ("null", b"null", JSON),
    ("an empty body", b"", JSON),
    ("charset latin-1", b'{"type": "direct"}', "application/json; charset=latin-1"),
]
HOSTILE_ROUTES = [
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/conversations",
    "/api/v1/contacts",
    "/api/v1/devices",
]


class Answer:
    """What contract_problem() reads of a response, for answers read with http.client."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.status_code, self.headers, self.body = status, headers, body
        self.text = body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def brief(text: str) -> str:
    return " ".join(text[:200].split())


def record(label: str, response: Any) -> str | None:
    """Counts the answer in the report; the contract problem it shows, or None."""
    requests_by_operation[label] += 1
    statuses[response.status_code] += 1
    statuses_by_operation[label][response.status_code] += 1
    return contract_problem(response)


@pytest.mark.parametrize("path", HOSTILE_ROUTES)
def test_hostile_json_bodies_are_400(path: str, fuzz_user: User):
    pacer = AUTH_PACER if path.startswith("/api/v1/auth/") else API_PACER
    label = f"POST {path} (hostile JSON)"
    found: list[str] = []
    with requests.Session() as session:
        session.trust_env = False
        for name, body, content_type in HOSTILE_BODIES:
            pacer.wait()
            started = time.monotonic()
            response = session.post(
                BASE_URL + path,
                data=body,
                headers={"Content-Type": content_type, "Authorization": f"Bearer {fuzz_user.token}"},
                timeout=15,
            )
            seconds = time.monotonic() - started
            problem = record(label, response)
            if problem is None and response.status_code != 400:
                problem = "not a 400"
            elif problem is None and response.json()["error"]["code"] != "validation_error":
                problem = "not validation_error"
            elif problem is None and seconds > 2:
                problem = f"answered in {seconds:.1f} s"
            if problem:
                found.append(f"{label}: {name}: {problem}: {response.status_code} {brief(response.text)}")
    problems.extend(found)
    assert not found, f"{len(found)} answers broke the contract:\n" + "\n".join(found)


# ---- the WebSocket handshake -----------------------------------------------------------------

WS_KEY = base64.b64encode(b"0123456789abcdef").decode()
# What a header may hold on the wire here: printable latin-1 and tabs (no CR, LF or NUL).
HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x09, max_codepoint=0xFF, exclude_characters="\n\r\x0b\x0c\x7f"),
    max_size=40,
)


def header_value(valid: str | None, *odd: str) -> st.SearchStrategy[str | None]:
    """The valid value 6 times in 9 (so some handshakes do upgrade), else none (the header
    is left out), a known odd value or any text."""
    choices: list[st.SearchStrategy[str | None]] = [st.just(valid)] * 6
    choices += [st.none(), st.sampled_from(odd), HEADER_TEXT]
    return st.integers(0, len(choices) - 1).flatmap(lambda index: choices[index])


HANDSHAKE_HEADERS = st.fixed_dictionaries(
    {
        "Upgrade": header_value("websocket", "WebSocket", "h2c", "websocket, h2c"),
        "Connection": header_value("Upgrade", "keep-alive, Upgrade", "keep-alive", "close"),
        "Sec-WebSocket-Key": st.one_of(
            header_value(WS_KEY, f"{WS_KEY}, {WS_KEY}", WS_KEY.rstrip("="), ""),
            st.binary(max_size=24).map(lambda raw: base64.b64encode(raw).decode()),
        ),
        "Sec-WebSocket-Version": header_value("13", "8", "13, 13", "14", ""),
        "Sec-WebSocket-Extensions": header_value(
            None,
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=99",
            "permessage-deflate; server_max_window_bits=x",
        ),
        "Sec-WebSocket-Protocol": header_value(None, "chat", "a, b", "ch\xe4t"),
    }
)


def raw_upgrade(headers: dict[str, str], query: str = "") -> Answer:
    """GET /ws through nginx with exactly these headers (requests would add or fix some),
    on a connection of its own, closed after the answer (a 101 included: the socket ends)."""
    port = int(GROUP_VARS["nginx_http_port"])
    conn = http.client.HTTPConnection(ADDRESS, port, timeout=15)
    try:
        conn.putrequest("GET", "/ws" + query, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value.encode("latin-1"))
        conn.endheaders()
        response = conn.getresponse()
        body = b"" if response.status == 101 else response.read()
        return Answer(response.status, response.headers, body)
    finally:
        conn.close()


@settings(
    max_examples=HANDSHAKE_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=HANDSHAKE_HEADERS, via_query=st.booleans())
def test_fuzz_websocket_handshake_headers(fuzz_user: User, drawn: dict[str, str | None], via_query: bool):
    headers = {name: value for name, value in drawn.items() if value is not None}
    query = ""
    if via_query:
        query = f"?access_token={fuzz_user.token}"
    else:
        headers["Authorization"] = f"Bearer {fuzz_user.token}"
    API_PACER.wait()
    answer = raw_upgrade(headers, query)
    problem = record("GET /ws (handshake headers)", answer)
    if problem:
        shown = {k: v for k, v in headers.items() if k != "Authorization"}
        line = f"GET /ws: {problem}: headers={shown!r} -> {answer.status_code} {brief(answer.text)}"
        problems.append(line)
        raise AssertionError(line)
