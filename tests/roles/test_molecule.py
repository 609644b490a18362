"""Layer 3, roles: `molecule test` of every role's scenario, one after another.

Each scenario converges the role on the local engine, verifies with testinfra and destroys
what it made. Idempotence is asserted for every role at once by the second site.yml run
(tests/e2e/test_site.py, tests/swarm/test_swarm_stack.py). The full molecule
output of each role is kept in .test-logs/molecule-<role>.log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ROOT, TEST_INVENTORY, playbook, run, tail

ROLES = yaml.safe_load((ROOT / "group_vars/all/main.yml").read_text())["whatsapp_roles"]
SCENARIO_ROLES = [
    r for r in ROLES if (ROOT / "roles" / r / "molecule" / "default" / "molecule.yml").is_file()
]


@pytest.fixture(scope="module", autouse=True)
def no_deployed_stack_running():
    """Stop a stack deployed on this host before the scenarios (data kept; the e2e layer
    deploys again). Its containers share the scenarios' names, and its consumers would take
    the rabbitmq scenario's test messages from the queues (seen in CI: a host whose engine
    came back with the stack running, restart policy unless-stopped)."""
    result = playbook("playbooks/stop.yml", log="stop-stack.log", timeout=600)
    assert result.returncode == 0, f"playbooks/stop.yml failed:\n{tail(result)}"
    yield
    # The service scenarios kept the stores for each other: chat's destroy removes all four.
    gone = run(["molecule", "destroy"], cwd=ROOT / "roles" / "chat", log="molecule-stores-destroy.log")
    assert gone.returncode == 0, f"removing the stores the scenarios kept failed:\n{tail(gone)}"


# Scenarios of the services: they converge the stores they need and, asked by the test
# command, leave them running for the next one (tests/molecule/inventory: about 2 min each).
KEEP_STORES = {"user", "chat", "message_processor", "scheduled_jobs", "notification", "gateway"}


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
    result = run(
        ["molecule", "test"],
        cwd=ROOT / "roles" / role,
        log=f"molecule-{role}.log",
        timeout=1800,
        extra_env={"WHATSAPP_MOLECULE_KEEP_STORES": "1"} if role in KEEP_STORES else None,
    )
    assert result.returncode == 0, f"molecule test failed for {role}:\n{tail(result, 150)}"
    output = result.stdout + result.stderr
    assert "verify: Executed: Successful" in output.replace("\x1b", "").replace("[0m", ""), tail(result)
