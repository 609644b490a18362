"""Layer 5, last: scripts/clean.sh removes the stack; data volumes only when asked.

Runs after everything else (it takes the deployed stack away)."""

from __future__ import annotations

import subprocess

import pytest
from conftest import ROOT, TEST_INVENTORY, run, tail

pytestmark = pytest.mark.docker

LABEL = "label=com.whatsapp.stack=whatsapp"


def docker_names(*args: str) -> set[str]:
    return set(
        subprocess.check_output(
            ["docker", *args, "--filter", LABEL, "--format", "{{.Name}}"], text=True
        ).split()
    )


def containers() -> set[str]:
    return set(
        subprocess.check_output(
            ["docker", "ps", "-a", "--filter", LABEL, "--format", "{{.Names}}"], text=True
        ).split()
    )


def clean(*args: str, log: str):
    return run([str(ROOT / "scripts/clean.sh"), "-i", TEST_INVENTORY, *args], log=log, timeout=600)


def test_clean_keeps_the_data_unless_asked_then_removes_it(deployed_stack):
    assert deployed_stack[0].returncode == 0
    assert containers(), "nothing deployed to clean"
    volumes = docker_names("volume", "ls")
    assert {"whatsapp-postgres-data", "whatsapp-rabbitmq-data"} <= volumes

    refused = clean("-e", "clean_volumes=maybe", log="clean-refused.log")
    assert refused.returncode != 0 and "clean_volumes must be true or false" in refused.stdout
    assert containers(), "a refused clean removed containers"

    kept = clean(log="clean.log")
    assert kept.returncode == 0, tail(kept)
    assert containers() == set()
    networks = subprocess.check_output(
        ["docker", "network", "ls", "--format", "{{.Name}}"], text=True
    ).split()
    assert not {"whatsapp-frontend", "whatsapp-backend"} & set(networks)
    assert docker_names("volume", "ls") == volumes, "volumes removed without clean_volumes=true"

    purged = clean("-e", "clean_volumes=true", log="clean-volumes.log")
    assert purged.returncode == 0, tail(purged)
    assert docker_names("volume", "ls") == set()
