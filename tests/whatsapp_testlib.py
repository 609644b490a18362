"""Helpers shared by the testinfra verifiers of every role's molecule scenario.

A verifier reads the role's resolved variables (written by converge.yml) and asserts the
running container matches them: the values come from the role, not copies of literals.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def role_vars() -> dict[str, Any]:
    """The variables converge.yml recorded for this scenario."""
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "role_vars.json"
    return json.loads(path.read_text())


def inspect(host, name: str) -> dict[str, Any]:
    """`docker inspect` of one container, as a dict."""
    return json.loads(host.check_output("docker inspect %s", name))[0]


def size_to_bytes(size: str) -> int:
    """Docker size string (512m, 1g) to bytes, as the engine stores limits."""
    units = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    return int(size[:-1]) * units[size[-1].lower()]


def assert_standard_container(host, spec: dict[str, Any], restart_policy: str) -> dict[str, Any]:
    """Assert what every container of the stack promises; returns its inspect data."""
    assert host.docker(spec["name"]).is_running, f"{spec['name']} is not running"
    data = inspect(host, spec["name"])
    assert data["State"]["Health"]["Status"] == "healthy"
    assert data["Config"]["Image"] == spec["image"]
    hc = data["HostConfig"]
    assert hc["Memory"] == size_to_bytes(spec["memory"])
    if spec.get("memory_reservation"):
        assert hc["MemoryReservation"] == size_to_bytes(spec["memory_reservation"])
    assert hc["NanoCpus"] == int(float(spec["cpus"]) * 1e9)
    assert hc["RestartPolicy"]["Name"] == restart_policy
    user = data["Config"]["User"]
    assert user and user.split(":")[0] not in ("0", "root"), f"runs as {user!r}"
    labels = data["Config"]["Labels"]
    for key, value in spec.get("labels", {}).items():
        # Docker keeps every label as a string (a port label is an int in the spec).
        assert labels.get(key) == str(value), key
    # The stack's policy (roles/container/defaults/main.yml), merged under every spec.
    assert labels.get("com.whatsapp.stack"), "no stack label"
    assert labels.get("com.whatsapp.role") == spec["role"]
    assert labels.get("com.whatsapp.version")
    assert hc["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in (hc["SecurityOpt"] or [])
    assert hc["LogConfig"]["Type"] == "json-file" and hc["LogConfig"]["Config"].get("max-size")
    return data


def published_bindings(data: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Container port -> [(host address, host port)] as the engine bound them."""
    ports = data["NetworkSettings"]["Ports"] or {}
    return {
        port: [(b["HostIp"], b["HostPort"]) for b in (bindings or [])] for port, bindings in ports.items()
    }


def listening_addresses(host, port: int) -> set[str]:
    """Local addresses on which something listens on TCP port `port` on the Docker host."""
    out = host.check_output("ss -Htln %s", f"sport = :{port}")
    return {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}


def tcp_connect(address: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def host_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (to prove a port is not bound there)."""
    addrs = set()
    for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
        addr = info[4][0]
        if not addr.startswith("127."):
            addrs.add(addr)
    return sorted(addrs)


def converge(*extra_args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the scenario's converge playbook once more, whatever its outcome; `extra_args`
    go to ansible-playbook (e.g. "-e", "x=1")."""
    project_role = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(project_role.parent),
        ANSIBLE_LOOKUP_PLUGINS=str(project_role.parent.parent / "plugins" / "lookup"),
        ANSIBLE_FILTER_PLUGINS=str(project_role.parent.parent / "plugins" / "filter"),
        ANSIBLE_TEST_PLUGINS=str(project_role.parent.parent / "plugins" / "test"),
        ANSIBLE_NOCOLOR="1",
    )
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"),
            str(Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml"),
            *extra_args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def converge_again(*extra_args: str) -> str:
    """Run the scenario's converge playbook again (the role re-creates what is missing) and
    require it to succeed. Returns its output."""
    result = converge(*extra_args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result.stdout


def recreate(host, name: str) -> None:
    """Stop and remove a container, converge again, and check it is a new container."""
    old_id = inspect(host, name)["Id"]
    host.check_output("docker stop %s", name)
    host.check_output("docker rm %s", name)
    converge_again()
    assert inspect(host, name)["Id"] != old_id


def http_json(
    url: str,
    method: str = "GET",
    body: dict | None = None,
    *,
    token: str | None = None,
    headers: dict | None = None,
) -> tuple[int, dict, dict]:
    """One JSON request to a service on the Docker host: (status, JSON body, response headers)."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback http)
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), dict(error.headers)
