"""RabbitMQ publishing with publisher confirms, through kombu.

`publish()` returns only after the broker confirmed the message (persistent, to a durable
quorum queue): that is the moment chat may tell a sender "accepted". Each call takes a
connection from a small pool, so concurrent senders (threads or greenlets) never share a
channel; a broken connection is dropped and the next call opens a new one. A batch is
published whole and its confirms awaited together. The exchanges,
queues and dead-lettering are declared by the rabbitmq role (definitions.json), not here:
the services' logins may not declare them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import amqp
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
    connection: kombu.Connection | None, stopping: threading.Event, seconds: float, *, drain: bool = False
) -> bool:
    """Sleep `seconds` while a backend is down, sending the broker heartbeats meanwhile so
    unacknowledged deliveries stay with this consumer; True when stopping. With `drain`, read
    what the broker delivers meanwhile instead of sleeping: the consumer's callback collects it
    (it must only collect), rather than it waiting unseen in the socket."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if drain and connection is not None:
            if stopping.is_set():
                return True
            try:
                connection.drain_events(timeout=min(1.0, left))
            except TimeoutError:
                pass
            except Exception:  # noqa: BLE001 - a lost connection shows at the next ack
                log.warning("broker connection failed while waiting for a backend")
                drain = False
                continue
        elif stopping.wait(min(1.0, left)):
            return True
        if connection is not None:
            try:
                connection.heartbeat_check()
            except Exception:  # noqa: BLE001 - a lost connection shows at the next ack
                log.warning("broker heartbeat failed while waiting for a backend")
    return False


@dataclass
class Outgoing:
    """One message of a confirmed batch."""

    payload: dict[str, Any]
    message_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)


class _Confirms:
    """Publisher confirms of one channel: the broker numbers every publish on the channel
    from 1 and acknowledges (or nacks) each, alone or `multiple` up to a tag, in any order."""

    def __init__(self, channel: Any):
        self.channel = channel
        self.published = 0
        self.outstanding: set[int] = set()
        self.nacked = False
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)

    def add(self) -> None:
        self.published += 1
        self.outstanding.add(self.published)

    def _settle(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self.outstanding = {tag for tag in self.outstanding if tag > delivery_tag}
        else:
            self.outstanding.discard(delivery_tag)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked = True
        self._settle(delivery_tag, multiple)


class ConfirmedPublisher:
    """Pooled connections without heartbeats (nothing would send them while a connection
    sits idle in the pool, so the broker would close it); a connection found dead at
    publish time is replaced and the publish tried once more on a fresh one. A repeat is
    harmless: the consumer stores by message id.

    `publish_many` sends a whole batch on one channel and then waits once for the broker's
    confirms of all of it (publish all, wait together), instead of a round trip per message;
    `publish` is a batch of one. Unroutable (mandatory) or nacked means the batch failed."""

    ATTEMPTS = 2

    def __init__(self, url: str, *, timeout: float, pool_size: int = 8):
        self._template = kombu.Connection(
            url,
            connect_timeout=timeout,
            heartbeat=0,
            transport_options={"read_timeout": timeout, "write_timeout": timeout},
        )
        self._pool = self._template.Pool(limit=pool_size)
        self._timeout = timeout
        self.batches = 0  # batches confirmed (a metric for /metrics)

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
        self.publish_many(exchange, routing_key, [Outgoing(payload, message_id, headers or {})])

    def publish_many(self, exchange: str, routing_key: str, messages: list[Outgoing]) -> None:
        """Send every message persistent, then wait for the confirms of all of them."""
        if not messages:
            return
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                self._publish_batch(exchange, routing_key, messages)
                self.batches += 1
                return
            except Exception as exc:
                log.warning(
                    "publish of %d to %s/%s failed (attempt %d): %s: %s",
                    len(messages),
                    exchange,
                    routing_key,
                    attempt,
                    type(exc).__name__,
                    exc,
                )
                if attempt == self.ATTEMPTS:
                    raise PublishError(f"{type(exc).__name__}: {exc}") from exc

    def _publish_batch(self, exchange: str, routing_key: str, messages: list[Outgoing]) -> None:
        with self._pool.acquire(block=True, timeout=self._timeout) as conn:
            try:
                conn.ensure_connection(max_retries=1, timeout=self._timeout)
                channel = conn.default_channel
                confirms: _Confirms | None = getattr(conn, "_whatsapp_confirms", None)
                if confirms is None or confirms.channel is not channel:
                    confirms = _Confirms(channel)
                    conn._whatsapp_confirms = confirms  # noqa: SLF001 - our own attribute
                for outgoing in messages:
                    body = json.dumps(outgoing.payload, separators=(",", ":"))
                    message = amqp.Message(
                        body,
                        content_type="application/json",
                        content_encoding="utf-8",
                        delivery_mode=2,
                        message_id=outgoing.message_id,
                        application_headers=outgoing.headers or {},
                    )
                    # Unroutable means a missing queue: mandatory makes the broker return it
                    # (raised while waiting below), never drop it.
                    channel.basic_publish(message, exchange=exchange, routing_key=routing_key, mandatory=True)
                    confirms.add()
                deadline = time.monotonic() + self._timeout
                while confirms.outstanding:
                    if confirms.nacked:
                        raise PublishError("the broker refused (nack) a message of the batch")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise PublishError(f"no confirm within {self._timeout:.0f} s")
                    conn.drain_events(timeout=remaining)
                if confirms.nacked:
                    raise PublishError("the broker refused (nack) a message of the batch")
            except Exception:
                # A connection that failed mid-publish is not trusted again.
                conn._whatsapp_confirms = None  # noqa: SLF001
                conn.collect()
                raise

    def pool_state(self) -> tuple[int, int]:
        """(connections in use, the pool's limit)."""
        return len(getattr(self._pool, "_dirty", ())), int(self._pool.limit or 0)

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
