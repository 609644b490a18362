"""deliver_job through real senders to local receivers: retries, removal, privacy, metrics, logs."""

# Tokens here are made up and seeded randomness keeps jitter repeatable.
# ruff: noqa: S105, S106, S311

from __future__ import annotations

import logging
import random
from contextlib import contextmanager

import pytest
from prometheus_client import CollectorRegistry
from test_notification_helpers import (
    H2Receiver,
    HttpReceiver,
    Reply,
    apns_env,
    job,
    make_tls,
    notification_settings,
)

from services.notification.base import Device, Outcome, PushPayload, SendResult
from services.notification.delivery import Delivery, PushMetrics, RetryPolicy, deliver_job
from services.notification.jobs import InvalidJob
from services.notification.providers import close_senders
from services.notification.store import LOAD_DEVICES, REMOVE_DEVICE, load_devices, remove_device

SECRET = "the secret text"


@pytest.fixture
def receiver():
    with HttpReceiver() as receiver:
        yield receiver


class Harness:
    """A Delivery from settings, with sleeps, removals and metrics recorded."""

    def __init__(self, **env: str):
        self.sleeps: list[float] = []
        self.removed: list[str] = []
        self.registry = CollectorRegistry()
        self.delivery = Delivery.from_settings(
            notification_settings(**env),
            remove_device=self.removed.append,
            registry=self.registry,
            sleep=self.sleeps.append,
        )
        self.delivery.rng = random.Random(7)

    def count(self, platform: str, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "whatsapp_push_results_total", {"platform": platform, "outcome": outcome}
        )
        return value or 0.0

    def retries(self, platform: str) -> float:
        return self.registry.get_sample_value("whatsapp_push_retries_total", {"platform": platform}) or 0.0

    def close(self) -> None:
        close_senders(self.delivery.senders)


@pytest.fixture
def harness():
    made: list[Harness] = []

    def make(**env: str) -> Harness:
        made.append(Harness(**env))
        return made[-1]

    yield make
    for h in made:
        h.close()


def hook(receiver: HttpReceiver, device_id: str = "dev-hook") -> Device:
    return Device(id=device_id, platform="webhook", token=f"{receiver.url}/hook/{device_id}")


def test_every_device_gets_the_push_and_it_is_counted(receiver, harness):
    h = harness(WHATSAPP_PUSH_PRIVACY_IDS_ONLY="false")
    devices = [hook(receiver, "a"), hook(receiver, "b")]
    summary = deliver_job(job(), devices, h.delivery)
    assert summary.counts() == {"delivered": 2}
    assert [r.device_id for r in summary.results] == ["a", "b"]
    assert all(r.attempts == 1 for r in summary.results)
    assert [r.path for r in receiver.requests] == ["/hook/a", "/hook/b"]
    assert receiver.requests[0].json()["body"] == SECRET
    assert h.count("webhook", "delivered") == 2
    assert h.sleeps == []
    assert summary.request_id == "req-abc.123" and summary.message_id == "m-42"


def test_retryable_failures_back_off_with_full_jitter_then_give_up(receiver, harness):
    h = harness(WHATSAPP_PUSH_MAX_ATTEMPTS="4")
    receiver.default = Reply(503)
    summary = deliver_job(job(), [hook(receiver)], h.delivery)
    [result] = summary.results
    assert (result.outcome, result.attempts, result.status) == (Outcome.RETRYABLE_FAILURE, 4, 503)
    assert len(receiver.requests) == 4
    # Three waits, each drawn from [0, min(max, base * 2^(n-1))]: 0.5, 1, 2 seconds at most.
    assert len(h.sleeps) == 3
    for attempt, wait in enumerate(h.sleeps, start=1):
        assert 0 <= wait <= h.delivery.policy.ceiling(attempt)
    assert h.count("webhook", "retryable_failure") == 1
    assert h.retries("webhook") == 3
    assert summary.requeue_advised


def test_a_push_that_succeeds_on_a_retry_is_delivered(receiver, harness):
    h = harness()
    receiver.queue(Reply(500), Reply(429))
    [result] = deliver_job(job(), [hook(receiver)], h.delivery).results
    assert (result.outcome, result.attempts) == (Outcome.DELIVERED, 3)
    assert len(h.sleeps) == 2
    assert h.count("webhook", "delivered") == 1
    assert h.count("webhook", "retryable_failure") == 0
    assert h.retries("webhook") == 2


def test_retry_after_is_honoured_up_to_the_maximum_wait(receiver, harness):
    h = harness(WHATSAPP_PUSH_RETRY_MAX_SECONDS="8")
    receiver.queue(Reply(429, headers={"Retry-After": "3"}), Reply(503, headers={"Retry-After": "3600"}))
    deliver_job(job(), [hook(receiver)], h.delivery)
    assert h.sleeps[0] >= 3
    assert h.sleeps[1] == 8


