"""Rate limits: per user on authenticated routes, per client IP on auth and public routes,
429 in the contract's shape with Retry-After, and fail-open when the storage is down."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from test_gateway_helpers import (
    auth_headers,
    closed_port,
    gateway_app,
    gateway_env,
    new_user_id,
    with_fake_services,
)

from services.common.config import SettingsError
from services.gateway.limits import client_ip
from services.gateway.settings import GatewaySettings


def limited_app(**overrides: str) -> tuple[Flask, dict]:
    app = gateway_app(**overrides)
    return app, with_fake_services(app)


def assert_rate_limited(response) -> None:
    assert response.status_code == 429
    assert response.get_json() == {
        "error": {"code": "rate_limited", "message": "too many requests, slow down"}
    }
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response.headers["X-Request-ID"]


def test_auth_routes_are_limited_per_client_ip():
    app, services = limited_app(WHATSAPP_RATE_LIMIT_AUTH="2/minute")
    client = app.test_client()
    login = {"phone": "+15550001", "password": "whatever1"}
    statuses = [client.post("/api/v1/auth/login", json=login).status_code for _ in range(2)]
    assert statuses == [200, 200]
    assert_rate_limited(client.post("/api/v1/auth/register", json=login))
    assert len(services["user"].seen) == 2


def test_ip_budgets_follow_the_rightmost_forwarded_address():
    app, _ = limited_app(WHATSAPP_RATE_LIMIT_AUTH="1/minute")
    client = app.test_client()

    def login(forwarded_for: str) -> int:
        return client.post(
            "/api/v1/auth/login", json={}, headers={"X-Forwarded-For": forwarded_for}
        ).status_code

    assert login("203.0.113.1") == 200
    # Whatever the client itself put on the left proves nothing: same client, same budget.
    assert login("1.2.3.4, 203.0.113.1") == 429
    assert login("5.6.7.8, 203.0.113.1") == 429
    assert login("203.0.113.2") == 200


def test_authenticated_routes_are_limited_per_user_over_all_routes():
    app, services = limited_app(WHATSAPP_RATE_LIMIT_API="3/minute")
    client = app.test_client()
    alice, bob = auth_headers(), auth_headers()
    assert client.get("/api/v1/users/me", headers=alice).status_code == 200
    assert client.get("/api/v1/contacts", headers=alice).status_code == 200
    assert client.get("/api/v1/conversations", headers=alice).status_code == 200
    assert_rate_limited(client.delete("/api/v1/messages/m", headers=alice))
    # Same IP, another user: a budget of its own.
    assert client.get("/api/v1/conversations", headers=bob).status_code == 200
    assert len(services["user"].seen) + len(services["chat"].seen) == 4


def test_one_user_with_several_tokens_shares_one_budget():
    app, _ = limited_app(WHATSAPP_RATE_LIMIT_API="1/minute")
    client = app.test_client()
    user_id = new_user_id()
    assert client.get("/api/v1/users/me", headers=auth_headers(user_id)).status_code == 200
    assert client.get("/api/v1/users/me", headers=auth_headers(user_id)).status_code == 429


def test_auth_and_api_budgets_are_separate():
    app, _ = limited_app(WHATSAPP_RATE_LIMIT_AUTH="1/minute", WHATSAPP_RATE_LIMIT_API="1/minute")
    client = app.test_client()
    assert client.post("/api/v1/auth/login", json={}).status_code == 200
    assert client.get("/api/v1/users/me", headers=auth_headers()).status_code == 200
    assert client.post("/api/v1/auth/refresh", json={}).status_code == 429


def test_public_routes_are_limited_per_ip():
    app, _ = limited_app(WHATSAPP_RATE_LIMIT_PUBLIC="2/minute")
    client = app.test_client()
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert client.get("/api/v1/health").status_code == 200
    assert_rate_limited(client.get("/api/v1/openapi.json"))


def test_probes_and_metrics_are_never_limited():
    app, _ = limited_app(WHATSAPP_RATE_LIMIT_PUBLIC="1/minute", WHATSAPP_RATE_LIMIT_API="1/minute")
    client = app.test_client()
    for path in ("/health", "/metrics"):
        assert [client.get(path).status_code for _ in range(4)] == [200] * 4


def test_unauthenticated_requests_get_401_not_429():
    app, _ = limited_app(WHATSAPP_RATE_LIMIT_API="1/minute")
    client = app.test_client()
    assert [client.get("/api/v1/users/me").status_code for _ in range(3)] == [401] * 3


def test_limits_can_be_switched_off():
    app, _ = limited_app(WHATSAPP_RATE_LIMIT_AUTH="1/minute", WHATSAPP_RATE_LIMIT_ENABLED="false")
    client = app.test_client()
    assert [client.post("/api/v1/auth/login", json={}).status_code for _ in range(3)] == [200] * 3


def test_requests_pass_when_the_limit_storage_is_down(caplog):
    app, services = limited_app(
        WHATSAPP_RATE_LIMIT_STORAGE_URL=f"redis://127.0.0.1:{closed_port()}/0",
        WHATSAPP_RATE_LIMIT_AUTH="1/minute",
        WHATSAPP_RATE_LIMIT_API="1/minute",
    )
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="services.gateway.limits"):
        statuses = [client.post("/api/v1/auth/login", json={}).status_code for _ in range(3)]
        statuses += [client.get("/api/v1/users/me", headers=auth_headers()).status_code for _ in range(3)]
    assert statuses == [200] * 6
    assert len(services["user"].seen) == 6
    # Logged once, then the storage is left alone for a while instead of tried per request.
    warnings = [r for r in caplog.records if "rate limit storage unavailable" in r.getMessage()]
    assert len(warnings) == 1
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "gateway_rate_limit_storage_errors_total 1.0" in metrics


# ---- the client's address ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "headers", "expected"),
    [
        (0, {"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.8"}, "172.31.250.5"),
        (1, {"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9"),
        (1, {"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}, "203.0.113.9"),
        (1, {"X-Forwarded-For": "6.6.6.6,203.0.113.9 "}, "203.0.113.9"),
        (2, {"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.0.0.2"}, "203.0.113.9"),
        (2, {"X-Forwarded-For": "10.0.0.2", "X-Real-IP": "203.0.113.8"}, "203.0.113.8"),
        (1, {"X-Real-IP": "2001:db8::1"}, "2001:db8::1"),
        (1, {}, "172.31.250.5"),
        (1, {"X-Forwarded-For": "not-an-address"}, "172.31.250.5"),
        (1, {"X-Real-IP": "<script>"}, "172.31.250.5"),
    ],
)
def test_client_ip(trusted, headers, expected):
    app = gateway_app(WHATSAPP_TRUSTED_PROXY_COUNT=str(trusted))
    with app.test_request_context("/", headers=headers, environ_base={"REMOTE_ADDR": "172.31.250.5"}):
        assert client_ip() == expected


# ---- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WHATSAPP_RATE_LIMIT_API", "lots"),
        ("WHATSAPP_RATE_LIMIT_AUTH", "10/fortnight"),
        ("WHATSAPP_RATE_LIMIT_STRATEGY", "leaky-bucket"),
        ("WHATSAPP_RATE_LIMIT_STORAGE_URL", "localhost:6379"),
        ("WHATSAPP_RATE_LIMIT_STORAGE_URL", "memcached://cache:11211"),
        ("WHATSAPP_TRUSTED_PROXY_COUNT", "-1"),
        ("WHATSAPP_USER_SERVICE_URL", "whatsapp-user:8081"),
        ("WHATSAPP_CHAT_SERVICE_URL", "http://whatsapp-chat:99999"),
        ("WHATSAPP_CHAT_SERVICE_URL", "http://whatsapp-chat:8082/?x=1"),
        ("WHATSAPP_UPSTREAM_READ_TIMEOUT_SECONDS", "0"),
        ("WHATSAPP_OPENAPI_PATH", "/nonexistent/openapi.yaml"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        GatewaySettings.from_env(gateway_env(**{variable: value}))


def test_settings_defaults():
    env = gateway_env()
    for name in ("WHATSAPP_USER_SERVICE_URL", "WHATSAPP_CHAT_SERVICE_URL", "WHATSAPP_RATE_LIMIT_STORAGE_URL"):
        del env[name]
    settings = GatewaySettings.from_env(env)
    assert settings.service_name == "gateway"
    assert settings.postgres_dsn is None
    assert settings.upstream_urls == {
        "user": "http://whatsapp-user:8081",
        "chat": "http://whatsapp-chat:8082",
    }
    assert settings.limiter_storage_url == settings.redis_url
    assert (settings.rate_limit_api, settings.rate_limit_auth) == ("100/second", "10/second")
    assert settings.openapi_path.is_file()


def test_service_urls_lose_a_trailing_slash():
    settings = GatewaySettings.from_env(gateway_env(WHATSAPP_USER_SERVICE_URL="http://whatsapp-user:8081/"))
    assert settings.user_service_url == "http://whatsapp-user:8081"


def test_a_redis_socket_url_becomes_the_limits_spelling():
    settings = GatewaySettings.from_env(
        gateway_env(WHATSAPP_REDIS_URL="unix:///run/redis.sock?db=0", WHATSAPP_RATE_LIMIT_STORAGE_URL="")
    )
    assert settings.limiter_storage_url == "redis+unix:///run/redis.sock?db=0"
