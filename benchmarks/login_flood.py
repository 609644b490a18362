#!/usr/bin/env python3
"""A login flood at the per-address limit, and what it does to another user's requests.

    .venv/bin/python benchmarks/login_flood.py -i inventories/airgapped              # 2 x 10 s
    .venv/bin/python benchmarks/login_flood.py -i inventories/airgapped --seconds 2  # a check

Everything goes through nginx (`nginx_http_port` on `whatsapp_publish_address`), as a
client's would. Two phases of `--seconds` each:

1. without flood: one prober times `GET /api/v1/conversations` for a reader account
   (`--probe-rate` requests/s, well inside the per-user limit);
2. with flood: the same prober, while logins are sent at `--rate` per second (default: the
   inventory's `nginx_rate_limit_auth`, the per-address limit), open loop (a slow answer
   does not slow the flood): every `--right-every`-th one the right password of a flooder
   account (200), the others wrong passwords for `--phones` phone numbers in turn, which
   nobody registered (401, then 429 `rate_limited` from the per-phone throttle once a
   phone has `user_login_max_failures` failures).

It prints the prober's requests, p50 and p99 (nearest rank) and errors in each phase, side
by side, then the flood's answers by kind: 200, 401, 429 from the per-phone throttle, 429
from a per-address limit (nginx's or the gateway's), 503 `unavailable` (the password pool
full: answered at once), anything else; with the p50/p99 of each kind. What the figures
should show: the prober's latency barely moves (the password pool is smaller than the
user service's threads, and a full pool answers 503 in milliseconds instead of queuing
work behind bcrypt), and the flood turns into 401/429/503 rather than timeouts.

Bounded: the phases last at most 2 x 12 s, requests time out after `--timeout` (5 s), the
flood sends at most rate x seconds logins, and the run stops by itself. It registers two
accounts (`+997` numbers, unused elsewhere) and writes nothing else. Only the standard
library, `requests` and PyYAML (already in the project's .venv).
"""

from __future__ import annotations

import argparse
import math
import re
import secrets
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
MAX_SECONDS = 12.0
PASSWORD = "benchmark password"  # noqa: S105 - throwaway accounts on a development stack
PHONE_PREFIX = "+997"  # tests use +999, auth_throughput +998
THROTTLED = "failed logins"  # in the per-phone throttle's message only


def inventory_dir(value: str) -> Path:
    """`-i inventories/airgapped` or a bare `airgapped`."""
    path = Path(value)
    for candidate in (path, ROOT / path, ROOT / "inventories" / value):
        if (candidate / "group_vars").is_dir():
            return candidate.resolve()
    raise SystemExit(f"no inventory at {value!r} (give -i inventories/<name>)")


def load_vars(inventory: Path) -> dict:
    """Role defaults < group_vars/all < the inventory's group, as Ansible ranks them here."""
    values: dict = {}
    paths = [
        ROOT / "roles/nginx/defaults/main.yml",
        ROOT / "roles/user/defaults/main.yml",
        *sorted((ROOT / "group_vars/all").glob("*.yml")),
        *sorted((inventory / "group_vars/whatsapp").glob("*.yml")),
    ]
    for path in paths:
        values.update(yaml.safe_load(path.read_text()) or {})
    return values


def per_second(limit: str) -> float:
    """nginx's `10r/s` or `600r/m` as requests per second."""
    match = re.fullmatch(r"(\d+)r/([sm])", str(limit).strip())
    if not match:
        raise SystemExit(f"nginx_rate_limit_auth {limit!r} is not like 10r/s")
    return int(match[1]) / (1 if match[2] == "s" else 60)


def random_phone() -> str:
    return PHONE_PREFIX + "".join(str(secrets.randbelow(10)) for _ in range(11))


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # no proxy from the environment between us and nginx
    return s


def percentile_ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[max(1, math.ceil(q * len(ordered))) - 1] * 1000:.0f}"


