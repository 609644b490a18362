"""Verify the user role: container, health, readiness, and real requests against postgres/redis."""

from __future__ import annotations

import random

import whatsapp_testlib as lib

VARS = lib.role_vars()
SPEC = VARS["spec"]
BASE = f"http://{VARS['address']}:{VARS['port']}"


def call(method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    status, answer, _ = lib.http_json(BASE + path, method, body, token=token)
    return status, answer


def test_container_follows_the_spec(host):
    data = lib.assert_standard_container(host, SPEC, VARS["restart_policy"])
    assert data["HostConfig"]["ReadonlyRootfs"] is True


def test_port_published_on_loopback_only(host):
    assert lib.listening_addresses(host, VARS["port"]) == {VARS["address"]}


def test_health_and_readiness():
    status, body = call("GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["service"] == "user"
    status, body = call("GET", "/ready")
    assert status == 200, body
    assert body["checks"] == {"postgres": "ok", "redis": "ok"}


def test_register_login_and_me_against_the_real_database():
    phone = f"+1555{random.randint(1000000, 9999999)}"  # noqa: S311 (a test phone number)
    password = "correct horse battery"
    status, body = call(
        "POST", "/api/v1/auth/register", {"phone": phone, "password": password, "display_name": "Molecule"}
    )
    assert status == 201, body
    assert body["token_type"] == "Bearer" and body["user"]["phone"] == phone
    status, again = call(
        "POST", "/api/v1/auth/register", {"phone": phone, "password": password, "display_name": "Again"}
    )
    assert status == 409 and again["error"]["code"] == "conflict"
    status, login = call("POST", "/api/v1/auth/login", {"phone": phone, "password": password})
    assert status == 200, login
    status, wrong = call("POST", "/api/v1/auth/login", {"phone": phone, "password": "not the password"})
    assert status == 401 and wrong["error"]["code"] == "unauthorized"
    status, me = call("GET", "/api/v1/users/me", token=login["access_token"])
    assert status == 200 and me["id"] == body["user"]["id"]
