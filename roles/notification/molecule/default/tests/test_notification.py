"""Verify the notification role: container, health, readiness, and real push jobs from
RabbitMQ to a webhook device at a local receiver: ids only (privacy on), and a device
whose endpoint answers 410 removed."""

from __future__ import annotations

import json
import random
import time
import uuid
from urllib.parse import quote

import kombu
import psycopg
import requests
import whatsapp_testlib as lib

VARS = lib.role_vars()
ADDRESS = VARS["address"]
BASE = f"http://{ADDRESS}:{VARS['port']}"
USER = f"http://{ADDRESS}:{VARS['user_port']}"
RECEIVER = f"http://{ADDRESS}:18099"


def register_with_device(path: str) -> tuple[dict, str]:
    phone = f"+1555{random.randint(1000000, 9999999)}"  # noqa: S311 (a test phone number)
    status, user, _ = lib.http_json(
        USER + "/api/v1/auth/register",
        "POST",
        {"phone": phone, "password": "correct horse battery", "display_name": "Push"},
    )
    assert status == 201, user
    status, device, _ = lib.http_json(
        USER + "/api/v1/devices",
        "POST",
        {"platform": "webhook", "token": f"http://whatsapp-push-receiver:8099{path}"},
        token=user["access_token"],
    )
    assert status == 201, device
    return user, device["id"]


def queue_job(user_id: str, message_id: str) -> None:
    password = quote(VARS["rabbitmq_processor_password"], safe="")
    url = f"amqp://svc_message_processor:{password}@{ADDRESS}:{VARS['rabbitmq_port']}/" + quote(
        VARS["rabbitmq_vhost"], safe=""
    )
    job = {
        "type": "message",
        "user_id": user_id,
        "conversation_id": str(uuid.uuid4()),
        "message_id": message_id,
        "sender_id": str(uuid.uuid4()),
        "sent_at": "2026-11-25T10:00:00.000Z",
        "body": "secret text",
        "request_id": "molecule",
    }
    with kombu.Connection(url, transport_options={"confirm_publish": True}) as conn:
        kombu.Producer(conn.default_channel).publish(
            json.dumps(job),
            exchange="whatsapp.notifications",
            routing_key="notification.send",
            content_type="application/json",
            delivery_mode=2,
            retry=False,
        )


def received(path: str) -> list[dict]:
    return [r for r in requests.get(RECEIVER, timeout=5).json() if r["path"] == path]


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_container_follows_the_spec(host):
    data = lib.assert_standard_container(host, VARS["spec"], VARS["restart_policy"])
    assert data["HostConfig"]["ReadonlyRootfs"] is True


def test_port_published_on_loopback_only(host):
    assert lib.listening_addresses(host, VARS["port"]) == {ADDRESS}


def test_health_and_readiness():
    status, body, _ = lib.http_json(BASE + "/health")
    assert status == 200 and body["service"] == "notification"
    status, body, _ = lib.http_json(BASE + "/ready")
    assert status == 200, body
    assert body["checks"] == {"postgres": "ok", "rabbitmq": "ok"}


def test_a_push_job_reaches_the_webhook_with_ids_only():
    path = f"/hook/{uuid.uuid4().hex}"
    user, _ = register_with_device(path)
    message_id = str(uuid.uuid4())
    queue_job(user["user"]["id"], message_id)
    (push,) = wait_for(lambda: received(path))
    payload = json.loads(push["body"])
    assert payload["type"] == "message" and payload["message_id"] == message_id
    assert "body" not in payload and "secret text" not in push["body"]


def test_a_device_the_provider_calls_gone_is_removed():
    path = f"/gone/{uuid.uuid4().hex}"
    user, device_id = register_with_device(path)
    queue_job(user["user"]["id"], str(uuid.uuid4()))
    wait_for(lambda: received(path))

    def removed() -> bool:
        with psycopg.connect(
            host=ADDRESS,
            port=VARS["postgres_port"],
            dbname=VARS["postgres_database"],
            user=VARS["postgres_superuser"],
            password=VARS["postgres_password"],
        ) as conn:
            return (
                conn.execute("SELECT count(*) FROM accounts.devices WHERE id = %s", (device_id,)).fetchone()[
                    0
                ]
                == 0
            )

    assert wait_for(removed)
