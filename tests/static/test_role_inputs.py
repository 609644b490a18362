"""Every role is its own room: it reads only what it declares, the stack's settings and
what the wiring file hands it.

A role may read (tests/static/role_inputs.py finds what it reads):
- the inputs it declares: its defaults/main.yml and the options of its meta/argument_specs.yml;
- what it defines while it runs (register, set_fact, vars:, loop variables);
- the stack's settings and facts, `whatsapp_*`, each declared in group_vars/all (or, for a
  secret, listed in whatsapp_secret_variables);
- Ansible's own names, and the container role's documented results (container_exec, container_stack).
Never another role's variable or fact: group_vars/all/wiring.yml connects roles by giving
each one its inputs (`chat_postgres_host: "{{ postgres_container_name }}"`), and everything
it assigns is an input its role declares.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import role_inputs

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())
ROLE_NAMES = sorted((p.name for p in ROLES), key=len, reverse=True)
WIRING = ROOT / "group_vars/all/wiring.yml"
# The container role is the library every role calls (its parameters go in as vars:); the
# results it documents for its callers: what tasks/exec.yml registers and the stack's
# containers that tasks/stack_containers.yml lists.
CONTAINER_RESULTS = {"container_exec", "container_stack"}


def stack_settings() -> set[str]:
    """The `whatsapp_*` names a role may read: settings of group_vars/all and of the reference
    inventory (inventories/local), the secrets every inventory sets, and the stack's facts,
    set by the playbooks or by docker_host, which prepares the host for every role (the fast
    path's unchanged roles, the image source it chose)."""
    names: set[str] = set()
    settings = [*(ROOT / "group_vars/all").glob("*.yml")]
    settings += (ROOT / "inventories/local/group_vars").rglob("*.yml")
    for path in settings:
        names.update(role_inputs.load(path) or {})
    secrets = role_inputs.load(ROOT / "group_vars/all/secrets.yml") or {}
    names.update(secrets.get("whatsapp_secret_variables", []))
    for path in [*(ROOT / "playbooks").rglob("*.yml"), *(ROOT / "roles/docker_host/tasks").glob("*.yml")]:
        role_inputs.defined_names(role_inputs.load(path), names)
    return {name for name in names if name.startswith("whatsapp_")}


def owner(name: str) -> str | None:
    """The role whose prefix the name carries (the longest: message_processor before message)."""
    return next((role for role in ROLE_NAMES if name.startswith(role + "_")), None)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_a_role_reads_only_its_inputs_the_stack_settings_and_its_wiring(role):
    settings = stack_settings()
    declared = role_inputs.declared_names(role)
    problems = []
    for name, files in sorted(role_inputs.reads(role).items()):
        if name in CONTAINER_RESULTS:
            continue
        if name.startswith("whatsapp_"):
            if name not in settings:
                problems.append(f"{name}: a stack setting nothing declares ({', '.join(sorted(files))})")
        else:
            problems.append(f"{name}: not an input of {role.name} ({', '.join(sorted(files))})")
    foreign = sorted(n for n in declared if owner(n) not in (None, role.name))
    problems += [f"{name}: {role.name} declares another role's variable" for name in foreign]
    assert not problems, "\n".join(problems)


def test_the_wiring_assigns_only_inputs_that_their_roles_declare():
    wiring = role_inputs.load(WIRING) or {}
    assert wiring, "group_vars/all/wiring.yml assigns nothing"
    problems = []
    for name in wiring:
        role = owner(name)
        if role is None:
            problems.append(f"{name}: no role's input (no role prefix)")
        elif name not in role_inputs.declared_names(ROOT / "roles" / role):
            problems.append(f"{name}: roles/{role} does not declare it (defaults or argument specs)")
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_foreign_read(tmp_path):
    role = tmp_path / "roles" / "chat"
    (role / "tasks").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "defaults/main.yml").write_text("chat_port: 1\n")
    (role / "tasks/main.yml").write_text(
        '- ansible.builtin.debug:\n    msg: "{{ chat_port }} {{ postgres_password }}"\n'
        "  when: redis_port | int > 0\n"
        '- ansible.builtin.set_fact:\n    chat_local: "{% set x = 1 %}{{ x }}"\n'
        '- ansible.builtin.debug:\n    msg: "{{ chat_local }}"\n'
    )
    assert set(role_inputs.reads(role)) == {"postgres_password", "redis_port"}
