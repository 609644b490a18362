"""Verify the redis role against the running container, using the role's own variables."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
import whatsapp_testlib as lib

VARS = lib.role_vars()
SPEC = VARS["spec"]
NAME = SPEC["name"]
PORT = int(VARS["port"])
ADDRESS = VARS["publish_address"]


def client(password: str | None = VARS["password"]) -> redis.Redis:
    return redis.Redis(host=ADDRESS, port=PORT, password=password, socket_timeout=3)


def test_container_follows_the_spec(host):
    data = lib.assert_standard_container(host, SPEC, VARS["restart_policy"])
    assert data["HostConfig"]["ReadonlyRootfs"] is True
    assert data["HostConfig"]["CapDrop"] == ["ALL"]
    assert any(m["Type"] == "volume" and m["Destination"] == "/data" for m in data["Mounts"])


def test_runs_as_the_declared_non_root_user(host):
    uid_gid = host.check_output("docker exec %s sh -c 'echo $(id -u):$(id -g)'", NAME)
    assert uid_gid == VARS["user"]
    assert not uid_gid.startswith("0:")


def test_ping_answered_on_loopback_with_the_password():
    assert client().ping() is True


def test_unauthenticated_clients_are_refused():
    with pytest.raises(redis.exceptions.AuthenticationError):
        client(password=None).get("anything")


def test_port_published_on_loopback_only(host):
    data = lib.inspect(host, NAME)
    assert lib.published_bindings(data) == {
        f"{SPEC['published_ports'][0].split(':')[-1]}/tcp": [(ADDRESS, str(PORT))]
    }
    assert lib.listening_addresses(host, PORT) == {ADDRESS}
    for addr in lib.host_addresses():
        assert not lib.tcp_connect(addr, PORT), f"port {PORT} answers on {addr}"


def test_persistence_settings_apply():
    config = client().config_get("append*")
    assert config["appendonly"] == ("yes" if VARS["appendonly"] else "no")
    assert config["appendfsync"] == VARS["appendfsync"]
    assert int(client().config_get("maxmemory")["maxmemory"]) > 0


def test_image_source_is_labelled(host):
    data = lib.inspect(host, NAME)
    expected = "self-built" if VARS["self_build"] else "upstream"
    assert data["Config"]["Labels"]["com.whatsapp.image-source"] == expected
    if VARS["self_build"]:
        image = json.loads(host.check_output("docker image inspect %s", SPEC["image"]))[0]
        assert image["Config"]["Labels"]["com.whatsapp.self-built"] == "true"


def test_a_key_survives_container_re_creation(host):
    key, value = f"molecule:{uuid.uuid4()}", str(uuid.uuid4())
    client().set(key, value)
    lib.recreate(host, NAME)
    assert client().get(key).decode() == value
