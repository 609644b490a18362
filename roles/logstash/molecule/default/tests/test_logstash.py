"""Verify the logstash role: the log pipeline where a registry answers, a clear skip here."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest
import registry_only_testlib as skip
import whatsapp_testlib as lib

VARS = lib.role_vars()
runs = pytest.mark.skipif(not VARS["runnable"], reason=skip.SKIP_REASON)
skips = pytest.mark.skipif(VARS["runnable"], reason="a registry answers: the role runs Logstash")


@skips
def test_skipped_without_a_registry(host):
    skip.assert_skipped(host, "logstash", VARS)


@skips
def test_services_do_not_ship_when_logstash_is_skipped():
    assert VARS["services_logstash_host"] == ""


@skips
def test_required_logstash_fails_naming_the_variable(host):
    skip.assert_required_fails(host, "logstash", VARS)


@runs
def test_container_follows_the_spec(host):
    skip.assert_running(host, VARS)


@runs
def test_services_ship_to_this_container():
    assert VARS["services_logstash_host"] == VARS["spec"]["name"]


@runs
def test_tcp_input_takes_a_json_line():
    line = {"level": "INFO", "service": "molecule", "request_id": "r1", "message": "hello"}
    with socket.create_connection((VARS["address"], VARS["tcp_port"]), timeout=5) as conn:
        conn.sendall(json.dumps(line).encode() + b"\n")


@runs
def test_http_input_takes_json():
    request = urllib.request.Request(
        f"http://{VARS['address']}:{VARS['http_port']}/molecule",
        data=json.dumps({"level": "INFO", "service": "molecule", "message": "hello"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback http)
        assert response.status == 200
