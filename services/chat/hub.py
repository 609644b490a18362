"""Live connections of this chat instance, fan-out through Redis, presence and catch-up.

Fan-out: every chat instance subscribes to one Redis channel (`events_channel`); an event
names its recipients (`to`: user ids) and carries one frame; each instance hands the frame
to its own sockets of those users. One channel for all instances keeps the Redis side to
one publish per event (performance-facts.md: thousands of channels were the cost).

Pub/sub is fire-and-forget, so delivery does not rest on it alone: a socket that connects
(or an instance whose subscription was broken and is back) catches up from MongoDB,
every message after the seq its clients reported delivered, in seq order; live frames
that arrive meanwhile are held and sent after, minus the ones catch-up already sent.

Presence: `presence:<user>` exists while any socket of the user is open anywhere (TTL,
refreshed by a heartbeat); `sockets:<user>` is a sorted set of socket keys scored by their
expiry, so a socket of a dead instance stops counting by itself.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import threading
import time
import uuid
from typing import Any

import redis

from services.chat import history, store
from services.chat.context import ChatContext
from services.chat.messages import message_json
from services.common.times import rfc3339, utcnow

log = logging.getLogger(__name__)

PRESENCE_KEY = "presence:{user_id}"
SOCKETS_KEY = "sockets:{user_id}"
# The socket set outlives its newest socket, so when a chat instance dies scheduled_jobs
# still finds the stale sockets, records last_seen and tells watchers the user went offline.
SOCKETS_KEY_TTL_FACTOR = 3
MEMBERS_CACHE_SECONDS = 5.0
_CLOSE = object()


class Connection:
    """One client socket: frames go through a bounded queue to one writer (never interleaved)."""

    def __init__(self, ws: Any, user_id: str, hub: Hub, queue_size: int):
        self.id = uuid.uuid4().hex
        self.ws = ws
        self.user_id = user_id
        self.hub = hub
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.lock = threading.Lock()
        self.catching_up = True
        self.held: list[dict[str, Any]] = []
        self.caught_up_ids: set[str] = set()
        # Highest seq sent per conversation: where a later catch-up starts.
        self.last_seq: dict[str, int] = {}
        self.closed = threading.Event()

    # -- called by the hub (any thread or greenlet) --
    def deliver(self, frame: dict[str, Any]) -> None:
        with self.lock:
            if self.catching_up:
                self.held.append(frame)
            else:
                self._enqueue(frame)

    def begin_catch_up(self) -> None:
        with self.lock:
            self.catching_up = True

    def send_catch_up(self, frame: dict[str, Any]) -> None:
        with self.lock:
            self.caught_up_ids.add(frame["message"]["id"])
            self._enqueue(frame)

    def end_catch_up(self) -> None:
        with self.lock:
            for frame in self.held:
                if frame.get("type") == "message.new" and frame["message"]["id"] in self.caught_up_ids:
                    continue
                self._enqueue(frame)
            self.held = []
            self.caught_up_ids = set()
            self.catching_up = False

    def send(self, frame: dict[str, Any]) -> None:
        """A direct answer to this socket's own frame (ack, error, pong)."""
        with self.lock:
            self._enqueue(frame)

    def _enqueue(self, frame: dict[str, Any]) -> None:
        if self.closed.is_set():
            return
        if frame.get("type") == "message.new":
            message = frame["message"]
            conv = message["conversation_id"]
            self.last_seq[conv] = max(self.last_seq.get(conv, 0), int(message["seq"]))
        try:
            self.queue.put_nowait(frame)
        except queue.Full:
            # A client this far behind gets disconnected; on reconnect it catches up.
            log.warning(
                "socket of user %s too slow (%d frames queued): closing", self.user_id, self.queue.qsize()
            )
            self.close()

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(_CLOSE)

    def write_loop(self) -> None:
        """Runs in its own thread (a greenlet under gevent) until the socket closes."""
        sent = self.hub.ctx.metrics.frames_sent
        while True:
            frame = self.queue.get()
            if frame is _CLOSE:
                break
            try:
                self.ws.send(json.dumps(frame, separators=(",", ":")))
                sent.labels(frame.get("type", "unknown")).inc()
            except Exception as exc:  # the socket is gone; the reader will notice too
                log.info("socket of user %s closed while sending: %s", self.user_id, type(exc).__name__)
                self.closed.set()
                break
        if self.closed.is_set():
            with contextlib.suppress(Exception):  # already closed is fine
                self.ws.close(reason=1011 if self.queue.qsize() else 1000)


