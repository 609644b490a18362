"""Verify the gateway role: container, health, and real requests routed to the user service."""

from __future__ import annotations

import random

import whatsapp_testlib as lib

VARS = lib.role_vars()
SPEC = VARS["spec"]
BASE = f"http://{VARS['address']}:{VARS['port']}"


def call(
    method: str, path: str, body: dict | None = None, token: str | None = None, headers: dict | None = None
) -> tuple[int, dict, dict]:
    return lib.http_json(BASE + path, method, body, token=token, headers=headers)


def test_container_follows_the_spec(host):
    data = lib.assert_standard_container(host, SPEC, VARS["restart_policy"])
    assert set(data["NetworkSettings"]["Networks"]) == {n["name"] for n in SPEC["networks"]}


def test_port_published_on_loopback_only(host):
    assert lib.listening_addresses(host, VARS["port"]) == {VARS["address"]}


def test_own_health_and_the_user_service_readiness():
    status, body, _ = call("GET", "/health")
    assert status == 200 and body["service"] == "gateway"
    _, body, _ = call("GET", "/api/v1/health")
    assert body["services"]["user"] == "ok", body


def test_register_and_me_through_the_gateway_with_request_ids():
    phone = f"+1556{random.randint(1000000, 9999999)}"  # noqa: S311 (a test phone number)
    status, body, headers = call(
        "POST",
        "/api/v1/auth/register",
        {"phone": phone, "password": "through the gateway", "display_name": "Gw"},
        headers={"X-Request-ID": "molecule-req-1"},
    )
    assert status == 201, body
    assert headers["X-Request-ID"] == "molecule-req-1"
    status, me, _ = call("GET", "/api/v1/users/me", token=body["access_token"])
    assert status == 200 and me["phone"] == phone
    status, error, _ = call("GET", "/api/v1/users/me")
    assert status == 401 and error["error"]["code"] == "unauthorized"
    status, error, _ = call("GET", "/api/v1/users/me", token=body["access_token"] + "x")
    assert status == 401


def test_openapi_document_is_served():
    status, document, _ = call("GET", "/api/v1/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    assert "/api/v1/auth/register" in document["paths"]
