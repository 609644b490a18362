"""Layer 4, end to end: a session without an open socket gets a push on each of its devices.

FCM and APNs cannot be reached from here, so local receivers stand in for them
(tests/push_receivers.py): an HTTP/1.1 server for FCM (its OAuth token endpoint and the v1
send) and an HTTP/2 server (h2c) for APNs. They listen on the gateway of the notification
container's Docker network, the one address of this machine that container reaches. The
notification role is deployed again with the two providers pointed at them, as an operator
would configure real credentials (service-account key, .p8 key), and the message goes the
whole way: REST through nginx, chat, RabbitMQ, message_processor, notification, out to the
receivers. The role is put back as the inventory has it at the end.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import kombu
import pytest
import redis
import yaml
from conftest import ROOT, TEST_INVENTORY, run, tail
from push_receivers import H2Receiver, HttpReceiver, Received, Reply, apns_key_pem, service_account
from stack_client import GROUP_VARS, User

PROJECT = "whatsapp-e2e"
TOPIC = "com.example.whatsapp-e2e"
SECRETS = yaml.safe_load((ROOT / "inventories/airgapped/group_vars/whatsapp/secrets.yml").read_text())
ACCESS_TOKEN = "e2e-access-token"  # noqa: S105 - the local receiver's made-up OAuth token


def network_gateway(container: str) -> str:
    template = "{{json .NetworkSettings.Networks}}"
    networks = json.loads(subprocess.check_output(["docker", "inspect", "--format", template, container]))
    gateways = sorted(n["Gateway"] for n in networks.values() if n.get("Gateway"))
    assert gateways, f"{container} has no network with a gateway: {networks}"
    return gateways[0]


def fcm_answer(request: Received) -> Reply:
    if request.path == "/token":
        return Reply(200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"})
    return Reply(200, {"name": f"projects/{PROJECT}/messages/{uuid.uuid4()}"})


def deploy_notification(log: str, extra_vars: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = ["ansible-playbook", "-i", TEST_INVENTORY, "site.yml", "--tags", "notification"]
    if extra_vars is not None:
        args += ["-e", f"@{extra_vars}"]
    return run(args, log=log, timeout=900)


@pytest.fixture(scope="module")
def receivers(deployed_stack, tmp_path_factory) -> Iterator[tuple[HttpReceiver, H2Receiver]]:
    assert deployed_stack[0].returncode == 0
    host = network_gateway(GROUP_VARS["notification_container_name"])
    with HttpReceiver(host=host) as fcm, H2Receiver(host=host) as apns:
        fcm.responder = fcm_answer
        apns.default = Reply(200, b"", {"apns-id": str(uuid.uuid4())})
        extra = tmp_path_factory.mktemp("push") / "providers.json"
        extra.write_text(
            json.dumps(
                {
                    "notification_fcm_base_url": fcm.url,
                    "notification_fcm_project_id": PROJECT,
                    "notification_fcm_credentials_json": service_account(f"{fcm.url}/token", PROJECT),
                    "notification_apns_base_url": apns.url,
                    "notification_apns_team_id": "TEAME2E001",
                    "notification_apns_key_id": "KEYE2E0001",
                    "notification_apns_private_key": apns_key_pem(),
                    "notification_apns_topic": TOPIC,
                }
            )
        )
        pointed = deploy_notification("push-deploy.log", extra)
        try:
            assert pointed.returncode == 0, tail(pointed, 80)
            yield fcm, apns
        finally:
            back = deploy_notification("push-deploy-back.log")
            assert back.returncode == 0, tail(back, 80)


def wait_offline(user_id: str, timeout: float = 10.0) -> None:
    """Until chat has dropped the user's presence key (the last socket closed)."""
    client = redis.Redis(
        host=GROUP_VARS["whatsapp_publish_address"],
        port=GROUP_VARS["redis_port"],
        password=SECRETS["redis_password"],
        socket_timeout=3,
    )
    deadline = time.monotonic() + timeout
    while client.exists(f"presence:{user_id}"):
        assert time.monotonic() < deadline, f"{user_id} still online {timeout} s after closing its socket"
        time.sleep(0.1)


