"""Grafana's dashboards: valid JSON, one per service plus the message path, and every metric they
query is one the services export (or RabbitMQ's, or Prometheus's own `up`)."""

from __future__ import annotations

import json
import re

import pytest
from observability_helpers import DASHBOARDS, SERVICE_NAMES, exported_metric_names

FILES = sorted(DASHBOARDS.glob("*.json"))
# PromQL words that look like metric names but are functions, keywords or label names.
PROMQL_WORDS = {
    "sum", "by", "without", "rate", "irate", "increase", "histogram_quantile", "clamp_min", "max", "min",
    "avg", "count", "time", "le", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "topk", "bottomk", "abs", "delta", "deriv", "absent",
}  # fmt: skip
IDENTIFIER = re.compile(r"(?<![\w$\[{\"=~.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w\"])")


def metric_names(expr: str) -> set[str]:
    """Series names in a PromQL expression: identifiers outside label matchers, [ranges], strings
    and grouping clauses, that are not functions or keywords."""
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    names = {m for m in IDENTIFIER.findall(expr) if m not in PROMQL_WORDS}
    return {n for n in names if not re.fullmatch(r"\d.*", n)}


def targets(dashboard: dict) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_parser_finds_metric_names():
    assert metric_names(
        'sum by (le, route) (rate(http_request_duration_seconds_bucket{service="x"}[5m]))'
    ) == {"http_request_duration_seconds_bucket"}
    assert metric_names("time() - max by (job) (some_gauge)") == {"some_gauge"}


def test_one_dashboard_per_service_and_one_for_the_message_path():
    assert sorted(p.stem for p in FILES) == sorted([*SERVICE_NAMES, "message_path"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_dashboard_is_valid_grafana_json(path):
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    assert dashboard["title"].startswith("WhatsApp / ")
    assert "whatsapp" in dashboard["tags"]
    assert dashboard["panels"], path.name
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
    assert any(
        v["name"] == "datasource" and v["type"] == "datasource" for v in dashboard["templating"]["list"]
    )


def test_dashboard_uids_are_unique():
    uids = [json.loads(p.read_text())["uid"] for p in FILES]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_queried_metric_is_exported(path):
    exported = exported_metric_names()
    unknown = set()
    for expr in targets(json.loads(path.read_text())):
        for name in metric_names(expr):
            if name == "up" or name.startswith("rabbitmq_"):
                continue
            if name not in exported:
                unknown.add(name)
    assert not unknown, f"{path.name} queries metrics no service exports: {sorted(unknown)}"


def test_the_exported_names_include_each_services_own_metrics():
    exported = exported_metric_names()
    for name in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "whatsapp_websocket_connections",
        "whatsapp_messages_accepted_total",
        "whatsapp_messages_processed_total",
        "whatsapp_push_results_total",
        "whatsapp_scheduled_job_runs_total",
        "gateway_upstream_requests_total",
    ):
        assert name in exported, name
    assert "not_a_metric_total" not in exported


def test_message_path_dashboard_covers_rates_latencies_errors_sockets_queues():
    exprs = " ".join(targets(json.loads((DASHBOARDS / "message_path.json").read_text())))
    for needed in (
        "whatsapp_messages_accepted_total",
        "whatsapp_message_accept_seconds_bucket",
        'status=~"5.."',
        "whatsapp_websocket_connections",
        "whatsapp_queue_messages",
        "rabbitmq_queue_messages_ready",
    ):
        assert needed in exprs, needed


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_service_dashboard_filters_its_own_http_metrics(service):
    exprs = targets(json.loads((DASHBOARDS / f"{service}.json").read_text()))
    http = [e for e in exprs if "http_request" in e]
    assert http and all(f'service="{service}"' in e for e in http)
