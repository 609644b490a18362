"""scheduled_jobs against a real Redis server: the leader lock (two instances, one leader,
take-over when the leader stops renewing, hand-over on release, a lost Redis), two
schedulers of which only the leader runs jobs, and prune_presence's Lua script.

The server is Debian's `redis-server`, started here on 127.0.0.1 at a free port without
persistence and stopped after the module; without it these tests are skipped (the lock
relies on Lua scripts, which no in-process fake here runs).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from datetime import datetime

import psycopg
import pytest
import redis
from prometheus_client import CollectorRegistry
from test_scheduled_jobs import jobs_settings

from services.scheduled_jobs.context import JobsContext
from services.scheduled_jobs.leader import LeaderElection, lock_client
from services.scheduled_jobs.metrics import JobMetrics
from services.scheduled_jobs.presence import PENDING_OFFLINE_KEY, prune_presence
from services.scheduled_jobs.runner import Job, JobService

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)"
)

TTL = 1.0
RENEW = 0.2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_server():
    """A throw-away redis-server on 127.0.0.1: (client factory, process)."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 (a fixed local binary)
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def connect() -> redis.Redis:
        # The client the service's leadership loop uses, with the tests' short TTLs in mind.
        return lock_client(f"redis://127.0.0.1:{port}/0", timeout=TTL / 4, name="test")

    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                connect().ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield connect, process
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server():
    with redis_server() as (connect, _):
        yield connect


@pytest.fixture
def key():
    return f"test:leader:{uuid.uuid4().hex}"


def election(client: redis.Redis, key: str, name: str) -> LeaderElection:
    return LeaderElection(client, key, ttl_seconds=TTL, renew_seconds=RENEW, instance_id=name)


