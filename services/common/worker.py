"""The base of the queue workers (message_processor's batches, notification's push jobs).

A `QueueWorker` owns one broker connection and the loop around it:

- consume one queue with manual acks and a prefetch, collecting deliveries into a batch
  (full at `batch_size`, or `batch_wait_ms` after its first delivery) handed to `handle`,
  which settles every delivery it was given (ack, reject, requeue);
- heartbeats under steady traffic and while a batch waits for a backend, so the broker
  keeps the unacknowledged deliveries with this worker instead of re-delivering them;
- `with_backend_retry`: work that meets a backend that is down (services/common/backends.py)
  is retried with doubling pauses up to `retry_max_delay_seconds`, reading what the broker
  delivers meanwhile; requeueing instead would burn the queue's delivery limit in an outage;
- a lost broker connection is re-opened with backoff; the deliveries it held return to the
  queue with it, so nothing is acknowledged that was not handled;
- a graceful stop: `stopping` set, the loop ends after the batch in hand, and a batch that
  waits for a backend gives up its wait (`Stopping`), leaving its deliveries unacknowledged
  for the broker to deliver again.

Subclasses implement `handle` and may override `prepare` (before the first connection),
`on_retry` (each retry of a batch) and `on_restart` (each lost connection).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import kombu

from services.common.amqp import CONSUMER_HEARTBEAT_SECONDS, amqp_connection, wait_keeping_alive
from services.common.backends import backend_down

log = logging.getLogger(__name__)

T = TypeVar("T")

# The first pause after a backend or the broker failed; it doubles up to the settings' maximum.
FIRST_RETRY_SECONDS = 0.2
FIRST_RECONNECT_SECONDS = 0.5


class Stopping(Exception):
    """The worker is stopping while work waited for a backend: leave the deliveries unsettled."""


@dataclass(frozen=True)
class Consuming:
    """What a worker consumes, and how many deliveries it takes at once."""

    queue: str
    prefetch: int  # unacknowledged deliveries the broker hands the worker at once
    batch_size: int = 1  # deliveries handed to `handle` together
    batch_wait_ms: int = 0  # how long a batch waits for more after its first delivery


class QueueWorker:
    def __init__(self, ctx: Any, stopping: threading.Event, name: str, consuming: Consuming):
        self.ctx = ctx
        self.settings = ctx.settings
        self.stopping = stopping
        self.name = name
        self.queue = consuming.queue
        self.prefetch = consuming.prefetch
        self.batch_size = consuming.batch_size
        self.batch_wait_seconds = consuming.batch_wait_ms / 1000
        self.connection: kombu.Connection | None = None
        self.pending: list[kombu.Message] = []

    # ---- what a subclass provides -------------------------------------------------------------
    def handle(self, batch: list[kombu.Message]) -> None:
        """Settle every delivery of `batch`."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Once, before the first connection (e.g. indexes)."""

    def on_retry(self) -> None:
        """Each time work is retried because a backend is down."""

    def on_restart(self) -> None:
        """Each time the broker connection was lost."""

    # ---- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        delay = FIRST_RECONNECT_SECONDS
        self.prepare()
        while not self.stopping.is_set():
            try:
                self._consume()
                delay = FIRST_RECONNECT_SECONDS
            except Exception as exc:  # the broker went away: reconnect with backoff
                self.on_restart()
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

    def _consume(self) -> None:
        s = self.settings
        with amqp_connection(
            s.rabbitmq_url, timeout=s.backend_timeout_seconds, heartbeat=CONSUMER_HEARTBEAT_SECONDS
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=s.backend_timeout_seconds)
            self.connection = conn
            consumer = kombu.Consumer(
                conn.channel(),
                queues=[kombu.Queue(self.queue, no_declare=True)],
                on_message=self._collect,
                no_ack=False,
            )
            consumer.qos(prefetch_count=self.prefetch)
            with consumer:
                log.info(
                    "%s: consuming %s (prefetch %d, batch %d)",
                    self.name,
                    self.queue,
                    self.prefetch,
                    self.batch_size,
                )
                while not self.stopping.is_set():
                    self._fill_batch(conn)
                    if self.pending:
                        batch, self.pending = self.pending, []
                        self.handle(batch)
                    # Under steady traffic too (kombu sends one only when one is due).
                    conn.heartbeat_check()

    def _collect(self, delivery: kombu.Message) -> None:
        # A method, not `self.pending.append`: the list is replaced after every batch.
        self.pending.append(delivery)

    def _fill_batch(self, conn: kombu.Connection) -> None:
        deadline = None
        while len(self.pending) < self.batch_size:
            timeout = 1.0 if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                return
            try:
                conn.drain_events(timeout=timeout)
            except TimeoutError:  # socket.timeout is TimeoutError since Python 3.10
                return
            if self.pending and deadline is None:
                deadline = time.monotonic() + self.batch_wait_seconds

    # ---- waiting out a backend ----------------------------------------------------------------
    def with_backend_retry(self, work: Callable[[], T], what: str = "the batch") -> T:
        """`work()`, retried while a backend is down; raises Stopping when asked to stop."""
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                return work()
            except Exception as exc:
                if not backend_down(exc):
                    raise
                self.on_retry()
                log.warning(
                    "a backend is down (%s: %s); retrying %s in %.1f s", type(exc).__name__, exc, what, delay
                )
                # Reading meanwhile: what arrives joins self.pending (a subclass may list it).
                if wait_keeping_alive(self.connection, self.stopping, delay, drain=True):
                    raise Stopping from None
                delay = min(delay * 2, self.settings.retry_max_delay_seconds)


def start_workers(
    count: int, make: Callable[[int], QueueWorker], stopping: threading.Event
) -> list[threading.Thread]:
    """`count` workers (`make(number)`, numbered from 1), each in a thread of its own."""
    threads = []
    for number in range(1, count + 1):
        worker = make(number)
        thread = threading.Thread(target=worker.run, name=worker.name, daemon=True)
        thread.start()
        threads.append(thread)
    return threads
