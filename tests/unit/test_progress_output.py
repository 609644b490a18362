"""The scripts' Ansible output (plugins/callback/progress.py): a line per role, each changed
task, debug messages and failures in full, the recap, then the roles' times; `-v` gives the
default stream. Run on a playbook of its own against localhost (no Docker)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, tool_env

ROLE = """
- name: A changed step
  ansible.builtin.command: "true"
- name: An ok step
  ansible.builtin.command: "true"
  changed_when: false
- name: Say something
  ansible.builtin.debug:
    msg: "Fast path: 3 of 5 roles unchanged"
- name: A skipped step
  ansible.builtin.command: "true"
  when: false
- name: Print per container
  ansible.builtin.debug:
    msg: ["line of {{ item }}"]
  loop: [whatsapp-gateway, whatsapp-chat]
- name: A check with no message
  ansible.builtin.assert:
    that: true
- name: A quiet check
  ansible.builtin.assert:
    that: true
    quiet: true
    success_msg: "quietly fine"
- name: A check that says so
  ansible.builtin.assert:
    that: true
    success_msg: "2 containers running and healthy, every service ready"
- name: Include the inner role
  ansible.builtin.include_role:
    name: inner
"""
INNER = """
- name: An inner changed step
  ansible.builtin.command: "echo {{ item }}"
  loop: [one, two]
"""
PLAY = """
- name: Progress demo
  hosts: localhost
  gather_facts: false
  roles: [outer]
  tasks:
    - name: Refuse a bad value
      ansible.builtin.fail:
        msg: "demo_flag must be true or false"
      when: demo_fail | default(false) | bool
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("progress")
    for role, tasks in (("outer", ROLE), ("inner", INNER)):
        (root / "roles" / role / "tasks").mkdir(parents=True)
        (root / "roles" / role / "tasks" / "main.yml").write_text(tasks)
    (root / "play.yml").write_text(PLAY)
    return root


def play(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = tool_env() | {
        "ANSIBLE_STDOUT_CALLBACK": "progress",
        "ANSIBLE_ROLES_PATH": str(project / "roles"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "plugins" / "callback"),
        "ANSIBLE_NOCOLOR": "1",
    }
    command = [
        "ansible-playbook",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
    ]
    return subprocess.run(
        [*command, *args, "play.yml"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_progress_shows_roles_changes_and_messages_but_not_every_task(project):
    result = play(project)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "play: Progress demo" in out
    assert "] outer" in out and "] inner" not in out, "an included role counts as its includer's"
    assert "changed: A changed step" in out and "changed: An inner changed step" in out
    assert "Fast path: 3 of 5 roles unchanged" in out
    # A debug loop: each item's label, then its lines; an assert's own message, not the default.
    assert "(item=whatsapp-gateway)\n      line of whatsapp-gateway" in out
    assert "(item=whatsapp-chat)" in out
    assert "every service ready" in out and "All assertions passed" not in out
    assert "quietly fine" not in out
    for hidden in ("ok: [localhost]", "skipping:", "TASK [", "An ok step", "A skipped step", "included:"):
        assert hidden not in out, f"{hidden!r} shown:\n{out}"
    assert "ok=" in out and "changed=2" in out
    table = out[out.index("role ") :].split("PLAYBOOK RECAP")[0].strip().splitlines()
    assert table[0].split() == ["role", "seconds", "changed"]
    assert table[1].split()[0] == "outer" and table[1].split()[2] == "2"
    assert table[-1].split()[0] == "total"


def test_a_failure_is_shown_in_full_and_v_gives_the_whole_stream(project):
    failed = play(project, "-e", "demo_fail=true")
    assert failed.returncode == 2
    assert "TASK [Refuse a bad value]" in failed.stdout
    assert "demo_flag must be true or false" in failed.stdout + failed.stderr
    verbose = play(project, "-v")
    assert verbose.returncode == 0
    assert "TASK [outer : An ok step]" in verbose.stdout and "ok: [localhost]" in verbose.stdout
    assert "seconds" not in verbose.stdout.split("PLAY RECAP")[-1].split("PLAYBOOK RECAP")[0]
