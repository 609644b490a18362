"""Filter plugin: the container role's data transforms, one function each, unit-tested
(tests/unit/test_container_filters.py) instead of Jinja loops in its task files.

    container_defaults | container_merge(spec)   the stack's policy under a spec
    spec | container_dev_mode(services_dir)      development mode: mounted code, --reload
    spec | container_replica(number, step)       replica N: <name>-N, <hostname>-N, port + (N - 1) x step
    name | container_replica_names(count)        the names of N replicas
    spec | swarm_publish(published_roles)        host-mode port publications of a Swarm service
    spec | swarm_mounts(stack)                   Swarm mounts: volumes (labelled), tmpfs, /dev/shm
    service | python_service(layer)              a Python service's spec from its own small dict
    items | of_roles(roles)                      the items of those roles; all when roles is empty
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

_CREATE_APP = re.compile(r"^services[.]([a-z_]+):create_app[(][)]$")
_WORKER = re.compile(r"^services[.]([a-z_]+)$")


def _load_sibling(name: str) -> Any:
    """Another filter file of this folder (Ansible loads each by path, not as a package)."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"whatsapp_filter_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_healthcheck = _load_sibling("healthcheck")


def _plain(value: Any) -> Any:
    """A copy made of plain dicts and lists. Not copy.deepcopy: Ansible hands filters lazy
    containers whose values are templated when read, and a deep copy of one breaks that."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Dicts merge key by key, anything else (lists included) is replaced by `over`."""
    merged = _plain(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = _plain(value)
    return merged


def container_merge(
    defaults: dict[str, Any], spec: dict[str, Any], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`spec` with the stack's policy under it and the inventory's fields for its role over
    it (`overrides`: whatsapp_container_overrides, {role: {field: value}}); the role label
    comes from spec['role']."""
    base = _deep_merge(
        defaults or {}, {"labels": {"com.whatsapp.role": spec["role"]}} if "role" in spec else {}
    )
    merged = _deep_merge(base, spec)
    own = (overrides or {}).get(spec.get("role", ""), {})
    return _deep_merge(merged, own) if own else merged


def container_dev_mode(spec: dict[str, Any], services_dir: str) -> dict[str, Any]:
    """A Python service's spec in development mode: this checkout's services/ mounted
    read-only over the image's copy, gunicorn --reload loading the app through
    services.common.devmode (a save that breaks the code does not stop the container),
    logging at DEBUG, labelled com.whatsapp.dev-mode."""
    out = _plain(spec)
    out["mounts"] = list(spec.get("mounts", [])) + [
        {"type": "bind", "source": services_dir, "target": "/app/services", "read_only": True}
    ]
    command = list(spec.get("command", []))
    if command[:1] == ["gunicorn"]:
        out["command"] = ["gunicorn", "--reload"] + [
            _CREATE_APP.sub(r"services.common.devmode:create_app('\1')", arg) for arg in command[1:]
        ]
    elif len(command) >= 3 and command[:2] == ["python", "-m"] and _WORKER.match(command[2]):
        # A queue worker's own process has no reloader: in development mode it runs under
        # gunicorn --reload, its consumers as threads of the one gunicorn worker.
        port = next((arg.split("=", 1)[1] for arg in command[3:] if arg.startswith("--port=")), None)
        if port is None:
            raise AnsibleFilterError(f"container_dev_mode: {command[2]} has no --port=<port>")
        out["command"] = [
            "gunicorn",
            "--reload",
            f"--bind=0.0.0.0:{port}",
            "--workers=1",
            "--worker-class=gthread",
            "--threads=4",
            "--worker-tmp-dir=/dev/shm",
            "--no-control-socket",
            f"services.common.devmode:create_app('{_WORKER.match(command[2]).group(1)}')",
        ]
    out["env"] = {**spec.get("env", {}), "WHATSAPP_LOG_LEVEL": "DEBUG"}
    out["labels"] = {**spec.get("labels", {}), "com.whatsapp.dev-mode": "true"}
    return out


def container_replica_names(name: str, count: int | str) -> list[str]:
    """Replica 1 keeps the spec's name; replica N is <name>-N. Count 0: none."""
    count = int(count)
    return ([name] if count > 0 else []) + [f"{name}-{n}" for n in range(2, count + 1)]


def container_replica(spec: dict[str, Any], number: int | str, port_step: int | str = 1) -> dict[str, Any]:
    """Replica `number` (1-based) of a spec with one published port
    ('address:host_port:container_port'): replica 1 keeps the spec's name and port, replica
    N is <name>-N on host port + (N - 1) x port_step (the stack steps by 100, so replicas of
    services whose ports are neighbours never meet); every replica's hostname is
    <hostname>-N (chat-1, chat-2), so logs and metrics name the replica."""
    number = int(number)
    step = int(port_step)
    address, host_port, container_port = spec["published_ports"][0].split(":")
    out = _plain(spec)
    out["name"] = spec["name"] if number == 1 else f"{spec['name']}-{number}"
    out["hostname"] = f"{spec['hostname']}-{number}"
    out["published_ports"] = [f"{address}:{int(host_port) + (number - 1) * step}:{container_port}"]
    return out


def swarm_publish(spec: dict[str, Any], published_roles: list[str]) -> list[dict[str, Any]]:
    """Host-mode publications (no ingress mesh here), only for the roles that publish on Swarm."""
    if spec.get("role") not in published_roles:
        return []
    out = []
    for port in spec.get("published_ports", []):
        parts = str(port).split(":")
        out.append(
            {
                "published_port": int(parts[-2]),
                "target_port": int(parts[-1]),
                "protocol": "tcp",
                "mode": "host",
            }
        )
    return out


def swarm_mounts(spec: dict[str, Any], stack: str) -> list[dict[str, Any]]:
    """The spec's mounts as a Swarm service takes them: named volumes labelled with the stack
    and role, tmpfs paths as tmpfs mounts, shm_size as a tmpfs on /dev/shm of that size."""
    out = []
    for mount in spec.get("mounts", []):
        entry = {
            "type": mount["type"],
            "source": mount["source"],
            "target": mount["target"],
            "readonly": boolean(mount.get("read_only", False), strict=False),
        }
        if mount["type"] == "volume":
            entry["labels"] = {"com.whatsapp.stack": stack, "com.whatsapp.role": spec["role"]}
        out.append(entry)
    for path in spec.get("tmpfs", []):
        out.append({"type": "tmpfs", "target": path.split(":")[0]})
    if "shm_size" in spec:
        # A mount target inside the container, not a host path.
        out.append({"type": "tmpfs", "target": "/dev/shm", "tmpfs_size": spec["shm_size"]})  # noqa: S108
    return out


def python_service(service: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """The container spec of one of the six Python services, from the service's own dict
    (name, role, image, hostname, command, env, secrets, networks, limits, and `port` /
    `host_port`: where it answers /health, /ready and /metrics inside the container, and the
    host port of replica 1) and the layer every service shares (whatsapp_python_service:
    user, the common environment, read-only root, tmpfs, stop timeout, publish address).

    What the layer adds: each secret as a file and its variable, WHATSAPP_<NAME>_FILE=
    /run/secrets/<name> (the services read *_FILE); the common environment under the
    service's own; the published port, the com.whatsapp.port label and the HTTP health
    probe of `port`. The service's own values win."""
    own = _plain(service)
    try:
        port = own.pop("port")
        host_port = own.pop("host_port")
    except KeyError as missing:
        raise AnsibleFilterError(f"python_service: {service.get('name', '?')} has no {missing}") from None
    base = _plain(layer)
    env = dict(base.pop("env", {}))
    env.update({f"WHATSAPP_{name.upper()}_FILE": f"/run/secrets/{name}" for name in own.get("secrets", {})})
    env.update(own.pop("env", {}))
    publish_address = base.pop("publish_address")
    spec = {
        **base,
        "healthcheck": {"test": _healthcheck.health_probe("http", port, "/health")},
        "labels": {"com.whatsapp.port": port},
        "published_ports": [f"{publish_address}:{host_port}:{port}"],
        **own,
        "env": env,
    }
    return spec


def of_roles(items: list[dict[str, Any]], roles: list[str]) -> list[dict[str, Any]]:
    """The items (containers, Swarm services) whose `role` is one of `roles`, in their order;
    every item when `roles` is empty (the lifecycle entry points' "no roles named: all")."""
    if isinstance(roles, str):
        raise AnsibleFilterError(f"of_roles wants a list of role names, got the string {roles!r}")
    wanted = set(roles or [])
    return [item for item in items if not wanted or item.get("role") in wanted]


class FilterModule:
    def filters(self):
        return {
            "container_merge": container_merge,
            "container_dev_mode": container_dev_mode,
            "container_replica": container_replica,
            "container_replica_names": container_replica_names,
            "swarm_publish": swarm_publish,
            "swarm_mounts": swarm_mounts,
            "python_service": python_service,
            "of_roles": of_roles,
        }
