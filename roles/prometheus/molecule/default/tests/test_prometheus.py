"""Verify the prometheus role: the containers follow their specs, Prometheus is healthy and
ready on loopback only, the exporters publish nothing, the config holds every target
rendered from the inventory, the rules are loaded, Prometheus scrapes itself and the
exporters, a value promtool refuses leaves the live files alone, and a change is applied by
a reload (the container is not restarted)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import requests
import whatsapp_testlib as lib

VARS = lib.role_vars()
SPEC = VARS["spec"]
NAME = SPEC["name"]
URL = f"http://{VARS['address']}:{VARS['port']}"
EXPORTERS = [s for s in VARS["specs"] if s["name"] != NAME]
# Re-runs of converge.yml run only the role (the Docker host is prepared already): quicker.
ROLE_ONLY = ("--tags", "prometheus")
RULE_ALERTS = {
    "TargetDown",
    "HttpErrorRateHigh",
    "HttpLatencyP99High",
    "QueueDepthGrowing",
    "DeadLettersGrowing",
    "WebSocketConnectionsDropping",
}


def api(path: str) -> dict:
    answer = requests.get(URL + path, timeout=10)
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", body
    return body["data"]


def targets_by_health(wait_for: set[str], timeout: float = 40) -> dict[str, str]:
    """scrape URL -> health, polled until every URL in wait_for is `up` (or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        health = {t["scrapeUrl"]: t["health"] for t in api("/api/v1/targets")["activeTargets"]}
        if all(health.get(url) == "up" for url in wait_for) or time.monotonic() > deadline:
            return health
        time.sleep(1)


def scrape_url(job: dict, target: str) -> str:
    url = f"http://{target}{job.get('metrics_path', '/metrics')}"
    params = job.get("params") or {}
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, values in sorted(params.items()) for v in values)
    return url


def converge(*extra_args: str) -> subprocess.CompletedProcess[str]:
    """The scenario's converge playbook again (this role only), with extra ansible-playbook
    arguments; unlike lib.converge_again it returns a failed run too (for the refused-value test)."""
    return lib.converge(*ROLE_ONLY, *extra_args, timeout=600)


def test_prometheus_follows_the_spec(host):
    data = lib.assert_standard_container(host, SPEC, VARS["restart_policy"])
    assert data["HostConfig"]["ReadonlyRootfs"] is True
    assert data["HostConfig"]["CapDrop"] == ["ALL"]
    assert data["Config"]["User"] == "65534:65534"
    assert any(m["Type"] == "volume" and m["Destination"] == "/prometheus" for m in data["Mounts"])
    uid = host.check_output("docker exec %s id -u", NAME)
    assert uid == "65534"


def test_retention_and_limits_come_from_the_variables(host):
    args = lib.inspect(host, NAME)["Args"]
    assert f"--storage.tsdb.retention.time={VARS['retention_time']}" in args
    assert f"--storage.tsdb.retention.size={VARS['retention_size']}" in args
    flags = api("/api/v1/status/flags")
    assert flags["storage.tsdb.retention.time"] == VARS["retention_time"]
    # Prometheus' sizes are powers of 1024, shown as MiB/GiB.
    assert flags["storage.tsdb.retention.size"].replace("iB", "B") == VARS["retention_size"]


def test_exporters_follow_their_specs_and_publish_nothing(host):
    assert {s["name"] for s in EXPORTERS} == {"whatsapp-postgres-exporter", "whatsapp-redis-exporter"}
    for spec in EXPORTERS:
        data = lib.assert_standard_container(host, spec, VARS["restart_policy"])
        assert data["HostConfig"]["ReadonlyRootfs"] is True
        assert not data["HostConfig"]["PortBindings"], spec["name"]
        assert not any(lib.published_bindings(data).values()), spec["name"]


