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

import logging
import threading
from typing import TYPE_CHECKING

import kombu

from services.common.worker import Consuming, QueueWorker, Stopping, start_workers
from services.notification import store
from services.notification.delivery import deliver_job
from services.notification.jobs import InvalidJob, for_job, parse_job

if TYPE_CHECKING:
    from services.notification.context import NotificationContext

log = logging.getLogger(__name__)


class JobConsumer(QueueWorker):
    def __init__(self, ctx: NotificationContext, stopping: threading.Event, name: str):
        s = ctx.settings
        super().__init__(ctx, stopping, name, Consuming(s.notifications_queue, s.consumer_prefetch))

    def handle(self, batch: list[kombu.Message]) -> None:
        for message in batch:
            if self.stopping.is_set():  # the rest stay unacknowledged: RabbitMQ delivers them again
                return
            self.handle_job(message)

    def handle_job(self, message: kombu.Message) -> None:
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
        devices = for_job(job, devices)
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
        try:
            return self.with_backend_retry(
                lambda: store.load_devices(self.ctx.db, user_id), "the device list"
            )
        except Stopping:
            return None


def start_consumers(ctx: NotificationContext, stopping: threading.Event) -> list[threading.Thread]:
    return start_workers(
        ctx.settings.consumer_concurrency,
        lambda number: JobConsumer(ctx, stopping, f"push-consumer-{number}"),
        stopping,
    )
