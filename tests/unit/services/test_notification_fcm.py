"""FCM HTTP v1 against a local receiver: the request, the error mapping, the OAuth exchange."""

# Tokens here are made up.
# ruff: noqa: S106

from __future__ import annotations

from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from test_notification_helpers import (
    JOB,
    HttpReceiver,
    Reply,
    job,
    notification_settings,
    rsa_key_pem,
    service_account,
)

from services.notification.base import Device, Outcome, PushPayload
from services.notification.fcm import SCOPE, ServiceAccountTokens, TokenUnavailable
from services.notification.jobs import parse_job
from services.notification.providers import build_senders
from services.notification.settings import parse_service_account
from services.notification.transport import http_client

DEVICE = Device(id="dev-fcm", platform="fcm", token="fcm-registration-token-1")
SEND_PATH = "/v1/projects/whatsapp-test/messages:send"


@pytest.fixture
def receiver():
    with HttpReceiver() as receiver:
        yield receiver


def fcm_sender(receiver: HttpReceiver, **env: str):
    settings = {
        "WHATSAPP_PUSH_PROVIDERS": "fcm",
        "WHATSAPP_FCM_BASE_URL": receiver.url,
        "WHATSAPP_FCM_PROJECT_ID": "whatsapp-test",
        "WHATSAPP_FCM_ACCESS_TOKEN": "static-test-token",
    }
    settings.update(env)
    return build_senders(notification_settings(**settings))["fcm"]


@pytest.fixture
def sender(receiver):
    sender = fcm_sender(receiver)
    yield sender
    sender.close()


def payload(*, ids_only: bool = False, **overrides) -> PushPayload:
    return PushPayload.from_job(parse_job(job(**overrides)), ids_only=ids_only)


def fcm_error(status: int, canonical: str, error_code: str | None = None, field: str | None = None) -> Reply:
    """An error answer shaped like FCM's (google.rpc.Status with FcmError details)."""
    details: list[dict] = []
    if error_code:
        details.append(
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}
        )
    if field:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": "Invalid registration token"}],
            }
        )
    body = {"error": {"code": status, "message": "error", "status": canonical, "details": details}}
    return Reply(status, body)


def test_posts_a_v1_message_with_the_bearer_token(receiver, sender):
    result = sender.send(DEVICE, payload())
    assert (result.outcome, result.status) == (Outcome.DELIVERED, 200)
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", SEND_PATH)
    assert request.headers["authorization"] == "Bearer static-test-token"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "message": {
            "token": "fcm-registration-token-1",
            "data": {
                "type": "message",
                "conversation_id": JOB["conversation_id"],
                "message_id": "m-42",
                "sender_id": JOB["sender_id"],
                "sent_at": "2026-11-25T10:00:00.123Z",
                "body": "the secret text",
            },
            "notification": {"title": "New message", "body": "the secret text"},
            "android": {"priority": "high"},
        }
    }


def test_ids_only_is_a_data_message_without_any_body(receiver, sender):
    sender.send(DEVICE, payload(ids_only=True))
    message = receiver.requests[0].json()["message"]
    assert "notification" not in message
    assert set(message["data"]) == {"type", "conversation_id", "message_id", "sender_id", "sent_at"}
    assert b"secret" not in receiver.requests[0].body


def test_data_values_are_all_strings(receiver, sender):
    sender.send(DEVICE, payload())
    assert all(isinstance(v, str) for v in receiver.requests[0].json()["message"]["data"].values())


def test_a_long_body_is_cut_to_fit_the_payload_limit(receiver):
    sender = fcm_sender(receiver, WHATSAPP_PUSH_BODY_MAX_BYTES="100")
    sender.send(DEVICE, payload(body="é" * 4000))
    sender.close()
    message = receiver.requests[0].json()["message"]
    shown = message["notification"]["body"]
    assert shown.endswith("…") and len(shown.encode()) <= 100
    assert message["data"]["body"] == shown
    assert len(receiver.requests[0].body) < 4096


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (fcm_error(404, "NOT_FOUND", "UNREGISTERED"), Outcome.INVALID_TOKEN),
        (fcm_error(404, "NOT_FOUND"), Outcome.INVALID_TOKEN),
        (
            fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", field="message.token"),
            Outcome.INVALID_TOKEN,
        ),
        (fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), Outcome.INVALID_TOKEN),
        # An invalid argument that is not the token is our payload's fault: keep the device.
        (
            fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", field="message.data"),
            Outcome.PERMANENT_FAILURE,
        ),
        (fcm_error(403, "PERMISSION_DENIED", "THIRD_PARTY_AUTH_ERROR"), Outcome.PERMANENT_FAILURE),
        (fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), Outcome.RETRYABLE_FAILURE),
        (fcm_error(500, "INTERNAL", "INTERNAL"), Outcome.RETRYABLE_FAILURE),
        (fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"), Outcome.RETRYABLE_FAILURE),
        (Reply(502, b"<html>bad gateway</html>"), Outcome.RETRYABLE_FAILURE),
        # A static token cannot be refreshed: a 401 will repeat.
        (fcm_error(401, "UNAUTHENTICATED"), Outcome.PERMANENT_FAILURE),
    ],
)
def test_errors_map_to_outcomes(receiver, sender, reply, outcome):
    receiver.queue(reply)
    result = sender.send(DEVICE, payload())
    assert (result.outcome, result.status) == (outcome, reply.status)


