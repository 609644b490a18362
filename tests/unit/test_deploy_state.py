"""site.yml's fast path: which roles it may skip, and what a deploy records for the next run."""

from __future__ import annotations

import importlib.util
import re
import subprocess

from conftest import ROOT, tool_env

spec = importlib.util.spec_from_file_location("deploy_state", ROOT / "plugins/filter/deploy_state.py")
deploy_state = importlib.util.module_from_spec(spec)
spec.loader.exec_module(deploy_state)
inputs_spec = importlib.util.spec_from_file_location(
    "deploy_inputs", ROOT / "plugins/lookup/deploy_inputs.py"
)
deploy_inputs = importlib.util.module_from_spec(inputs_spec)
inputs_spec.loader.exec_module(deploy_inputs)

ROLES = ["docker_host", "redis", "chat"]


def container(name: str, role: str, state: str = "running", health: str = "healthy") -> dict:
    """An entry of roles/container/tasks/stack_containers.yml."""
    return {"name": name, "role": role, "state": state, "health": health}


HEALTHY = [container("whatsapp-redis", "redis"), container("whatsapp-chat", "chat")]
PRINTS = deploy_state.deploy_fingerprints(ROLES, ["inputs-1", "build"], {"chat": ["services-1"]})


def recorded(containers=HEALTHY, prints=PRINTS) -> dict:
    return deploy_state.deploy_state(prints, containers, ROLES, None)


def test_fingerprints_change_with_their_inputs_only():
    again = deploy_state.deploy_fingerprints(ROLES, ["inputs-1", "build"], {"chat": ["services-1"]})
    assert again == PRINTS
    code = deploy_state.deploy_fingerprints(ROLES, ["inputs-1", "build"], {"chat": ["services-2"]})
    assert code["chat"] != PRINTS["chat"] and code["redis"] == PRINTS["redis"]
    inputs = deploy_state.deploy_fingerprints(ROLES, ["inputs-2", "build"], {"chat": ["services-1"]})
    assert all(inputs[r] != PRINTS[r] for r in ROLES)


def test_a_healthy_unchanged_stack_skips_every_role():
    assert deploy_state.deploy_unchanged(PRINTS, recorded(), HEALTHY, ROLES) == ROLES


def test_no_record_skips_nothing():
    assert deploy_state.deploy_unchanged(PRINTS, {}, HEALTHY, ROLES) == []
    assert (
        deploy_state.deploy_unchanged(PRINTS, {"version": 0, "roles": recorded()["roles"]}, HEALTHY, ROLES)
        == []
    )


def test_a_changed_role_runs_and_so_does_docker_host():
    code = deploy_state.deploy_fingerprints(ROLES, ["inputs-1", "build"], {"chat": ["services-2"]})
    assert deploy_state.deploy_unchanged(code, recorded(), HEALTHY, ROLES) == ["redis"]


def test_a_stopped_unhealthy_starting_missing_or_extra_container_runs_its_role():
    stopped = [container("whatsapp-redis", "redis", state="exited", health="none"), HEALTHY[1]]
    unhealthy = [container("whatsapp-redis", "redis", health="unhealthy"), HEALTHY[1]]
    starting = [container("whatsapp-redis", "redis", health="starting"), HEALTHY[1]]
    missing = [HEALTHY[1]]
    extra = [*HEALTHY, container("whatsapp-chat-2", "chat")]
    for containers, runs in [
        (stopped, "redis"),
        (unhealthy, "redis"),
        (starting, "redis"),
        (missing, "redis"),
        (extra, "chat"),
    ]:
        skipped = deploy_state.deploy_unchanged(PRINTS, recorded(), containers, ROLES)
        assert runs not in skipped and "docker_host" not in skipped, (containers, skipped)
        assert skipped == [r for r in ROLES[1:] if r != runs]


def test_a_container_without_health_check_counts_when_running():
    plain = [container("whatsapp-redis", "redis", health="none"), HEALTHY[1]]
    assert deploy_state.deploy_unchanged(PRINTS, recorded(plain), plain, ROLES) == ROLES


