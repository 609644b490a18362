#!/usr/bin/env python3
"""End-to-end message delivery over the deployed stack, with a bare relay as reference.

What it measures, each part printed as a table:
  1. delivery: paired sockets (one user per socket, half send, half receive, direct
     conversations); a fixed offered rate in steps of `--step-seconds`; per step: offered,
     sent, acked, delivered, delivered/s, ack and delivery p50/p99 (send to `message.ack`,
     send to the receiver's `message.new`: chat -> RabbitMQ -> message_processor ->
     MongoDB/PostgreSQL -> Redis -> chat), and the CPU milliseconds per delivered message
     of every container of the stack (cgroup accounting, benchmarks/stack_cpu.py);
  2. the same load against a bare `websockets` relay started here on 127.0.0.1 (the
     ceiling of the machine and client), in the same run, with its own CPU per message;
  3. `--overload`: one more step at twice the best delivered rate (does it degrade or
     collapse?);
  4. the idle stack: % of one core per container over `--idle-cpu` seconds, no sockets;
  5. health checks: CPU-ms per run of each container's check (run by `docker exec`, which
     Docker also uses, so it lands in the container's cgroup);
  6. a reconnect storm (`--storm N`): N sockets connected, messages flowing, every chat
     container restarted: time until every socket is back and has every message that was
     acknowledged before the restart;
  7. memory per idle socket (`--idle`): the chat container's memory with N idle sockets open
     minus with none, divided by N.
Bounded: every step has a fixed duration and the run stops by itself. Setup writes users
straight into PostgreSQL (bcrypt would take minutes for thousands of accounts) and mints
access tokens with the inventory's development key, so run it against a development
inventory only, on the Docker host (the cgroup files are read from /sys/fs/cgroup).
Sockets go straight to chat's published port (nginx's per-address limits would throttle
one load generator); the API goes through the gateway's.

  .venv/bin/python benchmarks/ws_delivery.py -i inventories/airgapped --sockets 100 1000 \
      --rates 250 500 1000 2000 --overload --storm 10000
  .venv/bin/python benchmarks/ws_delivery.py -i inventories/airgapped --quick   # a few seconds, every table
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests
import websockets
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from stack_cpu import (  # noqa: E402
    Container,
    CpuMeter,
    healthcheck_cost,
    process_cpu_seconds,
    stack_containers,
)

from services.chat.store import direct_key  # noqa: E402
from services.common.auth import AccessTokenSigner  # noqa: E402

# A valid bcrypt hash of nothing anyone types: benchmark users never log in.
UNUSABLE_HASH = "$2b$04$" + "A" * 53


def inventory_dir(value: str) -> Path:
    """`-i inventories/airgapped` or a bare `airgapped`."""
    path = Path(value)
    candidates = [path, ROOT / path, ROOT / "inventories" / value]
    for candidate in candidates:
        if (candidate / "group_vars").is_dir():
            return candidate.resolve()
    raise SystemExit(f"no inventory at {value!r} (give -i inventories/<name>)")


def load_vars(inventory: Path) -> dict:
    values: dict = {}
    for path in sorted((ROOT / "group_vars/all").glob("*.yml")):
        values.update(yaml.safe_load(path.read_text()) or {})
    for path in sorted((inventory / "group_vars/whatsapp").glob("*.yml")):
        values.update(yaml.safe_load(path.read_text()) or {})
    return values


@dataclass
class Stack:
    api: str
    ws: str
    signer: AccessTokenSigner
    dsn: str
    name: str
    chat_container: str
    chat_dsn: str


def stack_of(values: dict) -> Stack:
    address = values["whatsapp_publish_address"]
    password = values["postgres_passwords"]["svc_user"]
    return Stack(
        api=f"http://{address}:{values['gateway_port']}/api/v1",
        ws=f"ws://{address}:{values['chat_port']}/ws",
        signer=AccessTokenSigner(
            # The development key is labelled by a first line before the PEM block.
            values["whatsapp_jwt_private_key"][values["whatsapp_jwt_private_key"].index("-----BEGIN") :],
            issuer=values["whatsapp_jwt_issuer"],
            audience=values["whatsapp_jwt_audience"],
            ttl_seconds=3600,
        ),
        dsn=f"postgresql://svc_user:{password}@{address}:{values['postgres_port']}/{values['postgres_database']}",
        name=values["whatsapp_stack_name"],
        chat_container=values["chat_container_name"],
        chat_dsn=(
            f"postgresql://svc_chat:{values['postgres_passwords']['svc_chat']}@{address}:"
            f"{values['postgres_port']}/{values['postgres_database']}"
        ),
    )


def make_users(stack: Stack, count: int) -> list[tuple[str, str]]:
    """(user id, access token) for `count` new accounts, inserted in one statement."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with psycopg.connect(stack.dsn) as conn, conn.cursor() as cur:
        # Numbers after the highest one an earlier run made (random ones collided at 10,000).
        cur.execute("SELECT max(phone) FROM accounts.users WHERE phone LIKE '+1999%%' AND length(phone) = 15")
        highest = cur.fetchone()[0]
        first = int(highest[5:]) + 1 if highest else 0
        cur.executemany(
            "INSERT INTO accounts.users (id, phone, display_name, password_hash) VALUES (%s, %s, %s, %s)",
            [(i, f"+1999{first + n:010d}", "bench", UNUSABLE_HASH) for n, i in enumerate(ids)],
        )
    return [(i, stack.signer.issue(i)) for i in ids]


