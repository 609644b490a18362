"""Verify the message_processor role: container, health, readiness, and real deliveries
published to RabbitMQ as chat would: stored in MongoDB once (a redelivery is harmless),
marked stored in PostgreSQL, fanned out on Redis, a push job queued for the offline
member's push target, and a malformed delivery dead-lettered."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import kombu
import psycopg
import pymongo
import redis
import requests
import whatsapp_testlib as lib

VARS = lib.role_vars()
BASE = f"http://{VARS['address']}:{VARS['port']}"
ADDRESS = VARS["address"]


def pg() -> psycopg.Connection:
    return psycopg.connect(
        host=ADDRESS,
        port=VARS["postgres_port"],
        dbname=VARS["postgres_database"],
        user=VARS["postgres_superuser"],
        password=VARS["postgres_password"],
        autocommit=True,
    )


def mongo_messages():
    client = pymongo.MongoClient(
        host=ADDRESS,
        port=VARS["mongodb_port"],
        username=VARS["mongodb_user"],
        password=VARS["mongodb_password"],
        authSource=VARS["mongodb_database"],
        directConnection=True,
        serverSelectionTimeoutMS=5000,
    )
    return client[VARS["mongodb_database"]]["messages"]


def publish(body: str) -> None:
    url = (
        f"amqp://svc_chat:{quote(VARS['rabbitmq_chat_password'], safe='')}@{ADDRESS}:{VARS['rabbitmq_port']}/"
        + quote(VARS["rabbitmq_vhost"], safe="")
    )
    with kombu.Connection(url, transport_options={"confirm_publish": True}) as conn:
        kombu.Producer(conn.default_channel).publish(
            body,
            exchange="whatsapp.messages",
            routing_key="message.created",
            content_type="application/json",
            delivery_mode=2,
            retry=False,
        )


def queue_depth(name: str) -> int:
    vhost = quote(VARS["rabbitmq_vhost"], safe="")
    answer = requests.get(
        f"http://{ADDRESS}:{VARS['rabbitmq_management_port']}/api/queues/{vhost}/{name}",
        auth=(VARS["rabbitmq_admin_user"], VARS["rabbitmq_admin_password"]),
        timeout=10,
    )
    answer.raise_for_status()
    return int(answer.json().get("messages", 0))


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def new_conversation() -> tuple[str, str, str]:
    conversation, alice, bob = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    with pg() as conn:
        conn.execute(
            """INSERT INTO conversations.conversations (id, type, direct_key, created_by)
               VALUES (%s, 'direct', %s, %s)""",
            (conversation, f"{min(alice, bob)}:{max(alice, bob)}", alice),
        )
        for user in (alice, bob):
            conn.execute(
                "INSERT INTO conversations.members (conversation_id, user_id) VALUES (%s, %s)",
                (conversation, user),
            )
    return conversation, alice, bob


def give_push_target(user: str) -> None:
    """The user as an account with one push target of no session (pushed while the user
    has no socket at all): message_processor queues jobs only for members with targets."""
    with pg() as conn:
        conn.execute(
            """INSERT INTO accounts.users (id, phone, display_name, password_hash)
               VALUES (%s, %s, 'molecule', 'x')""",
            (user, "+1999" + str(uuid.UUID(user).int)[:10]),
        )
        conn.execute(
            "INSERT INTO accounts.devices (user_id, platform, token) VALUES (%s, 'fcm', %s)",
            (user, f"molecule-{user}"),
        )


def accepted_message(conversation: str, sender: str, seq: int) -> dict:
    message = {
        "id": str(uuid.uuid4()),
        "conversation_id": conversation,
        "seq": seq,
        "sender_id": sender,
        "client_msg_id": f"c{seq}",
        "body": f"hello {seq}",
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "status": "sent",
    }
    with pg() as conn:
        conn.execute(
            "UPDATE conversations.conversations SET last_seq = %s WHERE id = %s", (seq, conversation)
        )
        conn.execute(
            """INSERT INTO conversations.messages (id, conversation_id, seq, sender_id, client_msg_id, body)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            (message["id"], conversation, seq, sender, message["client_msg_id"], message["body"]),
        )
    return message


def test_container_follows_the_spec(host):
    data = lib.assert_standard_container(host, VARS["spec"], VARS["restart_policy"])
    assert data["HostConfig"]["ReadonlyRootfs"] is True


def test_port_published_on_loopback_only(host):
    assert lib.listening_addresses(host, VARS["port"]) == {VARS["address"]}


def test_health_and_readiness():
    status, body, _ = lib.http_json(BASE + "/health")
    assert status == 200 and body["service"] == "message_processor"
    status, body, _ = lib.http_json(BASE + "/ready")
    assert status == 200, body
    assert body["checks"] == {"postgres": "ok", "redis": "ok", "mongodb": "ok", "rabbitmq": "ok"}


def test_a_message_is_stored_once_fanned_out_and_pushed_to_the_offline_member():
    conversation, alice, bob = new_conversation()
    give_push_target(bob)
    events = redis.Redis(host=ADDRESS, port=VARS["redis_port"], password=VARS["redis_password"]).pubsub()
    events.subscribe("whatsapp:events")
    pushes_before = queue_depth("notifications.send")
    message = accepted_message(conversation, alice, 1)
    publish(json.dumps({"message": message, "request_id": "molecule"}))

    def fanned_out():
        got = events.get_message(timeout=1.0)
        if got and got["type"] == "message":
            event = json.loads(got["data"])
            if event["frame"]["message"]["id"] == message["id"]:
                return event
        return None

    event = wait_until(fanned_out, what="the message.new event")
    assert sorted(event["to"]) == sorted([alice, bob])
    assert event["frame"]["type"] == "message.new" and event["frame"]["message"]["seq"] == 1
    stored = mongo_messages().find_one({"_id": message["id"]})
    assert stored["body"] == "hello 1" and stored["conversation_id"] == conversation
    with pg() as conn:
        row = conn.execute(
            "SELECT stored_at FROM conversations.messages WHERE id = %s", (message["id"],)
        ).fetchone()
    assert row[0] is not None
    # Neither member has a live socket: one push job for bob's push target (not for the sender).
    wait_until(lambda: queue_depth("notifications.send") >= pushes_before + 1, what="a push job")
    # A redelivery of the same message: fanned out again (clients de-duplicate), stored once.
    publish(json.dumps({"message": message, "request_id": "molecule-again"}))
    wait_until(fanned_out, what="the repeated event")
    assert mongo_messages().count_documents({"conversation_id": conversation}) == 1


def test_a_malformed_delivery_is_dead_lettered_not_dropped():
    before = queue_depth("messages.process.dead")
    publish("this is not json")
    wait_until(lambda: queue_depth("messages.process.dead") >= before + 1, what="the dead letter")
    # The consumer keeps going: a good message after it is still processed.
    conversation, alice, _ = new_conversation()
    message = accepted_message(conversation, alice, 1)
    publish(json.dumps({"message": message, "request_id": None}))
    wait_until(lambda: mongo_messages().find_one({"_id": message["id"]}), what="the next message stored")
