"""The gateway forwards /api/v1 to the owning service: what goes there and what comes back."""

from __future__ import annotations

import json
import re

import pytest
import requests
from test_gateway_helpers import (
    FailingAdapter,
    auth_headers,
    closed_port,
    gateway_app,
    mount,
    new_user_id,
    with_fake_services,
)

from services.gateway.context import gateway_context
from services.gateway.routing import OWNERS, owner_of


@pytest.fixture
def app():
    return gateway_app()


@pytest.fixture
def services(app):
    return with_fake_services(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.mark.parametrize(
    ("method", "path", "owner"),
    [
        ("GET", "/api/v1/users/me", "user"),
        ("PATCH", "/api/v1/users/me", "user"),
        ("GET", "/api/v1/users", "user"),
        ("GET", "/api/v1/contacts", "user"),
        ("DELETE", "/api/v1/blocks/5b3c2a9e-7c1d-4a7e-9a51-0e0f3e7d7a10", "user"),
        ("POST", "/api/v1/devices", "user"),
        ("POST", "/api/v1/auth/logout", "user"),
        ("GET", "/api/v1/conversations", "chat"),
        ("POST", "/api/v1/conversations/abc/read", "chat"),
        ("DELETE", "/api/v1/messages/m-1", "chat"),
    ],
)
def test_requests_reach_the_owning_service(client, services, method, path, owner):
    response = client.open(path, method=method, headers=auth_headers())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"service": owner, "method": method, "path": path}
    other = "chat" if owner == "user" else "user"
    assert len(services[owner].seen) == 1 and services[other].seen == []


def test_routing_table_covers_the_contracts_prefixes():
    assert set(OWNERS) == {
        "auth",
        "users",
        "contacts",
        "blocks",
        "devices",
        "sessions",
        "keys",
        "conversations",
        "messages",
        "media",
    }
    assert owner_of("/api/v1/conversations/x/messages") == "chat"
    assert owner_of("/api/v1/media/x/thumbnail") == "chat"
    assert owner_of("/api/v1/usersx") is None
    assert owner_of("/api/v2/users/me") is None


def test_method_query_body_and_content_type_are_forwarded_unchanged(client, services):
    body = json.dumps({"client_msg_id": "c-1", "body": "héllo ✓"}).encode()
    response = client.post(
        "/api/v1/conversations/3f0c/messages?before_seq=10&limit=5&phone=%2B155",
        data=body,
        headers=auth_headers(**{"Content-Type": "application/json; charset=utf-8"}),
    )
    assert response.status_code == 200
    seen = services["chat"].last
    assert seen.method == "POST"
    assert seen.path == "/api/v1/conversations/3f0c/messages"
    assert seen.query == b"before_seq=10&limit=5&phone=%2B155"
    assert seen.body == body
    assert seen.headers["Content-Type"] == "application/json; charset=utf-8"


def test_bodyless_get_forwards_no_body(client, services):
    client.get("/api/v1/users/me", headers=auth_headers())
    assert services["user"].last.body == b""


def test_authorization_is_forwarded_so_services_can_check_it_too(client, services):
    headers = auth_headers()
    client.get("/api/v1/users/me", headers=headers)
    assert services["user"].last.headers["Authorization"] == headers["Authorization"]


def test_a_client_sent_user_id_never_reaches_the_service(client, services):
    response = client.get(
        "/api/v1/contacts", headers=auth_headers(new_user_id(), **{"X-User-ID": new_user_id()})
    )
    assert response.status_code == 200
    assert "X-User-Id" not in services["user"].last.headers


def test_public_routes_never_forward_a_client_sent_user_id(client, services):
    response = client.post(
        "/api/v1/auth/login", json={"phone": "+15550001"}, headers={"X-User-ID": new_user_id()}
    )
    assert response.status_code == 200
    assert "X-User-Id" not in services["user"].last.headers


def test_client_request_id_goes_to_the_service_and_back(client, services):
    response = client.get("/api/v1/conversations", headers=auth_headers(**{"X-Request-ID": "req-42.a_b"}))
    assert response.headers["X-Request-ID"] == "req-42.a_b"
    assert services["chat"].last.headers["X-Request-Id"] == "req-42.a_b"


