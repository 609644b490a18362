"""The prometheus role's config and rules, rendered by Ansible with the role's variables: one
target per service replica (scaling adds targets), RabbitMQ, the exporters and Prometheus
itself, only for roles the inventory deploys; every metric the alerting rules use is one the
services define, RabbitMQ's plugin or an exporter exports, or Prometheus' own `up`."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, playbook, tail
from observability_helpers import exported_metric_names

HERE = Path(__file__).resolve().parent
ROLE = ROOT / "roles" / "prometheus"
ROLE_VARS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
# Series the rules may use that the services do not define, each with where it comes from.
EXTERNAL_METRICS = {
    "up": "Prometheus, one per target",
    "pg_up": "postgres_exporter",
    "redis_up": "redis_exporter",
    "rabbitmq_detailed_queue_messages_ready": "RabbitMQ's plugin, /metrics/detailed queue_coarse_metrics",
    "rabbitmq_detailed_queue_messages": "RabbitMQ's plugin, /metrics/detailed queue_coarse_metrics",
}
PROMQL_WORDS = {
    "sum", "by", "without", "rate", "irate", "increase", "delta", "deriv", "histogram_quantile", "max",
    "min", "avg", "count", "le", "on", "ignoring", "and", "or", "unless", "offset", "bool", "abs", "time",
}  # fmt: skip
IDENTIFIER = re.compile(r"(?<![\w$\[{\"=~.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w\"])")


def render(*extra: str) -> tuple[dict, dict]:
    """(prometheus.yml, rules) as the role renders them, with extra ansible-playbook arguments."""
    out = Path(tempfile.mkdtemp(prefix="prometheus-rendered-"))
    result = playbook(str(HERE / "prometheus_render.yml"), "-e", f"render_dir={out}", *extra)
    assert result.returncode == 0, tail(result)
    return (
        yaml.safe_load((out / "prometheus.yml").read_text()),
        yaml.safe_load((out / "rules.yml").read_text()),
    )


def targets(config: dict) -> dict[str, list[str]]:
    return {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }


def metric_names(expr: str) -> set[str]:
    """Series names in a PromQL expression (outside label matchers, ranges, grouping clauses)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    return {m for m in IDENTIFIER.findall(expr) if m not in PROMQL_WORDS}


@pytest.fixture(scope="module")
def default_render() -> tuple[dict, dict]:
    return render()


def test_every_service_the_inventory_deploys_is_a_target(default_render):
    config, _ = default_render
    assert targets(config) == {
        "prometheus": ["localhost:9090"],
        "user": ["whatsapp-user:8081"],
        "chat": ["whatsapp-chat:8082"],
        "message_processor": ["whatsapp-message-processor:8085"],
        "scheduled_jobs": ["whatsapp-scheduled-jobs:8086"],
        "notification": ["whatsapp-notification:8084"],
        "gateway": ["whatsapp-gateway:8080"],
        "rabbitmq": ["whatsapp-rabbitmq:15692"],
        "rabbitmq_queues": ["whatsapp-rabbitmq:15692"],
        "postgres": ["whatsapp-postgres-exporter:9187"],
        "redis": ["whatsapp-redis-exporter:9121"],
    }
    queues = next(j for j in config["scrape_configs"] if j["job_name"] == "rabbitmq_queues")
    assert queues["metrics_path"] == "/metrics/detailed"
    assert queues["params"] == {"vhost": ["whatsapp"], "family": ["queue_coarse_metrics"]}
    assert config["rule_files"] == ["rules/*.yml"]
    assert config["global"]["scrape_interval"] == "15s"


EXTRA_JOB = {"job_name": "node", "static_configs": [{"targets": ["node:9100"]}]}


@pytest.fixture(scope="module")
def changed_render() -> tuple[dict, dict]:
    """Rendered with the services scaled and settings changed (one run: each takes seconds)."""
    changes = {
        "chat_replicas": 3,
        "gateway_replicas": "2",
        "prometheus_extra_scrape_configs": [EXTRA_JOB],
        "prometheus_scrape_interval": "30s",
        "prometheus_alert_p99_latency_seconds": 2.5,
        "prometheus_alert_queue_depth": 777,
    }
    return render("-e", json.dumps(changes))


def test_scaling_a_service_adds_its_targets(changed_render):
    jobs = targets(changed_render[0])
    assert jobs["chat"] == ["whatsapp-chat:8082", "whatsapp-chat-2:8082", "whatsapp-chat-3:8082"]
    assert jobs["gateway"] == ["whatsapp-gateway:8080", "whatsapp-gateway-2:8080"]
    assert jobs["user"] == ["whatsapp-user:8081"]


