"""Verify the scheduled_jobs role: container, port, health, readiness, leadership in
/metrics, queue depths, and each job acting on the real stores: an expired message erased
in PostgreSQL and MongoDB with members told, a dead chat instance's socket pruned and
last_seen recorded, a spent refresh token deleted, an old dead letter removed while a
young one stays."""

from __future__ import annotations

import json
import random
import re
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import redis
import whatsapp_testlib as lib
from kombu import Connection, Exchange, Queue
from pymongo import MongoClient

VARS = lib.role_vars()
SPEC = VARS["spec"]
BASE = f"http://{VARS['address']}:{VARS['port']}"
USER = f"http://{VARS['address']}:{VARS['user_port']}"
BACKENDS = {"postgres": "ok", "redis": "ok", "mongodb": "ok", "rabbitmq": "ok"}
# Every schedule is 2 s in converge.yml; leadership may take one lock TTL after a start.
PATIENCE = 30 + float(VARS["leader_lock_ttl_seconds"])


def wait_until(condition, timeout: float = PATIENCE, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {timeout:.0f} s")
        time.sleep(0.5)


def metrics_text() -> str:
    with urllib.request.urlopen(BASE + "/metrics", timeout=10) as response:  # noqa: S310 (loopback http)
        return response.read().decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.M)
    return float(found.group(1)) if found else None


def pg() -> psycopg.Connection:
    p = VARS["postgres"]
    return psycopg.connect(
        host=VARS["address"],
        port=p["port"],
        dbname=p["database"],
        user=p["user"],
        password=p["password"],
        connect_timeout=5,
        autocommit=True,
    )


def mongo():
    m = VARS["mongodb"]
    client = MongoClient(
        VARS["address"],
        m["port"],
        username=m["user"],
        password=m["password"],
        authSource=m["database"],
        directConnection=True,
        serverSelectionTimeoutMS=5000,
        tz_aware=True,
    )
    return client[m["database"]]


def redis_client() -> redis.Redis:
    r = VARS["redis"]
    return redis.Redis(
        host=VARS["address"], port=r["port"], password=r["password"], decode_responses=True, socket_timeout=5
    )


def amqp() -> Connection:
    q = VARS["rabbitmq"]
    return Connection(
        hostname=VARS["address"],
        port=q["port"],
        userid=q["user"],
        password=q["password"],
        virtual_host=q["vhost"],
        connect_timeout=5,
        transport_options={"confirm_publish": True},
    )


def register(name: str) -> dict:
    phone = f"+1555{random.randint(1000000, 9999999)}"  # noqa: S311 (a test phone number)
    status, body, _ = lib.http_json(
        USER + "/api/v1/auth/register",
        "POST",
        {"phone": phone, "password": "correct horse battery", "display_name": name},
    )
    assert status == 201, body
    return body


# ---- the container ----------------------------------------------------------------------------


def test_container_follows_the_spec(host):
    data = lib.assert_standard_container(host, SPEC, VARS["restart_policy"])
    assert data["HostConfig"]["ReadonlyRootfs"] is True
    assert data["HostConfig"]["CapDrop"] == ["ALL"]
    assert data["Config"]["Labels"]["com.whatsapp.role"] == "scheduled_jobs"


def test_port_published_on_loopback_only(host):
    bindings = lib.published_bindings(lib.inspect(host, SPEC["name"]))
    assert [b for port in bindings.values() for b in port] == [(VARS["address"], str(VARS["port"]))]
    assert lib.listening_addresses(host, VARS["port"]) == {VARS["address"]}


def test_health_and_readiness():
    status, body, _ = lib.http_json(BASE + "/health")
    assert status == 200 and body["service"] == "scheduled_jobs"
    status, body, _ = lib.http_json(BASE + "/ready")
    assert status == 200, body
    assert body["checks"] == BACKENDS


def test_the_one_instance_leads_runs_its_jobs_and_reports_queue_depths():
    queues = VARS["monitored_queues"] + VARS["dead_letter_queues"]

    def reported():
        text = metrics_text()
        ready = sample(text, "whatsapp_scheduler_leader") == 1 and all(
            sample(text, "whatsapp_queue_messages", queue=q) is not None for q in queues
        )
        return text if ready else None

    text = wait_until(reported, what="leadership and a depth for every queue")
    for job in ("expire_messages", "prune_presence", "prune_refresh_tokens", "prune_dead_letters"):
        runs = wait_until(
            lambda j=job: sample(metrics_text(), "whatsapp_scheduled_job_runs_total", job=j),
            what=f"a run of {job}",
        )
        assert runs >= 1
    assert sample(text, "whatsapp_scheduled_job_failures_total", job="report_queue_depths") in (None, 0.0)


# ---- the jobs, on the real stores -------------------------------------------------------------


