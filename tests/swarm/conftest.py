"""The swarm lab for tests/swarm: three Docker engines in containers made one swarm.

The session fixture removes any lab left over, brings it up (playbooks/swarm_lab.yml), forms
the swarm (playbooks/swarm_cluster.yml), and removes the lab at the end. The seconds each step
took are printed before pytest's summary (the docs quote them).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import pytest
import yaml
from conftest import LOG_DIR, ROOT, playbook, recap, run, tail

SWARM_INVENTORY = str(ROOT / "inventories" / "swarm")
INVENTORY_VARS = yaml.safe_load((ROOT / "inventories/swarm/group_vars/whatsapp/main.yml").read_text())
GROUP_VARS = {
    key: value
    for path in sorted((ROOT / "group_vars/all").glob("*.yml"))
    for key, value in (yaml.safe_load(path.read_text()) or {}).items()
}
NODES: list[dict] = INVENTORY_VARS["whatsapp_swarm_nodes"]
MANAGER = next(node for node in NODES if node["role"] == "manager")
BACKEND_NETWORK: str = GROUP_VARS["whatsapp_backend_network"]
BASE_IMAGE: str = GROUP_VARS["whatsapp_base_image"]

# What took how long, in the order it happened (printed in the terminal summary).
TIMINGS: dict[str, float] = {}


def lab_playbook(
    path: str, *extra: str, log: str, timing: str | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """A playbook (path from the project's root) against inventories/swarm, timed into
    TIMINGS under `timing` (default: the log's name)."""
    start = time.monotonic()
    result = playbook(path, *extra, inventory=SWARM_INVENTORY, log=log, timeout=timeout)
    TIMINGS[timing or log.removesuffix(".log")] = time.monotonic() - start
    return result


def wait_for_the_images() -> None:
    """The test command runs this layer beside the roles layer, whose scenarios build the
    stack's images (each image once per run): with WHATSAPP_SWARM_AFTER set, the first
    deploy waits until that file exists (written once they are built, or when that layer
    ended). Without it (this layer alone), the deploy builds what is missing itself."""
    marker = os.environ.get("WHATSAPP_SWARM_AFTER")
    if not marker:
        return
    start = time.monotonic()
    while not os.path.exists(marker) and time.monotonic() - start < 3600:
        time.sleep(2)
    TIMINGS["waited for the images"] = time.monotonic() - start


def changed(result: subprocess.CompletedProcess[str]) -> int:
    """changed= of localhost in the run's PLAY RECAP (fails when the run has none)."""
    counters = recap(result.stdout)
    assert "localhost" in counters, tail(result)
    assert counters["localhost"]["failed"] == 0, tail(result)
    return counters["localhost"]["changed"]


def docker(node: dict, *args: str, check: bool = True, timeout: float = 120) -> str:
    """The docker CLI against one node's engine; its stdout."""
    result = run(["docker", "-H", node["docker_host"], *args], timeout=timeout)
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)} on {node['name']}:\n{tail(result)}"
    return result.stdout


@dataclass
class Lab:
    """The lab's first runs: swarm_lab.yml and swarm_cluster.yml."""

    lab_up: subprocess.CompletedProcess[str]
    cluster_up: subprocess.CompletedProcess[str]
    node_ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def swarm_lab():
    """A fresh three-node swarm (any earlier lab removed first); removed after the session.

    WHATSAPP_SWARM_DEPLOYED=1 reuses a lab with the stack deployed by hand (a developer's
    quick loop, like WHATSAPP_E2E_DEPLOYED); the test command never sets it."""
    if os.environ.get("WHATSAPP_SWARM_DEPLOYED") == "1":
        done = subprocess.CompletedProcess(["(deployed by hand)"], 0, "", "")
        yield Lab(done, done, {})
        return
    gone = lab_playbook(
        "playbooks/swarm_lab.yml", "-e", "swarm_lab_state=absent", log="swarm-lab-absent-before.log"
    )
    assert gone.returncode == 0, tail(gone)
    try:
        lab_up = lab_playbook("playbooks/swarm_lab.yml", log="swarm-lab-up.log")
        assert lab_up.returncode == 0, tail(lab_up)
        cluster_up = lab_playbook("playbooks/swarm_cluster.yml", log="swarm-cluster-join.log")
        assert cluster_up.returncode == 0, tail(cluster_up)
        node_ids = {
            node["name"]: docker(node, "info", "--format", "{{.Swarm.NodeID}}").strip() for node in NODES
        }
        yield Lab(lab_up, cluster_up, node_ids)
    finally:
        down = lab_playbook(
            "playbooks/swarm_lab.yml", "-e", "swarm_lab_state=absent", log="swarm-lab-absent.log"
        )
        assert down.returncode == 0, tail(down)


