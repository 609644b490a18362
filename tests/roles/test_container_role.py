"""The shared container role: a container that never turns healthy fails with its logs."""

from __future__ import annotations

import subprocess

import pytest
from conftest import ROOT, playbook, tail

NAME = "whatsapp-test-unhealthy"


@pytest.fixture
def cleanup():
    yield
    subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)


@pytest.mark.docker
def test_unhealthy_container_fails_showing_its_last_log_lines(cleanup):
    result = playbook(
        str(ROOT / "tests/roles/playbooks/unhealthy_container.yml"), log="unhealthy.log", timeout=300
    )
    assert result.returncode != 0, tail(result)
    assert f"{NAME} did not turn healthy within 12 s" in result.stdout, tail(result)
    assert "unhealthy-marker-line" in result.stdout, tail(result)
