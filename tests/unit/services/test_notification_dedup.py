"""The push ledger on a throw-away Redis: one push per (message, user) whatever is repeated,
a redelivered copy takes over a claim its holder may have died with, a requeued job can be
tried again, and a Redis that is down costs the check, never the push."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from real_backends import _free_port, redis_url
from test_notification_helpers import job, notification_settings

from services.common.redis_client import create_redis
from services.notification.dedup import DONE, PENDING, PushLedger, ledger_key
from services.notification.jobs import parse_job


@pytest.fixture(scope="module")
def client():
    with redis_url() as url:
        yield redis.Redis.from_url(url, decode_responses=True)


@pytest.fixture
def ledger(client):
    return PushLedger(client, claim_seconds=60, done_seconds=600)


def a_job(**overrides):
    return parse_job(job(message_id=str(uuid.uuid4()), **overrides))


def test_a_job_delivered_once_is_not_delivered_again(ledger, client):
    push = a_job()
    assert ledger.claim(push, redelivered=False)
    assert client.get(ledger_key(push)) == PENDING
    assert 0 < client.ttl(ledger_key(push)) <= 60
    ledger.done(push)
    assert client.get(ledger_key(push)) == DONE
    assert 60 < client.ttl(ledger_key(push)) <= 600
    # A copy published again, and a copy RabbitMQ redelivers: both are duplicates now.
    assert not ledger.claim(push, redelivered=False)
    assert not ledger.claim(push, redelivered=True)


def test_a_copy_of_a_job_in_flight_is_a_duplicate_unless_redelivered(ledger):
    push = a_job()
    assert ledger.claim(push, redelivered=False)
    # The same job published twice (an outbox relay, a processor retry): dropped.
    assert not ledger.claim(push, redelivered=False)
    # RabbitMQ redelivers the holder's copy when its consumer died: that copy delivers.
    assert ledger.claim(push, redelivered=True)


def test_the_same_message_for_another_user_is_its_own_push(ledger):
    push = a_job()
    other = parse_job(job(message_id=push.message_id, user_id=str(uuid.uuid4())))
    assert ledger.claim(push, redelivered=False)
    assert ledger.claim(other, redelivered=False)


def test_a_released_claim_lets_the_requeued_job_try_again(ledger, client):
    push = a_job()
    assert ledger.claim(push, redelivered=False)
    ledger.release(push)
    assert client.get(ledger_key(push)) is None
    assert ledger.claim(push, redelivered=True)


def test_redis_down_delivers_without_the_check(caplog):
    settings = notification_settings(WHATSAPP_REDIS_URL=f"redis://127.0.0.1:{_free_port()}/0")
    # The client the service makes for its ledger: no retries, so no wait either.
    ledger = PushLedger(create_redis(settings, retries=0), claim_seconds=60, done_seconds=600)
    started = time.monotonic()
    push = a_job()
    assert ledger.claim(push, redelivered=False)
    assert ledger.claim(push, redelivered=False)
    ledger.done(push)
    ledger.release(push)
    assert "delivering without the duplicate check" in caplog.text
    assert time.monotonic() - started < 5, "a Redis that is down made the ledger wait"


def test_the_ledger_times_come_from_the_settings():
    settings = notification_settings()
    assert settings.push_claim_seconds == 300
    assert settings.push_dedup_seconds == 86400
    assert notification_settings(WHATSAPP_PUSH_CLAIM_SECONDS="30").push_claim_seconds == 30
