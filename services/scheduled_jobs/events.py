"""Events for the chat instances: one Redis channel, `{"to": [user ids], "frame": {...}}`.

Every chat instance listens on `events_channel` and hands each frame to its own sockets of
the users in `to` (services/chat/hub.py).
"""

from __future__ import annotations

import json
from typing import Any

import redis


def publish_events(client: redis.Redis, channel: str, events: list[dict[str, Any]]) -> int:
    """Publish every event in one round trip; returns how many were published."""
    if not events:
        return 0
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.publish(channel, json.dumps(event, separators=(",", ":")))
    pipe.execute()
    return len(events)
