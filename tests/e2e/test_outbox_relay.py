"""The outbox relay re-publishes only what was lost, not what message_processor holds:
with MongoDB paused, the processor holds the messages it was delivered (listed as held in
Redis), the relay leaves them alone although their rows are unstored and old enough, and
once MongoDB is back every message is stored and in the history, and no longer listed."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis
import yaml
from conftest import ROOT
from stack_client import ADDRESS, GROUP_VARS, User

pytestmark = pytest.mark.docker

SECRETS = yaml.safe_load((ROOT / "inventories/airgapped/group_vars/whatsapp/secrets.yml").read_text())
MONGODB = GROUP_VARS["mongodb_container_name"]
CHAT = GROUP_VARS["chat_container_name"]
# Where message_processor lists what it holds (services/common/held.py).
HELD_KEY = "whatsapp:processing:held"
# chat's outbox relay: rows unstored this long are candidates, looked at this often (settings).
RELAY_AGE_SECONDS, RELAY_INTERVAL_SECONDS = 10.0, 5.0


@pytest.fixture(scope="module", autouse=True)
def stack(deployed_stack):
    assert deployed_stack[0].returncode == 0, "the deploy failed: see the deploy test"


def test_the_relay_leaves_the_messages_the_processor_holds():
    client = redis.Redis(
        host=ADDRESS, port=GROUP_VARS["redis_port"], password=SECRETS["redis_password"], socket_timeout=3
    )
    alice, bob = User("relay-alice"), User("relay-bob")
    conversation = alice.direct_with(bob)
    since = time.time()
    subprocess.run(["docker", "pause", MONGODB], check=True, capture_output=True)
    try:
        accepted = time.monotonic()
        ids = [alice.post_message(conversation, f"held {number}")["id"] for number in range(5)]
        # The processor took them and, its batch waiting for MongoDB, says it holds them, before
        # the relay would take them for lost (its first try at MongoDB is bounded: seen
        # taking 10.7 s unbounded, and the relay published all five again).
        deadline = accepted + RELAY_AGE_SECONDS - 2
        while not all(client.zscore(HELD_KEY, message_id) for message_id in ids):
            assert time.monotonic() < deadline, (
                f"message_processor did not list the messages as held within {RELAY_AGE_SECONDS - 2} s"
            )
            time.sleep(0.2)
        # Long enough for the relay to see the rows unstored and old enough, twice.
        time.sleep(RELAY_AGE_SECONDS + 2 * RELAY_INTERVAL_SECONDS)
    finally:
        subprocess.run(["docker", "unpause", MONGODB], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while not set(ids) <= {m["id"] for m in bob.history(conversation)}:
        assert time.monotonic() < deadline, "the held messages were not stored once MongoDB was back"
        time.sleep(0.5)
    logs = subprocess.run(
        ["docker", "logs", "--since", str(int(since)), CHAT], capture_output=True, text=True, check=True
    )
    # The relay logs every message it publishes again: none of these was.
    assert "outbox relay re-published" not in logs.stdout + logs.stderr
    # Acknowledged: no longer listed as held.
    assert not any(client.zscore(HELD_KEY, message_id) for message_id in ids)