def test_an_expired_message_is_erased_everywhere_and_its_members_are_told():
    conversation, sender, other = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    message_id = f"verify-{uuid.uuid4().hex}"
    past = datetime.now(UTC) - timedelta(seconds=5)
    events = redis_client().pubsub(ignore_subscribe_messages=True)
    events.subscribe(VARS["events_channel"])
    mongo().messages.insert_one(
        {
            "_id": message_id,
            "conversation_id": conversation,
            "seq": 1,
            "sender_id": sender,
            "client_msg_id": "c1",
            "body": "disappearing",
            "created_at": past - timedelta(minutes=1),
            "expires_at": past,
            "deleted": False,
        }
    )
    with pg() as conn, conn.transaction():
        conn.execute(
            """
            INSERT INTO conversations.conversations (id, type, title, created_by)
            VALUES (%s, 'group', 'verify', %s)
            """,
            (conversation, sender),
        )
        conn.execute(
            "INSERT INTO conversations.members (conversation_id, user_id) VALUES (%s, %s), (%s, %s)",
            (conversation, sender, conversation, other),
        )
        conn.execute(
            """
            INSERT INTO conversations.messages
                (id, conversation_id, seq, sender_id, client_msg_id, body, created_at, expires_at, stored_at)
            VALUES (%s, %s, 1, %s, 'c1', 'disappearing', %s, %s, now())
            """,
            (message_id, conversation, sender, past - timedelta(minutes=1), past),
        )
    try:

        def erased():
            with pg() as conn:
                row = conn.execute(
                    "SELECT body, seq FROM conversations.messages WHERE id = %s", (message_id,)
                ).fetchone()
            return row if row is not None and row[0] is None else None

        body, seq = wait_until(erased, what="the expired message's body erased")
        assert seq == 1  # the row stays: its seq remains taken
        assert mongo().messages.find_one({"_id": message_id}) is None

        def deletion_event():
            message = events.get_message(timeout=1.0)
            if message is None:
                return None
            event = json.loads(message["data"])
            frame = event.get("frame", {})
            return (
                event
                if frame.get("type") == "message.deleted" and frame.get("message_id") == message_id
                else None
            )

        event = wait_until(deletion_event, timeout=10, what="the message.deleted event")
        assert sorted(event["to"]) == sorted([sender, other])
        assert event["frame"] == {
            "type": "message.deleted",
            "conversation_id": conversation,
            "message_id": message_id,
        }
    finally:
        events.close()
        with pg() as conn:
            conn.execute("DELETE FROM conversations.conversations WHERE id = %s", (conversation,))


def test_a_dead_instances_socket_is_pruned_and_last_seen_recorded():
    user = register("Stale")
    user_id = user["user"]["id"]
    client = redis_client()
    went_stale = time.time() - 60
    client.zadd(f"sockets:{user_id}", {"dead-instance:1": went_stale})
    client.expire(f"sockets:{user_id}", 300)
    client.set(f"presence:{user_id}", "dead-instance", ex=300)
    wait_until(
        lambda: not client.exists(f"sockets:{user_id}", f"presence:{user_id}"),
        what="the stale socket and the presence key removed",
    )

    def last_seen():
        status, body, _ = lib.http_json(f"{USER}/api/v1/users/{user_id}/presence", token=user["access_token"])
        assert status == 200, body
        return body if body["last_seen"] else None

    presence = wait_until(last_seen, timeout=10, what="last_seen recorded")
    assert presence["online"] is False
    seen = datetime.fromisoformat(presence["last_seen"].replace("Z", "+00:00"))
    assert abs(seen.timestamp() - went_stale) < 2


def test_a_spent_refresh_token_is_deleted_and_a_live_one_kept():
    user = register("Tokens")
    user_id = user["user"]["id"]
    spent_hash = uuid.uuid4().hex * 2
    now = datetime.now(UTC)
    with pg() as conn:
        conn.execute(
            """
            INSERT INTO accounts.refresh_tokens (family_id, user_id, token_hash, issued_at, expires_at)
            VALUES (%s, %s, %s, %s, %s)
            """,
            (str(uuid.uuid4()), user_id, spent_hash, now - timedelta(days=90), now - timedelta(days=60)),
        )
        live = conn.execute(
            "SELECT count(*) FROM accounts.refresh_tokens WHERE user_id = %s AND expires_at > now()",
            (user_id,),
        ).fetchone()[0]
    assert live >= 1  # the one register issued

    def gone():
        with pg() as conn:
            return (
                conn.execute(
                    "SELECT 1 FROM accounts.refresh_tokens WHERE token_hash = %s", (spent_hash,)
                ).fetchone()
                is None
            )

    wait_until(gone, what="the spent refresh token deleted")
    status, _, _ = lib.http_json(
        USER + "/api/v1/auth/refresh", "POST", {"refresh_token": user["refresh_token"]}
    )
    assert status == 200  # the live token was left alone


def test_an_old_dead_letter_is_removed_and_a_young_one_kept():
    queue = VARS["dead_letter_queues"][0]
    origin = VARS["monitored_queues"][0]
    retention = timedelta(days=float(VARS["dead_letter_retention_days"]))
    old_id, young_id = f"verify-old-{uuid.uuid4().hex}", f"verify-young-{uuid.uuid4().hex}"
    exchange = Exchange(VARS["rabbitmq"]["dead_letter_exchange"], type="direct", durable=True, passive=True)

    def dead(moment: datetime) -> dict:
        # What RabbitMQ writes when it dead-letters (time: when it happened).
        return {
            "x-death": [{"queue": origin, "reason": "rejected", "count": 1, "exchange": "", "time": moment}]
        }

    with amqp() as conn:
        channel = conn.channel()
        channel.queue_purge(queue)
        producer = conn.Producer(exchange=exchange)
        now = datetime.now(UTC)
        for message_id, moment in ((old_id, now - 2 * retention), (young_id, now)):
            producer.publish(
                "{}",
                routing_key=origin,
                delivery_mode=2,
                message_id=message_id,
                headers=dead(moment),
                timestamp=int(moment.timestamp()),  # the fallback, should a broker drop x-death
                content_type="application/json",
                retry=False,
            )

    def one_left():
        with amqp() as conn:
            _, count, _ = conn.channel().queue_declare(queue=queue, passive=True)
        return count == 1

    wait_until(one_left, what=f"the old dead letter removed from {queue}")
    time.sleep(1)  # let the job put back what it just looked at
    with amqp() as conn:
        bound = Queue(queue, no_declare=True)(conn.channel())
        left = wait_until(lambda: bound.get(no_ack=False), timeout=10, what="the young dead letter")
        assert left.properties.get("message_id") == young_id
        left.ack()