def make_pairs_in_db(stack: Stack, users: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """make_pairs for thousands of users: the direct conversations written straight into
    PostgreSQL as chat writes them (5,000 through the gateway's rate limit took minutes)."""
    pairs, conversations, members = [], [], []
    for (sender_id, sender_token), (receiver_id, receiver_token) in zip(users[::2], users[1::2], strict=True):
        conversation = str(uuid.uuid4())
        conversations.append((conversation, direct_key(sender_id, receiver_id), sender_id))
        members += [(conversation, sender_id), (conversation, receiver_id)]
        pairs.append((sender_token, receiver_token, conversation))
    with psycopg.connect(stack.chat_dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO conversations.conversations (id, type, direct_key, created_by)"
            " VALUES (%s, 'direct', %s, %s)",
            conversations,
        )
        cur.executemany(
            "INSERT INTO conversations.members (conversation_id, user_id, role) VALUES (%s, %s, 'member')",
            members,
        )
    return pairs


def direct_ws(stack: Stack) -> str:
    """The chat container's own address on its network, port and path: thousands of
    sockets bypass Docker's userland proxy, which holds two descriptors per connection under
    dockerd's open-file limit (at 20,000 it died at 10,000 sockets and took the port away)."""
    info = json.loads(subprocess.check_output(["docker", "inspect", stack.chat_container], text=True))[0]
    address = next(n["IPAddress"] for n in info["NetworkSettings"]["Networks"].values() if n["IPAddress"])
    port = next(iter(info["Config"]["ExposedPorts"])).split("/")[0]
    return f"ws://{address}:{port}/ws"


def make_pairs(stack: Stack, users: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(sender token, receiver token, conversation id) for consecutive users."""
    session = requests.Session()
    pairs = []
    for (_, sender_token), (receiver_id, receiver_token) in zip(users[::2], users[1::2], strict=True):
        for attempt in range(20):
            answer = session.post(
                f"{stack.api}/conversations",
                json={"type": "direct", "member_id": receiver_id},
                headers={"Authorization": f"Bearer {sender_token}"},
                timeout=30,
            )
            if answer.status_code != 429:
                break
            time.sleep(float(answer.headers.get("Retry-After", "1")) * (1 + attempt / 10))
        answer.raise_for_status()
        pairs.append((sender_token, receiver_token, answer.json()["id"]))
    return pairs


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- load against the stack ----------------------------------------------------------------


async def open_socket(url: str, token: str | None, attempts: int = 5):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    for attempt in range(attempts):
        try:
            return await websockets.connect(
                url, additional_headers=headers, open_timeout=30, max_size=2**20, ping_interval=None
            )
        except (OSError, websockets.InvalidStatus, websockets.InvalidMessage, TimeoutError):
            await asyncio.sleep(0.2 * (attempt + 1))
    return await websockets.connect(url, additional_headers=headers, open_timeout=30, ping_interval=None)


@dataclass
class Step:
    target: str
    sockets: int
    rate: int
    sent: int = 0
    acked: int = 0
    refused: int = 0  # answered rate_limited (the accept queue was full): the sender knows at once
    delivered: int = 0
    per_second: float = 0.0
    ack_ms: list[float] = field(default_factory=list)
    delivery_ms: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per container in the step

    def cpu_ms_per_message(self, name: str) -> float:
        return self.cpu.get(name, float("nan")) * 1000 / self.delivered if self.delivered else float("nan")

    @property
    def total_cpu_ms(self) -> float:
        return sum(self.cpu.values()) * 1000 / self.delivered if self.delivered else float("nan")


async def run_steps(  # noqa: PLR0913, PLR0915 - one load loop, read top to bottom
    stack: Stack,
    pairs,
    rates: list[int],
    step_seconds: float,
    *,
    relay: subprocess.Popen | None = None,
    relay_url: str | None = None,
    meter: CpuMeter | None = None,
    overload: bool = False,
) -> list[Step]:
    """Offered-rate steps, stopping after the first saturated one (and its overload step)."""
    url = relay_url or stack.ws
    target = "bare websockets relay" if relay_url else "stack"
    senders = await asyncio.gather(*(open_socket(url, None if relay_url else s) for s, _, _ in pairs))
    receivers = await asyncio.gather(*(open_socket(url, None if relay_url else r) for _, r, _ in pairs))
    step = Step(target, len(pairs) * 2, 0)
    sent_at: dict[str, float] = {}

    async def receive(ws) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "message.new":
                started = float(frame["message"]["body"].split(" ", 1)[0])
                step.delivery_ms.append((time.perf_counter() - started) * 1000)
                step.delivered += 1

    async def acks(ws) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "message.ack":
                started = sent_at.pop(frame.get("client_msg_id"), None)
                if started is not None:
                    step.ack_ms.append((time.perf_counter() - started) * 1000)
                step.acked += 1
            elif frame.get("type") == "error" and frame.get("code") == "rate_limited":
                sent_at.pop(frame.get("ref"), None)
                step.refused += 1

    if relay_url:  # the relay pairs sockets by the order they register
        for index, (s, r) in enumerate(zip(senders, receivers, strict=True)):
            await s.send(json.dumps({"register": f"s{index}"}))
            await r.send(json.dumps({"register": f"r{index}"}))
    tasks = [asyncio.create_task(receive(r)) for r in receivers] + [
        asyncio.create_task(acks(s)) for s in senders
    ]
    results: list[Step] = []
    plan = list(rates)
    overloaded = False
    try:
        while plan:
            rate = plan.pop(0)
            step = Step(target, len(pairs) * 2, rate)
            sent_at.clear()
            interval = 1.0 / rate
            before = meter.snapshot() if meter else {}
            relay_before = process_cpu_seconds(relay.pid) if relay else 0.0
            started = time.perf_counter()
            next_at = started
            index = 0
            while time.perf_counter() - started < step_seconds:
                now = time.perf_counter()
                while next_at <= now:
                    ws = senders[index % len(senders)]
                    client_msg_id = uuid.uuid4().hex
                    frame = {
                        "type": "message.send",
                        "client_msg_id": client_msg_id,
                        "conversation_id": pairs[index % len(pairs)][2],
                        "body": f"{time.perf_counter()!r} x",
                    }
                    if relay_url:
                        frame["to"] = f"r{index % len(pairs)}"
                        frame["client_msg_id"] = client_msg_id
                    sent_at[client_msg_id] = time.perf_counter()
                    await ws.send(json.dumps(frame))
                    step.sent += 1
                    index += 1
                    next_at += interval
                await asyncio.sleep(max(0.0, min(0.005, next_at - time.perf_counter())))
            await asyncio.sleep(2.0)  # let the tail arrive (counted in this step)
            elapsed = time.perf_counter() - started - 2.0
            step.per_second = step.delivered / elapsed
            if meter:
                step.cpu = {k: v for k, v in CpuMeter.diff(before, meter.snapshot()).items() if k != "@wall"}
            if relay:
                step.cpu = {"relay process": process_cpu_seconds(relay.pid) - relay_before}
            results.append(step)
            saturated = step.delivered < 0.8 * step.sent or percentile(step.delivery_ms, 0.99) > 2000
            if saturated or not plan:
                plan = []
                if overload and not overloaded:
                    overloaded = True
                    plan = [max(1, int(2 * max(r.per_second for r in results)))]
                    await asyncio.sleep(5)  # let the queues drain before the overload step
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in senders + receivers), return_exceptions=True)
    return results


# ---- the reference relay -------------------------------------------------------------------

RELAY = r"""
import asyncio, json, sys, websockets
peers = {}
async def handler(ws):
    async for raw in ws:
        frame = json.loads(raw)
        if "register" in frame:
            peers[frame["register"]] = ws
            continue
        target = peers.get(frame.get("to"))
        if target is not None:
            await ws.send(json.dumps({"type": "message.ack", "client_msg_id": frame.get("client_msg_id")}))
            await target.send(json.dumps({"type": "message.new", "message": {"body": frame["body"]}}))
async def main():
    async with websockets.serve(handler, "127.0.0.1", int(sys.argv[1]), max_size=2**20, ping_interval=None):
        await asyncio.Future()
asyncio.run(main())
"""


def start_relay(port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", RELAY, str(port)])  # noqa: S603
    time.sleep(1.5)
    return process


# ---- idle CPU and health checks ------------------------------------------------------------


def idle_cpu(meter: CpuMeter, seconds: float) -> dict[str, float]:
    """% of one core per container over `seconds` with no load from here."""
    before = meter.snapshot()
    time.sleep(seconds)
    spent = CpuMeter.diff(before, meter.snapshot())
    wall = spent.pop("@wall")
    return {name: 100 * cpu / wall for name, cpu in spent.items()}


# ---- reconnect storm -----------------------------------------------------------------------


@dataclass
class StormResult:
    sockets: int
    connected: int = 0
    back: int = 0
    caught_up: int = 0
    seconds_back: float = float("nan")
    seconds_caught_up: float = float("nan")
    sent_during: int = 0
    acked_during: int = 0


async def reconnect_storm(  # noqa: PLR0915 - one scenario, read top to bottom
    stack: Stack, users: list[tuple[str, str]], sockets: int, rate: float, deadline_s: float
) -> StormResult:
    """Every socket reconnects by itself (jittered backoff) after chat restarts; messages flow
    meanwhile from the even users to the odd ones."""
    result = StormResult(sockets)
    pairs = make_pairs_in_db(stack, users[:sockets])
    # Through the published port: the proxy closes a client's socket when chat goes away.
    # Straight to the container's address, the restart's closes were lost with its network
    # namespace and no client noticed within 120 s (the clients send no pings). So the storm
    # is bounded by the proxy's descriptors: two per socket under dockerd's open-file limit.
    url = stack.ws
    conv_of = {}
    for index, (_, _, conversation) in enumerate(pairs):
        conv_of[2 * index] = conv_of[2 * index + 1] = conversation
    tokens = [t for _, t in users[:sockets]]
    seen: dict[int, int] = {}  # socket index -> highest seq of its conversation received
    acked_max: dict[str, int] = {}
    live: dict[int, object] = {}
    generation: dict[int, int] = dict.fromkeys(range(sockets), 0)
    stop = asyncio.Event()

    async def keep(index: int) -> None:
        delay = 0.1
        while not stop.is_set():
            try:
                ws = await open_socket(url, tokens[index], attempts=1)
            except Exception:  # noqa: BLE001 - chat is restarting: back off and retry
                await asyncio.sleep(random.uniform(0, delay))  # noqa: S311 - jitter
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            live[index] = ws
            generation[index] += 1
            try:
                async for raw in ws:
                    frame = json.loads(raw)
                    kind = frame.get("type")
                    if kind == "message.new":
                        seq = int(frame["message"]["seq"])
                        seen[index] = max(seen.get(index, 0), seq)
                    elif kind == "message.ack":
                        message = frame["message"]
                        conv = message["conversation_id"]
                        acked_max[conv] = max(acked_max.get(conv, 0), int(message["seq"]))
            except Exception:  # noqa: BLE001, S110 - closed by the restart: reconnect
                pass
            finally:
                live.pop(index, None)

    async def send_loop(counter: list[int]) -> None:
        while not stop.is_set():
            index = 2 * random.randrange(len(pairs))  # noqa: S311 - load, not security
            ws = live.get(index)
            if ws is not None:
                try:
                    await ws.send(
                        json.dumps(
                            {
                                "type": "message.send",
                                "client_msg_id": uuid.uuid4().hex,
                                "conversation_id": conv_of[index],
                                "body": "storm",
                            }
                        )
                    )
                    counter[0] += 1
                except Exception:  # noqa: BLE001, S110 - the socket just closed
                    pass
            await asyncio.sleep(1 / rate)

    tasks = []
    for start in range(0, sockets, 250):  # open in waves, as clients arrive
        tasks += [asyncio.create_task(keep(i)) for i in range(start, min(sockets, start + 250))]
        await asyncio.sleep(0.5)
    for _ in range(120):
        if len(live) == sockets:
            break
        await asyncio.sleep(0.5)
    result.connected = len(live)
    counter = [0]
    sender = asyncio.create_task(send_loop(counter))
    await asyncio.sleep(3)
    generations = dict(generation)
    want = dict(acked_max)  # what was acknowledged before the restart
    chat = [
        c
        for c in subprocess.check_output(["docker", "ps", "--format", "{{.Names}}"], text=True).split()
        if c == stack.chat_container or c.startswith(stack.chat_container + "-")
    ]
    restarted_at = time.monotonic()
    sent_before = counter[0]
    await asyncio.to_thread(
        subprocess.run, ["docker", "restart", "-t", "5", *chat], capture_output=True, check=True
    )
    while time.monotonic() - restarted_at < deadline_s:
        back = sum(1 for i in range(sockets) if generation[i] > generations[i] and i in live)
        caught = sum(
            1
            for i in range(sockets)
            if generation[i] > generations[i] and i in live and seen.get(i, 0) >= want.get(conv_of[i], 0)
        )
        result.back, result.caught_up = back, caught
        if back == sockets and result.seconds_back != result.seconds_back:
            result.seconds_back = time.monotonic() - restarted_at
        if caught == sockets:
            result.seconds_caught_up = time.monotonic() - restarted_at
            break
        await asyncio.sleep(0.25)
    result.sent_during = counter[0] - sent_before
    result.acked_during = sum(acked_max.values()) - sum(want.values())
    stop.set()
    sender.cancel()
    await asyncio.gather(*(ws.close() for ws in list(live.values())), return_exceptions=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, sender, return_exceptions=True)
    return result


# ---- idle memory ---------------------------------------------------------------------------


def container_memory(name: str) -> float:
    """The container's memory use in MiB, as `docker stats` reports it."""
    out = subprocess.check_output(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name], text=True
    )
    used = out.split("/")[0].strip()
    number, unit = float(used[:-3]), used[-3:]
    return number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]


