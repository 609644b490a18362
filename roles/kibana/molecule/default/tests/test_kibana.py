"""Verify the kibana role: Kibana with its data views where a registry answers, a clear skip here."""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest
import registry_only_testlib as skip
import whatsapp_testlib as lib

VARS = lib.role_vars()
runs = pytest.mark.skipif(not VARS["runnable"], reason=skip.SKIP_REASON)
skips = pytest.mark.skipif(VARS["runnable"], reason="a registry answers: the role runs Kibana")


def kibana(path: str) -> dict:
    token = base64.b64encode(f"elastic:{VARS['elastic_password']}".encode()).decode()
    request = urllib.request.Request(
        f"http://{VARS['address']}:{VARS['port']}{path}", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback http)
        return json.loads(response.read())


@skips
def test_skipped_without_a_registry(host):
    skip.assert_skipped(host, "kibana", VARS)


@skips
def test_required_kibana_fails_naming_the_variable(host):
    skip.assert_required_fails(host, "kibana", VARS)


@runs
def test_container_follows_the_spec(host):
    skip.assert_running(host, VARS)


@runs
def test_kibana_is_available():
    assert kibana("/api/status")["status"]["overall"]["level"] == "available"


@runs
def test_data_views_exist_for_the_daily_indexes():
    for view in VARS["data_views"]:
        found = kibana(f"/api/data_views/data_view/{view['id']}")["data_view"]
        assert found["title"] == f"{VARS['index_prefix']}-{view['kind']}-*"
        assert found["timeFieldName"] == "@timestamp"
