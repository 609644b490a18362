"""The RabbitMQ consumer of the notification service: one push job per delivery.

- A malformed job (InvalidJob) is rejected without requeue: dead-lettered, counted.
- PostgreSQL down (the device list cannot be read): the job is held and retried with
  backoff until it is back; requeueing would burn the queue's delivery limit.
- After deliver_job the delivery is acknowledged, unless no device got the push and some
  might later (`requeue_advised`): then it is requeued, and the queue's delivery limit
  dead-letters it after a few tries. Nothing is dropped silently.
- One push per (message, user): a copy of a job that was pushed, or that another consumer
  is pushing, is acknowledged as a duplicate (services/notification/dedup.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import kombu

from services.common.amqp import CONSUMER_HEARTBEAT_SECONDS, amqp_connection, wait_keeping_alive
from services.common.backends import backend_down
from services.notification import store
from services.notification.delivery import deliver_job
from services.notification.jobs import InvalidJob, parse_job

log = logging.getLogger(__name__)


class JobConsumer:
    def __init__(self, ctx: Any, stopping: threading.Event, name: str):
        self.ctx, self.settings, self.stopping, self.name = ctx, ctx.settings, stopping, name
        self.connection: kombu.Connection | None = None

    def run(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                self._consume()
                delay = 0.5
            except Exception as exc:
                log.warning(
                    "%s: consuming stopped (%s: %s); reconnecting in %.1f s",
                    self.name,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                self.stopping.wait(delay)
                delay = min(delay * 2, self.settings.retry_max_delay_seconds)

    def _consume(self) -> None:
        s = self.settings
        with amqp_connection(
            s.rabbitmq_url, timeout=s.backend_timeout_seconds, heartbeat=CONSUMER_HEARTBEAT_SECONDS
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=s.backend_timeout_seconds)
            self.connection = conn
            queue = kombu.Queue(s.notifications_queue, no_declare=True)
            consumer = kombu.Consumer(conn.channel(), queues=[queue], on_message=self.handle, no_ack=False)
            consumer.qos(prefetch_count=s.consumer_prefetch)
            with consumer:
                log.info(
                    "%s: consuming %s (prefetch %d)", self.name, s.notifications_queue, s.consumer_prefetch
                )
                while not self.stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=1.0)
                    # Under steady traffic too (kombu sends one only when one is due).
                    conn.heartbeat_check()

    def handle(self, message: kombu.Message) -> None:
        metrics = self.ctx.metrics
        try:
            job = parse_job(message.body)
        except InvalidJob as exc:
            log.error("dead-lettering a malformed push job: %s", exc)
            message.reject(requeue=False)
            metrics.jobs.labels("dead_lettered").inc()
            return
        if not self.ctx.ledger.claim(job, redelivered=bool(message.delivery_info.get("redelivered"))):
            message.ack()
            metrics.jobs.labels("duplicate").inc()
            return
        devices = self._load_devices(job.user_id)
        if devices is None:  # stopping: the claim stays; RabbitMQ redelivers this copy
            return
        summary = deliver_job(job, devices, self.ctx.delivery)
        if summary.requeue_advised:
            self.ctx.ledger.release(job)
            message.reject(requeue=True)
            metrics.jobs.labels("requeued").inc()
        else:
            self.ctx.ledger.done(job)
            message.ack()
            metrics.jobs.labels("done").inc()

    def _load_devices(self, user_id: str) -> list | None:
        delay = 0.2
        while True:
            try:
                return store.load_devices(self.ctx.db, user_id)
            except Exception as exc:
                if not backend_down(exc):
                    raise
                log.warning("device list unavailable (%s); retrying in %.1f s", type(exc).__name__, delay)
                if wait_keeping_alive(self.connection, self.stopping, delay):
                    return None
                delay = min(delay * 2, self.settings.retry_max_delay_seconds)


def start_consumers(ctx: Any, stopping: threading.Event) -> list[threading.Thread]:
    threads = []
    for number in range(1, ctx.settings.consumer_concurrency + 1):
        consumer = JobConsumer(ctx, stopping, name=f"push-consumer-{number}")
        thread = threading.Thread(target=consumer.run, name=consumer.name, daemon=True)
        thread.start()
        threads.append(thread)
    return threads