def watch(elections: list[LeaderElection], seconds: float, until=None) -> list[tuple[bool, ...]]:
    """Sample who leads every 10 ms for `seconds` (or until `until()`); never two at once."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states = tuple(e.is_leader() for e in elections)
        assert sum(states) <= 1, f"two leaders at once: {states}"
        samples.append(states)
        if until is not None and until():
            break
        time.sleep(0.01)
    return samples


# ---- the lock ---------------------------------------------------------------------------------


def test_one_leader_and_a_takeover_when_it_stops_renewing(server, key):
    a, b = election(server(), key, "a"), election(server(), key, "b")
    assert a.step() is True
    assert b.step() is False
    a.start()
    b.start()
    try:
        samples = watch([a, b], 2 * TTL)  # several renewals: the leader stays the leader
        assert all(s == (True, False) for s in samples)
        # a stops renewing (a hung or dead process: the lock is not released)...
        a.stop(release=False)
        stopped = time.monotonic()
        # ...and b takes over once the key expired, never while a still thinks it leads.
        watch([a, b], TTL + 3 * RENEW, until=b.is_leader)
        took = time.monotonic() - stopped
        assert b.is_leader() and not a.is_leader()
        assert took <= TTL + 2 * RENEW, took
        assert server().get(key) == b.token
    finally:
        a.stop(release=False)
        b.stop()


def test_releasing_hands_the_lock_over_at_once(server, key):
    a, b = election(server(), key, "a"), election(server(), key, "b")
    assert a.step() and not b.step()
    a.release()
    assert not a.is_leader()
    assert b.step() is True
    assert server().get(key) == b.token
    b.release()
    assert server().get(key) is None


def test_a_leader_whose_key_vanished_stops_leading_at_its_next_round(server, key):
    a, b = election(server(), key, "a"), election(server(), key, "b")
    assert a.step()
    server().delete(key)  # a Redis restart without persistence, or an operator
    assert b.step() is True
    assert a.step() is False
    assert b.is_leader() and not a.is_leader()


def test_renewal_keeps_the_lock_alive_past_its_ttl(server, key):
    a = election(server(), key, "a")
    assert a.step()
    for _ in range(4):
        time.sleep(TTL / 2)
        assert a.step()
    assert server().pttl(key) > (TTL - RENEW) * 1000


def test_an_unreachable_redis_is_survived_and_leadership_lapses_by_itself(key):
    with redis_server() as (connect, process):
        a = election(connect(), key, "a")
        assert a.step()
        process.terminate()
        process.wait(timeout=10)
        assert a.step() is True  # the renewal failed, but the lock cannot have expired yet
        time.sleep(TTL)
        assert a.step() is False  # no renewal for a whole TTL: no longer the leader


def test_a_lost_acquire_answer_is_adopted_rather_than_waited_out(server, key):
    a = election(server(), key, "a")
    server().set(key, a.token, px=int(TTL * 1000))  # a's SET went through, its answer did not
    assert a.step() is True


# ---- two schedulers -----------------------------------------------------------------------------


def scheduler_context(
    client: redis.Redis, key: str, name: str, runs: list[str]
) -> tuple[JobService, Counter]:
    settings = jobs_settings(WHATSAPP_EXPIRE_MESSAGES_INTERVAL_SECONDS="1")
    ctx = JobsContext(
        settings=settings,
        db=None,  # type: ignore[arg-type]  # the probe job touches no store
        redis=client,
        mongo=None,  # type: ignore[arg-type]
        broker=None,  # type: ignore[arg-type]
        metrics=JobMetrics.create(CollectorRegistry()),
        election=LeaderElection(client, key, ttl_seconds=0.6, renew_seconds=0.15, instance_id=name),
    )

    def probe(c: JobsContext, counts: Counter) -> None:
        runs.append(name)
        counts["probes"] += 1

    service = JobService(ctx, jobs=(Job("probe", probe, "expire_messages_interval_seconds"),))
    return service, ctx


def test_two_schedulers_run_jobs_only_on_the_leader_and_the_standby_takes_over(server, key):
    runs: list[str] = []
    a, a_ctx = scheduler_context(server(), key, "a", runs)
    b, b_ctx = scheduler_context(server(), key, "b", runs)
    assert a_ctx.election.step()  # a leads from the start
    a.start()
    b.start()
    try:
        deadline = time.monotonic() + 3
        while "a" not in runs and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runs and set(runs) == {"a"}
        assert (
            b_ctx.metrics.registry.get_sample_value("whatsapp_scheduled_job_runs_total", {"job": "probe"})
            is None
        )
        # a dies without releasing: b must take over and run the job within a few seconds.
        a.scheduler.shutdown(wait=False)
        a_ctx.election.stop(release=False)
        killed = len(runs)
        deadline = time.monotonic() + 3
        while "b" not in runs and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "b" in runs
        assert set(runs[killed:]) == {"b"}
        assert (
            b_ctx.metrics.registry.get_sample_value("whatsapp_scheduled_job_runs_total", {"job": "probe"})
            >= 1
        )
    finally:
        a.stop()
        b.stop()


# ---- prune_presence -----------------------------------------------------------------------------


class FakeConnection:
    def __init__(self, db: FakeDb):
        self.db = db

    def execute(self, sql: str, params: object = None) -> FakeConnection:
        self.db.statements.append((" ".join(sql.split()), params))
        self._rows = [{"owner_id": w} for w in self.db.watchers] if "accounts.contacts" in sql else []
        return self

    def fetchall(self) -> list[dict]:
        return self._rows


class FakeDb:
    def __init__(self, watchers: list[str]):
        self.watchers = watchers
        self.statements: list[tuple[str, object]] = []
        self.down = False

    @contextmanager
    def connection(self):
        if self.down:
            raise psycopg.OperationalError("connection refused")
        yield FakeConnection(self)


def presence_context(client: redis.Redis, db: FakeDb) -> JobsContext:
    return JobsContext(
        settings=jobs_settings(WHATSAPP_JOB_BATCH_SIZE="2"),  # several SCAN rounds
        db=db,  # type: ignore[arg-type]
        redis=client,
        mongo=None,  # type: ignore[arg-type]
        broker=None,  # type: ignore[arg-type]
        metrics=JobMetrics.create(CollectorRegistry()),
        election=type("Always", (), {"is_leader": lambda self: True})(),  # type: ignore[arg-type]
    )


def test_prune_presence_removes_stale_sockets_and_settles_users_gone_offline(server):
    client = server()
    client.flushdb()
    now = time.time()
    gone, still_here, mixed = (str(uuid.uuid4()) for _ in range(3))
    watcher = str(uuid.uuid4())
    client.zadd(f"sockets:{gone}", {"dead-instance:1": now - 30, "dead-instance:2": now - 90})
    client.set(f"presence:{gone}", "dead-instance", ex=60)
    client.zadd(f"sockets:{still_here}", {"live:1": now + 60})
    client.set(f"presence:{still_here}", "live", ex=60)
    client.zadd(f"sockets:{mixed}", {"dead:1": now - 5, "live:2": now + 60})
    client.set(f"presence:{mixed}", "live", ex=60)
    client.zadd("sockets:not-a-uuid", {"x": now - 5})
    db = FakeDb(watchers=[watcher])
    ctx = presence_context(client, db)
    events = client.pubsub(ignore_subscribe_messages=True)
    events.subscribe(ctx.settings.events_channel)

    counts: Counter = Counter()
    prune_presence(ctx, counts)

    assert counts["sockets_removed"] == 3
    assert counts["went_offline"] == 1 and counts["presence_cleared"] == 1
    assert counts["last_seen_recorded"] == 1 and counts["skipped_keys"] == 1
    assert not client.exists(f"sockets:{gone}", f"presence:{gone}")
    assert client.zrange(f"sockets:{mixed}", 0, -1) == ["live:2"] and client.exists(f"presence:{mixed}")
    assert client.exists(f"sockets:{still_here}", f"presence:{still_here}") == 2
    assert client.zcard(PENDING_OFFLINE_KEY) == 0
    recorded = [p for sql, p in db.statements if "record_last_seen" in sql]
    assert len(recorded) == 1 and recorded[0][0] == gone
    seen: datetime = recorded[0][1]
    assert abs(seen.timestamp() - (now - 30)) < 0.01  # the newest stale socket's moment
    message = None
    deadline = time.monotonic() + 2
    while message is None and time.monotonic() < deadline:
        message = events.get_message(timeout=0.1)
    assert message is not None
    event = json.loads(message["data"])
    assert event["to"] == [watcher]
    assert event["frame"]["type"] == "presence" and event["frame"]["user_id"] == gone
    assert event["frame"]["online"] is False and event["frame"]["last_seen"].endswith("Z")
    events.close()

    # A second run finds nothing more to do.
    again: Counter = Counter()
    prune_presence(ctx, again)
    assert again["sockets_removed"] == 0 and again["last_seen_recorded"] == 0


def test_a_user_gone_offline_while_postgres_is_down_is_settled_by_a_later_run(server):
    client = server()
    client.flushdb()
    user = str(uuid.uuid4())
    client.zadd(f"sockets:{user}", {"dead:1": time.time() - 10})
    db = FakeDb(watchers=[])
    db.down = True
    ctx = presence_context(client, db)
    with pytest.raises(psycopg.OperationalError):
        prune_presence(ctx, Counter())
    assert client.zscore(PENDING_OFFLINE_KEY, user) is not None  # remembered, not lost
    db.down = False
    counts: Counter = Counter()
    prune_presence(ctx, counts)
    assert counts["last_seen_recorded"] == 1
    assert client.zcard(PENDING_OFFLINE_KEY) == 0


def test_the_scan_goes_on_where_the_last_bounded_run_stopped(server):
    client = server()
    client.flushdb()
    now = time.time()
    users = [str(uuid.uuid4()) for _ in range(30)]
    for user in users:
        client.zadd(f"sockets:{user}", {"dead:1": now - 10})
    ctx = presence_context(client, FakeDb(watchers=[]))
    ctx.settings = jobs_settings(WHATSAPP_JOB_BATCH_SIZE="2", WHATSAPP_JOB_MAX_BATCHES="2")  # 4 keys a run
    first: Counter = Counter()
    prune_presence(ctx, first)
    assert 0 < first["keys_scanned"] < len(users)
    runs = 1
    while client.keys("sockets:*") and runs < 50:
        prune_presence(ctx, Counter())
        runs += 1
    assert client.keys("sockets:*") == []
    assert runs > 1


def test_concurrent_renewals_from_threads_never_make_two_leaders(server, key):
    elections = [election(server(), key, f"e{i}") for i in range(4)]
    stop = threading.Event()

    def spin(e: LeaderElection) -> None:
        while not stop.is_set():
            e.step()
            time.sleep(0.01)

    threads = [threading.Thread(target=spin, args=(e,)) for e in elections]
    for t in threads:
        t.start()
    try:
        samples = watch(elections, 0.5)
        assert any(any(s) for s in samples)
    finally:
        stop.set()
        for t in threads:
            t.join()