@dataclass
class Samples:
    """Latencies (seconds) by kind of answer, thread-safe."""

    by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.by_kind[kind].append(seconds)

    def count(self, kind: str) -> int:
        return len(self.by_kind.get(kind, []))

    def total(self) -> int:
        return sum(len(v) for v in self.by_kind.values())


def register(api: str, name: str) -> tuple[str, str, str]:
    """(phone, user id, access token) of a new account; per-address 429s waited out."""
    phone = random_phone()
    for _ in range(20):
        answer = session().post(
            f"{api}/auth/register",
            json={"phone": phone, "password": PASSWORD, "display_name": name},
            timeout=30,
        )
        if answer.status_code not in (429, 503):
            break
        time.sleep(float(answer.headers.get("Retry-After", "1")))
    if answer.status_code != 201:
        raise SystemExit(f"registering the {name} account: HTTP {answer.status_code} {answer.text[:200]}")
    body = answer.json()
    return phone, body["user"]["id"], body["access_token"]


def probe(api: str, token: str, rate: float, seconds: float, timeout: float) -> Samples:
    """GET /conversations every 1/rate s for `seconds`: latencies of 200s under `ok`."""
    samples = Samples()
    s = session()
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    while next_at < deadline:
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += 1 / rate
        started = time.perf_counter()
        try:
            answer = s.get(f"{api}/conversations", headers=headers, timeout=timeout)
            kind = "ok" if answer.status_code == 200 else f"HTTP {answer.status_code}"
        except requests.RequestException as exc:
            kind = type(exc).__name__
        samples.add(kind, time.perf_counter() - started)
    return samples


def login_kind(answer: requests.Response) -> str:
    if answer.status_code == 429:
        return "429 phone" if THROTTLED in answer.text else "429 address"
    if answer.status_code in (200, 401, 503):
        return str(answer.status_code)
    return f"other ({answer.status_code})"


@dataclass(frozen=True)
class Flood:
    api: str
    rate: float
    seconds: float
    timeout: float
    flooder_phone: str
    wrong_phones: list[str]
    right_every: int


def flood(plan: Flood) -> Samples:
    """Logins at `rate` per second, open loop, for `seconds`."""
    samples = Samples()
    local = threading.local()
    total = int(plan.rate * plan.seconds)

    def one(n: int) -> None:
        if not hasattr(local, "session"):
            local.session = session()
        if plan.right_every and n % plan.right_every == 0:
            body = {"phone": plan.flooder_phone, "password": PASSWORD}
        else:
            body = {"phone": plan.wrong_phones[n % len(plan.wrong_phones)], "password": "not the password"}
        started = time.perf_counter()
        try:
            kind = login_kind(local.session.post(f"{plan.api}/auth/login", json=body, timeout=plan.timeout))
        except requests.RequestException as exc:
            kind = f"other ({type(exc).__name__})"
        samples.add(kind, time.perf_counter() - started)

    # Enough workers that answers as slow as the timeout never hold the rate back.
    workers = max(4, math.ceil(plan.rate * plan.timeout) + 1)
    with ThreadPoolExecutor(max_workers=min(workers, 256)) as pool:
        start = time.monotonic()
        for n in range(total):
            time.sleep(max(0.0, start + n / plan.rate - time.monotonic()))
            pool.submit(one, n)
    return samples


def print_probe_table(without: Samples, with_flood: Samples) -> None:
    print("\nGET /api/v1/conversations (another user) through nginx\n")
    print("| phase         | requests | p50 ms | p99 ms | errors |")
    print("|---------------|---------:|-------:|-------:|-------:|")
    for name, samples in (("without flood", without), ("with flood", with_flood)):
        ok = samples.by_kind.get("ok", [])
        errors = samples.total() - len(ok)
        print(
            f"| {name:<13} | {samples.total():>8} | {percentile_ms(ok, 0.5):>6} | "
            f"{percentile_ms(ok, 0.99):>6} | {errors:>6} |"
        )
    for name, samples in (("without flood", without), ("with flood", with_flood)):
        errors = {k: len(v) for k, v in samples.by_kind.items() if k != "ok"}
        if errors:
            print(f"errors {name}: " + ", ".join(f"{n} x {k}" for k, n in sorted(errors.items())))