async def idle_memory(stack: Stack, tokens: list[str], count: int) -> tuple[int, float, float]:
    url = direct_ws(stack)
    before = container_memory(stack.chat_container)
    sockets = []
    for start in range(0, count, 500):
        batch = [tokens[i % len(tokens)] for i in range(start, min(count, start + 500))]
        sockets += await asyncio.gather(*(open_socket(url, t) for t in batch), return_exceptions=True)
    opened = [s for s in sockets if not isinstance(s, BaseException)]
    await asyncio.sleep(5)
    after = container_memory(stack.chat_container)
    await asyncio.gather(*(s.close() for s in opened), return_exceptions=True)
    return len(opened), before, after


# ---- tables --------------------------------------------------------------------------------


def short(name: str, stack: str) -> str:
    return name.removeprefix(stack + "-")


def print_delivery(rows: list[Step], containers: list[Container], stack: str, step_seconds: float) -> None:
    print(f"\n## delivery ({os.cpu_count()} cores, steps of {step_seconds:.0f} s)\n")
    print(
        "| target | sockets | offered/s | sent | acked | refused | delivered | deliv/s | ack p50 | ack p99 "
        "| deliv p50 | deliv p99 | CPU ms/msg |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        print(
            f"| {r.target} | {r.sockets} | {r.rate} | {r.sent} | {r.acked} | {r.refused} | {r.delivered} "
            f"| {r.per_second:.0f} | {percentile(r.ack_ms, 0.5):.1f} | {percentile(r.ack_ms, 0.99):.1f} "
            f"| {percentile(r.delivery_ms, 0.5):.1f} | {percentile(r.delivery_ms, 0.99):.1f} "
            f"| {r.total_cpu_ms:.2f} |"
        )
    stack_rows = [r for r in rows if r.target == "stack"]
    if not stack_rows:
        return
    print("\n## CPU ms per delivered message, per container (cgroup accounting)\n")
    heads = [f"{r.sockets} sk @{r.rate}/s" for r in stack_rows]
    print("| container | " + " | ".join(heads) + " |")
    print("|---|" + "--:|" * len(heads))
    for c in containers:
        cells = " | ".join(f"{r.cpu_ms_per_message(c.name):.2f}" for r in stack_rows)
        print(f"| {short(c.name, stack)} | {cells} |")
    print("| **sum** | " + " | ".join(f"**{r.total_cpu_ms:.2f}**" for r in stack_rows) + " |")


