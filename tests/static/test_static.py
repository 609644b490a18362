"""Layer 1, static: lint and syntax checks over the whole project."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run, tail

PLAYBOOKS = ["site.yml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "playbooks").glob("*.yml"))]
INVENTORIES = sorted(p.name for p in (ROOT / "inventories").iterdir() if p.is_dir())


def test_ansible_lint_production_profile():
    result = run(
        ["ansible-lint", "--profile", "production", "--offline"], log="ansible-lint.log", timeout=600
    )
    assert result.returncode == 0, tail(result)
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def test_yamllint():
    result = run(["yamllint", "--strict", "."], log="yamllint.log")
    assert result.returncode == 0, tail(result)


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_playbook_syntax(inventory: str):
    """Every playbook against each inventory, in one ansible-playbook run (which names the
    file at fault): one run per playbook cost a second and a half each."""
    result = run(["ansible-playbook", "--syntax-check", "-i", f"inventories/{inventory}", *PLAYBOOKS])
    assert result.returncode == 0, tail(result)
    checked = [line for line in result.stdout.splitlines() if line.startswith("playbook: ")]
    assert len(checked) == len(PLAYBOOKS), tail(result)


def test_ruff_lint():
    result = run(["ruff", "check", "."])
    assert result.returncode == 0, tail(result)


def test_ruff_format():
    result = run(["ruff", "format", "--check", "--diff", "."])
    assert result.returncode == 0, tail(result)


def test_every_role_has_the_standard_parts():
    for role in sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir()):
        for part in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml", "tasks/main.yml"):
            assert (role / part).is_file(), f"{role.name} lacks {part}"
        if role.name != "container":
            assert (role / "tasks" / "validate.yml").is_file(), f"{role.name} lacks tasks/validate.yml"


def test_every_container_role_has_a_molecule_scenario():
    roles = yaml.safe_load((ROOT / "group_vars/all/main.yml").read_text())["whatsapp_roles"]
    for role in roles:
        assert Path(ROOT / "roles" / role / "molecule" / "default" / "molecule.yml").is_file(), role
