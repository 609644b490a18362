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
id, in seq order per conversation, and be in the history. The receiver's user also has a
second session (another device) that is away during all of it: afterwards it too gets every
acknowledged message, from its own delivered mark, in order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
from conftest import ROOT, TEST_INVENTORY, run, tail
from stack_client import GROUP_VARS
from traffic import Sender, Traffic

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
SETTLE_SECONDS = 2  # seconds of traffic before and after each disruption


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
    # `docker kill` counts as stopped by hand and defeats the restart policy: kill the process.
    pid = int(subprocess.check_output(["docker", "inspect", "-f", "{{.State.Pid}}", name], text=True).strip())
    assert pid > 0, f"{name} is not running"
    os.kill(pid, signal.SIGKILL)


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
    traffic = Traffic.start(other_device=True)
    # The receiver's second device: online a moment now, away during every fault.
    laptop = traffic.other_device
    assert laptop is not None
    laptop.visit(quiet=1.0, longest=5.0)
    timeline = disrupt_each_container(traffic.senders, traffic.stop)
    disrupted = {name for name, *_ in timeline}
    # All of the stack's containers: the five above twice, every other one once.
    every_one = set(CONTAINERS) | {
        GROUP_VARS[f"{role}_container_name"]
        for role in ("nginx", "postgres", "user", "gateway", "notification", "scheduled_jobs")
    }
    assert disrupted >= every_one, sorted(every_one - disrupted)
    assert len(disrupted) >= 12, sorted(disrupted)

    counts = traffic.assert_nothing_lost()
    print(counts)

    # The phone confirmed everything meanwhile; the laptop still gets every message from its
    # own session's mark: in order on each visit, none twice in one visit.
    expected = {m["id"] for sender in traffic.senders for m in sender.acked.values()}
    laptop.catch_up(expected)
    missing = expected - set(laptop.messages)
    assert not missing, f"the second device never got {len(missing)} of {len(expected)} messages"
    assert not laptop.problems, laptop.problems[:10]
    print(f"second device: {len(laptop.messages)} messages in {laptop.visits} visits")

    # The stack healed itself (restart policy): every container healthy, every service ready.
    check = run([str(ROOT / "scripts/health-check.sh"), "-i", TEST_INVENTORY], log="health-after-kills.log")
    assert check.returncode == 0, tail(check)
