"""The shared container role: a container that never turns healthy fails with its logs,
whether the role waits at its start or the run waits at its end (site.yml's service plays)."""

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
@pytest.mark.parametrize("deferred", [False, True], ids=["wait-at-start", "wait-at-end"])
def test_unhealthy_container_fails_showing_its_last_log_lines(cleanup, deferred):
    result = playbook(
        str(ROOT / "tests/roles/playbooks/unhealthy_container.yml"),
        "-e",
        f"deferred={str(deferred).lower()}",
        log=f"unhealthy-{'deferred' if deferred else 'now'}.log",
        timeout=300,
    )
    assert result.returncode != 0, tail(result)
    assert f"{NAME} did not turn healthy within 12 s" in result.stdout, tail(result)
    assert "unhealthy-marker-line" in result.stdout, tail(result)
    # Deferred: the start returned at once and the failure came from the wait at the end.
    assert (f"started without waiting: {NAME}" in result.stdout) is deferred, tail(result)
