#!/usr/bin/env python3
"""End-to-end message delivery over the deployed stack, with a bare relay as reference.

What it measures (issue: messaging, benchmarks):
  1. delivery: paired sockets (half send, half receive); a fixed offered rate in steps of
     `--step-seconds`; per step the delivered rate and p50/p99 latency from the sender's
     send to the receiver's `message.new` (chat -> RabbitMQ -> message_processor ->
     MongoDB/PostgreSQL -> Redis -> chat), at each `--sockets` count;
  2. the same load against a bare `websockets` relay started here on 127.0.0.1 (the
     ceiling of the machine and client), measured in the same run;
  3. memory per idle socket: the chat container's memory (cgroup, via `docker stats`)
     with N idle sockets open minus with none, divided by N.
Bounded: every step has a fixed duration and the run stops by itself. Setup writes users
straight into PostgreSQL (bcrypt would take minutes for thousands of accounts) and mints
access tokens with the inventory's development key, so run it against a development
inventory only. Prints a table; nothing is asserted.

  .venv/bin/python benchmarks/ws_delivery.py --sockets 100 1000 --rates 250 500 1000 2000 --idle 1000 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests
import websockets
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from services.common.auth import AccessTokenSigner  # noqa: E402

# A valid bcrypt hash of nothing anyone types: benchmark users never log in.
UNUSABLE_HASH = "$2b$04$" + "A" * 53


def load_vars(inventory: str) -> dict:
    values: dict = {}
    for path in sorted((ROOT / "group_vars/all").glob("*.yml")):
        values.update(yaml.safe_load(path.read_text()) or {})
    for path in sorted((ROOT / "inventories" / inventory / "group_vars/whatsapp").glob("*.yml")):
        values.update(yaml.safe_load(path.read_text()) or {})
    return values


@dataclass
class Stack:
    api: str
    ws: str
    signer: AccessTokenSigner
    dsn: str
    chat_container: str


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
        chat_container=values["chat_container_name"],
    )


def make_users(stack: Stack, count: int) -> list[tuple[str, str]]:
    """(user id, access token) for `count` new accounts, inserted in one statement."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with psycopg.connect(stack.dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO accounts.users (id, phone, display_name, password_hash) VALUES (%s, %s, %s, %s)",
            [(i, "+1999" + str(uuid.UUID(i).int)[:10], "bench", UNUSABLE_HASH) for i in ids],
        )
    return [(i, stack.signer.issue(i)) for i in ids]