def print_flood_table(samples: Samples, plan: Flood) -> None:
    print(f"\nPOST /api/v1/auth/login at {plan.rate:g}/s for {plan.seconds:g} s through nginx\n")
    print("| answer      | count | p50 ms | p99 ms |")
    print("|-------------|------:|-------:|-------:|")
    kinds = ["200", "401", "429 phone", "429 address", "503"]
    kinds += sorted(k for k in samples.by_kind if k not in kinds)
    for kind in kinds:
        values = samples.by_kind.get(kind, [])
        p50, p99 = percentile_ms(values, 0.5), percentile_ms(values, 0.99)
        print(f"| {kind:<11} | {len(values):>5} | {p50:>6} | {p99:>6} |")
    print(f"| total       | {samples.total():>5} |        |        |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-i", "--inventory", default="inventories/airgapped")
    parser.add_argument("--seconds", type=float, default=10.0, help=f"per phase, at most {MAX_SECONDS:g}")
    parser.add_argument("--rate", type=float, default=None, help="logins/s (default: nginx_rate_limit_auth)")
    parser.add_argument("--probe-rate", type=float, default=20.0, help="GET /conversations per second")
    parser.add_argument(
        "--phones", type=int, default=5, help="unregistered phones the wrong logins cycle over"
    )
    parser.add_argument("--right-every", type=int, default=5, help="every N-th login is right (0: none)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    args = parser.parse_args()
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {MAX_SECONDS:g}]")
    if not 0 < args.probe_rate <= 50 or args.phones < 1 or not 0 < args.timeout <= 10:
        parser.error("--probe-rate 0..50, --phones at least 1, --timeout 0..10")

    values = load_vars(inventory_dir(args.inventory))
    api = f"http://{values['whatsapp_publish_address']}:{values['nginx_http_port']}/api/v1"
    rate = args.rate if args.rate is not None else per_second(values["nginx_rate_limit_auth"])
    if not 0 < rate <= 100:
        parser.error("--rate must be in (0, 100]")

    _, _, reader_token = register(api, "Flood reader")
    flooder_phone, flooder_id, _ = register(api, "Flooder")
    # One conversation, so the probed route reads something.
    session().post(
        f"{api}/conversations",
        json={"type": "direct", "member_id": flooder_id},
        headers={"Authorization": f"Bearer {reader_token}"},
        timeout=10,
    )
    plan = Flood(
        api=api,
        rate=rate,
        seconds=args.seconds,
        timeout=args.timeout,
        flooder_phone=flooder_phone,
        wrong_phones=[random_phone() for _ in range(args.phones)],
        right_every=args.right_every,
    )
    print(
        f"nginx {api}; logins at {rate:g}/s (nginx_rate_limit_auth {values['nginx_rate_limit_auth']}, "
        f"burst {values.get('nginx_rate_limit_auth_burst')}); user_password_checks_concurrent "
        f"{values.get('user_password_checks_concurrent')}, user_login_max_failures "
        f"{values.get('user_login_max_failures')}, user_bcrypt_cost {values.get('user_bcrypt_cost')}"
    )
    print(f"phase 1: {args.seconds:g} s without flood", flush=True)
    without = probe(api, reader_token, args.probe_rate, args.seconds, args.timeout)
    print(f"phase 2: {args.seconds:g} s with the flood", flush=True)
    result: dict[str, Samples] = {}
    prober = threading.Thread(
        target=lambda: result.setdefault(
            "probe", probe(api, reader_token, args.probe_rate, args.seconds, args.timeout)
        )
    )
    prober.start()
    flooded = flood(plan)
    prober.join(args.seconds + args.timeout + 5)
    print_probe_table(without, result.get("probe", Samples()))
    print_flood_table(flooded, plan)


if __name__ == "__main__":
    sys.exit(main())
