"""Layer 5, reliability: no acknowledged message is lost when one container restarts or
is killed under steady traffic.

Two senders (one over a WebSocket, one over REST through the gateway) send without pause;
each keeps re-sending a message with the same client_msg_id until it is acknowledged, as
a real client does. A receiver keeps a socket open (reconnecting when it drops) and
reports what it got with delivered receipts. Meanwhile each of chat, message_processor,
rabbitmq, mongodb and redis is restarted (`docker restart`), then killed (SIGKILL of its
main process from the host; the restart policy brings it back); every other container of
the stack (nginx, postgres, user, gateway, notification, scheduled_jobs, prometheus and
its exporters) is killed once. At the end every
acknowledged message must have reached the receiver exactly once after de-duplication by
id, in seq order per conversation, and be in the history.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from typing import Any

import pytest
import requests
from conftest import ROOT, TEST_INVENTORY, run, tail
from stack_client import GROUP_VARS, Socket, User
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.docker

CONTAINERS = [
    GROUP_VARS["chat_container_name"],
    GROUP_VARS["message_processor_container_name"],
    GROUP_VARS["rabbitmq_container_name"],
    GROUP_VARS["mongodb_container_name"],
    GROUP_VARS["redis_container_name"],
]
# Every other container of the stack (nginx, postgres, user, gateway, notification,
# scheduled_jobs, prometheus and its exporters) is killed once (SIGKILL, the harsher case).
KILL_ONLY_ROLES = [role for role in GROUP_VARS["whatsapp_roles"] if role != "docker_host"]
SEND_INTERVAL = 0.05  # each sender: ~20 messages/s
SETTLE_SECONDS = 6  # traffic before and after each disruption


def container_health(name: str) -> str:
    out = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip()


def wait_healthy(name: str, timeout: float = 180) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if container_health(name) in ("running/healthy", "running/"):
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"{name} not healthy after {timeout} s: {container_health(name)}")


def other_containers() -> list[str]:
    """The stack's running containers beyond CONTAINERS, in deploy order (by role label)."""
    out = subprocess.check_output(
        [
            "docker",
            "ps",
            "--filter",
            "label=com.whatsapp.stack=whatsapp",
            "--format",
            '{{.Names}} {{.Label "com.whatsapp.role"}}',
        ],
        text=True,
    )
    found = [line.split() for line in out.splitlines() if len(line.split()) == 2]
    found = [(name, role) for name, role in found if role in KILL_ONLY_ROLES and name not in CONTAINERS]
    return [name for name, role in sorted(found, key=lambda nr: (KILL_ONLY_ROLES.index(nr[1]), nr[0]))]


def kill_main_process(name: str) -> None:
    # ARCHITECTURE.md: `docker kill` counts as stopped by hand and defeats the restart policy.
    pid = int(subprocess.check_output(["docker", "inspect", "-f", "{{.State.Pid}}", name], text=True).strip())
    assert pid > 0, f"{name} is not running"
    os.kill(pid, signal.SIGKILL)


class Sender(threading.Thread):
    """Sends numbered messages until stopped; each is retried with its client_msg_id until acked."""

    def __init__(self, user: User, conversation_id: str, transport: str, stop: threading.Event):
        super().__init__(daemon=True, name=f"sender-{transport}")
        self.user, self.conversation_id, self.transport, self.stop = user, conversation_id, transport, stop
        self.acked: dict[str, dict[str, Any]] = {}  # client_msg_id -> acked message
        self.attempts = 0
        self.failures = 0
        self.socket: Socket | None = None

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            client_msg_id = f"{self.transport}-{number}-{uuid.uuid4().hex[:8]}"
            while not self.stop.is_set():
                self.attempts += 1
                message = self._try(client_msg_id, f"{self.transport} #{number}")
                if message is not None:
                    self.acked[client_msg_id] = message
                    break
                self.failures += 1
                time.sleep(0.2)
            time.sleep(SEND_INTERVAL)
        if self.socket:
            self.socket.close()

    def _try(self, client_msg_id: str, body: str) -> dict[str, Any] | None:
        try:
            if self.transport == "rest":
                answer = self.user.api.call(
                    "POST",
                    f"/conversations/{self.conversation_id}/messages",
                    {"client_msg_id": client_msg_id, "body": body},
                )
                return answer.json() if answer.status_code in (200, 201) else None
            if self.socket is None or self.socket.closed is not None:
                self.socket = self.user.socket()
            frame = self.socket.send_message(self.conversation_id, body, client_msg_id=client_msg_id)
            return frame["message"] if frame["type"] == "message.ack" else None
        except (OSError, requests.RequestException, ConnectionClosed, AssertionError, ValueError):
            if self.socket is not None and self.socket.closed is not None:
                self.socket = None
            return None


