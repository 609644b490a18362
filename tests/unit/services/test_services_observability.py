"""Request ids, /health, /ready, /metrics and the JSON log lines."""

from __future__ import annotations

import json
import logging
import re
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from service_helpers import user_app, user_settings

from services.common.app import create_base_app
from services.common.health import add_readiness_check
from services.common.logging import ContextFilter, JsonFormatter, build_logstash_handler
from services.common.request_id import current_request_id

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


@pytest.fixture
def client():
    return user_app().test_client()


def test_client_request_id_is_echoed(client):
    response = client.get("/health", headers={"X-Request-ID": "abc-123_x.y"})
    assert response.headers["X-Request-ID"] == "abc-123_x.y"


@pytest.mark.parametrize("sent", [None, "", "has space", "x" * 129, 'quote"d', "semi;colon", "a/b"])
def test_missing_or_insane_request_id_is_replaced(client, sent):
    headers = {} if sent is None else {"X-Request-ID": sent}
    response = client.get("/health", headers=headers)
    generated = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated), generated
    assert generated != sent


def test_request_ids_are_unique_and_on_error_responses_too(client):
    first = client.get("/api/v1/nothing").headers["X-Request-ID"]
    second = client.post("/api/v1/auth/login", data="{").headers["X-Request-ID"]
    assert first and second and first != second


def test_health_shape(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "service": "user", "version": user_settings().version}


def test_metrics_count_requests_by_route_not_path(client):
    client.get("/api/v1/users/not-a-uuid")
    client.get("/api/v1/users/another-one")
    text = client.get("/metrics").get_data(as_text=True)
    line = next(
        (
            ln
            for ln in text.splitlines()
            if ln.startswith("http_requests_total{") and 'route="/api/v1/users/<user_id>"' in ln
        ),
        None,
    )
    assert line is not None, text
    assert 'method="GET"' in line and 'status="401"' in line and 'service="user"' in line
    assert line.endswith(" 2.0")
    assert "not-a-uuid" not in text
    assert "http_request_duration_seconds_bucket{" in text


def test_metrics_content_type_is_prometheus_text(client):
    response = client.get("/metrics")
    assert response.content_type.startswith("text/plain")
    assert "# TYPE http_requests_total counter" in response.get_data(as_text=True)


def test_several_apps_in_one_process_keep_separate_metrics():
    first, second = user_app().test_client(), user_app().test_client()
    first.get("/health")
    assert 'route="/health"' in first.get("/metrics").get_data(as_text=True)
    assert 'route="/health"' not in second.get("/metrics").get_data(as_text=True)


def ready_app(**checks):
    app = create_base_app("test", user_settings(WHATSAPP_BACKEND_TIMEOUT_SECONDS="0.2"))
    for name, check in checks.items():
        add_readiness_check(app, name, check)
    return app.test_client()


def test_ready_when_every_check_passes():
    response = ready_app(postgres=lambda: None, redis=lambda: True).get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


def test_degraded_when_a_check_fails():
    def redis_down():
        raise ConnectionError("refused")

    response = ready_app(postgres=lambda: None, redis=redis_down).get("/ready")
    assert response.status_code == 503
    assert response.get_json() == {"status": "degraded", "checks": {"postgres": "ok", "redis": "down"}}


def test_a_hung_check_is_down_within_the_timeout():
    release = threading.Event()
    client = ready_app(postgres=lambda: release.wait(5))
    started = time.monotonic()
    try:
        response = client.get("/ready")
    finally:
        release.set()
    assert time.monotonic() - started < 2
    assert response.get_json()["checks"] == {"postgres": "down"}


def test_user_service_ready_reports_its_backends_down():
    # Both point at a closed local port: refused at once, no real backend involved.
    response = user_app(WHATSAPP_BACKEND_TIMEOUT_SECONDS="0.5").test_client().get("/ready")
    assert response.status_code == 503
    assert response.get_json() == {"status": "degraded", "checks": {"postgres": "down", "redis": "down"}}


def log_line(**extra) -> dict:
    record = logging.LogRecord("services.test", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    ContextFilter("user").filter(record)
    return json.loads(JsonFormatter().format(record))


def test_log_lines_are_json_with_the_contract_fields():
    token = current_request_id.set("req-42")
    try:
        entry = log_line(conversation_id="c1")
    finally:
        current_request_id.reset(token)
    assert RFC3339_UTC.fullmatch(entry["time"]), entry["time"]
    assert entry["level"] == "WARNING"
    assert entry["service"] == "user"
    assert entry["request_id"] == "req-42"
    assert entry["message"] == "hello world"
    assert entry["conversation_id"] == "c1"


def test_requests_are_logged_with_their_request_id(capsys):
    client = user_app().test_client()
    capsys.readouterr()
    client.get("/api/v1/users/me", headers={"X-Request-ID": "trace-me-1"})
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    access = [ln for ln in lines if ln.get("path") == "/api/v1/users/me"]
    assert access, lines
    assert access[-1]["request_id"] == "trace-me-1"
    assert access[-1]["status"] == 401


def test_logstash_is_off_without_a_host():
    assert build_logstash_handler(user_settings(), "user") is None


def test_logstash_down_never_blocks_logging(tmp_path: Path):
    # A port that was free a moment ago: nothing listens, connections are refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    queue = tmp_path / "logstash-queue.db"
    settings = user_settings(
        WHATSAPP_LOGSTASH_HOST="127.0.0.1",
        WHATSAPP_LOGSTASH_PORT=str(port),
        WHATSAPP_LOGSTASH_QUEUE_PATH=str(queue),
    )
    handler = build_logstash_handler(settings, "user")
    assert handler is not None
    handler.addFilter(ContextFilter("user"))
    record = logging.LogRecord("services.test", logging.INFO, __file__, 1, "shipped later", (), None)
    try:
        started = time.monotonic()
        for _ in range(200):
            handler.handle(record)
        assert time.monotonic() - started < 0.5
    finally:
        handler.close()
    # Logstash never answered: the events wait in the on-disk queue for a later run.
    with sqlite3.connect(queue) as db:
        assert db.execute("SELECT count(*) FROM event").fetchone()[0] == 200