def make_pairs(stack: Stack, users: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(sender token, receiver token, conversation id) for consecutive users."""
    session = requests.Session()
    pairs = []
    for (_, sender_token), (receiver_id, receiver_token) in zip(users[::2], users[1::2], strict=True):
        answer = session.post(
            f"{stack.api}/conversations",
            json={"type": "direct", "member_id": receiver_id},
            headers={"Authorization": f"Bearer {sender_token}"},
            timeout=30,
        )
        answer.raise_for_status()
        pairs.append((sender_token, receiver_token, answer.json()["id"]))
    return pairs


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- load against the stack ----------------------------------------------------------------


async def open_socket(url: str, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    for attempt in range(5):
        try:
            return await websockets.connect(
                url, additional_headers=headers, open_timeout=30, max_size=2**20, ping_interval=None
            )
        except (OSError, websockets.InvalidStatus, TimeoutError):
            await asyncio.sleep(0.2 * (attempt + 1))
    return await websockets.connect(url, additional_headers=headers, open_timeout=30, ping_interval=None)


async def run_steps(  # noqa: PLR0915 - one load loop, read top to bottom
    stack: Stack, pairs, rates: list[int], step_seconds: float, relay_url: str | None = None
):
    """Offered-rate steps; returns [(rate, sent, delivered, p50 ms, p99 ms, acked)]."""
    url = relay_url or stack.ws
    senders = await asyncio.gather(*(open_socket(url, None if relay_url else s) for s, _, _ in pairs))
    receivers = await asyncio.gather(*(open_socket(url, None if relay_url else r) for _, r, _ in pairs))
    latencies: list[float] = []
    delivered = 0
    acked = 0

    async def receive(ws) -> None:
        nonlocal delivered
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "message.new":
                sent_at = float(frame["message"]["body"].split(" ", 1)[0])
                latencies.append((time.perf_counter() - sent_at) * 1000)
                delivered += 1

    async def acks(ws) -> None:
        nonlocal acked
        async for raw in ws:
            if json.loads(raw).get("type") == "message.ack":
                acked += 1

    if relay_url:  # the relay pairs sockets by the order they register
        for index, (s, r) in enumerate(zip(senders, receivers, strict=True)):
            await s.send(json.dumps({"register": f"s{index}"}))
            await r.send(json.dumps({"register": f"r{index}"}))
    tasks = [asyncio.create_task(receive(r)) for r in receivers] + [
        asyncio.create_task(acks(s)) for s in senders
    ]
    results = []
    try:
        for rate in rates:
            latencies.clear()
            delivered = acked = 0
            sent = 0
            interval = 1.0 / rate
            started = time.perf_counter()
            next_at = started
            index = 0
            while time.perf_counter() - started < step_seconds:
                now = time.perf_counter()
                while next_at <= now:
                    ws = senders[index % len(senders)]
                    frame = {
                        "type": "message.send",
                        "client_msg_id": uuid.uuid4().hex,
                        "conversation_id": pairs[index % len(pairs)][2],
                        "body": f"{time.perf_counter()!r} x",
                    }
                    if relay_url:
                        frame["to"] = f"r{index % len(pairs)}"
                    await ws.send(json.dumps(frame))
                    sent += 1
                    index += 1
                    next_at += interval
                await asyncio.sleep(max(0.0, min(0.005, next_at - time.perf_counter())))
            await asyncio.sleep(2.0)  # let the tail arrive (counted in this step)
            elapsed = time.perf_counter() - started - 2.0
            results.append(
                (
                    rate,
                    sent,
                    delivered,
                    delivered / elapsed,
                    percentile(latencies, 0.5),
                    percentile(latencies, 0.99),
                    acked,
                )
            )
            if delivered < 0.8 * sent or percentile(latencies, 0.99) > 2000:
                break  # saturated: higher steps would only queue
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
            await ws.send(json.dumps({"type": "message.ack"}))
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
    before = container_memory(stack.chat_container)
    sockets = []
    for start in range(0, count, 500):
        batch = [tokens[i % len(tokens)] for i in range(start, min(count, start + 500))]
        sockets += await asyncio.gather(*(open_socket(stack.ws, t) for t in batch), return_exceptions=True)
    opened = [s for s in sockets if not isinstance(s, BaseException)]
    await asyncio.sleep(5)
    after = container_memory(stack.chat_container)
    await asyncio.gather(*(s.close() for s in opened), return_exceptions=True)
    return len(opened), before, after


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inventory", default="airgapped")
    parser.add_argument("--sockets", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rates", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--relay-port", type=int, default=18765)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets need descriptors
    stack = stack_of(load_vars(args.inventory))
    users = make_users(stack, max(args.sockets + [2]))
    rows = []
    relay = start_relay(args.relay_port)
    try:
        for count in args.sockets:
            pairs = make_pairs(stack, users[:count])
            for target, url in (
                ("stack", None),
                ("bare websockets relay", f"ws://127.0.0.1:{args.relay_port}"),
            ):
                for rate, sent, delivered, per_second, p50, p99, acked in asyncio.run(
                    run_steps(stack, pairs, args.rates, args.step_seconds, url)
                ):
                    rows.append((target, count, rate, sent, acked, delivered, per_second, p50, p99))
    finally:
        relay.terminate()
    print(f"\ndelivery, {os.cpu_count()} cores, steps of {args.step_seconds:.0f} s")
    print(
        f"{'target':24} {'sockets':>7} {'offered/s':>9} {'sent':>7} {'acked':>7} {'delivered':>9} "
        f"{'deliv/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for target, count, rate, sent, acked, delivered, per_second, p50, p99 in rows:
        print(f"{target:24} {count:7} {rate:9} {sent:7} {acked:7} {delivered:9} ", end="")
        print(f"{per_second:8.0f} {p50:8.1f} {p99:8.1f}")
    if args.idle:
        tokens = [t for _, t in users]
        print("\nidle sockets on one chat container")
        print(f"{'sockets':>8} {'opened':>8} {'MiB before':>10} {'MiB after':>10} {'KiB/socket':>10}")
        for count in args.idle:
            opened, before, after = asyncio.run(idle_memory(stack, tokens, count))
            per_socket = (after - before) * 1024 / opened if opened else float("nan")
            print(f"{count:8} {opened:8} {before:10.1f} {after:10.1f} {per_socket:10.1f}")
            time.sleep(3)


if __name__ == "__main__":
    main()
