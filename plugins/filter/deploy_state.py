"""Filter plugins: site.yml's fast path, which skips a role that has nothing to do.

A role's fingerprint hashes what it deploys from: the values of the inventory's variables,
the project's roles and plugins, the image source and, for the Python services, services/.
After a deploy, the Summary play records on the Docker host, per role, the fingerprint and
the role's containers, when every one of them is running and healthy. The next run skips a
role whose fingerprint is the same and whose recorded containers are all still there,
running and healthy, with no other container of that role beside them. docker_host (the
networks and the base image) is skipped only when every selected role is.

The containers are roles/container/tasks/stack_containers.yml's entries ({name, role, state,
health, ...}), which parses Docker's health once for every playbook. On Swarm they are the
running task containers of every node, named <service>.<slot>@<node>: a task moved to
another node, or a replica more or less, runs its role in full.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

DOCUMENTATION = r"""
name: deploy_fingerprints
short_description: Each role's fingerprint (see the module's docstring)
positional: _input, common, extra
options:
  _input:
    description: The roles.
    type: list
    required: true
  common:
    description: Parts every role's fingerprint depends on.
    type: list
    required: true
  extra:
    description: Parts that only some roles depend on (role name to a list of parts).
    type: dict
"""

STATE_VERSION = 1


def _healthy(container: Mapping[str, Any]) -> bool:
    """Running, and healthy when it has a health check (health "none" when it has none)."""
    return container.get("state") == "running" and container.get("health") in ("healthy", "none")


def _by_role(containers: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for container in containers:
        out.setdefault(str(container.get("role", "")), []).append(container)
    return out


def _names(containers: Iterable[Mapping[str, Any]]) -> list[str]:
    """Sorted, each once: in a rolling update on Swarm a slot's old and new task may both run
    on one node for a moment."""
    return sorted({str(c["name"]) for c in containers})


def deploy_fingerprints(
    roles: list[str], common: list[Any], extra: Mapping[str, list[Any]] | None = None
) -> dict[str, str]:
    extra = extra or {}
    out = {}
    for role in roles:
        parts = [role, *map(str, common), *map(str, extra.get(role, []))]
        out[role] = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    return out


def deploy_selected(roles: list[str], run_tags: Iterable[str], skip_tags: Iterable[str]) -> list[str]:
    """The roles this run deploys: their tag (the role's name) is asked for and not skipped."""
    run, skip = set(run_tags or ["all"]), set(skip_tags or [])
    return [r for r in roles if ("all" in run or r in run) and r not in skip]


def deploy_unchanged(
    fingerprints: Mapping[str, str],
    state: Mapping[str, Any] | None,
    containers: Iterable[Mapping[str, Any]],
    selected: list[str],
    host_role: str = "docker_host",
) -> list[str]:
    """The selected roles the fast path may skip (docker_host only when all the others are)."""
    recorded = (state or {}).get("roles", {}) if (state or {}).get("version") == STATE_VERSION else {}
    present = _by_role(containers)
    unchanged = []
    for role in selected:
        if role == host_role:
            continue
        entry = recorded.get(role) or {}
        if entry.get("fingerprint") != fingerprints.get(role):
            continue
        mine = present.get(role, [])
        if _names(mine) != sorted(entry.get("containers", [])):
            continue
        if all(_healthy(c) for c in mine):
            unchanged.append(role)
    others = [r for r in selected if r != host_role]
    if (
        host_role in selected
        and (recorded.get(host_role) or {}).get("fingerprint") == fingerprints.get(host_role)
        and set(others) <= set(unchanged)
    ):
        unchanged.insert(0, host_role)
    return unchanged


def deploy_state(
    fingerprints: Mapping[str, str],
    containers: Iterable[Mapping[str, Any]],
    selected: list[str],
    previous: Mapping[str, Any] | None = None,
    host_role: str = "docker_host",
) -> dict[str, Any]:
    """What to record after a deploy: each selected role whose containers are all healthy
    (the others are dropped, so the next run deploys them in full); other roles kept."""
    previous = previous or {}
    roles = dict(previous.get("roles", {})) if previous.get("version") == STATE_VERSION else {}
    present = _by_role(containers)
    for role in selected:
        mine = present.get(role, [])
        if role != host_role and not all(_healthy(c) for c in mine):
            roles.pop(role, None)
            continue
        roles[role] = {
            "fingerprint": fingerprints[role],
            "containers": _names(mine),
        }
    return {"version": STATE_VERSION, "roles": dict(sorted(roles.items()))}


class FilterModule:
    def filters(self):
        return {
            "deploy_fingerprints": deploy_fingerprints,
            "deploy_selected": deploy_selected,
            "deploy_unchanged": deploy_unchanged,
            "deploy_state": deploy_state,
        }