def test_one_wait_per_round_not_per_device(receiver, harness):
    h = harness()
    receiver.queue(Reply(503), Reply(503))  # both devices fail once, then succeed
    summary = deliver_job(job(), [hook(receiver, "a"), hook(receiver, "b")], h.delivery)
    assert summary.counts() == {"delivered": 2}
    assert len(h.sleeps) == 1
    assert [r.path for r in receiver.requests] == ["/hook/a", "/hook/b", "/hook/a", "/hook/b"]


def test_invalid_tokens_are_removed_and_not_retried(receiver, harness):
    h = harness()
    receiver.responder = lambda request: Reply(410) if request.path == "/hook/dead" else Reply(200)
    summary = deliver_job(job(), [hook(receiver, "dead"), hook(receiver, "alive")], h.delivery)
    outcomes = {r.device_id: (r.outcome, r.removed) for r in summary.results}
    assert outcomes == {"dead": (Outcome.INVALID_TOKEN, True), "alive": (Outcome.DELIVERED, False)}
    assert h.removed == ["dead"]
    assert [r.path for r in receiver.requests].count("/hook/dead") == 1
    assert h.sleeps == []
    assert h.count("webhook", "invalid_token") == 1
    assert not summary.requeue_advised


def test_a_failed_removal_is_logged_and_the_job_still_completes(receiver, harness, caplog):
    h = harness()

    def broken(device_id: str) -> None:
        raise ConnectionError("postgres is down")

    h.delivery.remove_device = broken
    receiver.queue(Reply(404))
    [result] = deliver_job(job(), [hook(receiver)], h.delivery).results
    assert (result.outcome, result.removed) == (Outcome.INVALID_TOKEN, False)
    assert any("could not remove device" in r.getMessage() for r in caplog.records)


def test_permanent_failures_are_not_retried(receiver, harness):
    h = harness()
    receiver.queue(Reply(400))
    [result] = deliver_job(job(), [hook(receiver)], h.delivery).results
    assert (result.outcome, result.attempts) == (Outcome.PERMANENT_FAILURE, 1)
    assert h.removed == [] and h.sleeps == []
    assert h.count("webhook", "permanent_failure") == 1


def test_disabled_providers_are_skipped_logged_and_counted(receiver, harness, caplog):
    caplog.set_level(logging.INFO, logger="services.notification")
    h = harness()  # no FCM nor APNs credentials
    devices = [
        Device(id="phone", platform="fcm", token="t"),
        Device(id="ipad", platform="apns", token="ab" * 32),
        hook(receiver),
    ]
    summary = deliver_job(job(), devices, h.delivery)
    assert summary.counts() == {"disabled": 2, "delivered": 1}
    assert len(receiver.requests) == 1
    assert h.count("fcm", "disabled") == 1 and h.count("apns", "disabled") == 1
    assert h.removed == [] and h.sleeps == []
    disabled = [r for r in caplog.records if getattr(r, "outcome", None) == "disabled"]
    assert {r.device_id for r in disabled} == {"phone", "ipad"}


def test_an_unknown_platform_is_disabled_not_fatal(harness):
    h = harness()
    [result] = deliver_job(job(), [Device(id="x", platform="pager", token="t")], h.delivery).results
    assert result.outcome is Outcome.DISABLED


def test_the_log_provider_logs_ids_only(harness, caplog):
    caplog.set_level(logging.INFO, logger="services.notification")
    h = harness(WHATSAPP_PUSH_PROVIDERS="log", WHATSAPP_PUSH_PRIVACY_IDS_ONLY="false")
    [result] = deliver_job(job(), [Device(id="phone", platform="fcm", token="t")], h.delivery).results
    assert (result.provider, result.outcome) == ("log", Outcome.DELIVERED)
    assert h.count("log", "delivered") == 1
    logged = [r for r in caplog.records if r.name == "services.notification.log_sender"]
    assert len(logged) == 1 and logged[0].message_id == "m-42"
    assert all(SECRET not in repr(vars(r)) for r in caplog.records)


def test_each_outcome_is_logged_with_the_request_id(receiver, harness, caplog):
    caplog.set_level(logging.INFO, logger="services.notification")
    h = harness()
    receiver.queue(Reply(503))
    deliver_job(job(), [hook(receiver)], h.delivery)
    records = [r for r in caplog.records if r.name == "services.notification.delivery"]
    assert [r.getMessage() for r in records] == ["push attempt 1 failed, will retry", "push delivered"]
    assert all(r.request_id == "req-abc.123" for r in records)
    final = records[-1]
    assert (final.device_id, final.platform, final.outcome, final.attempts) == (
        "dev-hook",
        "webhook",
        "delivered",
        2,
    )
    # The token (a webhook URL may carry a secret) is never logged.
    assert all(receiver.url not in repr(vars(r)) for r in records)


