"""APNs against a local HTTP/2 receiver over TLS (ALPN h2): request, provider token, answers."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from test_notification_helpers import (
    JOB,
    H2Receiver,
    Reply,
    apns_env,
    apns_key_pem,
    job,
    make_tls,
    notification_settings,
)

from services.notification.apns import ProviderToken
from services.notification.base import Device, Outcome, PushPayload
from services.notification.jobs import parse_job
from services.notification.providers import build_senders
from services.notification.settings import load_apns_key

HEX_TOKEN = "a1b2c3d4" * 8
DEVICE = Device(id="dev-apns", platform="apns", token=HEX_TOKEN)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def receiver(tls):
    with H2Receiver(tls) as receiver:
        yield receiver


def apns_sender(receiver: H2Receiver, tls, **env: str):
    settings = apns_env(receiver.url, WHATSAPP_PUSH_PROVIDERS="apns", WHATSAPP_PUSH_CA_FILE=tls.ca_file)
    settings.update(env)
    return build_senders(notification_settings(**settings))["apns"]


@pytest.fixture
def sender(receiver, tls):
    sender = apns_sender(receiver, tls)
    yield sender
    sender.close()


def payload(*, ids_only: bool = False, **overrides) -> PushPayload:
    return PushPayload.from_job(parse_job(job(**overrides)), ids_only=ids_only)


def provider_claims(authorization: str, *, verify_iat: bool = True) -> tuple[dict, dict]:
    scheme, token = authorization.split(" ", 1)
    assert scheme == "bearer"
    public_key = serialization.load_pem_private_key(apns_key_pem().encode(), password=None).public_key()
    claims = jwt.decode(token, public_key, algorithms=["ES256"], options={"verify_iat": verify_iat})
    return jwt.get_unverified_header(token), claims


def test_posts_over_http2_with_topic_push_type_and_provider_token(receiver, sender):
    result = sender.send(DEVICE, payload())
    assert (result.outcome, result.status) == (Outcome.DELIVERED, 200)
    [request] = receiver.requests
    assert (request.protocol, request.alpn) == ("HTTP/2", "h2")
    assert request.pseudo[":method"] == "POST"
    assert request.pseudo[":scheme"] == "https"
    assert request.pseudo[":path"] == f"/3/device/{HEX_TOKEN}"
    assert request.headers["apns-topic"] == "com.example.whatsapp"
    assert request.headers["apns-push-type"] == "alert"
    assert request.headers["apns-priority"] == "10"
    assert request.headers["content-type"] == "application/json"
    header, claims = provider_claims(request.headers["authorization"])
    assert header == {"alg": "ES256", "kid": "KEY1234567", "typ": "JWT"}
    assert claims["iss"] == "TEAM123456"
    assert abs(claims["iat"] - time.time()) < 60
    assert request.json() == {
        "aps": {
            "alert": {"title": "New message", "body": "the secret text"},
            "sound": "default",
            "thread-id": JOB["conversation_id"],
        },
        "type": "message",
        "conversation_id": JOB["conversation_id"],
        "message_id": "m-42",
        "sender_id": JOB["sender_id"],
        "sent_at": "2026-11-25T10:00:00.123Z",
    }


def test_ids_only_alert_has_no_body_and_lets_the_app_fill_it_in(receiver, sender):
    sender.send(DEVICE, payload(ids_only=True))
    [request] = receiver.requests
    aps = request.json()["aps"]
    assert aps["alert"] == {"title": "New message"}
    assert aps["mutable-content"] == 1
    assert b"secret" not in request.body
    assert "body" not in request.json()


def test_pushes_share_one_connection_and_one_provider_token(receiver, sender):
    for _ in range(3):
        assert sender.send(DEVICE, payload()).outcome is Outcome.DELIVERED
    assert receiver.connections == 1
    assert len({r.headers["authorization"] for r in receiver.requests}) == 1


def test_a_long_body_is_cut_to_fit(receiver, tls):
    sender = apns_sender(receiver, tls, WHATSAPP_PUSH_BODY_MAX_BYTES="64")
    sender.send(DEVICE, payload(body="ü" * 4000))
    sender.close()
    body = receiver.requests[0].json()["aps"]["alert"]["body"]
    assert body.endswith("…") and len(body.encode()) <= 64


@pytest.mark.parametrize(
    ("status", "reason", "outcome"),
    [
        (410, "Unregistered", Outcome.INVALID_TOKEN),
        (410, "ExpiredToken", Outcome.INVALID_TOKEN),
        (400, "BadDeviceToken", Outcome.INVALID_TOKEN),
        (400, "DeviceTokenNotForTopic", Outcome.INVALID_TOKEN),
        (400, "BadTopic", Outcome.PERMANENT_FAILURE),
        (413, "PayloadTooLarge", Outcome.PERMANENT_FAILURE),
        (403, "InvalidProviderToken", Outcome.PERMANENT_FAILURE),
        (429, "TooManyRequests", Outcome.RETRYABLE_FAILURE),
        (500, "InternalServerError", Outcome.RETRYABLE_FAILURE),
        (503, "ServiceUnavailable", Outcome.RETRYABLE_FAILURE),
    ],
)
def test_answers_map_to_outcomes(receiver, sender, status, reason, outcome):
    receiver.queue(Reply(status, {"reason": reason}))
    result = sender.send(DEVICE, payload())
    assert (result.outcome, result.status, result.reason) == (outcome, status, reason)


def test_an_expired_provider_token_is_replaced_before_the_retry(receiver, sender):
    receiver.queue(Reply(403, {"reason": "ExpiredProviderToken"}))
    assert sender.send(DEVICE, payload()).outcome is Outcome.RETRYABLE_FAILURE
    assert sender.send(DEVICE, payload()).outcome is Outcome.DELIVERED
    first, second = (r.headers["authorization"] for r in receiver.requests)
    assert first != second
    provider_claims(second)  # a valid token, signed again


def test_a_malformed_device_token_is_invalid_without_a_request(receiver, sender):
    for token in ("not-hex-at-all!", "../../admin", "abc"):
        result = sender.send(Device(id="d", platform="apns", token=token), payload())
        assert result.outcome is Outcome.INVALID_TOKEN
    assert receiver.requests == []


def test_a_timeout_is_retryable(receiver, tls):
    sender = apns_sender(receiver, tls, WHATSAPP_PUSH_TIMEOUT_SECONDS="0.2")
    receiver.queue(Reply(hang=True))
    result = sender.send(DEVICE, payload())
    sender.close()
    assert result.outcome is Outcome.RETRYABLE_FAILURE


def test_an_untrusted_certificate_is_not_accepted(receiver, tls):
    # Without the test CA the receiver's certificate must be refused (TLS is verified).
    sender = apns_sender(receiver, tls, WHATSAPP_PUSH_CA_FILE="")
    result = sender.send(DEVICE, payload())
    sender.close()
    assert result.outcome is Outcome.RETRYABLE_FAILURE
    assert receiver.requests == []


def test_cleartext_base_url_speaks_http2_with_prior_knowledge():
    with H2Receiver() as receiver:
        settings = apns_env(receiver.url, WHATSAPP_PUSH_PROVIDERS="apns")
        sender = build_senders(notification_settings(**settings))["apns"]
        assert sender.send(DEVICE, payload()).outcome is Outcome.DELIVERED
        sender.close()
        [request] = receiver.requests
        assert (request.protocol, request.pseudo[":scheme"]) == ("HTTP/2", "http")


def test_provider_token_is_reused_for_50_minutes_then_renewed():
    now = [1_800_000_000.0]
    tokens = ProviderToken(
        team_id="TEAM123456",
        key_id="KEY1234567",
        private_key=load_apns_key(apns_key_pem()),
        clock=lambda: now[0],
    )
    first = tokens.get()
    now[0] += 49 * 60
    assert tokens.get() == first
    now[0] += 60
    renewed = tokens.get()
    assert renewed != first
    # The fake clock is ahead of the real one: only the signature and the claim are checked.
    assert provider_claims(f"bearer {renewed}", verify_iat=False)[1]["iat"] == int(now[0])