def test_tags_select_the_roles_and_docker_host_follows_the_selection():
    assert deploy_state.deploy_selected(ROLES, ["all"], []) == ROLES
    assert deploy_state.deploy_selected(ROLES, ["chat"], []) == ["chat"]
    assert deploy_state.deploy_selected(ROLES, ["all"], ["redis"]) == ["docker_host", "chat"]
    # --tags chat: redis is not selected, so it neither counts nor is recorded anew.
    stale = {
        **recorded(),
        "roles": {**recorded()["roles"], "redis": {"fingerprint": "old", "containers": []}},
    }
    assert deploy_state.deploy_unchanged(PRINTS, stale, HEALTHY, ["docker_host", "chat"]) == [
        "docker_host",
        "chat",
    ]
    kept = deploy_state.deploy_state(PRINTS, HEALTHY, ["chat"], stale)
    assert kept["roles"]["redis"] == {"fingerprint": "old", "containers": []}


def test_the_record_drops_a_role_whose_containers_are_not_all_healthy():
    unhealthy = [container("whatsapp-redis", "redis", health="unhealthy"), HEALTHY[1]]
    state = deploy_state.deploy_state(PRINTS, unhealthy, ROLES, recorded())
    assert "redis" not in state["roles"]
    assert state["roles"]["chat"] == {"fingerprint": PRINTS["chat"], "containers": ["whatsapp-chat"]}
    assert state["roles"]["docker_host"]["fingerprint"] == PRINTS["docker_host"]
    # A role with nothing running (disabled, or skipped in build mode) is recorded with none.
    assert deploy_state.deploy_state(PRINTS, [], ["redis"], None)["roles"]["redis"]["containers"] == []


def test_on_swarm_a_moved_task_or_another_replica_runs_the_role_and_an_update_overlap_does_not():
    tasks = [
        container("whatsapp-redis.1@node1", "redis"),
        container("whatsapp-chat.1@node2", "chat"),
        container("whatsapp-chat.2@node3", "chat"),
    ]
    # A start-first update: the slot's old and new task both ran on node2 when it was recorded.
    overlap = [*tasks, container("whatsapp-chat.1@node2", "chat")]
    state = deploy_state.deploy_state(PRINTS, overlap, ROLES, None)
    assert state["roles"]["chat"]["containers"] == ["whatsapp-chat.1@node2", "whatsapp-chat.2@node3"]
    assert deploy_state.deploy_unchanged(PRINTS, state, tasks, ROLES) == ROLES
    moved = [tasks[0], container("whatsapp-chat.1@node1", "chat"), tasks[2]]
    third = [*tasks, container("whatsapp-chat.3@node1", "chat")]
    for now in (moved, third, tasks[:2]):
        assert deploy_state.deploy_unchanged(PRINTS, state, now, ROLES) == ["redis"], now


def inputs_hash(tmp_path, *extra: str) -> str:
    """whatsapp_deploy_inputs' lookup over demo_* variables: the inventory's, then -e's."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        "      demo_replicas: 1\n      demo_enabled: true\n      demo_name: chat\n"
    )
    result = subprocess.run(
        [
            "ansible",
            "localhost",
            "-i",
            str(inventory),
            "-m",
            "ansible.builtin.debug",
            "-o",
            "-a",
            "msg={{ lookup('deploy_inputs', '^demo_') }}",
            *extra,
        ],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return re.search(r'"msg": "([0-9a-f]{16})"', result.stdout)[1]


def test_extra_vars_that_restate_the_inventory_leave_the_inputs_unchanged(tmp_path):
    """scale.sh passes `-e chat_replicas=1` as text: scaling back to the inventory's count
    must find the fast path again (the roles read it through | int and | bool)."""
    base = inputs_hash(tmp_path)
    assert inputs_hash(tmp_path, "-e", "demo_replicas=1", "-e", "demo_enabled=true") == base
    assert inputs_hash(tmp_path, "-e", "demo_replicas=2") != base
    assert inputs_hash(tmp_path, "-e", "demo_name=gateway") != base
    assert deploy_inputs.normalise({"a": ["3", "no", "x"], "b": " 7 "}) == {"a": [3, False, "x"], "b": 7}
