"""Verify the rabbitmq role with a real AMQP client (kombu) and the management API."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from base64 import b64encode

import pytest
import whatsapp_testlib as lib
from amqp.exceptions import AccessRefused
from kombu import Connection, Exchange, Queue
from kombu.exceptions import OperationalError

VARS = lib.role_vars()
SPEC = VARS["spec"]
NAME = SPEC["name"]
FIRST = VARS["queues"][0]
PUBLISHER = next(
    u["name"] for u in VARS["users"] if u["write"] != "^$" and FIRST["exchange"].split(".")[-1] in u["write"]
)
CONSUMER = next(u["name"] for u in VARS["users"] if FIRST["name"].replace(".", "\\.") in u["read"])


def amqp(user: str) -> Connection:
    password = VARS["passwords"].get(user, VARS["admin_password"])
    return Connection(
        hostname=VARS["address"],
        port=VARS["port"],
        userid=user,
        password=password,
        virtual_host=VARS["vhost"],
        connect_timeout=5,
        transport_options={"confirm_publish": True},
    )


def api(path: str):
    auth = b64encode(f"{VARS['admin_user']}:{VARS['admin_password']}".encode()).decode()
    url = f"http://{VARS['address']}:{VARS['management_port']}/api/{path}"
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback http)
        return json.loads(response.read())


def queue_path(name: str) -> str:
    return f"queues/{VARS['vhost']}/{name}"


def publish(body: str) -> None:
    exchange = Exchange(FIRST["exchange"], type="direct", durable=True, passive=True)
    with amqp(PUBLISHER) as conn:
        producer = conn.Producer(exchange=exchange)
        # confirm_publish: this returns only after the broker confirmed the message.
        producer.publish(body, routing_key=FIRST["routing_key"], delivery_mode=2, retry=False)


def consume_one(handle, queue_name: str | None = None, user: str | None = None, timeout: float = 10.0):
    """Receive one message and apply handle(message) (ack, reject, requeue)."""
    got = []
    queue = Queue(queue_name or FIRST["name"], no_declare=True)
    with (
        amqp(user or CONSUMER) as conn,
        conn.Consumer(
            queue,
            accept=["json", "text/plain"],
            callbacks=[lambda body, m: (got.append(body), handle(m))],
            prefetch_count=1,
            no_ack=False,
        ),
    ):
        deadline = time.monotonic() + timeout
        while not got and time.monotonic() < deadline:
            try:
                conn.drain_events(timeout=1)
            except TimeoutError:
                continue
    return got[0] if got else None


def drain(queue_name: str, user: str) -> None:
    while consume_one(lambda m: m.ack(), queue_name, user, timeout=2) is not None:
        pass


def test_container_follows_the_spec(host):
    data = lib.assert_standard_container(host, SPEC, VARS["restart_policy"])
    assert data["Config"]["Hostname"] == SPEC["hostname"]


def test_ports_published_on_loopback_only_and_metrics_stay_inside(host):
    bindings = lib.published_bindings(lib.inspect(host, NAME))
    assert bindings["5672/tcp"] == [(VARS["address"], str(VARS["port"]))]
    assert bindings["15672/tcp"] == [(VARS["address"], str(VARS["management_port"]))]
    assert not bindings.get(f"{VARS['prometheus_port']}/tcp")
    for port in (VARS["port"], VARS["management_port"]):
        assert lib.listening_addresses(host, port) == {VARS["address"]}


def test_prometheus_metrics_answer_on_the_backend_network(host):
    data = lib.inspect(host, NAME)
    ip = next(iter(data["NetworkSettings"]["Networks"].values()))["IPAddress"]
    url = f"http://{ip}:{VARS['prometheus_port']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (the container's own address)
        assert b"rabbitmq_" in response.read()


def test_no_guest_user_and_the_service_users_exist():
    names = {u["name"] for u in api("users")}
    assert "guest" not in names
    assert {u["name"] for u in VARS["users"]} | {VARS["admin_user"]} == names


def test_queues_are_quorum_with_delivery_limit_and_dead_lettering():
    for q in VARS["queues"]:
        info = api(queue_path(q["name"]))
        assert info["type"] == "quorum" and info["durable"] is True
        assert info["arguments"]["x-delivery-limit"] == VARS["delivery_limit"]
        assert info["arguments"]["x-dead-letter-exchange"] == VARS["dead_letter_exchange"]
        assert api(queue_path(q["name"] + ".dead"))["type"] == "quorum"


def test_confirmed_publish_then_manual_ack():
    drain(FIRST["name"], CONSUMER)
    body = f"hello-{uuid.uuid4()}"
    publish(body)
    assert consume_one(lambda m: m.ack()) == body
    assert consume_one(lambda m: m.ack(), timeout=2) is None


def test_a_publisher_cannot_consume_the_queue():
    with pytest.raises((AccessRefused, OperationalError), match="ACCESS_REFUSED|access to queue|403"):
        consume_one(lambda m: m.ack(), user=PUBLISHER, timeout=2)


def test_poison_message_ends_in_the_dead_letter_queue():
    dead = FIRST["name"] + ".dead"
    reader = next(u["name"] for u in VARS["users"] if "dead" in u["read"])
    drain(dead, reader)
    body = f"poison-{uuid.uuid4()}"
    publish(body)
    deliveries = []

    def reject_again(payload, message):
        deliveries.append(payload)
        message.requeue()

    # One consumer rejects every delivery (requeue) until the broker stops redelivering.
    queue = Queue(FIRST["name"], no_declare=True)
    with (
        amqp(CONSUMER) as conn,
        conn.Consumer(queue, callbacks=[reject_again], prefetch_count=1, accept=["json", "text/plain"]),
    ):
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 3 and len(deliveries) <= VARS["delivery_limit"] + 2:
            try:
                conn.drain_events(timeout=1)
                idle_since = time.monotonic()
            except TimeoutError:
                continue
    assert deliveries == [body] * (VARS["delivery_limit"] + 1)
    assert consume_one(lambda m: m.ack(), dead, reader) == body


def test_persistent_message_survives_container_re_creation(host):
    drain(FIRST["name"], CONSUMER)
    body = f"durable-{uuid.uuid4()}"
    publish(body)
    lib.recreate(host, NAME)
    assert consume_one(lambda m: m.ack(), timeout=20) == body
