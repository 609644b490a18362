#!/usr/bin/env python3
"""Register and login throughput through the gateway: requests/s, p50 and p99 latency, errors.

    .venv/bin/python benchmarks/auth_throughput.py --concurrency 1 4 16 --duration 20

For each concurrency level it runs two phases of `--duration` seconds each, with that many
threads (one `requests.Session` each) sending requests back to back:

- register: `POST /api/v1/auth/register` with a new random phone number every time (201);
- login: `POST /api/v1/auth/login` for accounts the register phase created (200).

Every phase stops by itself at its deadline (requests in flight finish, bounded by
`--timeout`), so the whole run takes about 2 x duration x levels. Both routes are dominated
by bcrypt (one hash per register, one check per login) on the user service's CPU quota, so
the figures say more about `user_bcrypt_cost` and `user_cpus` than about the code.

`rate/s` counts successful requests only; latencies (p50, p99, nearest rank) are those of
successful requests; `errors` is everything else (wrong status, timeouts, refused
connections), broken down by kind below the table. A 429 is the gateway's per-IP auth
limit (`gateway_rate_limit_auth`; every thread here shares one IP), after which that thread
waits Retry-After. A 503 is the gateway giving up on the user service after its read
timeout (`upstream_read_timeout_seconds`, 10 s): requests queued behind bcrypt for longer.

Only the standard library and `requests` (already in the project's .venv).
"""

from __future__ import annotations

import argparse
import math
import secrets
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

MAX_DURATION_SECONDS = 600
PASSWORD = "benchmark password"  # noqa: S105 - throwaway accounts on a development stack
# +998 is not assigned to any country in this project's tests (they use +999): runs never collide.
PHONE_PREFIX = "+998"


def random_phone() -> str:
    return PHONE_PREFIX + "".join(str(secrets.randbelow(10)) for _ in range(11))


@dataclass
class PhaseResult:
    what: str
    concurrency: int
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, ok: bool, seconds: float, error_kind: str | None = None) -> None:
        with self.lock:
            if ok:
                self.latencies.append(seconds)
            else:
                self.errors[error_kind or "error"] += 1

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, fraction: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1] * 1000


class Accounts:
    """Phone numbers registered so far; login workers take them round robin."""

    def __init__(self) -> None:
        self._phones: list[str] = []
        self._next = 0
        self._lock = threading.Lock()

    def add(self, phone: str) -> None:
        with self._lock:
            self._phones.append(phone)

    def __len__(self) -> int:
        return len(self._phones)

    def take(self) -> str:
        with self._lock:
            phone = self._phones[self._next % len(self._phones)]
            self._next += 1
            return phone


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between us and the gateway
    return session


@dataclass(frozen=True)
class Outcome:
    ok: bool
    seconds: float
    error_kind: str | None = None
    retry_after: float | None = None  # seconds, from a 429's Retry-After


def _post(session: requests.Session, url: str, body: dict, expected: int, timeout: float) -> Outcome:
    started = time.perf_counter()
    try:
        response = session.post(url, json=body, timeout=timeout)
    except requests.Timeout:
        return Outcome(False, time.perf_counter() - started, "timeout")
    except requests.RequestException as exc:
        return Outcome(False, time.perf_counter() - started, type(exc).__name__)
    seconds = time.perf_counter() - started
    if response.status_code == expected:
        return Outcome(True, seconds)
    retry_after = None
    if response.status_code == 429:
        try:
            retry_after = float(response.headers.get("Retry-After", "1"))
        except ValueError:
            retry_after = 1.0
    return Outcome(False, seconds, f"HTTP {response.status_code}", retry_after)


@dataclass(frozen=True)
class Target:
    base_url: str
    duration: float  # seconds per phase
    timeout: float  # seconds per request


def run_phase(target: Target, what: str, concurrency: int, accounts: Accounts) -> PhaseResult:
    result = PhaseResult(what, concurrency)
    url = f"{target.base_url}/api/v1/auth/{what}"
    timeout, duration = target.timeout, target.duration
    deadline = time.monotonic() + duration

    def worker() -> None:
        session = _session()
        while time.monotonic() < deadline:
            if what == "register":
                phone = random_phone()
                body = {"phone": phone, "password": PASSWORD, "display_name": "Bench"}
                outcome = _post(session, url, body, 201, timeout)
                if outcome.ok:
                    accounts.add(phone)
            else:
                body = {"phone": accounts.take(), "password": PASSWORD}
                outcome = _post(session, url, body, 200, timeout)
            result.record(outcome.ok, outcome.seconds, outcome.error_kind)
            retry_after = outcome.retry_after
            if retry_after is not None:
                # Rate limited: wait as told, so retries do not eat the next window's budget.
                time.sleep(min(retry_after, max(0.0, deadline - time.monotonic())))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + timeout + 5)
    result.elapsed = time.monotonic() - started
    return result


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


# (heading, width) of each column of the table.
COLUMNS = (
    ("what", 8),
    ("concurrency", 11),
    ("requests", 8),
    ("rate/s", 6),
    ("p50 ms", 6),
    ("p99 ms", 6),
    ("errors", 6),
)


def _row(cells: list[str]) -> str:
    return (
        "| "
        + " | ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, (_name, width)) in enumerate(zip(cells, COLUMNS, strict=True))
        )
        + " |"
    )


def print_table(results: list[PhaseResult]) -> None:
    """A Markdown table, so it can go into benchmarks/README.md as printed."""
    print(_row([name for name, _width in COLUMNS]))
    print(
        "|"
        + "|".join(
            "-" * (width + 1) + ":" if i else "-" * (width + 2) for i, (_n, width) in enumerate(COLUMNS)
        )
        + "|"
    )
    for r in results:
        cells = [r.what, str(r.concurrency), str(r.requests), f"{r.rate:.2f}"]
        cells += [_ms(r.percentile_ms(0.50)), _ms(r.percentile_ms(0.99)), str(sum(r.errors.values()))]
        print(_row(cells))
    kinds = [f"{r.what}@{r.concurrency}: {dict(r.errors)}" for r in results if r.errors]
    if kinds:
        print("\nerrors by kind: " + "; ".join(kinds))


def positive_duration(text: str) -> float:
    value = float(text)
    if not 0 < value <= MAX_DURATION_SECONDS:
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_DURATION_SECONDS}] seconds")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError("must be 1..256")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url", default="http://127.0.0.1:8080", help="the gateway (default: %(default)s)"
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        nargs="+",
        default=[1, 4, 16],
        help="client threads; several values run one after another (default: %(default)s)",
    )
    parser.add_argument(
        "--duration", type=positive_duration, default=15.0, help="seconds per phase (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per request (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    base_url = args.base_url.rstrip("/")

    try:
        health = _session().get(f"{base_url}/api/v1/health", timeout=5)
    except requests.RequestException as exc:
        print(f"the gateway at {base_url} does not answer: {exc}", file=sys.stderr)
        return 2
    print(f"gateway {base_url}: /api/v1/health {health.status_code}; {args.duration:g} s per phase\n")

    target = Target(base_url, args.duration, args.timeout)
    accounts = Accounts()
    results: list[PhaseResult] = []
    for concurrency in args.concurrency:
        for what in ("register", "login"):
            if what == "login" and not accounts:
                print(
                    f"no account was registered at concurrency {concurrency}: login skipped", file=sys.stderr
                )
                continue
            result = run_phase(target, what, concurrency, accounts)
            print(
                f"  {what} at {concurrency}: {result.requests} requests in {result.elapsed:.1f} s", flush=True
            )
            results.append(result)
    print()
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
