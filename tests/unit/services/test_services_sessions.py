"""Sessions that end, and the sockets that end with them: services/common/sessions.py
against a real redis-server, and the chat hub's side (which sockets it closes, with
which code, and which upgrades it refuses)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
import redis
from service_helpers import UNREACHABLE_REDIS
from test_scheduled_jobs_redis import REDIS_SERVER, redis_server

from services.chat.hub import CLOSE_UNAUTHORIZED, SOCKETS_KEY, Connection, Hub
from services.chat.ws import query_token
from services.common.errors import RateLimited, Unauthorized
from services.common.presence import Online
from services.common.sessions import (
    ENDED_KEY,
    SESSIONS_CHANNEL,
    end_sessions,
    ended_among,
    parse_announcement,
)

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")


@pytest.fixture(scope="module")
def client():
    with redis_server() as (connect, _process):
        yield redis.Redis(connection_pool=connect().connection_pool, decode_responses=True)


class ClosingSocket:
    def __init__(self):
        self.closed_with: tuple[int | None, str | None] | None = None

    def close(self, reason=None, message=None) -> None:
        self.closed_with = (reason, message)


class Counter:
    def labels(self, *_):
        return self

    def inc(self, *_):
        pass

    def dec(self, *_):
        pass


def hub_with(redis_client: redis.Redis, max_sockets: int = 3) -> Hub:
    settings = SimpleNamespace(
        redis_url=UNREACHABLE_REDIS,
        backend_timeout_seconds=0.5,
        instance_id="test",
        catch_up_concurrency=1,
        ws_max_sockets_per_user=max_sockets,
    )
    metrics = SimpleNamespace(sockets=Counter(), frames_sent=Counter())
    return Hub(SimpleNamespace(settings=settings, redis=redis_client, metrics=metrics))


def open_socket(hub: Hub, user: str, session: str | None, expires_at: float = float("inf")) -> Connection:
    conn = Connection(ClosingSocket(), user, hub, 100, session_id=session, expires_at=expires_at)
    hub.register(conn)
    threading.Thread(target=conn.write_loop, daemon=True).start()
    return conn


def close_code(conn: Connection, timeout: float = 2.0) -> int | None:
    deadline = time.monotonic() + timeout
    while conn.ws.closed_with is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return conn.ws.closed_with[0] if conn.ws.closed_with else None


def test_an_ended_session_is_marked_for_the_life_of_its_tokens_and_announced(client):
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(SESSIONS_CHANNEL)
    assert end_sessions(client, ["s-1", "s-2", "s-1"], access_ttl_seconds=900)
    message = None
    deadline = time.monotonic() + 5
    while message is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
    pubsub.close()
    assert message is not None and parse_announcement(message["data"]) == ["s-1", "s-2"]
    assert 900 < client.ttl(ENDED_KEY.format(sid="s-1")) <= 900 + 60
    assert ended_among(client, ["s-1", "s-3", None]) == {"s-1"}
    assert ended_among(client, [None]) == set()


def test_an_unreachable_redis_is_reported_not_raised():
    unreachable = redis.Redis.from_url(UNREACHABLE_REDIS, socket_connect_timeout=0.2)
    assert end_sessions(unreachable, ["s"], access_ttl_seconds=900) is False


@pytest.mark.parametrize("data", ["", "[]", "{}", '{"ended": "s"}', '{"ended": [1, null]}', "not json"])
def test_malformed_announcements_end_nothing(data):
    assert parse_announcement(data) == []


def test_the_hub_closes_the_sockets_of_ended_sessions_only_with_4401(client):
    hub = hub_with(client)
    mine, also_mine, other = (open_socket(hub, "u", s) for s in ("sid-a", "sid-a", "sid-b"))
    unsessioned = open_socket(hub, "u", None)
    assert hub.end_sessions({"sid-a"}) == 2
    assert close_code(mine) == close_code(also_mine) == CLOSE_UNAUTHORIZED
    assert not other.closed.is_set() and not unsessioned.closed.is_set()


def test_missed_announcements_are_found_again_after_a_broken_subscription(client):
    hub = hub_with(client)
    conn = open_socket(hub, "u", "sid-missed")
    client.set(ENDED_KEY.format(sid="sid-missed"), "1", ex=60)
    assert hub.recheck_sessions() == 1
    assert close_code(conn) == CLOSE_UNAUTHORIZED


def test_expired_sockets_close_unless_reauthenticated(client):
    hub = hub_with(client)
    now = time.time()
    lapsing = open_socket(hub, "u", "s", expires_at=now - 1)
    renewed = open_socket(hub, "u", "s", expires_at=now - 1)
    renewed.reauthenticate("s", now + 600)
    lasting = open_socket(hub, "u", "s", expires_at=now + 600)
    assert hub.end_expired(now) == 1
    assert close_code(lapsing) == CLOSE_UNAUTHORIZED
    assert not renewed.closed.is_set() and not lasting.closed.is_set()


def test_upgrades_are_refused_for_ended_sessions_and_beyond_the_socket_limit(client):
    hub = hub_with(client, max_sockets=2)
    client.set(ENDED_KEY.format(sid="gone"), "1", ex=60)
    with pytest.raises(Unauthorized):
        hub.admit("user-1", "gone")
    hub.admit("user-1", "live")
    hub.admit("user-1", None)
    # Two sockets of user-2 on other instances (the shared sockets set), one expired.
    key = SOCKETS_KEY.format(user_id="user-2")
    client.zadd(key, {"other:1": time.time() + 60, "other:2": time.time() + 60, "dead:1": time.time() - 5})
    with pytest.raises(RateLimited) as refused:
        hub.admit("user-2", "live")
    assert refused.value.status == 429 and "Retry-After" in refused.value.headers
    # Sockets of this instance count even before the presence loop recorded them.
    open_socket(hub, "user-3", None)
    open_socket(hub, "user-3", None)
    with pytest.raises(RateLimited):
        hub.admit("user-3", None)


def test_without_redis_an_upgrade_is_admitted():
    unreachable = redis.Redis.from_url(UNREACHABLE_REDIS, socket_connect_timeout=0.2, socket_timeout=0.2)
    hub_with(unreachable).admit("u", "s")


@pytest.mark.parametrize(
    ("query", "token"),
    [
        (b"access_token=abc.def.ghi", "abc.def.ghi"),
        (b"x=1&access_token=t&access_token=u", "t"),
        (b"%61ccess_token=t", ""),  # a spelling nginx's log redaction would not see
        (b"access_token", ""),
        (b"", ""),
    ],
)
def test_the_query_token_is_read_only_under_its_exact_name(query, token):
    assert query_token(query) == token


def test_a_sockets_presence_key_names_the_session_it_opened_with(client):
    hub = hub_with(client)
    conn = open_socket(hub, "u", "sid-phone")
    key = hub._socket_key(conn)
    assert Online.from_members([key]).sessions == {"sid-phone"}
    # An `auth` frame moves the socket's authority, never its key (the heartbeat and the
    # removal must name the member that was added).
    conn.reauthenticate("sid-phone", time.time() + 600)
    assert hub._socket_key(conn) == key
    legacy = open_socket(hub, "u", None)
    assert Online.from_members([hub._socket_key(legacy)]) == Online(sockets=1, sessions=frozenset())
