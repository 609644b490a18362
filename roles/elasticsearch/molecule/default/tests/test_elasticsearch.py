"""Verify the elasticsearch role: a secured single node where a registry answers, a clear skip here."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest
import registry_only_testlib as skip
import whatsapp_testlib as lib

VARS = lib.role_vars()
runs = pytest.mark.skipif(not VARS["runnable"], reason=skip.SKIP_REASON)
skips = pytest.mark.skipif(VARS["runnable"], reason="a registry answers: the role runs Elasticsearch")


def es(path: str, password: str | None = VARS["password"]) -> tuple[int, dict]:
    headers = {}
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"elastic:{password}".encode()).decode()
    request = urllib.request.Request(f"http://{VARS['address']}:{VARS['port']}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback http)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {}


@skips
def test_skipped_without_a_registry(host):
    skip.assert_skipped(host, "elasticsearch", VARS)


@skips
def test_required_elasticsearch_fails_naming_the_variable(host):
    skip.assert_required_fails(host, "elasticsearch", VARS)


@skips
def test_heap_is_half_the_memory_limit():
    assert VARS["heap_mb"] * 1024 * 1024 * 2 == lib.size_to_bytes(VARS["spec"]["memory"])
    assert f"-Xmx{VARS['heap_mb']}m" in VARS["spec"]["env"]["ES_JAVA_OPTS"]


@runs
def test_container_follows_the_spec(host):
    skip.assert_running(host, VARS)


@runs
def test_single_node_cluster_answers_with_the_password():
    status, health = es("/_cluster/health")
    assert status == 200
    assert health["number_of_nodes"] == 1
    assert health["status"] in ("green", "yellow")


@runs
def test_security_is_on():
    assert es("/_cluster/health", password=None)[0] == 401
    assert es("/_cluster/health", password=VARS["password"] + "-but-wrong")[0] == 401


@runs
def test_log_index_template_is_installed():
    status, body = es(f"/_index_template/{VARS['index_prefix']}-logs")
    assert status == 200
    settings = body["index_templates"][0]["index_template"]["template"]["settings"]["index"]
    assert settings["number_of_replicas"] == "0"
