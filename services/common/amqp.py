"""RabbitMQ publishing with publisher confirms, through kombu.

`publish()` returns only after the broker confirmed the message (persistent, to a durable
quorum queue): that is the moment chat may tell a sender "accepted". Each call takes a
connection from a small pool, so concurrent senders (threads or greenlets) never share a
channel; a broken connection is dropped and the next call opens a new one. The exchanges,
queues and dead-lettering are declared by the rabbitmq role (definitions.json), not here:
the services' logins may not declare them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import kombu

log = logging.getLogger(__name__)


class PublishError(Exception):
    """The broker did not confirm the message (down, refused, or timed out)."""


# Heartbeat of the consumers' connections (seconds). A consumer on a node that is lost
# without closing its sockets (an engine killed, a cable pulled: no RST) holds its unacked
# deliveries until the broker misses two heartbeats; 10 s hands them to another consumer
# within about 20 s instead of a minute.
CONSUMER_HEARTBEAT_SECONDS = 10


def amqp_connection(url: str, *, timeout: float, heartbeat: int = 30) -> kombu.Connection:
    return kombu.Connection(
        url,
        connect_timeout=timeout,
        heartbeat=heartbeat,
        transport_options={"confirm_publish": True, "read_timeout": timeout, "write_timeout": timeout},
    )


def wait_keeping_alive(
    connection: kombu.Connection | None, stopping: threading.Event, seconds: float
) -> bool:
    """Sleep `seconds` while a backend is down, sending the broker heartbeats meanwhile so
    unacknowledged deliveries stay with this consumer; True when stopping."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stopping.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
            return True
        if connection is not None:
            try:
                connection.heartbeat_check()
            except Exception:  # noqa: BLE001 - a lost connection shows at the next ack
                log.warning("broker heartbeat failed while waiting for a backend")
    return False


class ConfirmedPublisher:
    """Pooled connections without heartbeats (nothing would send them while a connection
    sits idle in the pool, so the broker would close it); a connection found dead at
    publish time is replaced and the publish tried once more on a fresh one. A repeat is
    harmless: the consumer stores by message id."""

    ATTEMPTS = 2

    def __init__(self, url: str, *, timeout: float, pool_size: int = 8):
        self._template = amqp_connection(url, timeout=timeout, heartbeat=0)
        self._pool = self._template.Pool(limit=pool_size)
        self._timeout = timeout

    def publish(
        self,
        exchange: str,
        routing_key: str,
        payload: dict[str, Any],
        *,
        message_id: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Send one persistent JSON message and wait for the broker's confirm."""
        body = json.dumps(payload, separators=(",", ":"))
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                self._publish_once(exchange, routing_key, body, message_id, headers)
                return
            except Exception as exc:
                log.warning(
                    "publish to %s/%s failed (attempt %d): %s: %s",
                    exchange,
                    routing_key,
                    attempt,
                    type(exc).__name__,
                    exc,
                )
                if attempt == self.ATTEMPTS:
                    raise PublishError(f"{type(exc).__name__}: {exc}") from exc

    def _publish_once(
        self,
        exchange: str,
        routing_key: str,
        body: str,
        message_id: str | None,
        headers: dict[str, Any] | None,
    ) -> None:
        with self._pool.acquire(block=True, timeout=self._timeout) as conn:
            try:
                conn.ensure_connection(max_retries=1, timeout=self._timeout)
                producer = kombu.Producer(conn.default_channel)
                producer.publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    message_id=message_id,
                    headers=headers or {},
                    retry=False,
                    # Unroutable means a missing queue: fail loudly, never drop.
                    mandatory=True,
                )
            except Exception:
                # A connection that failed mid-publish is not trusted again.
                conn.collect()
                raise

    def queue_depth(self, queue: str) -> int:
        """Messages waiting in `queue` (a passive declare: needs no configure right)."""
        with self._pool.acquire(block=True, timeout=self._timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=self._timeout)
            channel = conn.channel()
            try:
                return int(channel.queue_declare(queue=queue, passive=True).message_count)
            finally:
                channel.close()

    def check(self) -> None:
        """Readiness: a pooled connection to the broker opens."""
        with self._pool.acquire(block=True, timeout=self._timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=self._timeout)

    def close(self) -> None:
        self._pool.force_close_all()
