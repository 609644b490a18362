"""Re-publishes accepted messages that message_processor has not stored yet.

A message is recorded in PostgreSQL before it is published; if the publish failed (the
broker was down) or the broker lost it, the row stays `stored_at IS NULL`. One chat
instance at a time (a PostgreSQL advisory lock) publishes such rows again, except those a
processor holds unacknowledged (services/common/held.py: RabbitMQ still has them); the
processor stores by message id, so a message published twice is stored and delivered once.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import psycopg
import redis

from services.chat import store
from services.chat.context import ChatContext
from services.chat.shapes import queue_payload
from services.common import held
from services.common.amqp import Outgoing, PublishError
from services.common.redis_client import create_redis

log = logging.getLogger(__name__)

# pg_try_advisory_lock key: "outbox" in ASCII, any constant shared by every instance.
OUTBOX_LOCK_KEY = 0x6F7574626F78


def republishable(conn: psycopg.Connection, rows: list, held_redis: redis.Redis) -> list:
    """The unstored rows no processor holds; raises redis.RedisError when Redis cannot say.

    A processor marks a row stored before it unlists it, so a row read unstored and then
    found unlisted may have been stored in between (seen: a batch that went through the
    moment MongoDB came back was published again). The unlisted rows are read once more,
    after the list: whatever is still unstored then was not held when the list was read.
    """
    holding = held.held_among(held_redis, [str(row["id"]) for row in rows])
    candidates = [row for row in rows if str(row["id"]) not in holding]
    if not candidates:
        return []
    unstored = store.still_unstored(conn, [row["id"] for row in candidates])
    return [row for row in candidates if row["id"] in unstored]


def relay_once(ctx: ChatContext, held_redis: redis.Redis) -> int:
    """Publish every unstored message older than the relay age; the count published.

    While the queue still holds messages, unstored rows are most likely waiting in it:
    publishing them again would only add duplicate work to a processor that is behind.
    The relay acts once the queue is drained and rows are still unstored (lost publishes).
    """
    settings = ctx.settings
    published = 0
    try:
        if ctx.publisher.queue_depth(settings.messages_queue) > 0:
            return 0
    except Exception as exc:
        log.info("outbox relay skipped: queue depth unknown (%s)", type(exc).__name__)
        return 0
    with ctx.db.connection() as conn:
        if not conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (OUTBOX_LOCK_KEY,)).fetchone()["ok"]:
            return 0
        try:
            rows = store.unstored_messages(conn, timedelta(seconds=settings.outbox_relay_age_seconds))
            try:
                rows = republishable(conn, rows, held_redis)
            except redis.RedisError as exc:
                log.info("outbox relay skipped: held messages unknown (%s)", type(exc).__name__)
                rows = []
            if rows:
                try:
                    ctx.publisher.publish_many(
                        settings.messages_exchange,
                        settings.messages_routing_key,
                        [Outgoing(queue_payload(row, None), message_id=str(row["id"])) for row in rows],
                    )
                    published = len(rows)
                except PublishError:
                    pass  # the broker is down; the next round tries again
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (OUTBOX_LOCK_KEY,))
    if published:
        log.info("outbox relay re-published %d unstored messages", published)
    return published


def start_relay(ctx: ChatContext, stopping: threading.Event) -> threading.Thread:
    held_redis = create_redis(ctx.settings, retries=0)

    def loop() -> None:
        while not stopping.wait(ctx.settings.outbox_relay_interval_seconds):
            try:
                relay_once(ctx, held_redis)
            except Exception as exc:
                log.warning("outbox relay round failed: %s: %s", type(exc).__name__, exc)

    thread = threading.Thread(target=loop, name="outbox-relay", daemon=True)
    thread.start()
    return thread