class Hub:
    def __init__(self, ctx: ChatContext):
        self.ctx = ctx
        self.settings = ctx.settings
        self.by_user: dict[str, set[Connection]] = {}
        self.lock = threading.Lock()
        self._members_cache: dict[str, tuple[float, list[str]]] = {}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Pub/sub needs a connection without a read timeout (it waits for events).
        self.pubsub_client = redis.Redis.from_url(
            self.settings.redis_url,
            socket_connect_timeout=self.settings.backend_timeout_seconds,
            socket_keepalive=True,
            health_check_interval=15,
            decode_responses=True,
            client_name=f"whatsapp-chat-events-{self.settings.instance_id}",
        )

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        for target in (self._listen_loop, self._heartbeat_loop):
            thread = threading.Thread(target=target, name=target.__name__, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()

    # ---- connections ----------------------------------------------------------------------
    def register(self, conn: Connection) -> None:
        with self.lock:
            self.by_user.setdefault(conn.user_id, set()).add(conn)
        self.ctx.metrics.sockets.inc()

    def unregister(self, conn: Connection) -> None:
        with self.lock:
            conns = self.by_user.get(conn.user_id)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self.by_user[conn.user_id]
        self.ctx.metrics.sockets.dec()

    def connections(self) -> list[Connection]:
        with self.lock:
            return list(itertools.chain.from_iterable(self.by_user.values()))

    def dispatch(self, event: dict[str, Any]) -> None:
        frame = event.get("frame")
        if not isinstance(frame, dict):
            return
        skip = event.get("except_conn")
        with self.lock:
            targets = [c for uid in event.get("to", ()) for c in self.by_user.get(uid, ()) if c.id != skip]
        for conn in targets:
            conn.deliver(frame)

    # ---- events to other users (through Redis, so every instance sees them) ---------------
    def publish_event(self, to: list[str], frame: dict[str, Any], except_conn: str | None = None) -> None:
        if not to:
            return
        event = {"to": to, "frame": frame}
        if except_conn:
            event["except_conn"] = except_conn
        try:
            self.ctx.redis.publish(self.settings.events_channel, json.dumps(event, separators=(",", ":")))
        except redis.RedisError as exc:
            # Typing, receipts and presence are best effort; messages never travel this way alone.
            log.warning("event not published (%s): %s", frame.get("type"), exc)

    def members(self, conversation_id: str) -> list[str]:
        now = time.monotonic()
        cached = self._members_cache.get(conversation_id)
        if cached and now - cached[0] < MEMBERS_CACHE_SECONDS:
            return cached[1]
        with self.ctx.db.connection() as conn:
            ids = store.member_ids(conn, conversation_id)
        self._members_cache[conversation_id] = (now, ids)
        if len(self._members_cache) > 10_000:
            self._members_cache.clear()
        return ids

    def forget_members(self, conversation_id: str) -> None:
        self._members_cache.pop(conversation_id, None)

    # ---- catch-up -------------------------------------------------------------------------
    def catch_up(self, conn: Connection) -> int:
        """Send every stored message the socket's user has not confirmed, in seq order."""
        conn.begin_catch_up()
        sent = 0
        try:
            with self.ctx.db.connection() as db:
                rows = store.memberships(db, conn.user_id)
            for row in rows:
                conversation_id = str(row["conversation_id"])
                start = max(int(row["delivered_seq"]), conn.last_seq.get(conversation_id, 0))
                if int(row["last_seq"]) <= start:
                    continue
                for doc in history.after(
                    self.ctx.mongo, conversation_id, start, self.settings.catch_up_limit
                ):
                    conn.send_catch_up({"type": "message.new", "message": message_json(doc)})
                    sent += 1
        finally:
            conn.end_catch_up()
        return sent

    # ---- presence -------------------------------------------------------------------------
    def _socket_key(self, conn: Connection) -> str:
        return f"{self.settings.instance_id}:{conn.id}"

    def came_online(self, conn: Connection) -> None:
        ttl = self.settings.presence_ttl_seconds
        pipe = self.ctx.redis.pipeline()
        pipe.zadd(SOCKETS_KEY.format(user_id=conn.user_id), {self._socket_key(conn): time.time() + ttl})
        pipe.expire(SOCKETS_KEY.format(user_id=conn.user_id), SOCKETS_KEY_TTL_FACTOR * ttl)
        pipe.set(PRESENCE_KEY.format(user_id=conn.user_id), self.settings.instance_id, ex=ttl, get=True)
        was = pipe.execute()[2]
        if was is None:
            self._announce(conn.user_id, online=True, last_seen=None)

    def went_offline(self, conn: Connection) -> None:
        sockets_key = SOCKETS_KEY.format(user_id=conn.user_id)
        now = time.time()
        pipe = self.ctx.redis.pipeline()
        pipe.zrem(sockets_key, self._socket_key(conn))
        pipe.zremrangebyscore(sockets_key, "-inf", now)
        pipe.zcard(sockets_key)
        remaining = pipe.execute()[2]
        if remaining:
            return
        self.ctx.redis.delete(PRESENCE_KEY.format(user_id=conn.user_id))
        seen = utcnow()
        with self.ctx.db.connection() as db:
            store.record_last_seen(db, conn.user_id, seen)
        self._announce(conn.user_id, online=False, last_seen=rfc3339(seen))

    def _announce(self, user_id: str, *, online: bool, last_seen: str | None) -> None:
        with self.ctx.db.connection() as db:
            watchers = store.watchers_of(db, user_id)
        self.publish_event(
            watchers, {"type": "presence", "user_id": user_id, "online": online, "last_seen": last_seen}
        )

    # ---- background loops -----------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        ttl = self.settings.presence_ttl_seconds
        while not self._stopping.wait(max(1.0, ttl / 3)):
            conns = self.connections()
            if not conns:
                continue
            try:
                pipe = self.ctx.redis.pipeline(transaction=False)
                expiry = time.time() + ttl
                for conn in conns:
                    pipe.zadd(SOCKETS_KEY.format(user_id=conn.user_id), {self._socket_key(conn): expiry})
                    pipe.expire(SOCKETS_KEY.format(user_id=conn.user_id), SOCKETS_KEY_TTL_FACTOR * ttl)
                    pipe.set(PRESENCE_KEY.format(user_id=conn.user_id), self.settings.instance_id, ex=ttl)
                pipe.execute()
            except redis.RedisError as exc:
                log.warning("presence heartbeat failed: %s", exc)

    def _listen_loop(self) -> None:
        delay = 0.5
        first = True
        while not self._stopping.is_set():
            pubsub = self.pubsub_client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.settings.events_channel)
                log.info("listening for events on %s", self.settings.events_channel)
                if not first:
                    # Events published while we were away are lost: catch every socket up.
                    self._resync_all()
                first, delay = False, 0.5
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        self.dispatch(json.loads(message["data"]))
                    except (ValueError, TypeError) as exc:
                        log.warning("malformed event ignored: %s", exc)
            except redis.RedisError as exc:
                log.warning("event subscription lost (%s); retrying in %.1f s", exc, delay)
                first = False
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):  # the connection is gone anyway
                    pubsub.close()

    def _resync_all(self) -> None:
        for conn in self.connections():
            try:
                self.catch_up(conn)
            except Exception as exc:
                log.warning("catch-up of a socket of %s failed (%s): closing it", conn.user_id, exc)
                conn.close()
