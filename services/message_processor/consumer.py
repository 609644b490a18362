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
from typing import TYPE_CHECKING, Any

import kombu
import pymongo.errors

from services.common import held
from services.common.mongo import ensure_message_indexes
from services.common.redis_client import create_redis
from services.common.worker import Consuming, QueueWorker, Stopping, start_workers
from services.message_processor.process import PoisonMessage, QueuedPayload, parse_payload, process_batch

if TYPE_CHECKING:
    from services.message_processor.context import ProcessorContext

log = logging.getLogger(__name__)


class BatchConsumer(QueueWorker):
    def __init__(self, ctx: ProcessorContext, stopping: threading.Event, name: str = "consumer-1"):
        s = ctx.settings
        super().__init__(
            ctx, stopping, name, Consuming(s.messages_queue, s.prefetch, s.batch_size, s.batch_wait_ms)
        )
        # The held list's own client: no retries, so a Redis outage never slows a batch.
        self.held_redis = create_redis(s, retries=0)
        self.listed: set[str] = set()  # ids this consumer listed as held

    def prepare(self) -> None:
        while not self.stopping.is_set():
            try:
                ensure_message_indexes(self.ctx.mongo)
                return
            except pymongo.errors.PyMongoError as exc:
                log.warning("MongoDB indexes not ensured yet (%s); retrying", exc)
                self.stopping.wait(2.0)

    def on_retry(self) -> None:
        self.ctx.metrics.backend_retries.inc()

    def on_restart(self) -> None:
        self.ctx.metrics.consumer_restarts.inc()

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
            result = self.with_backend_retry(attempt)
        except Stopping:
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
                self.with_backend_retry(lambda p=payload: process_batch(self.ctx, [p]))
                delivery.ack()
                self.ctx.metrics.messages.labels("stored").inc()
            except Stopping:
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


def start_consumers(ctx: ProcessorContext, stopping: threading.Event) -> list[threading.Thread]:
    return start_workers(
        ctx.settings.concurrency, lambda number: BatchConsumer(ctx, stopping, f"consumer-{number}"), stopping
    )
