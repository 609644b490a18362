"""Layer 4, end to end: after the deploy, Prometheus scrapes every target it was given (each
service replica, RabbitMQ, the PostgreSQL and Redis exporters, itself) and reports them up;
the exporters reach their stores; the alerting rules are loaded and none is broken."""

from __future__ import annotations

import subprocess
import time

import pytest
import requests
import yaml
from conftest import ROOT, tail

GROUP_VARS: dict = {}
for path in sorted((ROOT / "group_vars/all").glob("*.yml")):
    GROUP_VARS.update(yaml.safe_load(path.read_text()) or {})
PROMETHEUS = f"http://{GROUP_VARS['whatsapp_publish_address']}:{GROUP_VARS['prometheus_port']}"
# Every job the role renders for the full stack (roles/prometheus/defaults/main.yml).
JOBS = {
    "prometheus",
    "user",
    "chat",
    "message_processor",
    "scheduled_jobs",
    "notification",
    "gateway",
    "rabbitmq",
    "rabbitmq_queues",
    "postgres",
    "redis",
}
# Long enough for a scrape interval or two after the last container started.
WAIT_SECONDS = 60


def api(path: str, **params) -> dict:
    answer = requests.get(PROMETHEUS + path, params=params, timeout=10)
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", body
    return body["data"]


@pytest.fixture(scope="module")
def deployed(deployed_stack):
    result = deployed_stack[0]
    assert result.returncode == 0, tail(result, 120)
    return result


@pytest.fixture(scope="module")
def targets(deployed) -> list[dict]:
    """The active targets once all are up, or as they stand after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        active = api("/api/v1/targets", state="active")["activeTargets"]
        if (active and all(t["health"] == "up" for t in active)) or time.monotonic() > deadline:
            return active
        time.sleep(2)


@pytest.mark.docker
def test_every_target_is_up(targets):
    down = {t["scrapeUrl"]: t["lastError"] for t in targets if t["health"] != "up"}
    assert not down, down
    assert {t["labels"]["job"] for t in targets} == JOBS


@pytest.mark.docker
def test_every_chat_and_gateway_replica_is_a_target(targets):
    for role in ("chat", "gateway"):
        name = GROUP_VARS[f"{role}_container_name"]
        instances = sorted(t["labels"]["instance"] for t in targets if t["labels"]["job"] == role)
        assert instances and instances[0].startswith(name + ":"), instances
        assert all(i.split(":")[0] == name or i.startswith(name + "-") for i in instances), instances


@pytest.mark.docker
def test_the_exporters_reach_postgres_and_redis(targets):
    assert targets
    for metric in ("pg_up", "redis_up"):
        result = api("/api/v1/query", query=metric)["result"]
        assert [sample["value"][1] for sample in result] == ["1"], (metric, result)


@pytest.mark.docker
def test_the_services_and_rabbitmq_queues_are_measured(targets):
    assert targets
    jobs = {s["metric"]["job"] for s in api("/api/v1/query", query="http_requests_total")["result"]}
    # Every HTTP service has answered at least its health checks by now (Docker probes them).
    assert {"user", "chat", "gateway"} <= jobs, jobs
    queues = {
        s["metric"]["queue"]
        for s in api("/api/v1/query", query="rabbitmq_detailed_queue_messages_ready")["result"]
    }
    expected = {q["name"] for q in GROUP_VARS["rabbitmq_queues"]}
    assert expected | {f"{q}.dead" for q in expected} <= queues, queues


@pytest.mark.docker
def test_the_alerting_rules_are_loaded_and_healthy(deployed):
    assert deployed.returncode == 0
    rules = [r for g in api("/api/v1/rules")["groups"] for r in g["rules"]]
    names = {r["name"] for r in rules}
    assert {
        "TargetDown",
        "HttpErrorRateHigh",
        "HttpLatencyP99High",
        "QueueDepthGrowing",
        "DeadLettersGrowing",
        "WebSocketConnectionsDropping",
    } <= names
    assert all(r["health"] != "err" for r in rules), [r for r in rules if r["health"] == "err"]


@pytest.mark.docker
def test_prometheus_is_ready_and_published_on_loopback_only(deployed):
    assert deployed.returncode == 0
    assert requests.get(PROMETHEUS + "/-/ready", timeout=5).status_code == 200
    port = GROUP_VARS["prometheus_port"]
    out = subprocess.check_output(["ss", "-Htln", f"sport = :{port}"], text=True)
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}
    assert addresses == {GROUP_VARS["whatsapp_publish_address"]}
