"""Access tokens at the gateway: verified once, 401 before any service is reached, the
contract's public routes left public, and GET /api/v1/auth/verify for nginx."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from service_helpers import bearer, signer
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


def test_a_valid_token_is_forwarded_with_its_user(client, services):
    user_id = new_user_id()
    response = client.get("/api/v1/users/me", headers=auth_headers(user_id))
    assert response.status_code == 200
    assert services["user"].last.headers["X-User-Id"] == user_id


# ---- GET /api/v1/auth/verify (nginx auth_request for /ws) --------------------------------


def test_verify_with_a_bearer_header(client, services):
    user_id = new_user_id()
    response = client.get("/api/v1/auth/verify", headers=auth_headers(user_id))
    assert response.status_code == 204
    assert response.headers["X-User-ID"] == user_id
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_data() == b""
    assert services["user"].seen == []


def test_verify_with_an_access_token_query_parameter(client):
    user_id = new_user_id()
    token = signer().issue(user_id)
    response = client.get(f"/api/v1/auth/verify?access_token={quote(token)}")
    assert response.status_code == 204
    assert response.headers["X-User-ID"] == user_id


def test_verify_with_the_token_in_nginx_original_uri(client):
    user_id = new_user_id()
    token = signer().issue(user_id)
    response = client.get("/api/v1/auth/verify", headers={"X-Original-URI": f"/ws?v=1&access_token={token}"})
    assert response.status_code == 204
    assert response.headers["X-User-ID"] == user_id


@pytest.mark.parametrize("case", sorted(BAD_AUTHORIZATION))
def test_verify_refuses_bad_headers(client, case):
    value = BAD_AUTHORIZATION[case]
    headers = {} if value is None else {"Authorization": value}
    response = client.get("/api/v1/auth/verify", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert "X-User-ID" not in response.headers


@pytest.mark.parametrize("token", ["", "junk", foreign_token(), expired_token()])
def test_verify_refuses_bad_query_tokens(client, token):
    for response in (
        client.get(f"/api/v1/auth/verify?access_token={quote(token)}"),
        client.get("/api/v1/auth/verify", headers={"X-Original-URI": f"/ws?access_token={quote(token)}"}),
    ):
        assert response.status_code == 401
        assert "X-User-ID" not in response.headers


def test_verify_does_not_fall_back_to_the_query_when_the_header_is_bad(client):
    token = signer().issue(new_user_id())
    response = client.get(f"/api/v1/auth/verify?access_token={token}", headers=bearer("junk"))
    assert response.status_code == 401


def test_verify_is_never_rate_limited():
    # nginx turns anything but 2xx/401/403 from auth_request into a 500 for the client.
    app = gateway_app(
        WHATSAPP_RATE_LIMIT_API="1/minute",
        WHATSAPP_RATE_LIMIT_AUTH="1/minute",
        WHATSAPP_RATE_LIMIT_PUBLIC="1/minute",
    )
    client = app.test_client()
    headers = auth_headers()
    assert [client.get("/api/v1/auth/verify", headers=headers).status_code for _ in range(5)] == [204] * 5