def main() -> None:  # noqa: PLR0912, PLR0915 - the run's parts in order
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-i", "--inventory", default="inventories/airgapped")
    parser.add_argument("--sockets", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rates", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument(
        "--overload", action="store_true", help="one more step at twice the best delivered rate"
    )
    parser.add_argument(
        "--idle-cpu", type=float, default=20.0, help="seconds of the idle-stack measurement (0: skip)"
    )
    parser.add_argument("--health-runs", type=int, default=5, help="runs of each health check (0: skip)")
    parser.add_argument("--storm", type=int, default=0, help="sockets of the reconnect storm (0: skip)")
    parser.add_argument("--storm-rate", type=float, default=50.0, help="messages/s during the storm")
    parser.add_argument("--idle", type=int, nargs="*", default=[], help="idle-socket counts for memory")
    parser.add_argument("--no-relay", action="store_true")
    parser.add_argument("--relay-port", type=int, default=18765)
    parser.add_argument("--quick", action="store_true", help="a few seconds: every table, tiny figures")
    args = parser.parse_args()
    if args.quick:
        args.sockets, args.rates, args.step_seconds = [4], [20], 2.0
        args.idle_cpu, args.health_runs, args.storm, args.storm_rate, args.idle = 1.0, 1, 4, 5.0, [4]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets need descriptors
    stack = stack_of(load_vars(inventory_dir(args.inventory)))
    containers = stack_containers(stack.name)
    if not containers:
        raise SystemExit(f"no running container labelled com.whatsapp.stack={stack.name}: deploy first")
    meter = CpuMeter(containers)
    print(
        f"# ws_delivery {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"{len(containers)} containers"
    )

    if args.idle_cpu > 0:
        idle = idle_cpu(meter, args.idle_cpu)
        print(f"\n## the idle stack: % of one core over {args.idle_cpu:.0f} s, no sockets\n")
        print("| container | % of one core |")
        print("|---|--:|")
        for c in containers:
            print(f"| {short(c.name, stack.name)} | {idle[c.name]:.2f} |")
        print(f"| **sum** | **{sum(idle.values()):.2f}** |")

    if args.health_runs > 0:
        print(f"\n## health checks: CPU-ms per run inside the container ({args.health_runs} runs each)\n")
        print("| container | CPU-ms per check | passed |")
        print("|---|--:|---|")
        for c in containers:
            cost, passed = healthcheck_cost(c, args.health_runs, 0.2 if args.quick else 1.0)
            print(f"| {short(c.name, stack.name)} | {cost:.1f} | {'yes' if passed else 'NO'} |")

    users = make_users(stack, max([*args.sockets, args.storm, 2]))
    rows: list[Step] = []
    relay = None if args.no_relay else start_relay(args.relay_port)
    try:
        for count in args.sockets:
            pairs = make_pairs(stack, users[:count])
            rows += asyncio.run(
                run_steps(stack, pairs, args.rates, args.step_seconds, meter=meter, overload=args.overload)
            )
            if relay:
                rows += asyncio.run(
                    run_steps(
                        stack,
                        pairs,
                        args.rates,
                        args.step_seconds,
                        relay=relay,
                        relay_url=f"ws://127.0.0.1:{args.relay_port}",
                        overload=args.overload,
                    )
                )
    finally:
        if relay:
            relay.terminate()
    print_delivery(rows, containers, stack.name, args.step_seconds)

    if args.storm:
        fresh = make_users(stack, args.storm)
        storm = asyncio.run(reconnect_storm(stack, fresh, args.storm, args.storm_rate, 120.0))
        print(
            f"\n## reconnect storm: {args.storm} sockets, chat restarted, "
            f"{args.storm_rate:.0f} msgs/s meanwhile\n"
        )
        print(
            "| sockets | connected | back | caught up | s until all back | s until all caught up "
            "| sent during | acked during |"
        )
        print("|--:|--:|--:|--:|--:|--:|--:|--:|")
        print(
            f"| {storm.sockets} | {storm.connected} | {storm.back} | {storm.caught_up} "
            f"| {storm.seconds_back:.1f} | {storm.seconds_caught_up:.1f} "
            f"| {storm.sent_during} | {storm.acked_during} |"
        )

    if args.idle:
        tokens = [t for _, t in users]
        print("\n## idle sockets on one chat container\n")
        print("| sockets | opened | MiB before | MiB after | KiB/socket |")
        print("|--:|--:|--:|--:|--:|")
        for count in args.idle:
            if count > len(tokens):
                tokens += [t for _, t in make_users(stack, count - len(tokens))]
            opened, before, after = asyncio.run(idle_memory(stack, tokens, count))
            per_socket = (after - before) * 1024 / opened if opened else float("nan")
            print(f"| {count} | {opened} | {before:.1f} | {after:.1f} | {per_socket:.1f} |")
            time.sleep(3)


if __name__ == "__main__":
    main()
