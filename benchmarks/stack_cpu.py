"""CPU time of the stack's containers, read from cgroup accounting on the Docker host.

cgroup v1 keeps a container's CPU time in nanoseconds in `cpuacct.usage`; v2 keeps it in
microseconds as `usage_usec` in `cpu.stat`. Both count every process of the container,
its health checks included (`docker exec` runs inside the container's cgroup). Reading
them needs the Docker host's /sys/fs/cgroup, so these figures are taken on a Linux Docker
host (not through Docker Desktop's VM).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import time
from dataclasses import dataclass

CGROUP = "/sys/fs/cgroup"


def _v1_paths(container_id: str) -> list[str]:
    return [
        f"{CGROUP}/cpuacct/docker/{container_id}/cpuacct.usage",
        f"{CGROUP}/cpu,cpuacct/docker/{container_id}/cpuacct.usage",
        f"{CGROUP}/cpuacct/system.slice/docker-{container_id}.scope/cpuacct.usage",
        f"{CGROUP}/cpu,cpuacct/system.slice/docker-{container_id}.scope/cpuacct.usage",
    ]


def _v2_paths(container_id: str) -> list[str]:
    return [
        f"{CGROUP}/system.slice/docker-{container_id}.scope/cpu.stat",
        f"{CGROUP}/docker/{container_id}/cpu.stat",
    ]


def cpu_seconds_path(container_id: str) -> str:
    """The accounting file of a container (full id); raises when none is found."""
    for path in _v1_paths(container_id) + _v2_paths(container_id):
        if os.path.exists(path):
            return path
    found = glob.glob(f"{CGROUP}/**/*{container_id}*/cpu*.stat", recursive=True) + glob.glob(
        f"{CGROUP}/**/*{container_id}*/cpuacct.usage", recursive=True
    )
    if found:
        return found[0]
    raise FileNotFoundError(f"no cgroup CPU accounting for container {container_id[:12]} under {CGROUP}")


def read_cpu_seconds(path: str) -> float:
    with open(path, encoding="ascii") as handle:
        text = handle.read()
    if path.endswith("cpuacct.usage"):
        return int(text) / 1e9
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    raise ValueError(f"{path} has no usage_usec")


@dataclass
class Container:
    id: str
    name: str
    path: str


def stack_containers(stack: str) -> list[Container]:
    """Running containers labelled com.whatsapp.stack=<stack>, by name."""
    out = subprocess.check_output(
        [
            "docker",
            "ps",
            "--no-trunc",
            "--filter",
            f"label=com.whatsapp.stack={stack}",
            "--format",
            "{{.ID}} {{.Names}}",
        ],
        text=True,
    )
    containers = []
    for line in sorted(out.splitlines(), key=lambda line: line.split()[1]):
        container_id, name = line.split()
        containers.append(Container(container_id, name, cpu_seconds_path(container_id)))
    return containers


class CpuMeter:
    """CPU seconds per container between two snapshots (containers that vanished read 0)."""

    def __init__(self, containers: list[Container]):
        self.containers = containers

    def snapshot(self) -> dict[str, float]:
        values = {}
        for c in self.containers:
            try:
                values[c.name] = read_cpu_seconds(c.path)
            except OSError:
                values[c.name] = float("nan")
        values["@wall"] = time.monotonic()
        return values

    @staticmethod
    def diff(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: after[k] - before[k] for k in before if k in after}


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (the reference relay), from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def healthcheck_test(name: str) -> list[str] | None:
    """The container's healthcheck command as Docker runs it, or None."""
    state = json.loads(subprocess.check_output(["docker", "inspect", name], text=True))[0]
    test = (state["Config"].get("Healthcheck") or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", test[1]]
    return test[1:]


def healthcheck_cost(container: Container, runs: int, idle_window: float = 1.0) -> tuple[float, bool]:
    """(CPU-ms per run of its health check inside the container, every run passed).

    The container's own idle CPU over the same time is measured first and subtracted."""
    test = healthcheck_test(container.name)
    if test is None:
        return float("nan"), True
    idle_before = read_cpu_seconds(container.path)
    t0 = time.monotonic()
    time.sleep(idle_window)
    idle_rate = (read_cpu_seconds(container.path) - idle_before) / (time.monotonic() - t0)
    passed = True
    start_cpu, start = read_cpu_seconds(container.path), time.monotonic()
    for _ in range(runs):
        result = subprocess.run(["docker", "exec", container.name, *test], capture_output=True, check=False)
        passed = passed and result.returncode == 0
    spent = read_cpu_seconds(container.path) - start_cpu - idle_rate * (time.monotonic() - start)
    return max(0.0, spent) * 1000 / runs, passed
