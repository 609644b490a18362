"""Verifier helpers for the roles that run only from upstream images (grafana, elasticsearch,
logstash, kibana): where no registry answers (build mode) they must skip, say why, create
nothing, and fail naming `<role>_required` when the inventory demands them."""

from __future__ import annotations

import subprocess

import whatsapp_testlib as lib

SKIP_REASON = "skipped: no registry"


def converge(*extra_args: str) -> subprocess.CompletedProcess[str]:
    """Run the scenario's converge playbook once more, whatever its outcome."""
    return lib.converge(*extra_args, timeout=300)


def container_exists(host, name: str) -> bool:
    out = host.check_output("docker ps -a --filter name=^/%s$ --format '{{.Names}}'", name)
    return name in out.split()


def assert_skipped(host, role: str, role_vars: dict) -> None:
    """The skip path: nothing created, the reason recorded and printed."""
    assert role_vars["runnable"] is False
    assert role_vars["skipped_reason"] == SKIP_REASON
    assert not container_exists(host, role_vars["spec"]["name"])
    result = converge()
    assert result.returncode == 0, result.stdout[-3000:]
    # YAML results may wrap the message: compare with the whitespace folded.
    output = " ".join(result.stdout.split())
    assert f"{role}: no registry answers and Debian does not package it; {SKIP_REASON}" in output
    assert not container_exists(host, role_vars["spec"]["name"])


def assert_required_fails(host, role: str, role_vars: dict) -> None:
    """`<role>_required: true` where the role cannot run: a failure naming the variable."""
    result = converge("-e", f"{role}_required=true")
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output[-3000:]
    assert f"{role}_required: is true, but" in output, output[-3000:]
    assert "does not package it" in output
    assert not container_exists(host, role_vars["spec"]["name"])


def assert_running(host, role_vars: dict) -> dict:
    """The upstream path: the stack's container promises, published on loopback only."""
    spec = role_vars["spec"]
    data = lib.assert_standard_container(host, spec, role_vars["restart_policy"])
    bindings = lib.published_bindings(data)
    for published in spec["published_ports"]:
        address, port, container_port = published.split(":")
        assert bindings[f"{container_port}/tcp"] == [(address, port)]
        assert lib.listening_addresses(host, int(port)) == {address}
    return data