def wait_for(receiver: HttpReceiver | H2Receiver, predicate, timeout: float = 30.0) -> Received:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in list(receiver.requests):
            if predicate(request):
                return request
        time.sleep(0.2)
    seen = [(r.method, r.path) for r in receiver.requests]
    raise AssertionError(f"no such request within {timeout} s; the receiver saw {seen}")


def register_device(user: User, platform: str, token: str) -> None:
    answer = user.api.call("POST", "/devices", {"platform": platform, "token": token})
    assert answer.status_code == 201, answer.text


@pytest.mark.docker
def test_an_offline_user_gets_a_push_on_each_device(receivers):
    fcm, apns = receivers
    alice, bob = User("push-alice"), User("push-bob")
    fcm_token = f"fcm-e2e-{secrets.token_hex(8)}"
    apns_token = secrets.token_hex(32)
    for platform, token in [("fcm", fcm_token), ("apns", apns_token)]:
        register_device(alice, platform, token)
    conversation = bob.direct_with(alice)
    # Alice has no socket open: she is offline, so the message goes out as pushes.
    message = bob.post_message(conversation, "are you there?")
    expected = {
        "type": "message",
        "conversation_id": conversation,
        "message_id": message["id"],
        "sender_id": bob.id,
    }

    # FCM: the service account's JWT exchanged for a token, then the v1 send with it.
    send = wait_for(fcm, lambda r: r.path.endswith("/messages:send") and fcm_token in r.body.decode())
    assert send.path == f"/v1/projects/{PROJECT}/messages:send"
    assert send.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    fcm_message = send.json()["message"]
    assert fcm_message["token"] == fcm_token
    assert expected.items() <= fcm_message["data"].items()
    # Ids only (notification_privacy_ids_only): the text never leaves for Google.
    assert "are you there?" not in send.body.decode()
    grant = next(r for r in fcm.requests if r.path == "/token")
    assert "grant_type=urn" in grant.body.decode() and "assertion=" in grant.body.decode()

    # APNs: HTTP/2 to /3/device/<token>, with the topic and an ES256 provider token.
    push = wait_for(apns, lambda r: r.path == f"/3/device/{apns_token}")
    assert push.protocol == "HTTP/2"
    assert push.headers["apns-topic"] == TOPIC
    assert push.headers["authorization"].startswith("bearer ")
    assert expected.items() <= push.json().items()
    assert "are you there?" not in push.body.decode()


@pytest.mark.docker
def test_an_online_user_gets_no_push(receivers):
    fcm, apns = receivers
    alice, bob = User("push-online-alice"), User("push-online-bob")
    fcm_token = f"fcm-e2e-{secrets.token_hex(8)}"
    register_device(alice, "fcm", fcm_token)
    conversation = bob.direct_with(alice)
    with alice.socket() as socket:
        sent = bob.api.call(
            "POST",
            f"/conversations/{conversation}/messages",
            {"client_msg_id": str(uuid.uuid4()), "body": "you are online"},
        )
        assert sent.status_code == 201, sent.text
        socket.wait_for(lambda f: f.get("type") == "message.new" and f["message"]["id"] == sent.json()["id"])
    # A later offline message is pushed, so the quiet one above was not merely slow.
    wait_offline(alice.id)
    later = bob.api.call(
        "POST",
        f"/conversations/{conversation}/messages",
        {"client_msg_id": str(uuid.uuid4()), "body": "now offline"},
    )
    assert later.status_code == 201, later.text
    wait_for(fcm, lambda r: fcm_token in r.body.decode() and later.json()["id"] in r.body.decode())
    pushed = [r for r in fcm.requests if fcm_token in r.body.decode()]
    assert all(sent.json()["id"] not in r.body.decode() for r in pushed), pushed


def pushed(receiver: HttpReceiver, token: str, message_id: str) -> list[Received]:
    return [r for r in list(receiver.requests) if token in r.body.decode() and message_id in r.body.decode()]


