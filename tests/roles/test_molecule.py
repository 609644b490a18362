"""Layer 3, roles: `molecule test` of every role's scenario, one after another.

Each scenario converges the role on the local engine, verifies with testinfra and destroys
what it made; the scenarios of the stores and services share what they made instead (see
KEEP; there, the other roles a scenario converges, already running healthy, are skipped:
tests/molecule/inventory/hosts.yml). Idempotence is asserted for every role at once by the
full second site.yml run of the whole stack (tests/reliability/test_remote.py; on Swarm,
tests/swarm/test_swarm_stack.py). The full molecule output of each role is kept in
.test-logs/molecule-<role>.log.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, TEST_INVENTORY, playbook, run, tail

ROLES = yaml.safe_load((ROOT / "group_vars/all/main.yml").read_text())["whatsapp_roles"]
# Deploy order, except that nginx and prometheus (scenarios that run without the services)
# come before the services: after the user scenario every image of the stack is built, and
# the test command's Swarm layer, waiting beside this one, starts its deploy (IMAGES_BUILT).
ORDER = [r for r in ROLES if r not in ("nginx", "prometheus")]
ORDER[ORDER.index("user") : ORDER.index("user")] = ["nginx", "prometheus"]
SCENARIO_ROLES = [
    r for r in ORDER if (ROOT / "roles" / r / "molecule" / "default" / "molecule.yml").is_file()
]
LAST_IMAGE_BUILT_BY = "user"
IMAGES_BUILT = os.environ.get("WHATSAPP_IMAGES_BUILT")


@pytest.fixture(scope="module", autouse=True)
def no_deployed_stack_running():
    """Stop a stack deployed on this host before the scenarios (data kept; the e2e layer
    deploys again). Its containers share the scenarios' names, and its consumers would take
    the rabbitmq scenario's test messages from the queues (seen in CI: a host whose engine
    came back with the stack running, restart policy unless-stopped)."""
    result = playbook("playbooks/stop.yml", log="stop-stack.log", timeout=600)
    assert result.returncode == 0, f"playbooks/stop.yml failed:\n{tail(result)}"
    yield
    remove_kept()


# Scenarios that share what they made, in this order (tests/molecule/inventory): each one's
# destroy removes only its own role, so its converge starts that role from nothing, while the
# stores and services the next scenarios need stay running (each of those was converged from
# nothing by its own scenario before). Started once instead of once per scenario that needs
# them. After the last one, everything they made is removed. The nginx and Prometheus
# scenarios between them run beside the stores only (no service is up yet).
KEEP = [
    "postgres",
    "mongodb",
    "redis",
    "rabbitmq",
    "user",
    "chat",
    "message_processor",
    "scheduled_jobs",
    "notification",
    "gateway",
]
_kept = {"running": False}


def remove_kept() -> None:
    """Remove what the KEEP scenarios left: containers, secrets, networks and volumes."""
    if not _kept["running"]:
        return
    _kept["running"] = False
    gone = playbook(
        "playbooks/clean.yml", "-e", "clean_volumes=true", log="molecule-kept-clean.log", timeout=600
    )
    assert gone.returncode == 0, f"removing what the scenarios kept failed:\n{tail(gone)}"


# Roles that only run from upstream images: with no registry (build mode, as here) their
# scenarios would only show the skip, which tests/e2e/test_site.py checks on the real deploy
# and tests/unit/observability checks offline; the scenarios run where a registry answers.
REGISTRY_ONLY = {"grafana", "elasticsearch", "logstash", "kibana"}
INVENTORY_SETTINGS = yaml.safe_load((Path(TEST_INVENTORY) / "group_vars/whatsapp/main.yml").read_text())
BUILD_MODE = INVENTORY_SETTINGS.get("whatsapp_image_source") == "build"


@pytest.mark.docker
@pytest.mark.parametrize("role", SCENARIO_ROLES)
def test_molecule_scenario(role: str):
    if role in REGISTRY_ONLY and BUILD_MODE:
        pytest.skip(f"{role}: skipped: no registry (build mode); Debian does not package it")
    if role in KEEP:
        _kept["running"] = True
        keep = {"WHATSAPP_MOLECULE_KEEP": "1"}
        # Its own role removed first; no destroy at the end (the next scenarios use it).
        first = run(
            ["molecule", "destroy"],
            cwd=ROOT / "roles" / role,
            log=f"molecule-{role}-destroy.log",
            timeout=600,
            extra_env=keep,
        )
        assert first.returncode == 0, f"molecule destroy failed for {role}:\n{tail(first)}"
        command = ["molecule", "test", "--destroy=never"]
    else:
        keep, command = None, ["molecule", "test"]
    try:
        result = run(
            command, cwd=ROOT / "roles" / role, log=f"molecule-{role}.log", timeout=1800, extra_env=keep
        )
    finally:
        if role == KEEP[-1]:
            remove_kept()
        if role == LAST_IMAGE_BUILT_BY and IMAGES_BUILT:
            Path(IMAGES_BUILT).touch()
    assert result.returncode == 0, f"molecule test failed for {role}:\n{tail(result, 150)}"
    output = result.stdout + result.stderr
    assert "verify: Executed: Successful" in output.replace("\x1b", "").replace("[0m", ""), tail(result)
