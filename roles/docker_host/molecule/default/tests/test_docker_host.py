"""Verify the docker_host role: engine, networks, base image, image source."""

from __future__ import annotations

import json

import whatsapp_testlib as lib
from packaging.version import Version

VARS = lib.role_vars()


def test_engine_answers_and_is_recent_enough(host):
    version = host.check_output("docker version --format '{{.Server.Version}}'")
    assert Version(version.split("+")[0]) >= Version(VARS["min_version"])


def test_networks_exist_with_their_subnets_and_labels(host):
    for name, subnet in VARS["networks"].items():
        net = json.loads(host.check_output("docker network inspect %s", name))[0]
        assert net["Driver"] == "bridge"
        assert [c["Subnet"] for c in net["IPAM"]["Config"]] == [subnet]
        assert net["Labels"]["com.whatsapp.stack"] == VARS["stack"]


def test_base_image_exists_and_runs_debian(host):
    image = json.loads(host.check_output("docker image inspect %s", VARS["base_image"]))[0]
    assert image["Os"] == "linux"
    release = host.check_output("docker run --rm --network none %s cat /etc/os-release", VARS["base_image"])
    assert "debian" in release.lower()


def test_base_image_has_apt_sources_with_updates_and_security(host):
    if VARS["image_source"] != "build":
        return
    sources = host.check_output(
        "docker run --rm --network none %s cat /etc/apt/sources.list", VARS["base_image"]
    )
    suites = {line.split()[2] for line in sources.splitlines() if line.startswith("deb ")}
    release = sorted(suites)[0]
    assert suites == {release, f"{release}-updates", f"{release}-security"}
    policy = host.run("docker run --rm --network none %s /usr/sbin/policy-rc.d", VARS["base_image"])
    assert policy.rc == 101


def test_image_source_is_decided(host):
    assert VARS["image_source"] in ("upstream", "build")
