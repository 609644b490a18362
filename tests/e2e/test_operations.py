"""Layer 4, end to end: the operations wrappers in scripts/ against the deployed stack
(health-check, stop/start, logs, scale, the deploy's closing table)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request

import pytest
from conftest import ROOT, TEST_INVENTORY, run, tail
from stack_client import User

pytestmark = pytest.mark.docker

INVENTORY = ["-i", TEST_INVENTORY]
CHAT_PORT = 8082
USER_PORT, PROCESSOR_PORT, SCHEDULER_PORT = 8081, 8085, 8086
STEP = 100  # whatsapp_replica_port_step: replica N publishes on port + (N - 1) x STEP
SERVICES = ["user", "chat", "message_processor", "scheduled_jobs", "notification", "gateway"]


@pytest.fixture(scope="module", autouse=True)
def stack(deployed_stack):
    assert deployed_stack[0].returncode == 0, "the deploy failed: see the deploy test"


def script(name: str, *args: str, timeout: float = 900, log: str | None = None):
    return run([str(ROOT / "scripts" / name), *args], timeout=timeout, log=log or f"{name}.log")


def stack_containers() -> dict[str, dict]:
    """Every container of the stack by name: docker inspect's State and the role label."""
    names = subprocess.check_output(
        ["docker", "ps", "-a", "--filter", "label=com.whatsapp.stack=whatsapp", "--format", "{{.Names}}"],
        text=True,
    ).split()
    data = json.loads(subprocess.check_output(["docker", "inspect", *names]))
    return {d["Name"].lstrip("/"): d for d in data}


def metric(port: int, name: str) -> float:
    """The sum of a metric's samples on the /metrics of the replica published on port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.split("{")[0].split()[0] == name)


def open_sockets(port: int) -> float:
    """whatsapp_websocket_connections of the chat replica published on port."""
    return metric(port, "whatsapp_websocket_connections")


def table_rows(output: str) -> dict[str, list[str]]:
    """The container table's rows (NAME IMAGE STATE HEALTH READY ADDRESS) by name."""
    rows = {}
    for line in output.splitlines():
        cells = line.strip().strip('",').split()
        if cells and cells[0].startswith("whatsapp-") and len(cells) >= 6:
            rows[cells[0]] = cells
    return rows


def test_health_check_lists_every_container_healthy_and_every_service_ready():
    result = script("health-check.sh", *INVENTORY)
    assert result.returncode == 0, tail(result)
    rows = table_rows(result.stdout)
    containers = stack_containers()
    assert set(rows) == set(containers)
    for name, cells in rows.items():
        assert cells[2] == "running" and cells[3] == "healthy", cells
        role = containers[name]["Config"]["Labels"]["com.whatsapp.role"]
        assert cells[4] == ("yes" if role in SERVICES else "-"), cells
    assert "every service ready" in result.stdout


def test_a_stopped_service_fails_the_health_check_and_start_heals_it():
    name = "whatsapp-notification"
    stopped = script("stop.sh", *INVENTORY, "-e", "stop_roles=notification")
    assert stopped.returncode == 0, tail(stopped)
    try:
        assert stack_containers()[name]["State"]["Running"] is False
        assert stack_containers()["whatsapp-chat"]["State"]["Running"] is True
        check = script("health-check.sh", *INVENTORY, log="health-check-down.log")
        assert check.returncode != 0
        assert f"Not well: {name}" in check.stdout + check.stderr
        assert table_rows(check.stdout)[name][2] == "exited"
    finally:
        started = script("start.sh", *INVENTORY, "-e", "start_roles=notification")
    assert started.returncode == 0, tail(started)
    assert stack_containers()[name]["State"]["Health"]["Status"] == "healthy"
    assert script("health-check.sh", *INVENTORY, log="health-check-again.log").returncode == 0


def test_logs_shows_the_last_lines_of_the_named_roles_only():
    result = script("logs.sh", "-n", "3", "gateway", "--", *INVENTORY)
    assert result.returncode == 0, tail(result)
    assert "(item=whatsapp-gateway)" in result.stdout
    assert "(item=whatsapp-chat)" not in result.stdout
    bad = script("logs.sh", "-n", "many", log="logs-bad.log")
    assert bad.returncode != 0 and "whole number" in bad.stderr


def test_the_deploy_ends_with_the_container_table():
    # Plays tagged always (validation, the closing table) are all that an unknown tag runs.
    result = run(["ansible-playbook", *INVENTORY, "site.yml", "--tags", "summary-only"], log="summary.log")
    assert result.returncode == 0, tail(result)
    rows = table_rows(result.stdout)
    assert set(rows) == set(stack_containers())
    assert rows["whatsapp-nginx"][5].startswith("127.0.0.1:80->")
    assert "ADDRESS" in result.stdout and "IMAGE" in result.stdout


# Every service scaled to two replicas and back at once, under traffic, by the test below
# (one scale-up and one scale-down: each costs a deploy of the services and nginx).
SCALED = ["chat", "gateway", "user", "message_processor", "notification", "scheduled_jobs"]
SECOND = [f"whatsapp-{role.replace('_', '-')}-2" for role in SCALED]


