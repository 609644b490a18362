"""Webhook pushes against a local HTTP receiver: the contract's body, statuses, refusals."""

# Tokens here are made up.
# ruff: noqa: S106

from __future__ import annotations

import pytest
from test_notification_helpers import JOB, HttpReceiver, Reply, job, notification_settings

from services.notification.base import Device, Outcome, PushPayload, SendResult
from services.notification.jobs import parse_job
from services.notification.providers import build_senders


@pytest.fixture
def receiver():
    with HttpReceiver() as receiver:
        yield receiver


def webhook_sender(**env: str):
    return build_senders(notification_settings(**env))["webhook"]


@pytest.fixture
def sender():
    sender = webhook_sender()
    yield sender
    sender.close()


def payload(*, ids_only: bool = False, **overrides) -> PushPayload:
    return PushPayload.from_job(parse_job(job(**overrides)), ids_only=ids_only)


def hook(receiver: HttpReceiver, path: str = "/hooks/u1?sig=abc") -> Device:
    return Device(id="dev-1", platform="webhook", token=receiver.url + path)


def test_posts_exactly_the_contract_object_with_the_request_id(receiver, sender):
    result = sender.send(hook(receiver), payload())
    assert result == SendResult(Outcome.DELIVERED, status=200)
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hooks/u1?sig=abc"
    assert request.json() == {
        "type": "message",
        "conversation_id": JOB["conversation_id"],
        "message_id": "m-42",
        "sender_id": JOB["sender_id"],
        "sent_at": "2026-11-25T10:00:00.123Z",
        "body": "the secret text",
    }
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-request-id"] == "req-abc.123"
    assert request.headers["user-agent"].startswith("whatsapp-notification/")
    assert "authorization" not in request.headers


def test_ids_only_mode_sends_no_body_key_at_all(receiver, sender):
    assert sender.send(hook(receiver), payload(ids_only=True)).outcome is Outcome.DELIVERED
    [request] = receiver.requests
    assert set(request.json()) == {"type", "conversation_id", "message_id", "sender_id", "sent_at"}
    assert b"secret" not in request.body


def test_no_request_id_header_when_the_job_has_none(receiver, sender):
    sender.send(hook(receiver), payload(request_id=None))
    assert "x-request-id" not in receiver.requests[0].headers


def test_sent_at_is_normalised_to_utc_rfc3339(receiver, sender):
    sender.send(hook(receiver), payload(sent_at="2026-11-25T12:00:00+02:00"))
    assert receiver.requests[0].json()["sent_at"] == "2026-11-25T10:00:00.000Z"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (202, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (404, Outcome.INVALID_TOKEN),
        (410, Outcome.INVALID_TOKEN),
        (408, Outcome.RETRYABLE_FAILURE),
        (429, Outcome.RETRYABLE_FAILURE),
        (500, Outcome.RETRYABLE_FAILURE),
        (502, Outcome.RETRYABLE_FAILURE),
        (503, Outcome.RETRYABLE_FAILURE),
        (400, Outcome.PERMANENT_FAILURE),
        (401, Outcome.PERMANENT_FAILURE),
        (403, Outcome.PERMANENT_FAILURE),
        (413, Outcome.PERMANENT_FAILURE),
    ],
)
def test_status_maps_to_outcome(receiver, sender, status, outcome):
    receiver.queue(Reply(status))
    result = sender.send(hook(receiver), payload())
    assert (result.outcome, result.status) == (outcome, status)


def test_retry_after_is_read(receiver, sender):
    receiver.queue(Reply(429, headers={"Retry-After": "7"}))
    assert sender.send(hook(receiver), payload()).retry_after == 7.0


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed(receiver, sender, status):
    with HttpReceiver() as internal:
        receiver.queue(Reply(status, headers={"Location": internal.url + "/admin"}))
        result = sender.send(hook(receiver), payload())
        assert result.outcome is Outcome.PERMANENT_FAILURE
        assert result.reason == "redirect not followed"
        assert internal.requests == []


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.com/x", "file:///etc/passwd", "javascript:alert(1)", "not a url", "http://"]
)
def test_non_http_urls_are_refused_without_a_request(sender, url):
    result = sender.send(Device(id="dev-1", platform="webhook", token=url), payload())
    assert result == SendResult(Outcome.PERMANENT_FAILURE, reason="not an http(s) URL")


def test_a_timeout_is_retryable(receiver):
    sender = webhook_sender(WHATSAPP_WEBHOOK_TIMEOUT_SECONDS="0.2")
    receiver.queue(Reply(hang=True))
    result = sender.send(hook(receiver), payload())
    sender.close()
    assert result.outcome is Outcome.RETRYABLE_FAILURE
    assert result.reason.startswith("timeout")


def test_a_refused_connection_is_retryable(sender):
    result = sender.send(Device(id="dev-1", platform="webhook", token="http://127.0.0.1:1/hook"), payload())
    assert result.outcome is Outcome.RETRYABLE_FAILURE
    assert "ConnectError" in result.reason


def test_connections_are_reused_between_pushes(receiver, sender):
    for _ in range(3):
        assert sender.send(hook(receiver), payload()).outcome is Outcome.DELIVERED
    assert len({request.peer for request in receiver.requests}) == 1
