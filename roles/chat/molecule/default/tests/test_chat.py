"""Verify the chat role (and message_processor beside it): containers, health, readiness,
the WebSocket's 401, and one real message from a socket through RabbitMQ, the processor,
MongoDB and Redis to the other member's socket."""

from __future__ import annotations

import json
import random
import uuid

import pytest
import whatsapp_testlib as lib
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

VARS = lib.role_vars()
CHAT = f"http://{VARS['address']}:{VARS['port']}"
USER = f"http://{VARS['address']}:{VARS['user_port']}"
PROCESSOR = f"http://{VARS['address']}:{VARS['processor_port']}"
WS = f"ws://{VARS['address']}:{VARS['port']}/ws"
BACKENDS = {"postgres": "ok", "redis": "ok", "mongodb": "ok", "rabbitmq": "ok"}


def register(name: str) -> dict:
    phone = f"+1555{random.randint(1000000, 9999999)}"  # noqa: S311 (a test phone number)
    status, body, _ = lib.http_json(
        USER + "/api/v1/auth/register",
        "POST",
        {"phone": phone, "password": "correct horse battery", "display_name": name},
    )
    assert status == 201, body
    return body


def receive_until(ws, frame_type: str, timeout: float = 15.0) -> dict:
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        if frame["type"] == frame_type:
            return frame


@pytest.mark.parametrize("which", ["spec", "processor_spec"])
def test_containers_follow_the_spec(host, which):
    data = lib.assert_standard_container(host, VARS[which], VARS["restart_policy"])
    assert data["HostConfig"]["ReadonlyRootfs"] is True


@pytest.mark.parametrize("port_key", ["port", "processor_port"])
def test_ports_published_on_loopback_only(host, port_key):
    assert lib.listening_addresses(host, VARS[port_key]) == {VARS["address"]}


@pytest.mark.parametrize(("base", "service"), [(CHAT, "chat"), (PROCESSOR, "message_processor")])
def test_health_and_readiness(base, service):
    status, body, _ = lib.http_json(base + "/health")
    assert status == 200 and body["service"] == service
    status, body, _ = lib.http_json(base + "/ready")
    assert status == 200, body
    assert body["checks"] == BACKENDS


def test_websocket_upgrade_without_a_valid_token_is_refused_with_401():
    for url in (WS, WS + "?access_token=not-a-token"):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, open_timeout=5)
        assert refused.value.response.status_code == 401


def test_a_message_travels_from_one_socket_to_the_other_and_into_history():
    alice, bob = register("Alice"), register("Bob")
    status, conversation, _ = lib.http_json(
        CHAT + "/api/v1/conversations",
        "POST",
        {"type": "direct", "member_id": bob["user"]["id"]},
        token=alice["access_token"],
    )
    assert status == 201, conversation
    headers = {"Authorization": f"Bearer {bob['access_token']}"}
    with (
        connect(WS, additional_headers=headers, open_timeout=5) as bob_ws,
        connect(f"{WS}?access_token={alice['access_token']}", open_timeout=5) as alice_ws,
    ):
        client_msg_id = str(uuid.uuid4())
        send = {
            "type": "message.send",
            "client_msg_id": client_msg_id,
            "conversation_id": conversation["id"],
            "body": "hello from molecule",
        }
        alice_ws.send(json.dumps(send))
        ack = receive_until(alice_ws, "message.ack")
        assert ack["client_msg_id"] == client_msg_id and ack["message"]["seq"] == 1
        delivered = receive_until(bob_ws, "message.new")
        assert delivered["message"]["id"] == ack["message"]["id"]
        assert delivered["message"]["body"] == "hello from molecule"
        # The same client_msg_id again: the same message, no second one.
        alice_ws.send(json.dumps(send))
        again = receive_until(alice_ws, "message.ack")
        assert again["message"]["id"] == ack["message"]["id"] and again["message"]["seq"] == 1
    status, page, _ = lib.http_json(
        CHAT + f"/api/v1/conversations/{conversation['id']}/messages", token=bob["access_token"]
    )
    assert status == 200, page
    assert [m["id"] for m in page["messages"]] == [ack["message"]["id"]]