def test_roles_the_inventory_leaves_out_and_disabled_exporters_are_not_scraped():
    roles = ["docker_host", "postgres", "redis", "user", "gateway", "nginx", "prometheus"]
    config, _ = render(
        "-e", json.dumps({"whatsapp_roles": roles}), "-e", "prometheus_redis_exporter_enabled=false"
    )
    assert set(targets(config)) == {"prometheus", "user", "gateway", "postgres"}


def test_settings_and_extra_scrape_configs_reach_the_config(changed_render):
    config, _ = changed_render
    assert config["scrape_configs"][-1] == EXTRA_JOB
    assert config["global"]["scrape_interval"] == "30s"
    assert config["global"]["external_labels"] == {"stack": "whatsapp"}


def test_the_rules_cover_every_alert_the_issue_asks_for(default_render):
    _, rules = default_render
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {
        "TargetDown",
        "HttpErrorRateHigh",
        "HttpLatencyP99High",
        "QueueDepthGrowing",
        "DeadLettersGrowing",
        "WebSocketConnectionsDropping",
    } <= alerts.keys()
    assert "> 0.05" in alerts["HttpErrorRateHigh"]["expr"]
    assert "{{ $labels.instance }}" in alerts["TargetDown"]["annotations"]["summary"]


def test_alert_thresholds_come_from_the_variables(default_render, changed_render):
    def exprs(rules: dict) -> str:
        return " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])

    assert "> 1.0" in exprs(default_render[1]) and "> 1000" in exprs(default_render[1])
    assert "> 2.5" in exprs(changed_render[1]) and "> 777" in exprs(changed_render[1])


def test_the_parser_finds_metric_names():
    assert metric_names(
        'histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{a="b"}[5m])))'
    ) == {"http_request_duration_seconds_bucket"}
    assert metric_names("sum(x_total offset 5m) and up == 0") == {"x_total", "up"}


def test_every_metric_the_rules_use_exists(default_render):
    _, rules = default_render
    known = exported_metric_names() | EXTERNAL_METRICS.keys()
    used = {name for g in rules["groups"] for r in g["rules"] for name in metric_names(r["expr"])}
    assert used, "the parser found no metric names"
    assert used - known == set(), f"the rules use metrics nobody exports: {sorted(used - known)}"
    # Each of the services' own metrics the rules rely on.
    own = {"http_requests_total", "http_request_duration_seconds_bucket", "whatsapp_websocket_connections"}
    assert own <= used


def test_the_scraped_ports_are_the_ones_the_roles_listen_on():
    for role, port in ROLE_VARS["prometheus_service_container_ports"].items():
        role_vars = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
        assert role_vars[f"{role}_container_port"] == port, role
    rabbitmq = yaml.safe_load((ROOT / "roles/rabbitmq/defaults/main.yml").read_text())
    assert rabbitmq["rabbitmq_container_prometheus_port"] == ROLE_VARS["prometheus_rabbitmq_metrics_port"]
    postgres = yaml.safe_load((ROOT / "roles/postgres/defaults/main.yml").read_text())
    assert postgres["postgres_container_port"] == ROLE_VARS["prometheus_postgres_container_port"]
    redis = yaml.safe_load((ROOT / "roles/redis/defaults/main.yml").read_text())
    assert redis["redis_container_port"] == ROLE_VARS["prometheus_redis_container_port"]


def test_on_swarm_every_job_finds_the_tasks_of_its_service_by_dns():
    config, _ = render("-e", "whatsapp_orchestrator=swarm", "-e", "chat_replicas=3")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["localhost:9090"]}]
    for name, job in jobs.items():
        if name == "prometheus":
            continue
        assert "static_configs" not in job, name
        [sd] = job["dns_sd_configs"]
        assert sd["type"] == "A" and len(sd["names"]) == 1 and sd["names"][0].startswith("tasks."), (name, sd)
    # One name per service however many replicas: Docker's DNS answers with every task.
    assert jobs["chat"]["dns_sd_configs"][0]["names"] == ["tasks.whatsapp-chat"]
    assert jobs["chat"]["dns_sd_configs"][0]["port"] == 8082
    assert jobs["rabbitmq_queues"]["metrics_path"] == "/metrics/detailed"
