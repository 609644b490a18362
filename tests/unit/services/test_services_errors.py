"""Every error answers in the contract's shape, and bad input fails before any store call."""

from __future__ import annotations

import json

import psycopg
import pymongo.errors
import pytest
import redis
from service_helpers import bearer, signer, store_untouched, user_app, user_settings

from services.common.app import MAX_BODY_BYTES, create_base_app
from services.common.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationError,
)

REGISTER = "/api/v1/auth/register"


@pytest.fixture
def app():
    return user_app()


@pytest.fixture
def client(app):
    return app.test_client()


def error_of(response, status: int, code: str) -> str:
    """Assert the contract's error shape; return the message."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.content_type
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


def test_malformed_json_is_a_validation_error(app, client):
    response = client.post(REGISTER, data='{"phone": "+15550001', content_type="application/json")
    assert "not valid JSON" in error_of(response, 400, "validation_error")
    assert store_untouched(app)


def test_wrong_content_type_is_a_validation_error(app, client):
    response = client.post(REGISTER, data="phone=+15550001", content_type="application/x-www-form-urlencoded")
    assert "Content-Type" in error_of(response, 400, "validation_error")
    assert store_untouched(app)


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "42", "null", ""])
def test_body_that_is_not_an_object_is_a_validation_error(app, client, body):
    response = client.post(REGISTER, data=body, content_type="application/json")
    error_of(response, 400, "validation_error")
    assert store_untouched(app)


def test_deeply_nested_json_is_a_validation_error_not_a_500(app, client):
    response = client.post(REGISTER, data="[" * 60_000, content_type="application/json")
    error_of(response, 400, "validation_error")


def test_invalid_utf8_is_a_validation_error(client):
    response = client.post(REGISTER, data=b'{"phone": "\xff"}', content_type="application/json")
    error_of(response, 400, "validation_error")


def test_wrong_type_names_the_field(app, client):
    response = client.post(REGISTER, json={"phone": 15550001, "password": "long enough", "display_name": "A"})
    message = error_of(response, 400, "validation_error")
    assert message.startswith("phone:"), message
    assert store_untouched(app)


def test_missing_field_is_named(app, client):
    response = client.post(REGISTER, json={"phone": "+15550001", "password": "long enough"})
    assert "display_name: is required" in error_of(response, 400, "validation_error")


def test_unknown_field_is_refused(app, client):
    body = {"phone": "+15550001", "password": "long enough", "display_name": "A", "admin": True}
    assert "admin" in error_of(client.post(REGISTER, json=body), 400, "validation_error")


def test_oversized_body_is_413(app, client):
    big = json.dumps({"display_name": "x" * (MAX_BODY_BYTES + 1)})
    response = client.post(REGISTER, data=big, content_type="application/json")
    error_of(response, 413, "payload_too_large")
    assert store_untouched(app)


def test_oversized_body_is_413_whatever_the_content_type(client):
    response = client.post(REGISTER, data=b"x" * (MAX_BODY_BYTES + 10), content_type="text/plain")
    error_of(response, 413, "payload_too_large")


def test_body_at_the_limit_is_read(client):
    # Exactly 64 KiB of JSON is allowed: the answer is about its content, not its size.
    padding = MAX_BODY_BYTES - len(json.dumps({"phone": ""}))
    body = json.dumps({"phone": "x" * padding})
    assert len(body) == MAX_BODY_BYTES
    response = client.post(REGISTER, data=body, content_type="application/json")
    error_of(response, 400, "validation_error")


def test_unknown_route_is_404(client):
    error_of(client.get("/api/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_405_with_allow(client):
    response = client.delete(REGISTER)
    error_of(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_user_id_that_is_not_a_uuid_is_404_not_500(app, client):
    token = signer().issue("6f1c7c3e-4c52-4a63-9d2b-0d6f1f1c2a11")
    error_of(client.get("/api/v1/users/not-a-uuid", headers=bearer(token)), 404, "not_found")
    error_of(client.delete("/api/v1/contacts/42", headers=bearer(token)), 404, "not_found")
    error_of(
        client.delete("/api/v1/devices/x'; DROP TABLE users;--", headers=bearer(token)), 404, "not_found"
    )
    assert store_untouched(app)


def test_contact_user_id_that_is_not_a_uuid_is_404(app, client):
    token = signer().issue("6f1c7c3e-4c52-4a63-9d2b-0d6f1f1c2a11")
    response = client.post("/api/v1/contacts", json={"user_id": "nobody"}, headers=bearer(token))
    error_of(response, 404, "not_found")
    assert store_untouched(app)


def test_adding_yourself_as_contact_is_a_validation_error(app, client):
    me = "6f1c7c3e-4c52-4a63-9d2b-0d6f1f1c2a11"
    response = client.post("/api/v1/blocks", json={"user_id": me}, headers=bearer(signer().issue(me)))
    error_of(response, 400, "validation_error")
    assert store_untouched(app)


def test_phone_query_is_validated_before_the_store(app, client):
    token = signer().issue("6f1c7c3e-4c52-4a63-9d2b-0d6f1f1c2a11")
    error_of(client.get("/api/v1/users", headers=bearer(token)), 400, "validation_error")
    error_of(client.get("/api/v1/users?phone=12345", headers=bearer(token)), 400, "validation_error")
    assert store_untouched(app)


# ---- the handler itself, on a bare app with routes that fail on purpose --------------------


FAILURES = {
    "validation": (ValidationError("bad"), 400, "validation_error"),
    "unauthorized": (Unauthorized(), 401, "unauthorized"),
    "forbidden": (Forbidden(), 403, "forbidden"),
    "blocked": (Forbidden("you are blocked", code="blocked"), 403, "blocked"),
    "not-found": (NotFound(), 404, "not_found"),
    "conflict": (Conflict(), 409, "conflict"),
    "too-large": (PayloadTooLarge(), 413, "payload_too_large"),
    "rate-limited": (RateLimited(retry_after=7), 429, "rate_limited"),
    "unavailable": (Unavailable(), 503, "unavailable"),
    "postgres-down": (psycopg.OperationalError("connection refused"), 503, "unavailable"),
    "redis-down": (redis.ConnectionError("Error 111 connecting"), 503, "unavailable"),
    "mongo-down": (pymongo.errors.ServerSelectionTimeoutError("no servers"), 503, "unavailable"),
    "mongo-timeout": (pymongo.errors.NetworkTimeout("timed out"), 503, "unavailable"),
    "mongo-refused": (pymongo.errors.OperationFailure("not primary", code=10107), 503, "unavailable"),
    "mongo-write": (pymongo.errors.WriteConcernError("replication timed out"), 503, "unavailable"),
    "bug": (KeyError("secret_internal_detail"), 500, "internal_error"),
}


@pytest.fixture
def failing_client():
    app = create_base_app("test", user_settings())

    @app.get("/fail/<name>")
    def fail(name: str):
        raise FAILURES[name][0]

    return app.test_client()


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_each_error_type_renders_its_status_and_code(failing_client, name):
    _, status, code = FAILURES[name]
    response = failing_client.get(f"/fail/{name}")
    message = error_of(response, status, code)
    assert "Traceback" not in message
    assert "secret_internal_detail" not in response.get_data(as_text=True)


def test_rate_limited_carries_retry_after(failing_client):
    assert failing_client.get("/fail/rate-limited").headers["Retry-After"] == "7"


def test_unauthorized_names_the_scheme(failing_client):
    assert failing_client.get("/fail/unauthorized").headers["WWW-Authenticate"] == "Bearer"


def test_unexpected_error_is_logged_with_its_traceback(failing_client, caplog):
    failing_client.get("/fail/bug")
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert errors, "the 500 was not logged"
    assert errors[-1].exc_info is not None