def test_quota_exceeded_carries_retry_after(receiver, sender):
    receiver.queue(
        Reply(429, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED").body, {"Retry-After": "30"})
    )
    result = sender.send(DEVICE, payload())
    assert (result.outcome, result.reason, result.retry_after) == (
        Outcome.RETRYABLE_FAILURE,
        "QUOTA_EXCEEDED",
        30.0,
    )


def service_account_receiver(receiver: HttpReceiver, token_answers: list[Reply], send_answers: list[Reply]):
    """Route the token endpoint and the send endpoint of one receiver to their own answers."""
    tokens, sends = iter(token_answers), iter(send_answers)

    def respond(request):
        if request.path == "/token":
            return next(tokens, Reply(200, {"access_token": "ya29.later", "expires_in": 3599}))
        return next(sends, Reply(200, {"name": "projects/whatsapp-test/messages/1"}))

    receiver.responder = respond


def test_service_account_gets_an_oauth_token_once_and_uses_it(receiver):
    service_account_receiver(
        receiver, [Reply(200, {"access_token": "ya29.first", "expires_in": 3599, "token_type": "Bearer"})], []
    )
    sender = fcm_sender(
        receiver,
        WHATSAPP_FCM_ACCESS_TOKEN="",
        WHATSAPP_FCM_PROJECT_ID="",
        WHATSAPP_FCM_CREDENTIALS_JSON=service_account(receiver.url + "/token"),
    )
    assert sender.send(DEVICE, payload()).outcome is Outcome.DELIVERED
    assert sender.send(DEVICE, payload()).outcome is Outcome.DELIVERED
    sender.close()
    token_requests = [r for r in receiver.requests if r.path == "/token"]
    sends = [r for r in receiver.requests if r.path != "/token"]
    assert len(token_requests) == 1
    # The project id came from the key file.
    assert [r.path for r in sends] == [SEND_PATH, SEND_PATH]
    assert all(r.headers["authorization"] == "Bearer ya29.first" for r in sends)

    form = parse_qs(token_requests[0].body.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    public_key = serialization.load_pem_private_key(rsa_key_pem().encode(), password=None).public_key()
    claims = jwt.decode(
        form["assertion"][0], public_key, algorithms=["RS256"], audience=receiver.url + "/token"
    )
    assert claims["iss"] == "push@whatsapp-test.iam.gserviceaccount.com"
    assert claims["scope"] == SCOPE
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(form["assertion"][0])["kid"] == "key-1"


def test_a_401_with_a_service_account_fetches_a_new_token_on_the_retry(receiver):
    service_account_receiver(
        receiver,
        [Reply(200, {"access_token": "ya29.first", "expires_in": 3599})],
        [fcm_error(401, "UNAUTHENTICATED")],
    )
    sender = fcm_sender(
        receiver,
        WHATSAPP_FCM_ACCESS_TOKEN="",
        WHATSAPP_FCM_CREDENTIALS_JSON=service_account(receiver.url + "/token"),
    )
    assert sender.send(DEVICE, payload()).outcome is Outcome.RETRYABLE_FAILURE
    assert sender.send(DEVICE, payload()).outcome is Outcome.DELIVERED
    sender.close()
    sends = [r.headers["authorization"] for r in receiver.requests if r.path != "/token"]
    assert sends == ["Bearer ya29.first", "Bearer ya29.later"]


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (Reply(400, {"error": "invalid_grant"}), Outcome.PERMANENT_FAILURE),
        (Reply(503, b"down"), Outcome.RETRYABLE_FAILURE),
    ],
)
def test_a_failing_token_endpoint_sends_nothing(receiver, reply, outcome):
    service_account_receiver(receiver, [reply], [])
    sender = fcm_sender(
        receiver,
        WHATSAPP_FCM_ACCESS_TOKEN="",
        WHATSAPP_FCM_CREDENTIALS_JSON=service_account(receiver.url + "/token"),
    )
    result = sender.send(DEVICE, payload())
    sender.close()
    assert result.outcome is outcome
    assert "token endpoint" in result.reason
    assert [r.path for r in receiver.requests] == ["/token"]


def test_the_access_token_is_renewed_before_it_expires(receiver):
    service_account_receiver(
        receiver,
        [
            Reply(200, {"access_token": "ya29.first", "expires_in": 3600}),
            Reply(200, {"access_token": "ya29.second", "expires_in": 3600}),
        ],
        [],
    )
    now = [1_000_000.0]
    client = http_client(timeout=2)
    tokens = ServiceAccountTokens(
        parse_service_account(service_account(receiver.url + "/token")), client, clock=lambda: now[0]
    )
    assert tokens.get() == "ya29.first"
    now[0] += 3600 - 301
    assert tokens.get() == "ya29.first"
    now[0] += 2  # inside the five-minute margin
    assert tokens.get() == "ya29.second"
    client.close()


def test_an_unreachable_token_endpoint_is_retryable():
    client = http_client(timeout=2)
    tokens = ServiceAccountTokens(parse_service_account(service_account("http://127.0.0.1:1/token")), client)
    with pytest.raises(TokenUnavailable) as raised:
        tokens.get()
    client.close()
    assert raised.value.retryable