@pytest.mark.docker
def test_each_session_is_pushed_while_it_has_no_socket_and_never_after_it_is_revoked(receivers):
    fcm, _ = receivers
    phone, bob = User("push-phone"), User("push-sessions-bob")
    laptop = phone.second_session()
    phone_token, laptop_token = (f"fcm-e2e-{name}-{secrets.token_hex(6)}" for name in ("phone", "laptop"))
    register_device(phone, "fcm", phone_token)
    register_device(laptop, "fcm", laptop_token)
    conversation = bob.direct_with(phone)
    with laptop.socket() as socket:
        first = bob.post_message(conversation, "the laptop is open")
        socket.wait_for(lambda f: f.get("type") == "message.new" and f["message"]["id"] == first["id"])
        # The laptop's session has a socket, the phone's has none: only the phone is pushed.
        wait_for(fcm, lambda r: bool(pushed(fcm, phone_token, first["id"])))
    wait_offline(phone.id)
    # The phone is lost: revoked from the laptop, its push target goes with its session.
    sessions = laptop.api.call("GET", "/sessions")
    assert sessions.status_code == 200, sessions.text
    phone_session = next(s["id"] for s in sessions.json()["sessions"] if not s["current"])
    assert laptop.api.call("DELETE", f"/sessions/{phone_session}").status_code == 204
    second = bob.post_message(conversation, "the laptop is closed")
    wait_for(fcm, lambda r: bool(pushed(fcm, laptop_token, second["id"])))
    time.sleep(1.0)
    assert not pushed(fcm, laptop_token, first["id"]), "a session with an open socket was pushed"
    assert not pushed(fcm, phone_token, second["id"]), "a revoked session's device was pushed"
    assert len(pushed(fcm, phone_token, first["id"])) == 1


def publish_push_jobs(jobs: list[dict]) -> None:
    """Publish push jobs as message_processor does (its login, the notifications exchange)."""
    password = quote(SECRETS["rabbitmq_passwords"]["svc_message_processor"], safe="")
    address = f"{GROUP_VARS['whatsapp_publish_address']}:{GROUP_VARS['rabbitmq_port']}"
    url = f"amqp://svc_message_processor:{password}@{address}/{quote(GROUP_VARS['rabbitmq_vhost'], safe='')}"
    with kombu.Connection(url, connect_timeout=5) as connection:
        producer = connection.Producer(serializer="json")
        for job in jobs:
            producer.publish(
                job,
                exchange=kombu.Exchange("whatsapp.notifications", type="direct", no_declare=True),
                routing_key="notification.send",
                delivery_mode=2,
            )


@pytest.mark.docker
def test_a_push_job_published_twice_is_pushed_once(receivers):
    fcm, _ = receivers
    alice, bob = User("push-dup-alice"), User("push-dup-bob")
    register_device(alice, "fcm", f"fcm-e2e-{secrets.token_hex(8)}")
    conversation = bob.direct_with(alice)
    message = bob.post_message(conversation, "once")

    def sends_of(message_id: str) -> list[Received]:
        return [
            r
            for r in list(fcm.requests)
            if r.path.endswith("/messages:send") and message_id in r.body.decode()
        ]

    wait_for(fcm, lambda r: bool(sends_of(message["id"])))
    # The same job twice more (what a re-published message or a redelivery produces), then a
    # job for another message: once that one is pushed, the copies had their turn.
    job = {
        "type": "message",
        "user_id": alice.id,
        "conversation_id": conversation,
        "message_id": message["id"],
        "sender_id": bob.id,
        "sent_at": message["created_at"],
        "body": "once",
    }
    control = {**job, "message_id": str(uuid.uuid4())}
    publish_push_jobs([job, job, control])
    wait_for(fcm, lambda r: bool(sends_of(control["message_id"])))
    time.sleep(1.0)
    assert len(sends_of(message["id"])) == 1, "the same message was pushed to the same device again"
    assert len(sends_of(control["message_id"])) == 1
