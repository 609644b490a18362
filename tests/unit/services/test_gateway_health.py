"""GET /api/v1/health (every service's /ready, aggregated) and the gateway's own probes."""

from __future__ import annotations

import time

import requests
from test_gateway_helpers import (
    FailingAdapter,
    FakeService,
    FlaskAdapter,
    closed_port,
    gateway_app,
    mount,
    with_fake_services,
)


def test_all_services_ready_is_200_ok():
    app = gateway_app()
    services = with_fake_services(app)
    response = app.test_client().get("/api/v1/health", headers={"X-Request-ID": "health-1"})
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "services": {"user": "ok", "chat": "ok"}}
    # Each service's /ready was asked, under the same request id.
    for service in services.values():
        assert service.ready_request_ids == ["health-1"]
        assert service.seen == []
    assert response.headers["X-Request-ID"] == "health-1"


def test_a_service_not_ready_is_503_degraded():
    app = gateway_app()
    services = with_fake_services(app)
    services["chat"].ready_status = 503
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == 503
    assert response.get_json() == {"status": "degraded", "services": {"user": "ok", "chat": "down"}}


def test_a_service_refusing_connections_is_down():
    app = gateway_app(WHATSAPP_USER_SERVICE_URL=f"http://127.0.0.1:{closed_port()}")
    mount(app, "chat", FlaskAdapter(FakeService("chat").app))
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == 503
    assert response.get_json() == {"status": "degraded", "services": {"user": "down", "chat": "ok"}}


def test_services_are_asked_in_parallel_and_slow_ones_count_as_down():
    app = gateway_app(WHATSAPP_HEALTH_TIMEOUT_SECONDS="0.3")

    class SlowAdapter(FailingAdapter):
        def send(self, request, stream=False, **kwargs):
            time.sleep(1.5)
            raise requests.ReadTimeout("too slow")

    with_fake_services(app)
    mount(app, "user", SlowAdapter(requests.ReadTimeout("unused")))
    mount(app, "chat", SlowAdapter(requests.ReadTimeout("unused")))
    started = time.monotonic()
    response = app.test_client().get("/api/v1/health")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.get_json()["services"] == {"user": "down", "chat": "down"}
    # Bounded by the timeout (+0.5 s grace), not by the sum of the slow answers.
    assert elapsed < 1.4


def test_gateway_ready_checks_redis():
    # The helpers point WHATSAPP_REDIS_URL at a port where nothing listens.
    response = gateway_app().test_client().get("/ready")
    assert response.status_code == 503
    assert response.get_json() == {"status": "degraded", "checks": {"redis": "down"}}


def test_gateway_health_is_liveness_only():
    response = gateway_app().test_client().get("/health")
    assert response.status_code == 200
    assert response.get_json()["service"] == "gateway"


def test_metrics_label_forwarded_routes_by_rule():
    app = gateway_app()
    with_fake_services(app)
    client = app.test_client()
    client.get("/api/v1/health")
    client.post("/api/v1/auth/login", json={})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'route="/api/v1/auth/<path:rest>"' in text
    assert 'gateway_upstream_requests_total{status="200",upstream="user"} 1.0' in text
    assert "gateway_upstream_request_duration_seconds_bucket{" in text
