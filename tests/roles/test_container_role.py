"""The shared container role: a container that never turns healthy fails with its logs,
whether the role waits at its start or the run waits at its end (site.yml's service plays);
an image's build context takes the Docker host's files, an absent optional one as empty."""

from __future__ import annotations

import subprocess
from pathlib import Path

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


IMAGE = "whatsapp/test-optional-host-file:1"


@pytest.fixture
def image_cleanup():
    yield
    subprocess.run(["docker", "rmi", "-f", IMAGE], capture_output=True, check=False)


@pytest.mark.docker
def test_an_optional_file_the_docker_host_lacks_builds_as_an_empty_one(image_cleanup):
    """What a Docker Desktop host (macOS, Windows) meets: its extra CA bundle is absent and
    the build still goes through; a present file is copied as it is."""
    result = playbook(
        str(ROOT / "tests/roles/playbooks/optional_host_file.yml"),
        "-e",
        f"image_name={IMAGE}",
        log="optional-host-file.log",
        timeout=300,
    )
    assert result.returncode == 0, tail(result)
    assert "/nonexistent/extra-ca.crt (absent: an empty file)" in result.stdout, tail(result)
    listing = subprocess.run(
        ["docker", "run", "--rm", IMAGE, "sh", "-c", "wc -c < /host/absent.txt; cat /host/present.txt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n", 1)
    assert listing[0].strip() == "0"
    assert listing[1].strip() == Path("/etc/hostname").read_text().strip()


@pytest.mark.docker
def test_a_missing_file_that_is_not_optional_fails_naming_it(image_cleanup):
    result = playbook(
        str(ROOT / "tests/roles/playbooks/optional_host_file.yml"),
        "-e",
        f"image_name={IMAGE}",
        "-e",
        "strict=true",
        log="required-host-file.log",
        timeout=300,
    )
    assert result.returncode != 0, tail(result)
    assert "/nonexistent/extra-ca.crt is not on the Docker host" in result.stdout, tail(result)
    inspect = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False)
    assert inspect.returncode != 0, "an image was built without its required file"