@dataclass
class Distribution:
    """A fresh image streamed to every node twice with playbooks/swarm_image.yml."""

    image: str
    image_id: str
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def distributed_image(swarm_lab):
    """A probe image no node has (the base image plus a label unique to this session),
    distributed to the nodes, then distributed again."""
    token = uuid.uuid4().hex[:12]
    image = f"whatsapp/swarm-probe:{token}"
    build = subprocess.run(
        ["docker", "build", "-q", "-t", image, "-"],
        input=f"FROM {BASE_IMAGE}\nLABEL com.whatsapp.swarm-probe={token}\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    try:
        image_id = run(["docker", "image", "inspect", "-f", "{{.Id}}", image]).stdout.strip()
        first = lab_playbook(
            "playbooks/swarm_image.yml",
            "-e",
            f"swarm_cluster_image={image}",
            log="swarm-image-distribute.log",
        )
        assert first.returncode == 0, tail(first)
        second = lab_playbook(
            "playbooks/swarm_image.yml", "-e", f"swarm_cluster_image={image}", log="swarm-image-again.log"
        )
        assert second.returncode == 0, tail(second)
        yield Distribution(image, image_id, first, second)
    finally:
        run(["docker", "rmi", "-f", image])


def service_tasks(service: str) -> list[dict]:
    """The running tasks of a service, as `docker service ps` reports them."""
    out = docker(
        MANAGER, "service", "ps", service, "--filter", "desired-state=running", "--format", "{{json .}}"
    )
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# The whole stack on the lab (test_swarm_stack.py). The test command runs its core: a cold
# deploy that streams every image to the nodes (7.5 to 9.5 minutes on 2 cores), Prometheus,
# the second deploy as operators run it plus every task of one role of each kind, the
# contract's flows across nodes, and the drain and node-loss test under traffic: about
# 12 minutes. The operations tests (marked swarm_operations: every task of every role
# again, a rolling update under traffic, stop, start and clean; about 12 minutes more)
# want the engine to themselves (beside the Docker layers, "every task again" sees their
# networks change), so they run when asked:
#   WHATSAPP_TEST_SWARM_STACK=all ./scripts/test.sh tests/swarm
# WHATSAPP_TEST_SWARM_STACK=0 leaves out the stack (the cluster tests still run).
STACK_TESTS = os.environ.get("WHATSAPP_TEST_SWARM_STACK", "core")
STACK_TESTS_NOTE = {
    "core": (
        "the swarm_operations tests were deselected (about 12 minutes more, the engine to themselves): "
        "run them with WHATSAPP_TEST_SWARM_STACK=all ./scripts/test.sh tests/swarm"
    ),
    "0": "tests/swarm/test_swarm_stack.py not collected (WHATSAPP_TEST_SWARM_STACK=0)",
}


def pytest_ignore_collect(collection_path, config) -> bool | None:  # noqa: ARG001
    if collection_path.name == "test_swarm_stack.py" and STACK_TESTS == "0":
        return True
    return None


def pytest_collection_modifyitems(config, items) -> None:
    if STACK_TESTS not in ("all", "1"):
        left = [item for item in items if item.get_closest_marker("swarm_operations")]
        if left:
            config.hook.pytest_deselected(items=left)
            items[:] = [item for item in items if item not in left]


def pytest_terminal_summary(terminalreporter) -> None:
    if STACK_TESTS in STACK_TESTS_NOTE:
        terminalreporter.section("swarm stack")
        terminalreporter.write_line(STACK_TESTS_NOTE[STACK_TESTS])
    if not TIMINGS:
        return
    terminalreporter.section("swarm lab timings")
    for what, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{what:<40} {seconds:>8.1f} s")
    LOG_DIR.mkdir(exist_ok=True)
    (LOG_DIR / "swarm-timings.json").write_text(json.dumps(TIMINGS, indent=2))