def test_a_sender_that_raises_costs_only_its_device(receiver, harness, caplog):
    h = harness()

    class Broken:
        platform = "fcm"

        def send(self, device: Device, payload: PushPayload) -> SendResult:
            raise RuntimeError("bug")

        def close(self) -> None:
            pass

    h.delivery.senders = {**h.delivery.senders, "fcm": Broken()}
    summary = deliver_job(job(), [Device(id="phone", platform="fcm", token="t"), hook(receiver)], h.delivery)
    assert summary.counts() == {"permanent_failure": 1, "delivered": 1}
    assert any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize("raw", [b"{oops", job(user_id="nope"), job(sent_at=None), {"type": "message"}])
def test_malformed_jobs_are_refused_before_anything_is_sent(receiver, harness, raw):
    h = harness()
    with pytest.raises(InvalidJob):
        deliver_job(raw, [hook(receiver)], h.delivery)
    assert receiver.requests == []
    assert h.count("webhook", "delivered") == 0


def test_metrics_series_exist_at_zero_from_the_start(harness):
    h = harness()
    assert h.count("apns", "invalid_token") == 0.0
    assert (
        h.registry.get_sample_value(
            "whatsapp_push_results_total", {"platform": "fcm", "outcome": "retryable_failure"}
        )
        == 0.0
    )


def test_ids_only_mode_keeps_the_body_away_from_every_provider_and_the_logs(tmp_path, caplog):
    """FCM, APNs (HTTP/2 over TLS) and a webhook, one device each, in the default privacy mode."""
    caplog.set_level(logging.DEBUG)
    tls = make_tls(tmp_path)
    with HttpReceiver() as fcm, H2Receiver(tls) as apns, HttpReceiver() as webhook:
        env = apns_env(
            apns.url,
            WHATSAPP_PUSH_CA_FILE=tls.ca_file,
            WHATSAPP_FCM_BASE_URL=fcm.url,
            WHATSAPP_FCM_PROJECT_ID="whatsapp-test",
            WHATSAPP_FCM_ACCESS_TOKEN="static-test-token",
        )
        registry = CollectorRegistry()
        delivery = Delivery.from_settings(
            notification_settings(**env),
            remove_device=lambda _: None,
            registry=registry,
            sleep=lambda _: None,
        )
        assert delivery.ids_only
        devices = [
            Device(id="phone", platform="fcm", token="fcm-token"),
            Device(id="ipad", platform="apns", token="ab" * 32),
            Device(id="bot", platform="webhook", token=webhook.url + "/hook"),
        ]
        summary = deliver_job(job(), devices, delivery)
        close_senders(delivery.senders)
    assert summary.counts() == {"delivered": 3}
    for receiver in (fcm, apns, webhook):
        [request] = receiver.requests
        assert SECRET.encode() not in request.body
        assert all(SECRET not in value for value in request.headers.values())
        assert request.json()  # something was sent: the ids
    assert "body" not in webhook.requests[0].json()
    assert all(SECRET not in repr(vars(r)) for r in caplog.records)
    assert SECRET not in repr(summary)
    for platform in ("fcm", "apns", "webhook"):
        assert (
            registry.get_sample_value(
                "whatsapp_push_results_total", {"platform": platform, "outcome": "delivered"}
            )
            == 1
        )


def test_retry_policy_delays():
    policy = RetryPolicy(max_attempts=6, base_seconds=0.5, max_seconds=3)
    assert [policy.ceiling(n) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]
    rng = random.Random(1)
    assert all(0 <= policy.delay(4, rng) <= 3 for _ in range(100))
    assert policy.delay(1, rng, retry_after=2) >= 2


def test_push_metrics_can_be_made_in_several_registries():
    PushMetrics.create(CollectorRegistry())
    PushMetrics.create(CollectorRegistry())


class FakeConnection:
    def __init__(self, rows):
        self.rows = rows
        self.executed: list[tuple[str, tuple]] = []

    def execute(self, sql, params):
        self.executed.append((sql, params))
        return self

    def fetchall(self):
        return self.rows

    def fetchone(self):
        return self.rows[0] if self.rows else None


class FakeDatabase:
    def __init__(self, rows):
        self.conn = FakeConnection(rows)

    @contextmanager
    def connection(self, timeout=None):
        yield self.conn


def test_load_devices_reads_the_users_devices():
    db = FakeDatabase(
        [{"id": "d1", "platform": "fcm", "token": "t1"}, {"id": "d2", "platform": "webhook", "token": "u"}]
    )
    devices = load_devices(db, job()["user_id"])
    assert devices == [Device("d1", "fcm", "t1"), Device("d2", "webhook", "u")]
    [(sql, params)] = db.conn.executed
    assert sql == LOAD_DEVICES and "FROM accounts.devices" in sql
    assert params == (job()["user_id"],)


def test_remove_device_goes_through_the_owner_rights_function():
    db = FakeDatabase([{"removed": True}])
    assert remove_device(db, "d1") is True
    assert db.conn.executed == [(REMOVE_DEVICE, ("d1",))]
    assert "accounts.remove_device(%s::uuid)" in REMOVE_DEVICE
    assert remove_device(FakeDatabase([{"removed": False}]), "d1") is False
