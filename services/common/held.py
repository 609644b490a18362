"""The messages message_processor holds unacknowledged, so chat's outbox relay leaves them be.

A message accepted by chat is published to RabbitMQ; message_processor takes it, stores it,
and only then acknowledges it. While it holds a message (a batch waiting for a backend that is
down, the deliveries prefetched behind it), the row stays unstored in PostgreSQL, and the
outbox relay, which re-publishes unstored rows whose publish may have been lost, would publish
it again: duplicate work, duplicate fan-out. So the processor lists what it holds in the
sorted set `whatsapp:processing:held` (member: message id, score: when it last said so), at
every retry of a batch (one that goes through at once is not listed: the relay looks only at
rows older than a first attempt can take: message_processor's mongo_attempt_seconds bounds
it), and removes what it listed once it is
acknowledged; the relay skips listed
ids. If the processor dies, RabbitMQ delivers its messages again, so an entry that has not
been refreshed for `stale_seconds` no longer counts (the relay trims such entries).

Redis down: the processor goes on without listing (never waits: the client has no retries),
and the relay skips its round rather than guess.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import redis

log = logging.getLogger(__name__)

HELD_KEY = "whatsapp:processing:held"
# Longer than a batch's retry interval (the processor refreshes at every retry).
STALE_SECONDS = 120.0


def hold(client: redis.Redis, message_ids: Iterable[str]) -> None:
    """List (or refresh) message ids as held by a processor; never raises for Redis."""
    now = time.time()
    members = {message_id: now for message_id in message_ids if message_id}
    if not members:
        return
    try:
        client.zadd(HELD_KEY, members)
    except redis.RedisError as exc:
        log.debug("held messages not listed (%s)", type(exc).__name__)


def release(client: redis.Redis, message_ids: Iterable[str]) -> None:
    ids = [message_id for message_id in message_ids if message_id]
    if not ids:
        return
    try:
        client.zrem(HELD_KEY, *ids)
    except redis.RedisError as exc:
        log.debug("held messages not removed (%s); they go stale by themselves", type(exc).__name__)


def held_among(client: redis.Redis, message_ids: list[str], stale_seconds: float = STALE_SECONDS) -> set[str]:
    """The ids a processor holds now; raises redis.RedisError when Redis cannot say."""
    if not message_ids:
        return set()
    fresh_after = time.time() - stale_seconds
    pipe = client.pipeline(transaction=False)
    pipe.zremrangebyscore(HELD_KEY, "-inf", f"({fresh_after}")
    pipe.zmscore(HELD_KEY, message_ids)
    _, scores = pipe.execute()
    return {
        m for m, score in zip(message_ids, scores, strict=True) if score is not None and score >= fresh_after
    }
