"""Access tokens at the gateway: verified once, 401 before any service is reached, the
contract's public routes left public."""

from __future__ import annotations

import time

import pytest
from service_helpers import signer
from test_gateway_helpers import auth_headers, gateway_app, new_user_id, with_fake_services

from services.common.auth import AccessTokenSigner, generate_dev_keypair

PROTECTED = [
    ("GET", "/api/v1/users/me"),
    ("PATCH", "/api/v1/users/me"),
    ("GET", "/api/v1/users/5b3c2a9e-7c1d-4a7e-9a51-0e0f3e7d7a10/presence"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/contacts"),
    ("DELETE", "/api/v1/blocks/x"),
    ("POST", "/api/v1/devices"),
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/api/v1/auth/anything-else"),
    ("GET", "/api/v1/conversations"),
    ("POST", "/api/v1/conversations/c/messages"),
    ("DELETE", "/api/v1/messages/m"),
]


@pytest.fixture
def app():
    return gateway_app()


@pytest.fixture
def services(app):
    return with_fake_services(app)


@pytest.fixture
def client(app):
    return app.test_client()


def foreign_token() -> str:
    """Well-formed, right claims, signed by a key the gateway does not trust."""
    private_pem, _ = generate_dev_keypair()
    return AccessTokenSigner(private_pem, issuer="whatsapp-user", audience="whatsapp", ttl_seconds=900).issue(
        new_user_id()
    )


def expired_token() -> str:
    return signer(ttl_seconds=60).issue(new_user_id(), now=time.time() - 3600)


BAD_AUTHORIZATION = {
    "missing": None,
    "empty": "",
    "not bearer": "Basic dXNlcjpwYXNz",
    "bearer without token": "Bearer ",
    "garbage": "Bearer not.a.jwt",
    "foreign key": "Bearer " + foreign_token(),
    "expired": "Bearer " + expired_token(),
}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("case", sorted(BAD_AUTHORIZATION))
def test_protected_routes_answer_401_without_a_valid_token(client, services, method, path, case):
    value = BAD_AUTHORIZATION[case]
    headers = {} if value is None else {"Authorization": value}
    response = client.open(path, method=method, headers=headers, json={})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert services["user"].seen == [] and services["chat"].seen == []


@pytest.mark.parametrize("path", ["/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh"])
def test_register_login_refresh_need_no_token(client, services, path):
    response = client.post(path, json={"phone": "+15550001"})
    assert response.status_code == 200
    assert services["user"].last.path == path


def test_public_auth_routes_ignore_a_bad_token_and_let_the_service_decide(client, services):
    response = client.post("/api/v1/auth/login", json={}, headers={"Authorization": "Bearer junk"})
    assert response.status_code == 200
    assert "X-User-Id" not in services["user"].last.headers


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/openapi.json", "/health", "/metrics"])
def test_operations_routes_are_public(client, services, path):
    response = client.get(path)
    assert response.status_code == 200


def test_a_valid_token_reaches_the_service_with_its_authorization(client, services):
    headers = auth_headers(new_user_id())
    response = client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 200
    assert services["user"].last.headers["Authorization"] == headers["Authorization"]


def test_the_removed_nginx_verify_route_is_not_served(client, services):
    # GET /api/v1/auth/verify served an nginx auth_request that was never configured: the
    # gateway has no such route now, so the path is forwarded like any other /auth one (the
    # user service answers 404) and no X-User-ID is made up anywhere.
    response = client.get("/api/v1/auth/verify", headers=auth_headers())
    assert response.get_json()["service"] == "user"
    assert services["user"].last.path == "/api/v1/auth/verify"
    assert "X-User-Id" not in services["user"].last.headers
    assert "X-User-ID" not in response.headers
