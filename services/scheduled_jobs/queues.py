"""Jobs on RabbitMQ: prune_dead_letters and report_queue_depths.

prune_dead_letters takes the messages of each dead-letter queue from its head with
basic.get, oldest first: one dead-lettered longer than `dead_letter_retention_days` ago
is acknowledged (gone; logged with its message id), and the first younger one is
rejected with requeue (it goes back, and so does everything behind it) and ends that
queue's turn. The age is the broker's own record: the newest `time` of the `x-death`
header that RabbitMQ adds when it dead-letters a message (the `timestamp` property when
there is none). A message with neither is kept. This service's broker login may only
read queues whose names end in `.dead`, and the settings accept no other name.

report_queue_depths declares each queue passively, which needs no permission on the
queue (only access to the vhost), and sets `whatsapp_queue_messages{queue}` (ready
messages) and `whatsapp_queue_consumers{queue}`. A queue it cannot see (missing) has its
series removed and is logged once, until it is back.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import kombu
from amqp.exceptions import ChannelError

from services.common.times import rfc3339, utcnow
from services.scheduled_jobs.context import JobsContext
from services.scheduled_jobs.retention import retention_cutoff

log = logging.getLogger(__name__)

UNAVAILABLE_STATE = "queues_unavailable"


def as_utc(value: object) -> datetime | None:
    """An AMQP timestamp as an aware UTC datetime (py-amqp decodes them naive, in UTC)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return None


def dead_lettered_at(headers: dict[str, Any] | None, properties: dict[str, Any] | None) -> datetime | None:
    """When a message was (last) dead-lettered, or None when nothing says."""
    deaths = (headers or {}).get("x-death") or []
    times = [t for t in (as_utc(d.get("time")) for d in deaths if isinstance(d, dict)) if t is not None]
    if times:
        return max(times)
    return as_utc((properties or {}).get("timestamp"))


def message_id_of(message: kombu.Message) -> str:
    return str(message.properties.get("message_id") or f"(no id, delivery tag {message.delivery_tag})")


def prune_queue(  # noqa: PLR0913 - keyword-only, named at the call
    ctx: JobsContext,
    conn: kombu.Connection,
    *,
    queue: str,
    cutoff: datetime,
    budget: int,
    counts: Counter[str],
) -> int:
    """Remove the dead letters older than `cutoff` at the head of `queue`; returns how many."""
    removed = 0
    channel = conn.channel()
    try:
        bound = kombu.Queue(queue, no_declare=True)(channel)
        while removed < budget:
            if not ctx.leading():
                counts["stopped_not_leader"] += 1
                break
            message = bound.get(no_ack=False)
            if message is None:
                break
            at = dead_lettered_at(message.headers, message.properties)
            if at is None or at > cutoff:
                if at is None:
                    counts["undated_kept"] += 1
                    log.warning("dead letter %s in %s has no date: kept", message_id_of(message), queue)
                message.reject(requeue=True)
                break
            message.ack()
            removed += 1
            log.info(
                "dead letter %s removed from %s (dead-lettered %s)",
                message_id_of(message),
                queue,
                rfc3339(at),
                extra={"queue": queue, "message_id": message.properties.get("message_id")},
            )
    finally:
        with contextlib.suppress(Exception):  # closed by the broker already (an error)
            channel.close()
    return removed


def prune_dead_letters(ctx: JobsContext, counts: Counter[str]) -> None:
    settings = ctx.settings
    cutoff = retention_cutoff(utcnow(), settings.dead_letter_retention_days)
    budget = settings.max_items_per_run
    with ctx.broker.connection() as conn:
        for queue in settings.dead_letter_queues:
            try:
                removed = prune_queue(ctx, conn, queue=queue, cutoff=cutoff, budget=budget, counts=counts)
            except ChannelError as exc:  # missing queue or refused: the others still get their turn
                counts["queue_errors"] += 1
                log.warning("dead letters of %s not pruned: %s: %s", queue, type(exc).__name__, exc)
                continue
            if removed:
                counts["removed"] += removed
            budget -= removed
            if budget <= 0 or not ctx.leading():
                break


def report_queue_depths(ctx: JobsContext, counts: Counter[str]) -> None:
    metrics = ctx.metrics
    unavailable: set[str] = ctx.state.setdefault(UNAVAILABLE_STATE, set())
    with ctx.broker.connection() as conn:
        for queue in ctx.settings.depth_queues:
            channel = conn.channel()
            try:
                _, messages, consumers = channel.queue_declare(queue=queue, passive=True)
            except ChannelError as exc:
                counts["unavailable"] += 1
                for gauge in (metrics.queue_messages, metrics.queue_consumers):
                    with contextlib.suppress(KeyError):  # never reported yet
                        gauge.remove(queue)
                if queue not in unavailable:
                    unavailable.add(queue)
                    log.warning("depth of queue %s cannot be read: %s: %s", queue, type(exc).__name__, exc)
                continue
            finally:
                with contextlib.suppress(Exception):  # closed by the broker after an error
                    channel.close()
            if queue in unavailable:
                unavailable.discard(queue)
                log.info("depth of queue %s can be read again", queue)
            metrics.queue_messages.labels(queue).set(messages)
            metrics.queue_consumers.labels(queue).set(consumers)
            counts["queues"] += 1
            counts["messages"] += messages