class Receiver(threading.Thread):
    """Keeps a socket open, reconnecting when it drops; confirms what it got with receipts."""

    def __init__(self, user: User, stop: threading.Event):
        super().__init__(daemon=True, name="receiver")
        self.user, self.stop = user, stop
        self.messages: dict[str, dict[str, Any]] = {}  # id -> message (de-duplicated)
        self.order: list[dict[str, Any]] = []  # first arrival of each id, in arrival order
        self.duplicates = 0
        self.reconnects = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                sock = self.user.socket()
            except Exception:  # noqa: BLE001 - chat is down: try again
                time.sleep(0.5)
                continue
            self.reconnects += 1
            seen = 0
            confirmed: dict[str, int] = {}
            while not self.stop.is_set() and sock.closed is None:
                time.sleep(0.2)
                frames = sock.of_type("message.new")
                for frame in frames[seen:]:
                    message = frame["message"]
                    if message["id"] in self.messages:
                        self.duplicates += 1
                        continue
                    self.messages[message["id"]] = message
                    self.order.append(message)
                seen = len(frames)
                self._confirm(sock, confirmed)
            self._drain(sock, seen)
            sock.close()

    def _drain(self, sock: Socket, seen: int) -> None:
        for frame in sock.of_type("message.new")[seen:]:
            message = frame["message"]
            if message["id"] not in self.messages:
                self.messages[message["id"]] = message
                self.order.append(message)

    def _confirm(self, sock: Socket, confirmed: dict[str, int]) -> None:
        # Report delivered only up to the highest seq with no gap below it, so a reconnect's
        # catch-up still covers anything missing.
        by_conversation: dict[str, set[int]] = {}
        for message in self.messages.values():
            by_conversation.setdefault(message["conversation_id"], set()).add(message["seq"])
        for conversation_id, seqs in by_conversation.items():
            contiguous = 0
            while contiguous + 1 in seqs:
                contiguous += 1
            if contiguous > confirmed.get(conversation_id, 0):
                try:
                    sock.send(
                        json.dumps(
                            {
                                "type": "receipt",
                                "conversation_id": conversation_id,
                                "up_to_seq": contiguous,
                                "status": "delivered",
                            }
                        )
                    )
                    confirmed[conversation_id] = contiguous
                except ConnectionClosed:
                    return


def disrupt_each_container(senders: list[Sender], stop: threading.Event) -> list[tuple]:
    """Restart, then kill, each container in turn under traffic; print and return a timeline."""
    timeline = []
    plan = [(name, how) for name in CONTAINERS for how in ("restart", "kill")]
    plan += [(name, "kill") for name in other_containers()]
    try:
        time.sleep(SETTLE_SECONDS)
        for name, how in plan:
            before = sum(len(s.acked) for s in senders)
            started = time.monotonic()
            if how == "restart":
                subprocess.run(["docker", "restart", "-t", "20", name], check=True, capture_output=True)
            else:
                kill_main_process(name)
                time.sleep(1.0)
            recovery = wait_healthy(name)
            time.sleep(SETTLE_SECONDS)
            acked = sum(len(s.acked) for s in senders) - before
            timeline.append((name, how, round(time.monotonic() - started, 1), round(recovery, 1), acked))
    finally:
        stop.set()
    for sender in senders:
        sender.join(timeout=30)
    print("\ndisruption                             took s  healthy after s  acked meanwhile")
    for name, how, took, recovery, acked in timeline:
        print(f"{name:28} {how:8} {took:8} {recovery:16} {acked:16}")
    return timeline


def test_no_acknowledged_message_is_lost_across_restarts_and_kills(deployed_stack):
    assert deployed_stack[0].returncode == 0
    alice, bob, carol = User("Sender WS"), User("Receiver"), User("Sender REST")
    ws_conversation = alice.direct_with(bob)
    rest_conversation = carol.direct_with(bob)
    stop = threading.Event()
    receiver = Receiver(bob, stop)
    senders = [Sender(alice, ws_conversation, "ws", stop), Sender(carol, rest_conversation, "rest", stop)]
    receiver.start()
    time.sleep(1.0)
    for sender in senders:
        sender.start()
    timeline = disrupt_each_container(senders, stop)
    disrupted = {name for name, *_ in timeline}
    # All of the stack's containers: the five above twice, every other one once.
    every_one = set(CONTAINERS) | {
        GROUP_VARS[f"{role}_container_name"]
        for role in ("nginx", "postgres", "user", "gateway", "notification", "scheduled_jobs")
    }
    assert disrupted >= every_one, sorted(every_one - disrupted)
    assert len(disrupted) >= 12, sorted(disrupted)

    # Let the last acked messages through the processor, then a fresh socket catches up.
    deadline = time.monotonic() + 60
    expected = {m["id"]: m for s in senders for m in s.acked.values()}
    while time.monotonic() < deadline and not set(expected) <= set(receiver.messages):
        time.sleep(1)
        if not receiver.is_alive():
            break
    receiver.join(timeout=10)
    with bob.socket() as final:
        time.sleep(5)
        for frame in final.of_type("message.new"):
            receiver.messages.setdefault(frame["message"]["id"], frame["message"])

    acked_count = len(expected)
    attempts = sum(s.attempts for s in senders)
    print(
        f"acked {acked_count}, attempts {attempts}, receiver reconnects {receiver.reconnects}, "
        f"duplicates dropped by id {receiver.duplicates}"
    )
    assert acked_count > 100, "too little traffic to prove anything"
    missing = sorted(set(expected) - set(receiver.messages))
    assert not missing, f"{len(missing)} acknowledged messages never reached the receiver: {missing[:10]}"
    # Every acked message is the one the receiver got (same seq), and per conversation the
    # acked seqs are distinct: nothing was accepted twice.
    for conversation_id in (ws_conversation, rest_conversation):
        acked = sorted(m["seq"] for m in expected.values() if m["conversation_id"] == conversation_id)
        assert len(acked) == len(set(acked)), "one seq acknowledged for two messages"
        history = bob.history(conversation_id)
        history_ids = {m["id"] for m in history}
        lost = [
            i for i, m in expected.items() if m["conversation_id"] == conversation_id and i not in history_ids
        ]
        assert not lost, f"{len(lost)} acknowledged messages missing from history: {lost[:10]}"
        seqs = [m["seq"] for m in history]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))

    # The stack healed itself (restart policy): every container healthy, every service ready.
    check = run([str(ROOT / "scripts/health-check.sh"), "-i", TEST_INVENTORY], log="health-after-kills.log")
    assert check.returncode == 0, tail(check)
