"""The accept path in batches: many senders, one transaction and one confirmed publish.

Every `message.send` (WebSocket) and `POST .../messages` hands its request to the
`Acceptor` and waits. Two stages run as background threads (greenlets under gevent):

1. **record**: takes every request waiting (up to `accept_batch_max`; group commit: at low
   load a batch is one message and waits for nothing) and, in ONE PostgreSQL transaction,
   checks membership and blocks of all of them, locks their conversations in id order,
   finds repeats of (sender, client_msg_id), takes the seqs and records the new messages.
2. **publish**: publishes the batch's messages to RabbitMQ and waits for the broker's
   confirms of all of them together; only then is every request of the batch answered.

So the contract's guarantees hold exactly as with one message at a time: an ack only
after the broker's confirm; a repeated client_msg_id is the same message on any instance
(the conversation's row lock serialises instances); seqs increase without gaps (taken and
recorded in one transaction); a recorded message whose publish failed is re-published
by the outbox relay. The stages are a pipeline (while one batch waits for its confirms
the next is recorded), and both keep the order they were given, so one conversation's
messages reach the queue in seq order from one instance. If a batch's transaction fails,
its requests are retried one by one, so one request cannot fail the others.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.chat import store
from services.chat.context import ChatContext
from services.chat.shapes import queue_payload
from services.common.amqp import Outgoing, PublishError
from services.common.errors import Forbidden, NotFound, Unavailable, ValidationError

log = logging.getLogger(__name__)


@dataclass
class SendRequest:
    sender: str
    conversation_id: str
    client_msg_id: str
    body: str
    ttl_seconds: int | None
    request_id: str | None
    encrypted: bool = False
    reply_to: str | None = None
    media_id: str | None = None
    # Filled by the stages:
    row: dict[str, Any] | None = None
    created: bool = False
    publish: bool = False
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # Called once answered (row or error set), by the publish stage, in submission order.
    on_done: Callable[[SendRequest], None] | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.conversation_id, self.sender, self.client_msg_id)


def _record(conn: Any, batch: list[SendRequest]) -> None:
    """Stage 1 inside one transaction: each request gets a row, or an ApiError."""
    allowed = store.senders_may_post(conn, list({(r.conversation_id, r.sender) for r in batch}))
    valid = []
    for r in batch:
        permission = allowed.get((r.conversation_id, r.sender))
        if permission is None:
            r.error = NotFound("no such conversation")
        elif permission["blocked"]:
            r.error = Forbidden("you cannot message this user", code="blocked")
        else:
            valid.append(r)
    if not valid:
        return
    store.lock_conversations(conn, list({r.conversation_id for r in valid}))
    existing = store.find_by_client_msg_ids(conn, list({r.key for r in valid}))
    new: dict[tuple[str, str, str], dict[str, Any]] = {}
    counts: dict[str, int] = {}
    # A reply names a message of the same conversation its sender may see; checked for new
    # messages only (a repeat answers with the message accepted the first time).
    replies = store.replies_allowed(
        conn,
        list(
            {(r.conversation_id, r.sender, r.reply_to) for r in valid if r.reply_to and r.key not in existing}
        ),
    )
    # A message's media is one of its sender's own uploads (new messages only, as replies).
    owned = store.own_media(
        conn, list({(r.sender, r.media_id) for r in valid if r.media_id and r.key not in existing})
    )
    for r in valid:
        if r.key in existing or r.key in new:
            continue
        if r.reply_to and (r.conversation_id, r.sender, r.reply_to) not in replies:
            r.error = ValidationError("reply_to: no message of this conversation that you can see")
            continue
        if r.media_id and (r.sender, r.media_id) not in owned:
            r.error = ValidationError("media_id: not a file you uploaded")
            continue
        new[r.key] = {
            "id": str(uuid.uuid4()),
            "conversation_id": r.conversation_id,
            "sender_id": r.sender,
            "client_msg_id": r.client_msg_id,
            "body": r.body,
            "ttl_seconds": r.ttl_seconds,
            "encrypted": r.encrypted,
            "reply_to": r.reply_to,
            "media_id": r.media_id,
        }
        counts[r.conversation_id] = counts.get(r.conversation_id, 0) + 1
    if new:
        last = store.allocate_seqs(conn, counts)
        # Seqs in the order the requests arrived, per conversation: last - n + 1 .. last.
        next_seq = {c: last[c] - n + 1 for c, n in counts.items()}
        for message in new.values():
            message["seq"] = next_seq[message["conversation_id"]]
            next_seq[message["conversation_id"]] += 1
        for row in store.insert_messages(conn, list(new.values())):
            existing[(str(row["conversation_id"]), str(row["sender_id"]), row["client_msg_id"])] = row
    _settle([r for r in valid if r.error is None], existing, {m["id"] for m in new.values()})


def _settle(
    valid: list[SendRequest], rows: dict[tuple[str, str, str], dict[str, Any]], created_ids: set[str]
) -> None:
    """Each valid request's row, whether it is new and whether it must be published.

    Two requests of one batch with the same key are one message: the first one is it."""
    keys_seen: set[tuple[str, str, str]] = set()
    for r in valid:
        r.row = rows[r.key]
        first = r.key not in keys_seen
        keys_seen.add(r.key)
        r.created = first and str(r.row["id"]) in created_ids
        # Expired already: nothing to deliver, but the answer stays the same message.
        alive = r.row.get("body") is not None or r.row.get("deleted_at") is not None
        r.publish = first and alive and (r.created or r.row.get("stored_at") is None)


class Acceptor:
    def __init__(self, ctx: ChatContext):
        self.ctx = ctx
        self.settings = ctx.settings
        self.incoming: queue.Queue[SendRequest] = queue.Queue()
        self.recorded: queue.Queue[list[SendRequest]] = queue.Queue(maxsize=2)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target in (self._record_loop, self._publish_loop):
            thread = threading.Thread(target=target, name=f"accept-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    @property
    def waiting(self) -> int:
        """Requests not yet recorded (the accept queue's depth, a metric)."""
        return self.incoming.qsize()

    def submit(self, request: SendRequest) -> SendRequest:
        """Wait until the request is accepted durably (or raise its ApiError)."""
        if not self._threads:  # tests without background threads: one batch of one, here
            self._run([request])
        else:
            self.incoming.put(request)
            if not request.done.wait(self.settings.backend_timeout_seconds * 3 + 5):
                raise Unavailable(
                    "the message was not accepted in time; send it again with the same client_msg_id"
                )
        if request.error is not None:
            raise request.error
        return request

    def submit_nowait(self, request: SendRequest) -> None:
        """Queue the request; its `on_done` is called once it is answered. A socket's sends
        go through here so that its next frame is read while earlier ones are recorded:
        requests are taken, recorded and answered in the order they were submitted."""
        if not self._threads:
            self._run([request])
        else:
            self.incoming.put(request)

    # ---- the stages -------------------------------------------------------------------------
    def _take_batch(self) -> list[SendRequest]:
        batch = [self.incoming.get()]
        limit = self.settings.accept_batch_max
        deadline = time.monotonic() + self.settings.accept_batch_wait_ms / 1000
        while len(batch) < limit:
            try:
                remaining = deadline - time.monotonic()
                batch.append(
                    self.incoming.get(timeout=remaining) if remaining > 0 else self.incoming.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _record_loop(self) -> None:
        while True:
            batch = self._take_batch()
            self._record_answering(batch)
            self.recorded.put(batch)

    def _publish_loop(self) -> None:
        while True:
            batch = self.recorded.get()
            self._publish_answering(batch)

    def _run(self, batch: list[SendRequest]) -> None:
        self._record_answering(batch)
        self._publish_answering(batch)

    def _record_answering(self, batch: list[SendRequest]) -> None:
        try:
            self.record(batch)
        except Exception as exc:  # noqa: BLE001 - every request gets an answer
            log.warning("recording a batch of %d failed: %s: %s", len(batch), type(exc).__name__, exc)
            for r in batch:
                r.error = r.error or Unavailable("a backend service is unavailable; try again")

    def _publish_answering(self, batch: list[SendRequest]) -> None:
        try:
            self.publish(batch)
        except Exception as exc:  # noqa: BLE001 - every request gets an answer
            log.warning("publishing a batch of %d failed: %s: %s", len(batch), type(exc).__name__, exc)
            for r in batch:
                r.error = r.error or Unavailable("a backend service is unavailable; try again")
        finally:
            for r in batch:
                r.done.set()
                if r.on_done is not None:
                    try:
                        r.on_done(r)
                    except Exception:  # noqa: BLE001 - one answer must not stop the others
                        log.exception("answering a send failed")

    def record(self, batch: list[SendRequest]) -> None:
        started = time.perf_counter()
        try:
            with self.ctx.db.transaction() as conn:
                _record(conn, batch)
        except Exception as exc:
            for r in batch:
                r.row, r.error, r.created, r.publish = None, None, False, False
            if len(batch) == 1:
                raise
            log.warning("a batch of %d failed (%s: %s): one by one", len(batch), type(exc).__name__, exc)
            for r in batch:
                try:
                    with self.ctx.db.transaction() as conn:
                        _record(conn, [r])
                except Exception as single:  # noqa: BLE001 - this request's answer
                    log.warning("a message was not recorded: %s: %s", type(single).__name__, single)
                    r.error = Unavailable("a backend service is unavailable; try again")
        metrics = self.ctx.metrics
        metrics.accept_batch_size.observe(len(batch))
        metrics.accept_record_seconds.observe(time.perf_counter() - started)

    def publish(self, batch: list[SendRequest]) -> None:
        todo = [r for r in batch if r.error is None and r.publish]
        if todo:
            s = self.settings
            try:
                self.ctx.publisher.publish_many(
                    s.messages_exchange,
                    s.messages_routing_key,
                    [
                        Outgoing(
                            queue_payload(r.row, r.request_id),
                            message_id=str(r.row["id"]),
                            headers={"x-request-id": r.request_id or ""},
                        )
                        for r in todo
                    ],
                )
            except PublishError:
                for r in todo:
                    r.error = Unavailable(
                        "the message could not be queued; send it again with the same client_msg_id"
                    )
        for r in batch:
            if r.error is None:
                self.ctx.metrics.messages_accepted.labels("new" if r.created else "repeat").inc()