def test_healthy_and_ready_on_loopback_only(host):
    assert requests.get(URL + "/-/healthy", timeout=5).status_code == 200
    assert requests.get(URL + "/-/ready", timeout=5).status_code == 200
    assert lib.listening_addresses(host, VARS["port"]) == {VARS["address"]}
    bindings = lib.published_bindings(lib.inspect(host, NAME))
    assert bindings == {"9090/tcp": [(VARS["address"], str(VARS["port"]))]}
    for address in lib.host_addresses():
        assert not lib.tcp_connect(address, VARS["port"]), address


def test_every_target_from_the_inventory_is_configured():
    expected = {scrape_url(job, t) for job in VARS["jobs"] for t in job["targets"]}
    jobs = {job["job_name"] for job in VARS["jobs"]}
    assert {"prometheus", "user", "chat", "gateway", "rabbitmq", "postgres", "redis"} <= jobs
    active = {t["scrapeUrl"] for t in api("/api/v1/targets")["activeTargets"]}
    assert expected == active
    config = api("/api/v1/status/config")["yaml"]
    assert f"scrape_interval: {VARS['scrape_interval']}" in config


def test_the_alerting_rules_are_loaded():
    groups = api("/api/v1/rules")["groups"]
    alerts = {r["name"]: r for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert alerts.keys() >= RULE_ALERTS
    assert all(r["health"] != "err" for r in alerts.values()), alerts


def test_prometheus_and_the_exporters_are_scraped_up():
    jobs = {job["job_name"]: job for job in VARS["jobs"]}
    own = {scrape_url(jobs[name], jobs[name]["targets"][0]) for name in ("prometheus", "postgres", "redis")}
    health = targets_by_health(own)
    assert {url: health.get(url) for url in own} == dict.fromkeys(own, "up")
    # The exporters answer for their stores: a 0 or 1 from each, never nothing.
    for metric in ("pg_up", "redis_up"):
        assert api(f"/api/v1/query?query={metric}")["result"], metric


def test_a_value_promtool_refuses_leaves_the_live_files_alone(host):
    before = lib.inspect(host, NAME)
    config, rules = Path(VARS["config"]).read_text(), Path(VARS["rules"]).read_text()
    # Accepted by the argument specs, refused by promtool check config (timeout > interval).
    result = converge("-e", "prometheus_scrape_timeout=1m")
    output = " ".join((result.stdout + result.stderr).split())  # errors go to stderr, wrapped
    assert result.returncode != 0
    assert "scrape timeout greater than scrape interval" in output, output[-3000:]
    # A rule whose expression does not parse: refused by promtool check rules.
    bad_rule = {"prometheus_extra_rules": [{"alert": "Broken", "expr": "rate(up[5m]"}]}
    result = converge("-e", json.dumps(bad_rule))
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "check rules" in output and "parse error" in output, output[-3000:]
    assert Path(VARS["config"]).read_text() == config and Path(VARS["rules"]).read_text() == rules
    after = lib.inspect(host, NAME)
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert "Broken" not in json.dumps(api("/api/v1/rules"))


def test_a_changed_setting_is_checked_and_reloaded_not_restarted(host):
    before = lib.inspect(host, NAME)
    output = lib.converge_again(
        *ROLE_ONLY, "-e", "prometheus_scrape_interval=7s", "-e", "prometheus_alert_queue_depth=4321"
    )
    # One handler: SIGHUP inside the container, then a wait there for a successful reload.
    assert (
        "RUNNING HANDLER [prometheus : Send SIGHUP to prometheus and wait until it reports the reload]"
        in output
    )
    assert "scrape_interval: 7s" in api("/api/v1/status/config")["yaml"]
    assert "4321" in json.dumps(api("/api/v1/rules"))
    after = lib.inspect(host, NAME)
    assert after["Id"] == before["Id"] and after["State"]["StartedAt"] == before["State"]["StartedAt"]
    output = lib.converge_again(*ROLE_ONLY)  # back to the scenario's own values, by a reload again
    assert (
        "RUNNING HANDLER [prometheus : Send SIGHUP to prometheus and wait until it reports the reload]"
        in output
    )
    assert f"scrape_interval: {VARS['scrape_interval']}" in api("/api/v1/status/config")["yaml"]
