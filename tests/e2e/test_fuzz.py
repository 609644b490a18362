"""End to end: schemathesis fuzzes every operation of docs/api/openapi.yaml through nginx.

A user is registered through the API first and every request carries its Bearer token, so
the generated inputs reach the handlers behind the gateway's token check. Each operation
gets a few valid and a few invalid (negative) examples, derandomized so a run is
reproducible, without shrinking (a failure is reported as found, not replayed dozens of
times). The requests are paced below nginx's rate limits (API 100 r/s, auth 10 r/s per
address); a 429 that still happens is a valid contract answer and is checked like any error.

Checks on every answer: no 5xx, and every 4xx body in the contract's error shape
`{"error": {"code": "<snake_case>", "message": "..."}}`. The WebSocket upgrade (/ws) is
left out: it is not a request/response operation (tests/e2e/test_messaging.py covers it).
The counts (operations, requests, statuses) are printed at the end and kept in
.test-logs/fuzz.log.

WHATSAPP_FUZZ_MAX_EXAMPLES raises the examples per operation for a deeper local run.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter, defaultdict

import pytest
import schemathesis
from conftest import LOG_DIR, ROOT
from hypothesis import HealthCheck, settings
from schemathesis.core import NotSet
from stack_client import ADDRESS, GROUP_VARS, User

BASE_URL = f"http://{ADDRESS}:{GROUP_VARS['nginx_http_port']}"
OPENAPI = ROOT / "docs/api/openapi.yaml"
MAX_EXAMPLES = int(os.environ.get("WHATSAPP_FUZZ_MAX_EXAMPLES", "8"))
# Requests per second, below nginx's limits (nginx_rate_limit_auth 10r/s, _api 100r/s).
AUTH_RATE = 6.0
API_RATE = 40.0
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


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
