"""The held list on a throw-away Redis (and the relay's rows on a throw-away PostgreSQL):
message_processor lists what it holds, the outbox relay leaves those rows alone, and those
stored between its two looks, stale entries stop counting, and a Redis that is down never
stops the processor while the relay skips its round."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import psycopg
import pytest
import redis
from psycopg.rows import dict_row
from real_backends import _free_port, redis_url, throwaway_database
from test_chat_store_sql import new_users, post
from test_notification_helpers import notification_settings

from services.chat import store
from services.chat.outbox import republishable
from services.common import held
from services.common.redis_client import create_redis
from services.message_processor.store import mark_stored


@pytest.fixture(scope="module")
def client():
    with redis_url() as url:
        yield redis.Redis.from_url(url, decode_responses=True)


@pytest.fixture(scope="module")
def conn():
    with (
        throwaway_database(["accounts", "conversations"]) as dsn,
        psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn,
    ):
        yield conn


def unstored_rows(conn, count: int) -> list[dict]:
    """`count` accepted messages of a new conversation, as the relay reads them."""
    admin, member = new_users(conn, 2)
    conversation = store.create_group(conn, admin, "g", [member])
    post(conn, conversation, admin, count)
    rows = store.unstored_messages(conn, timedelta(0))
    return [row for row in rows if str(row["conversation_id"]) == str(conversation)]


def ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


def test_held_messages_are_listed_until_released(client):
    batch, behind, other = ids(3), ids(2), ids(1)
    held.hold(client, batch + behind + [None])
    assert held.held_among(client, batch + behind + other) == set(batch + behind)
    held.release(client, batch)
    assert held.held_among(client, batch + behind + other) == set(behind)


def test_the_relay_republishes_only_rows_no_processor_holds(client, conn):
    rows = unstored_rows(conn, 4)
    holding, lost = rows[:2], rows[2:]
    held.hold(client, [str(row["id"]) for row in holding])
    assert republishable(conn, rows, client) == lost
    assert republishable(conn, [], client) == []


def test_a_row_stored_and_released_after_the_relay_read_it_is_not_published(client, conn):
    # The relay reads the rows unstored; meanwhile the processor's batch goes through: it
    # marks them stored, then unlists them. The relay's look at the list finds them unlisted.
    rows = unstored_rows(conn, 3)
    held.hold(client, [str(row["id"]) for row in rows])
    mark_stored(conn, [str(row["id"]) for row in rows[:2]])
    held.release(client, [str(row["id"]) for row in rows])
    assert republishable(conn, rows, client) == rows[2:]


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
        republishable(None, [{"id": uuid.uuid4()}], down)
