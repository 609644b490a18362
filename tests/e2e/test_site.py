"""Layer 4, end to end: the deploy command brings the stack up; a second run changes nothing."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import redis
import yaml
from conftest import ROOT, TEST_INVENTORY, fast_path, recap, run, tail

GROUP_VARS = {}
for path in sorted((ROOT / "group_vars/all").glob("*.yml")):
    GROUP_VARS.update(yaml.safe_load(path.read_text()) or {})
SECRETS = yaml.safe_load((ROOT / "inventories/airgapped/group_vars/whatsapp/secrets.yml").read_text())


@pytest.fixture(scope="module")
def first_deploy(deployed_stack):
    return deployed_stack[0]


@pytest.mark.docker
def test_deploy_succeeds(first_deploy):
    assert first_deploy.returncode == 0, tail(first_deploy, 120)
    assert recap(first_deploy.stdout)["localhost"]["failed"] == 0


def deploy(log: str, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = run([str(ROOT / "scripts/deploy.sh"), "-i", TEST_INVENTORY, *extra], log=log, timeout=2400)
    return result, time.monotonic() - start


@pytest.mark.docker
def test_second_deploy_changes_nothing(first_deploy, deployed_stack):
    """As operators run it: a deploy again changes nothing, and the one after skips every role
    (each unchanged since its healthy deploy). That every task of every role is idempotent on
    its own (the fast path off), and that a verbose run with diffs prints no secret, is
    asserted on the whole stack by the remote test's second run
    (tests/reliability/test_remote.py), once per test command."""
    assert first_deploy.returncode == 0
    # After whatever the earlier tests deployed with other inputs (scale.sh, --tags, -e), the
    # next deploy runs those roles in full: it changes nothing and records them again.
    again, again_s = deploy("deploy-2.log")
    assert again.returncode == 0, tail(again, 120)
    assert recap(again.stdout)["localhost"]["changed"] == 0, tail(again, 120)
    warm, warm_s = deploy("deploy-3.log")
    assert warm.returncode == 0, tail(warm, 120)
    assert recap(warm.stdout)["localhost"]["changed"] == 0, tail(warm, 120)
    skipped, selected = fast_path(warm.stdout)
    assert skipped == selected == len(GROUP_VARS["whatsapp_roles"]), tail(warm, 40)
    print(
        f"deploy: first {deployed_stack[1]:.1f} s, again (changed=0): {again_s:.1f} s, "
        f"then {warm_s:.1f} s with the fast path"
    )


@pytest.mark.docker
def test_the_fast_path_still_heals_a_stopped_container(first_deploy):
    assert first_deploy.returncode == 0
    name = GROUP_VARS["redis_container_name"]
    subprocess.run(["docker", "stop", name], check=True, capture_output=True)
    healed, seconds = deploy("deploy-heal.log")
    assert healed.returncode == 0, tail(healed, 120)
    skipped, selected = fast_path(healed.stdout)
    # redis runs in full, and so does docker_host (it is skipped only when every role is).
    assert (skipped, selected) == (selected - 2, len(GROUP_VARS["whatsapp_roles"])), tail(healed, 40)
    state = json.loads(subprocess.check_output(["docker", "inspect", name]))[0]["State"]
    assert state["Running"] and state["Health"]["Status"] == "healthy"
    print(f"deploy with {name} stopped: back healthy in {seconds:.1f} s")


@pytest.mark.docker
def test_redis_is_healthy_and_answers_on_loopback(first_deploy):
    assert first_deploy.returncode == 0
    name = GROUP_VARS["redis_container_name"]
    state = json.loads(subprocess.check_output(["docker", "inspect", name]))[0]["State"]
    assert state["Health"]["Status"] == "healthy"
    client = redis.Redis(
        host=GROUP_VARS["whatsapp_publish_address"],
        port=GROUP_VARS["redis_port"],
        password=SECRETS["redis_password"],
        socket_timeout=3,
    )
    assert client.ping() is True


def container_ids() -> dict[str, str]:
    names = subprocess.check_output(
        ["docker", "ps", "-a", "--filter", "label=com.whatsapp.stack=whatsapp", "--format", "{{.Names}}"],
        text=True,
    ).split()
    return {
        d["Name"].lstrip("/"): d["Id"]
        for d in json.loads(subprocess.check_output(["docker", "inspect", *names]))
    }


@pytest.mark.docker
def test_a_code_change_re_creates_only_that_service(first_deploy):
    assert first_deploy.returncode == 0
    before = container_ids()
    probe = ROOT / "services/notification/_deploy_probe.py"
    probe.write_text('"""Written by tests/e2e/test_site.py: a code change to one service."""\n')
    try:
        changed = run(
            [str(ROOT / "scripts/deploy.sh"), "-i", TEST_INVENTORY],
            log="deploy-code-change.log",
            timeout=2400,
        )
    finally:
        probe.unlink()
    assert changed.returncode == 0, tail(changed, 120)
    # Each Python service's fingerprint covers its own package: only notification's role runs
    # in full (and docker_host, which runs whenever any role does).
    skipped, selected = fast_path(changed.stdout)
    assert (skipped, selected) == (selected - 2, len(GROUP_VARS["whatsapp_roles"])), tail(changed, 40)
    after = container_ids()
    assert {name for name in before if after.get(name) != before[name]} == {"whatsapp-notification"}
    # Back to the committed code: that service's earlier image is still tagged, nothing builds.
    back = run(
        [str(ROOT / "scripts/deploy.sh"), "-i", TEST_INVENTORY, "--tags", "notification"],
        log="deploy-code-back.log",
    )
    assert back.returncode == 0, tail(back, 120)
    assert {name for name in after if container_ids().get(name) != after[name]} == {"whatsapp-notification"}


@pytest.mark.docker
@pytest.mark.parametrize("role", ["grafana", "elasticsearch", "logstash", "kibana"])
def test_registry_only_roles_say_why_they_are_skipped_and_create_nothing(first_deploy, role):
    if first_deploy.args == ["(deployed by hand)"]:
        output = run(
            [
                "ansible-playbook",
                "-i",
                TEST_INVENTORY,
                "site.yml",
                "--tags",
                role,
                "-e",
                "whatsapp_deploy_fast_path=false",
            ],
            log=f"skip-{role}.log",
        ).stdout
    else:
        output = first_deploy.stdout
    assert f"{role}: no registry answers and Debian does not package it; skipped: no registry" in output
    names = subprocess.check_output(["docker", "ps", "-a", "--format", "{{.Names}}"], text=True).split()
    assert GROUP_VARS[f"{role}_container_name"] not in names