def assert_chat_replicas_share_the_sockets(user: User, conversation: str) -> None:
    """nginx balances over both chat replicas (split by request id): of 10 sockets (a user's
    most), some land on each, and a message sent through one reaches those of the other."""
    sockets = [user.socket() for _ in range(10)]
    try:
        per_replica = [open_sockets(port) for port in (CHAT_PORT, CHAT_PORT + STEP)]
        assert all(n >= 1 for n in per_replica) and sum(per_replica) >= 10, per_replica
        ack = sockets[0].send_message(conversation, "through a scaled chat")
        assert ack["type"] == "message.ack", ack
        sent_id = ack["message"]["id"]
        for s in sockets:
            s.wait_for(lambda f: f["type"] == "message.new" and f["message"]["id"] == sent_id)
    finally:
        for s in sockets:
            s.close()


def assert_each_second_replica_does_its_part(bob: User) -> None:
    containers = stack_containers()
    for name in SECOND:
        assert containers[name]["State"]["Health"]["Status"] == "healthy", name
    # The queue's deliveries are shared: the second processor stores some of them.
    deadline = time.monotonic() + 60
    while metric(PROCESSOR_PORT + STEP, "whatsapp_messages_processed_total") == 0:
        assert time.monotonic() < deadline, "the second message processor stored nothing in 60 s"
        time.sleep(1)
    # One leader runs the jobs; the other scheduler waits behind its lock.
    leaders = [metric(port, "whatsapp_scheduler_leader") for port in (SCHEDULER_PORT, SCHEDULER_PORT + STEP)]
    assert sorted(leaders) == [0, 1], leaders
    with urllib.request.urlopen(f"http://127.0.0.1:{USER_PORT + STEP}/ready", timeout=5) as ready:  # noqa: S310
        assert ready.status == 200
    User("Carol")  # registering still works with the user service on two replicas
    # nginx balances the API over both gateways (split by request id): of 20 requests some
    # reach the second (all 20 missing it by chance: one in a million).
    for _ in range(20):
        assert bob.api.call("GET", "/conversations").status_code == 200
    logs = subprocess.run(
        ["docker", "logs", "whatsapp-gateway-2"], capture_output=True, text=True, check=True
    )
    assert "/api/v1/conversations" in logs.stdout + logs.stderr


def assert_delivered_once_in_order(receiver, conversation: str, acked: list[str]) -> None:
    last = acked[-1]
    receiver.wait_for(lambda f: f.get("type") == "message.new" and f["message"]["id"] == last, timeout=60)
    frames = receiver.of_type("message.new")
    delivered = [f["message"] for f in frames if f["message"]["conversation_id"] == conversation]
    ids = [m["id"] for m in delivered]
    assert len(ids) == len(set(ids)), "a message was delivered twice on one connection"
    assert set(acked) <= set(ids), f"{len(set(acked) - set(ids))} acknowledged messages never arrived"
    seqs = [m["seq"] for m in delivered]
    assert seqs == sorted(seqs), "message.new frames arrived out of seq order"


def test_scale_every_service_to_two_replicas_and_back_under_traffic_loses_nothing():
    """Every service to two replicas and back while a sender posts on a socket opened before:
    each second replica turns healthy and does its part (sockets spread over both chats and a
    message crosses them, nginx sends API requests to the second gateway, the second processor
    stores messages from the shared queue, one scheduler leads and the other stands by, the
    second user replica answers), and every acknowledged message reaches the receiver once and
    in seq order, though two processors now fan out side by side and nginx reloaded meanwhile;
    after scaling back the history holds every message, the one sent through the scaled chat
    included."""
    alice, bob = User("Alice"), User("Bob")
    conversation = alice.direct_with(bob)
    acked: list[str] = []
    refused: list[dict] = []
    stop = threading.Event()
    with alice.socket() as a, bob.socket() as b:

        def send() -> None:
            number = 0
            while not stop.is_set():
                number += 1
                ack = a.send_message(conversation, f"m{number}")
                if ack["type"] == "message.ack":
                    acked.append(ack["message"]["id"])
                else:
                    refused.append(ack)
                stop.wait(0.2)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        up = script(
            "scale.sh", *[f"{r}=2" for r in SCALED], *INVENTORY, log="scale-up-services.log", timeout=1200
        )
        try:
            assert up.returncode == 0, tail(up)
            assert_each_second_replica_does_its_part(bob)
            dave = User("Dave")  # bob's socket is open: the 10 sockets are another user's
            crossing = bob.direct_with(dave)
            assert_chat_replicas_share_the_sockets(dave, crossing)
        finally:
            down = script(
                "scale.sh", *[f"{r}=1" for r in SCALED], *INVENTORY, log="scale-down-all.log", timeout=1200
            )
            stop.set()
            sender.join(timeout=30)
        assert down.returncode == 0, tail(down)
        assert not set(SECOND) & set(stack_containers())
        assert not refused and len(acked) >= 10, (refused[:3], len(acked))
        assert_delivered_once_in_order(b, conversation, acked)
    assert [m["id"] for m in bob.history(conversation)] == acked
    assert [m["body"] for m in dave.history(crossing)] == ["through a scaled chat"]
