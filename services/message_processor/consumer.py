"""The RabbitMQ consumer of message_processor: batches, manual acks, retries, dead letters.

Deliveries are collected into a batch (full, or `batch_wait_ms` after the first), handed
to process_batch, and acknowledged only after it returned: a crash at any point leaves
them unacknowledged and the broker delivers them again.
- A delivery that can never be processed (not JSON, wrong shape) is rejected without
  requeue: the queue's dead-letter exchange moves it to `<queue>.dead` (counted, logged).
- A backend that is down (MongoDB, PostgreSQL, Redis, the broker for notifications)
  pauses the batch: it is retried with backoff, its deliveries held, until the backend is
  back. Requeueing instead would burn the queue's delivery limit during an outage.
  Every retry lists the batch and the deliveries waiting behind it as held
  (services/common/held.py), so chat's outbox relay does not publish them again; a batch
  that goes through at its first attempt costs Redis nothing.
- Any other error is treated as a problem with one message: each message of the batch is
  processed alone, and a failing one is requeued, so the broker's delivery limit
  dead-letters it after a few tries. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import kombu
import pymongo.errors

from services.common import held
from services.common.amqp import CONSUMER_HEARTBEAT_SECONDS, amqp_connection, wait_keeping_alive
from services.common.backends import backend_down
from services.common.mongo import ensure_message_indexes
from services.common.redis_client import create_redis
from services.message_processor.process import PoisonMessage, QueuedPayload, parse_payload, process_batch

log = logging.getLogger(__name__)


class BatchConsumer:
    def __init__(self, ctx: Any, stopping: threading.Event, name: str = "consumer-1"):
        self.ctx = ctx
        self.settings = ctx.settings
        self.stopping = stopping
        self.name = name
        self.connection: kombu.Connection | None = None
        self.pending: list[kombu.Message] = []
        # The held list's own client: no retries, so a Redis outage never slows a batch.
        self.held_redis = create_redis(ctx.settings, retries=0)
        self.listed: set[str] = set()  # ids this consumer listed as held

    # ---- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        delay = 0.5
        self._ensure_indexes()
        while not self.stopping.is_set():
            try:
                self._consume()
                delay = 0.5
            except Exception as exc:  # the broker went away: reconnect with backoff
                self.ctx.metrics.consumer_restarts.inc()
                log.warning(
                    "%s: consuming stopped (%s: %s); reconnecting in %.1f s",
                    self.name,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                self.pending = []  # unacked deliveries return to the queue with the connection
                self.stopping.wait(delay)
                delay = min(delay * 2, self.settings.retry_max_delay_seconds)

    def _ensure_indexes(self) -> None:
        while not self.stopping.is_set():
            try:
                ensure_message_indexes(self.ctx.mongo)
                return
            except pymongo.errors.PyMongoError as exc:
                log.warning("MongoDB indexes not ensured yet (%s); retrying", exc)
                self.stopping.wait(2.0)

    def _consume(self) -> None:
        s = self.settings
        with amqp_connection(
            s.rabbitmq_url, timeout=s.backend_timeout_seconds, heartbeat=CONSUMER_HEARTBEAT_SECONDS
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=s.backend_timeout_seconds)
            self.connection = conn
            channel = conn.channel()
            queue = kombu.Queue(s.messages_queue, no_declare=True)
            consumer = kombu.Consumer(channel, queues=[queue], on_message=self._collect, no_ack=False)
            consumer.qos(prefetch_count=s.prefetch)
            with consumer:
                log.info(
                    "%s: consuming %s (prefetch %d, batch %d)",
                    self.name,
                    s.messages_queue,
                    s.prefetch,
                    s.batch_size,
                )
                while not self.stopping.is_set():
                    self._fill_batch(conn)
                    if self.pending:
                        batch, self.pending = self.pending, []
                        self.handle(batch)
                    conn.heartbeat_check()

    def _collect(self, delivery: kombu.Message) -> None:
        # A method, not `self.pending.append`: the list is replaced after every batch.
        self.pending.append(delivery)

    def _fill_batch(self, conn: kombu.Connection) -> None:
        wait = self.settings.batch_wait_ms / 1000
        deadline = None
        while len(self.pending) < self.settings.batch_size:
            timeout = 1.0 if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                return
            try:
                conn.drain_events(timeout=timeout)
            except TimeoutError:  # socket.timeout is TimeoutError since Python 3.10
                return
            if self.pending and deadline is None:
                deadline = time.monotonic() + wait

    # ---- one batch --------------------------------------------------------------------------
    def handle(self, batch: list[kombu.Message]) -> None:
        metrics = self.ctx.metrics
        parsed: list[tuple[kombu.Message, QueuedPayload]] = []
        for delivery in batch:
            try:
                parsed.append((delivery, parse_payload(delivery.body)))
            except PoisonMessage as exc:
                log.error("dead-lettering a malformed delivery: %s", exc)
                delivery.reject(requeue=False)
                metrics.messages.labels("dead_lettered").inc()
        if not parsed:
            return
        started = time.perf_counter()
        ids = [p.message.id for _, p in parsed]
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                # A backend is down: list this batch, and what was delivered behind it
                # meanwhile, as held (an outage lasts; a first attempt stays off Redis).
                self._hold(ids + [d.properties.get("message_id") for d in self.pending])
            return process_batch(self.ctx, [p for _, p in parsed])

        try:
            result = self._with_backend_retry(attempt)
        except _Stopping:
            return
        except Exception as exc:
            log.warning(
                "batch of %d failed (%s: %s): processing one by one", len(parsed), type(exc).__name__, exc
            )
            self._one_by_one(parsed)
            self._release(ids)
            return
        # Every delivery still unsettled on the channel is in this batch (the earlier ones were
        # acked or rejected): one ack of the highest tag with `multiple` settles them all.
        max(parsed, key=lambda p: p[0].delivery_tag)[0].ack(multiple=True)
        self._release(ids)
        metrics.batch_seconds.observe(time.perf_counter() - started)
        metrics.messages.labels("stored").inc(result.stored)
        metrics.messages.labels("duplicate").inc(result.duplicates)
        metrics.messages.labels("erased").inc(result.erased)
        metrics.notifications.inc(result.notifications)

    def _one_by_one(self, parsed: list[tuple[kombu.Message, QueuedPayload]]) -> None:
        for delivery, payload in parsed:
            try:
                self._with_backend_retry(lambda p=payload: process_batch(self.ctx, [p]))
                delivery.ack()
                self.ctx.metrics.messages.labels("stored").inc()
            except _Stopping:
                return
            except Exception as exc:
                log.error(
                    "message %s failed (%s: %s): requeued; the delivery limit dead-letters it",
                    payload.message.id,
                    type(exc).__name__,
                    exc,
                    extra={"request_id": payload.request_id},
                )
                delivery.reject(requeue=True)
                self.ctx.metrics.messages.labels("requeued").inc()

    def _hold(self, ids: list[str | None]) -> None:
        held.hold(self.held_redis, ids)
        self.listed.update(i for i in ids if i)

    def _release(self, ids: list[str]) -> None:
        """Unlist the settled ids this consumer listed (a batch that ran first time listed none)."""
        settled = self.listed.intersection(ids)
        if settled:
            held.release(self.held_redis, settled)
            self.listed -= settled

    def _with_backend_retry(self, work: Any) -> Any:
        delay = 0.2
        while True:
            try:
                return work()
            except Exception as exc:
                if not backend_down(exc):
                    raise
                self.ctx.metrics.backend_retries.inc()
                log.warning(
                    "a backend is down (%s: %s); retrying the batch in %.1f s", type(exc).__name__, exc, delay
                )
                # Reading meanwhile: what arrives joins self.pending, listed at the next attempt.
                if wait_keeping_alive(self.connection, self.stopping, delay, drain=True):
                    raise _Stopping from None
                delay = min(delay * 2, self.settings.retry_max_delay_seconds)


class _Stopping(Exception):
    pass


def start_consumers(ctx: Any, stopping: threading.Event) -> list[threading.Thread]:
    threads = []
    for number in range(1, ctx.settings.concurrency + 1):
        consumer = BatchConsumer(ctx, stopping, name=f"consumer-{number}")
        thread = threading.Thread(target=consumer.run, name=consumer.name, daemon=True)
        thread.start()
        threads.append(thread)
    return threads
