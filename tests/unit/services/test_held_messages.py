"""The held list on a throw-away Redis: message_processor lists what it holds, the outbox
relay leaves those rows alone, stale entries stop counting, and a Redis that is down never
stops the processor while the relay skips its round."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from real_backends import _free_port, redis_url
from test_notification_helpers import notification_settings

from services.chat.outbox import republishable
from services.common import held
from services.common.redis_client import create_redis


@pytest.fixture(scope="module")
def client():
    with redis_url() as url:
        yield redis.Redis.from_url(url, decode_responses=True)


def ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


def test_held_messages_are_listed_until_released(client):
    batch, behind, other = ids(3), ids(2), ids(1)
    held.hold(client, batch + behind + [None])
    assert held.held_among(client, batch + behind + other) == set(batch + behind)
    held.release(client, batch)
    assert held.held_among(client, batch + behind + other) == set(behind)


def test_the_relay_republishes_only_rows_no_processor_holds(client):
    holding, lost = ids(2), ids(2)
    held.hold(client, holding)
    rows = [{"id": uuid.UUID(message_id), "body": "x"} for message_id in holding + lost]
    assert [str(row["id"]) for row in republishable(rows, client)] == lost
    assert republishable([], client) == []


def test_an_entry_its_processor_stopped_refreshing_goes_stale_and_is_trimmed(client):
    stale, fresh = ids(1), ids(1)
    client.zadd(held.HELD_KEY, {stale[0]: time.time() - held.STALE_SECONDS - 5})
    held.hold(client, fresh)
    assert held.held_among(client, stale + fresh) == set(fresh)
    assert client.zscore(held.HELD_KEY, stale[0]) is None


def test_redis_down_never_stops_the_processor_and_the_relay_skips():
    settings = notification_settings(WHATSAPP_REDIS_URL=f"redis://127.0.0.1:{_free_port()}/0")
    down = create_redis(settings, retries=0)
    started = time.monotonic()
    held.hold(down, ids(3))
    held.release(down, ids(3))
    assert time.monotonic() - started < 5, "a Redis that is down made the processor wait"
    with pytest.raises(redis.RedisError):
        republishable([{"id": uuid.uuid4()}], down)