def test_generated_request_id_is_the_one_the_service_sees(client, services):
    response = client.get("/api/v1/conversations", headers=auth_headers(**{"X-Request-ID": "bad id!"}))
    generated = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert services["chat"].last.headers["X-Request-Id"] == generated


def test_only_allow_listed_client_headers_cross(client, services):
    client.get(
        "/api/v1/users/me",
        headers=auth_headers(**{"Cookie": "a=b", "X-Internal-Secret": "x", "Accept": "application/json"}),
    )
    seen = services["user"].last.headers
    assert "Cookie" not in seen and "X-Internal-Secret" not in seen
    assert seen["Accept"] == "application/json"


def test_forwarded_for_chain_and_real_ip(client, services):
    client.get(
        "/api/v1/users/me",
        headers=auth_headers(**{"X-Forwarded-For": "10.9.9.9, 203.0.113.7"}),
        environ_base={"REMOTE_ADDR": "172.31.250.5"},
    )
    seen = services["user"].last.headers
    assert seen["X-Forwarded-For"] == "10.9.9.9, 203.0.113.7, 172.31.250.5"
    assert seen["X-Real-Ip"] == "203.0.113.7"


def test_service_status_body_and_relevant_headers_come_back(client, services):
    response = client.post("/api/v1/auth/register?status=409", json={})
    assert response.status_code == 409
    assert response.get_json()["service"] == "user"
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Retry-After"] == "7"
    assert "Set-Cookie" not in response.headers
    assert "X-Internal-Secret" not in response.headers


def test_no_content_answers_have_no_body_and_no_type(client, services):
    response = client.delete("/api/v1/contacts/x?status=204", headers=auth_headers())
    assert response.status_code == 204
    assert response.get_data() == b""
    assert "Content-Type" not in response.headers


def test_unknown_api_paths_are_404_and_reach_nothing(client, services):
    for path in ("/api/v1/nothing", "/api/v1/usersx", "/api/v2/users/me", "/"):
        response = client.get(path, headers=auth_headers())
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found"
    assert services["user"].seen == [] and services["chat"].seen == []


def test_a_service_refusing_connections_is_503_unavailable():
    app = gateway_app(WHATSAPP_CHAT_SERVICE_URL=f"http://127.0.0.1:{closed_port()}")
    response = app.test_client().get("/api/v1/conversations", headers=auth_headers())
    assert response.status_code == 503
    assert response.get_json() == {
        "error": {"code": "unavailable", "message": "the chat service is unavailable"}
    }
    assert response.headers["X-Request-ID"]


@pytest.mark.parametrize(
    "error",
    [requests.ReadTimeout("read timed out"), requests.ConnectTimeout("connect timed out")],
)
def test_a_service_timing_out_is_503_unavailable(app, client, error):
    mount(app, "user", FailingAdapter(error))
    response = client.post("/api/v1/auth/login", json={"phone": "+15550001", "password": "x" * 8})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "unavailable"


def test_unavailable_answers_are_counted_by_service(app, client):
    mount(app, "user", FailingAdapter(requests.ConnectionError("refused")))
    client.get("/api/v1/users/me", headers=auth_headers())
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'gateway_upstream_requests_total{status="unavailable",upstream="user"} 1.0' in metrics


def test_bodies_over_64_kib_are_413_and_never_forwarded(client, services):
    response = client.post(
        "/api/v1/conversations/c/messages",
        data=b"x" * (64 * 1024 + 1),
        headers=auth_headers(**{"Content-Type": "application/json"}),
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert services["chat"].seen == []


def test_a_body_of_exactly_64_kib_is_forwarded(client, services):
    body = b"x" * (64 * 1024)
    response = client.post(
        "/api/v1/conversations/c/messages",
        data=body,
        headers=auth_headers(**{"Content-Type": "application/json"}),
    )
    assert response.status_code == 200
    assert services["chat"].last.body == body


def test_session_pools_connections_and_ignores_proxy_environment(app):
    with app.app_context():
        upstreams = gateway_context().upstreams
    adapter = upstreams.session.get_adapter("http://127.0.0.1:1/api/v1/users/me")
    assert adapter._pool_maxsize == 32
    assert adapter.max_retries.connect == 1 and adapter.max_retries.read == 0
    assert upstreams.session.trust_env is False
