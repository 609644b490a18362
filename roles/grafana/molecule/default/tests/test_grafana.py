"""Verify the grafana role: provisioned Grafana where a registry answers, a clear skip here."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path

import pytest
import registry_only_testlib as skip
import whatsapp_testlib as lib

VARS = lib.role_vars()
DASHBOARDS = sorted((Path(__file__).resolve().parents[3] / "files" / "dashboards").glob("*.json"))
runs = pytest.mark.skipif(not VARS["runnable"], reason=skip.SKIP_REASON)
skips = pytest.mark.skipif(VARS["runnable"], reason="a registry answers: the role runs Grafana")


def api(path: str):
    token = base64.b64encode(f"{VARS['admin_user']}:{VARS['admin_password']}".encode()).decode()
    request = urllib.request.Request(
        f"http://{VARS['address']}:{VARS['port']}{path}", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback http)
        return json.loads(response.read())


@skips
def test_skipped_without_a_registry(host):
    skip.assert_skipped(host, "grafana", VARS)


@skips
def test_required_grafana_fails_naming_the_variable(host):
    skip.assert_required_fails(host, "grafana", VARS)


@runs
def test_container_follows_the_spec(host):
    skip.assert_running(host, VARS)


@runs
def test_admin_logs_in_with_the_inventory_password():
    assert api("/api/user")["login"] == VARS["admin_user"]


@runs
def test_prometheus_datasource_is_provisioned():
    source = api("/api/datasources/uid/whatsapp-prometheus")
    assert source["type"] == "prometheus"
    assert source["url"].endswith(":9090")


@runs
def test_every_dashboard_file_is_provisioned():
    found = {d["uid"] for d in api("/api/search?type=dash-db&tag=whatsapp")}
    assert found == {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
