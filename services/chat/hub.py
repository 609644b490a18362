"""Live connections of this chat instance, fan-out through Redis, presence and catch-up.

Fan-out: every chat instance subscribes to one Redis channel (`events_channel`); an event
names its recipients (`to`: user ids) and carries one frame; each instance hands the frame
to its own sockets of those users. One channel for all instances keeps the Redis side to
one publish per event (performance-facts.md: thousands of channels were the cost).

Pub/sub is fire-and-forget, so delivery does not rest on it alone: a socket that connects
(or an instance whose subscription was broken and is back) catches up from MongoDB,
every message after the seq its clients reported delivered, in seq order; live frames
that arrive meanwhile are held and sent after, minus the ones catch-up already sent.
Each socket keeps one conversation's frames in seq order (Connection): a frame whose
predecessor is missing waits, and the gap is filled from PostgreSQL.

Presence: `presence:<user>` exists while any socket of the user is open anywhere (TTL,
refreshed by a heartbeat); `sockets:<user>` is a sorted set of socket keys scored by their
expiry, so a socket of a dead instance stops counting by itself. A socket key names the
socket's session (services/common/presence.py), which is what decides pushes.
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
from simple_websocket import ConnectionClosed
from wsproto.events import TextMessage

from services.chat import history, store
from services.chat.context import ChatContext
from services.chat.messages import message_json
from services.common.errors import RateLimited, Unauthorized
from services.common.members import seeing
from services.common.presence import PRESENCE_KEY, SOCKETS_KEY, socket_member
from services.common.sessions import ENDED_KEY, SESSIONS_CHANNEL, ended_among, parse_announcement
from services.common.times import rfc3339, utcnow

log = logging.getLogger(__name__)

# The socket set outlives its newest socket, so when a chat instance dies scheduled_jobs
# still finds the stale sockets, records last_seen and tells watchers the user went offline.
SOCKETS_KEY_TTL_FACTOR = 3
MEMBERS_CACHE_SECONDS = 5.0
PRESENCE_BATCH_MAX = 500  # sockets whose coming or going is recorded together
_CLOSE = object()
# Close code of a socket whose authority ended: logout, session revoked, token expired.
CLOSE_UNAUTHORIZED = 4401
EXPIRY_CHECK_SECONDS = 1.0


class Connection:
    """One client socket: frames go through a bounded queue to one writer (never interleaved).

    Order (the contract): one conversation's `message.new` frames leave in increasing seq.
    Live frames can arrive out of order (two chat instances publish one conversation's
    messages, two processors fan them out, a batch is redelivered): a frame whose
    predecessor was not sent is held, the hub fills the gap from PostgreSQL after
    `order_gap_wait_ms` (or it arrives meanwhile), and a frame already sent is not sent
    again. If a predecessor is still not recorded after `order_gap_max_ms`, the held frames
    go out and the missing one is sent when it comes: late rather than lost."""

    SENT_WINDOW = 1000  # seqs below next - this are forgotten (they are long delivered)

    def __init__(  # noqa: PLR0913 - the token's session and expiry are keyword-only
        self,
        ws: Any,
        user_id: str,
        hub: Hub,
        queue_size: int,
        sends_in_flight: int = 64,
        *,
        session_id: str | None = None,
        expires_at: float = float("inf"),
    ):
        self.id = uuid.uuid4().hex
        self.ws = ws
        self.user_id = user_id
        # The authority the socket holds: its token's session and expiry (an `auth` frame
        # moves both); the hub ends the socket when either ends.
        self.session_id = session_id
        self.expires_at = expires_at
        # The session the socket's presence key names (fixed: the key must stay the same
        # from the socket's first heartbeat to its removal, whatever an `auth` frame moves).
        self.presence_session = session_id
        self.close_code: int | None = None
        self.close_reason = ""
        self.hub = hub
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.lock = threading.Lock()
        self.catching_up = True
        self.held: list[dict[str, Any]] = []  # live frames that arrived during catch-up
        # Per conversation: the next seq this socket expects, the seqs sent recently, and
        # frames held until their predecessors are sent.
        self.next_seq: dict[str, int] = {}
        self.sent_seqs: dict[str, set[int]] = {}
        self.out_of_order: dict[str, dict[int, dict[str, Any]]] = {}
        self.closed = threading.Event()
        # This socket's sends in the accept pipeline (ws.py sets the bound).
        self.in_flight = threading.BoundedSemaphore(sends_in_flight)

    @property
    def last_seq(self) -> dict[str, int]:
        """Highest contiguous seq sent per conversation: where a later catch-up starts."""
        with self.lock:
            return {conv: nxt - 1 for conv, nxt in self.next_seq.items()}

    # -- called by the hub (any thread or greenlet) --
    def deliver(self, frame: dict[str, Any]) -> None:
        with self.lock:
            if self.catching_up:
                self.held.append(frame)
            else:
                self._offer(frame)

    def begin_catch_up(self) -> None:
        with self.lock:
            self.catching_up = True

    def send_catch_up(self, frame: dict[str, Any]) -> None:
        with self.lock:
            if int(frame["message"]["seq"]) not in self.sent_seqs.get(
                frame["message"]["conversation_id"], ()
            ):
                self._emit_message(frame)

    def end_catch_up(self, caught_up_to: dict[str, int] | None = None) -> None:
        """`caught_up_to`: per conversation, the seq this socket now has everything up to."""
        with self.lock:
            for conv, seq in (caught_up_to or {}).items():
                self.next_seq[conv] = max(self.next_seq.get(conv, 0), seq + 1)
            held, self.held = self.held, []
            self.catching_up = False
            for frame in held:
                self._offer(frame)
            for conv in list(self.out_of_order):
                self._flush(conv)

    # -- ordering (self.lock held) --
    def _offer(self, frame: dict[str, Any]) -> None:
        if frame.get("type") != "message.new":
            self._enqueue(frame)
            return
        message = frame["message"]
        conv, seq = message["conversation_id"], int(message["seq"])
        if seq in self.sent_seqs.get(conv, ()):
            return  # sent already (live and by catch-up or a gap fill, or redelivered)
        expected = self.next_seq.get(conv)
        if expected is None or seq <= expected:
            # The first of this conversation on this socket, the one expected, or a late one.
            self._emit_message(frame)
            self._flush(conv)
            return
        self.out_of_order.setdefault(conv, {})[seq] = frame
        self.hub.note_gap(self, conv)

    def _emit_message(self, frame: dict[str, Any]) -> None:
        message = frame["message"]
        self._mark_sent(message["conversation_id"], int(message["seq"]))
        self._enqueue(frame)

    def _mark_sent(self, conv: str, seq: int) -> None:
        sent = self.sent_seqs.setdefault(conv, set())
        sent.add(seq)
        nxt = max(self.next_seq.get(conv, 0), seq + 1)
        self.next_seq[conv] = nxt
        if len(sent) > 2 * self.SENT_WINDOW:
            self.sent_seqs[conv] = {s for s in sent if s >= nxt - self.SENT_WINDOW}

    def _flush(self, conv: str) -> None:
        held = self.out_of_order.get(conv)
        while held and self.next_seq.get(conv) in held:
            self._emit_message(held.pop(self.next_seq[conv]))
        if not held:
            self.out_of_order.pop(conv, None)
            self.hub.gap_closed(self, conv)

    # -- gap filling (called by the hub's gap loop) --
    def gap(self, conv: str) -> tuple[int, int] | None:
        """(first missing seq, first held seq) of the conversation's gap, or None."""
        with self.lock:
            held = self.out_of_order.get(conv)
            if not held or conv not in self.next_seq:
                return None
            return self.next_seq[conv], min(held)

    def fill_gap(self, conv: str, rows: list[dict[str, Any]], *, force: bool) -> None:
        """Send the recorded messages of the gap (skip deleted and expired ones: history and
        catch-up never show them either); `force`: stop waiting for the rest."""
        with self.lock:
            held = self.out_of_order.get(conv)
            if not held:
                return
            top = min(held)
            by_seq = {int(r["seq"]): r for r in rows}
            seq = self.next_seq[conv]
            now = utcnow()
            while seq < top and seq in by_seq:
                row = by_seq[seq]
                if seq in self.sent_seqs.get(conv, ()):
                    pass
                elif row.get("body") is None or (
                    row.get("expires_at") is not None and row["expires_at"] <= now
                ):
                    self._mark_sent(conv, seq)  # nothing to show: skip it, as history does
                else:
                    self._emit_message({"type": "message.new", "message": message_json(row)})
                self.next_seq[conv] = max(self.next_seq[conv], seq + 1)
                seq += 1
            if force and self.next_seq[conv] < top:
                log.warning(
                    "socket of user %s: seqs %d-%d of %s not recorded after waiting; sending what follows",
                    self.user_id,
                    self.next_seq[conv],
                    top - 1,
                    conv,
                )
                self.hub.ctx.metrics.order_gaps_forced.inc()
                self.next_seq[conv] = top
            self._flush(conv)

    def send(self, frame: dict[str, Any]) -> None:
        """A direct answer to this socket's own frame (ack, error, pong)."""
        with self.lock:
            self._enqueue(frame)

    def _enqueue(self, frame: dict[str, Any]) -> None:
        if self.closed.is_set():
            return
        try:
            self.queue.put_nowait(frame)
        except queue.Full:
            # A client this far behind gets disconnected; on reconnect it catches up.
            log.warning(
                "socket of user %s too slow (%d frames queued): closing", self.user_id, self.queue.qsize()
            )
            self.close()

    def reauthenticate(self, session_id: str | None, expires_at: float) -> None:
        with self.lock:
            self.session_id, self.expires_at = session_id, expires_at

    def close(self, code: int | None = None, reason: str = "") -> None:
        """End the socket; `code`: the close frame's code (else 1000, or 1011 with frames left)."""
        if not self.closed.is_set():
            self.close_code, self.close_reason = code, reason
            self.closed.set()
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(_CLOSE)

    def write_loop(self) -> None:
        """Runs in its own thread (a greenlet under gevent) until the socket closes.

        Frames queued together leave together: up to WRITE_BATCH_MAX frames, one write."""
        sent = self.hub.ctx.metrics.frames_sent
        stop = False
        while not stop:
            frames = take_up_to(self.queue, WRITE_BATCH_MAX)
            for i, frame in enumerate(frames):
                if frame is _CLOSE:
                    frames, stop = frames[:i], True
                    break
            if not frames:
                continue
            try:
                send_texts(self.ws, [json.dumps(f, separators=(",", ":")) for f in frames])
            except Exception as exc:  # the socket is gone; the reader will notice too
                log.info("socket of user %s closed while sending: %s", self.user_id, type(exc).__name__)
                self.closed.set()
                break
            for frame in frames:
                sent.labels(frame.get("type", "unknown")).inc()
        if self.closed.is_set():
            code = self.close_code or (1011 if self.queue.qsize() else 1000)
            with contextlib.suppress(Exception):  # already closed is fine
                self.ws.close(reason=code, message=self.close_reason or None)


WRITE_BATCH_MAX = 64  # frames written to one socket at once


def take_up_to(waiting: queue.Queue[Any], limit: int) -> list[Any]:
    """Wait for one item, then take whatever else is already waiting, `limit` in all."""
    items = [waiting.get()]
    while len(items) < limit:
        try:
            items.append(waiting.get_nowait())
        except queue.Empty:
            break
    return items


def send_texts(ws: Any, texts: list[str]) -> None:
    """Text frames to one socket in one write (a send per frame was a sixth of chat's CPU
    at 400 msgs/s). `ws` is simple_websocket's Server: its wsproto connection frames each
    message and its socket takes them together; anything else is sent frame by frame."""
    protocol, sock = getattr(ws, "ws", None), getattr(ws, "sock", None)
    if protocol is None or sock is None:
        for text in texts:
            ws.send(text)
        return
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    sock.sendall(b"".join(protocol.send(TextMessage(data=text)) for text in texts))


class Hub:
    def __init__(self, ctx: ChatContext):
        self.ctx = ctx
        self.settings = ctx.settings
        self.by_user: dict[str, set[Connection]] = {}
        self.lock = threading.Lock()
        # Per conversation: (when read, {member: visible_after_seq}); per user: (when read,
        # who blocked them). Both a few seconds old at most.
        self._members_cache: dict[str, tuple[float, dict[str, int]]] = {}
        self._blockers_cache: dict[str, tuple[float, set[str]]] = {}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Open gaps: (connection id, conversation) -> (connection, conversation, since).
        self._gaps: dict[tuple[str, str], tuple[Connection, str, float]] = {}
        self._gaps_lock = threading.Lock()
        self._catch_up_slots = threading.BoundedSemaphore(self.settings.catch_up_concurrency)
        self._presence: queue.Queue[tuple[bool, Connection]] = queue.Queue()
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
        for target in (
            self._listen_loop,
            self._heartbeat_loop,
            self._gap_loop,
            self._presence_loop,
            self._expiry_loop,
        ):
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
        with self._gaps_lock:
            for key in [k for k in self._gaps if k[0] == conn.id]:
                del self._gaps[key]
        with self.lock:
            conns = self.by_user.get(conn.user_id)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self.by_user[conn.user_id]
        self.ctx.metrics.sockets.dec()

    # ---- authority: sessions that end, tokens that expire, sockets per user -----------------
    def admit(self, user_id: str, session_id: str | None) -> None:
        """Before an upgrade: 401 for a session that has ended, 429 for a user whose every
        socket is in use (on any instance: the sockets set counts them all). Redis down:
        admitted (the fan-out needs Redis anyway; refusing every socket helps no one)."""
        limit = self.settings.ws_max_sockets_per_user
        with self.lock:
            here = len(self.by_user.get(user_id, ()))
        if here >= limit:
            raise RateLimited(f"at most {limit} open sockets per user", retry_after=5)
        try:
            pipe = self.ctx.redis.pipeline(transaction=False)
            pipe.zcount(SOCKETS_KEY.format(user_id=user_id), time.time(), "+inf")
            pipe.get(ENDED_KEY.format(sid=session_id or "-"))
            everywhere, ended = pipe.execute()
        except redis.RedisError as exc:
            log.warning("socket of %s admitted unchecked (Redis: %s)", user_id, exc)
            return
        if session_id and ended is not None:
            raise Unauthorized("this session has ended")
        if int(everywhere) >= limit:
            raise RateLimited(f"at most {limit} open sockets per user", retry_after=5)

    def check_session(self, session_id: str | None) -> None:
        """Unauthorized if the session has ended (an `auth` frame with such a token)."""
        try:
            if ended_among(self.ctx.redis, [session_id]):
                raise Unauthorized("this session has ended")
        except redis.RedisError as exc:
            log.warning("session %s not checked (Redis: %s)", session_id, exc)

    def end_sessions(self, session_ids: set[str]) -> int:
        """Close every socket of these sessions here (4401); how many were closed."""
        ending = [c for c in self.connections() if c.session_id in session_ids]
        for conn in ending:
            conn.close(code=CLOSE_UNAUTHORIZED, reason="session ended")
        return len(ending)

    def end_expired(self, now: float | None = None) -> int:
        """Close the sockets whose access token expired without an `auth` frame (4401)."""
        now = time.time() if now is None else now
        expired = [c for c in self.connections() if c.expires_at <= now]
        for conn in expired:
            conn.close(code=CLOSE_UNAUTHORIZED, reason="access token expired")
        return len(expired)

    def recheck_sessions(self) -> int:
        """After a broken subscription (announcements missed): end the sockets of sessions
        that ended meanwhile."""
        conns = self.connections()
        ended = ended_among(self.ctx.redis, [c.session_id for c in conns])
        return self.end_sessions(ended) if ended else 0

    def _expiry_loop(self) -> None:
        while not self._stopping.wait(EXPIRY_CHECK_SECONDS):
            try:
                self.end_expired()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("expired sockets not closed: %s: %s", type(exc).__name__, exc)

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
        return list(self._member_marks(conversation_id))

    def _member_marks(self, conversation_id: str) -> dict[str, int]:
        now = time.monotonic()
        cached = self._members_cache.get(conversation_id)
        if cached and now - cached[0] < MEMBERS_CACHE_SECONDS:
            return cached[1]
        with self.ctx.db.connection() as conn:
            rows = store.members_of(conn, conversation_id)
        marks = {str(r["user_id"]): int(r["visible_after_seq"]) for r in rows}
        self._members_cache[conversation_id] = (now, marks)
        if len(self._members_cache) > 10_000:
            self._members_cache.clear()
        return marks

    def seeing(self, conversation_id: str, seq: int) -> list[str]:
        """The members whose view holds the message with this seq (edits and reactions go
        to them)."""
        return seeing(self._member_marks(conversation_id), seq)

    def blockers(self, user_id: str) -> set[str]:
        now = time.monotonic()
        cached = self._blockers_cache.get(user_id)
        if cached and now - cached[0] < MEMBERS_CACHE_SECONDS:
            return cached[1]
        with self.ctx.db.connection() as conn:
            blockers = store.blockers_of(conn, user_id)
        self._blockers_cache[user_id] = (now, blockers)
        if len(self._blockers_cache) > 10_000:
            self._blockers_cache.clear()
        return blockers

    def audience(self, conversation_id: str, sender: str, seq: int | None = None) -> list[str]:
        """Who gets `sender`'s typing or receipt frame in the conversation: the other members,
        less those who blocked the sender, and for a receipt up to `seq`, less those who
        joined after it (they never saw those messages)."""
        marks = self._member_marks(conversation_id)
        if sender not in marks:
            return []
        blockers = self.blockers(sender)
        return [
            member
            for member, visible_after in marks.items()
            if member != sender and member not in blockers and (seq is None or seq > visible_after)
        ]

    def forget_members(self, conversation_id: str) -> None:
        self._members_cache.pop(conversation_id, None)

    # ---- catch-up ----------------------------------------------------------------------------
    def catch_up(self, conn: Connection) -> int:
        """Send every stored message the socket's user has not confirmed, in seq order.

        At most `catch_up_concurrency` sockets catch up at once: a connect storm (every
        client of a restarted instance at once) queues here instead of starving live
        delivery of CPU, PostgreSQL and MongoDB. Live frames wait held meanwhile."""
        conn.begin_catch_up()
        with self._catch_up_slots:
            return self._catch_up(conn)

    def _catch_up(self, conn: Connection) -> int:
        sent = 0
        caught_up_to: dict[str, int] = {}
        try:
            with self.ctx.db.connection() as db:
                rows = store.memberships(db, conn.user_id, conn.session_id)
            already = conn.last_seq
            for row in rows:
                conversation_id = str(row["conversation_id"])
                start = max(int(row["delivered_seq"]), already.get(conversation_id, 0))
                caught_up_to[conversation_id] = start
                if int(row["last_seq"]) <= start:
                    continue
                for doc in history.after(
                    self.ctx.mongo, conversation_id, start, self.settings.catch_up_limit
                ):
                    conn.send_catch_up({"type": "message.new", "message": message_json(doc)})
                    caught_up_to[conversation_id] = int(doc["seq"])
                    sent += 1
        finally:
            conn.end_catch_up(caught_up_to)
        return sent

    # ---- order: gaps filled from PostgreSQL ---------------------------------------------------
    def note_gap(self, conn: Connection, conversation_id: str) -> None:
        with self._gaps_lock:
            self._gaps.setdefault((conn.id, conversation_id), (conn, conversation_id, time.monotonic()))

    def gap_closed(self, conn: Connection, conversation_id: str) -> None:
        with self._gaps_lock:
            self._gaps.pop((conn.id, conversation_id), None)

    def fill_gaps_once(self) -> int:
        """Fill every gap older than order_gap_wait_ms; the number of gaps looked at."""
        wait = self.settings.order_gap_wait_ms / 1000
        give_up = self.settings.order_gap_max_ms / 1000
        now = time.monotonic()
        with self._gaps_lock:
            due = [g for g in self._gaps.values() if now - g[2] >= wait]
        for conn, conversation_id, since in due:
            bounds = conn.gap(conversation_id)
            if bounds is None:
                self.gap_closed(conn, conversation_id)
                continue
            first, top = bounds
            if top - first > self.settings.catch_up_limit:
                # Beyond what a catch-up sends (a long absence): the rest is history pages.
                conn.fill_gap(conversation_id, [], force=True)
                continue
            try:
                with self.ctx.db.connection() as db:
                    rows = store.messages_in_range(db, conversation_id, first - 1, top)
            except Exception as exc:  # noqa: BLE001 - PostgreSQL down: wait, then stop holding
                log.warning("order gap of %s not read: %s: %s", conversation_id, type(exc).__name__, exc)
                rows = []
            self.ctx.metrics.order_gaps_filled.inc()
            conn.fill_gap(conversation_id, rows, force=now - since >= give_up)
        return len(due)

    def _gap_loop(self) -> None:
        interval = max(0.01, self.settings.order_gap_wait_ms / 4000)
        while not self._stopping.wait(interval):
            if not self._gaps:
                continue
            try:
                self.fill_gaps_once()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("filling order gaps failed: %s: %s", type(exc).__name__, exc)

    # ---- presence -------------------------------------------------------------------------
    def _socket_key(self, conn: Connection) -> str:
        """`<instance>:<socket>:<session>`: message_processor reads the sessions with an open
        socket from these keys (a push target is pushed while its session has none)."""
        return socket_member(self.settings.instance_id, conn.id, conn.presence_session)

    def came_online(self, conn: Connection) -> None:
        """Queued: the presence loop records sockets coming and going in batches."""
        self._presence.put((True, conn))

    def went_offline(self, conn: Connection) -> None:
        self._presence.put((False, conn))

    def _presence_loop(self) -> None:
        """Sockets that came or went, up to PRESENCE_BATCH_MAX at a time: one Redis pipeline,
        one PostgreSQL connection for last_seen and watchers, one publish per announcement.
        One call per socket took a Redis and a PostgreSQL connection each: 10,000 sockets
        reconnecting at once emptied both pools and starved catch-up and messages."""
        while not self._stopping.is_set():
            batch = take_up_to(self._presence, PRESENCE_BATCH_MAX)
            try:
                self.record_presence(batch)
            except Exception as exc:  # noqa: BLE001 - best effort: heartbeats and the TTL repair it
                log.warning("presence of %d sockets not recorded: %s", len(batch), exc)

    def record_presence(self, batch: list[tuple[bool, Connection]]) -> None:
        ttl = self.settings.presence_ttl_seconds
        now = time.time()
        pipe = self.ctx.redis.pipeline(transaction=False)
        for online, conn in batch:
            sockets_key = SOCKETS_KEY.format(user_id=conn.user_id)
            if online:
                pipe.zadd(sockets_key, {self._socket_key(conn): now + ttl})
                pipe.expire(sockets_key, SOCKETS_KEY_TTL_FACTOR * ttl)
                presence_key = PRESENCE_KEY.format(user_id=conn.user_id)
                pipe.set(presence_key, self.settings.instance_id, ex=ttl, get=True)
            else:
                pipe.zrem(sockets_key, self._socket_key(conn))
                pipe.zremrangebyscore(sockets_key, "-inf", now)
                pipe.zcard(sockets_key)
        replies = iter(pipe.execute())
        came, gone = [], []
        for online, conn in batch:
            answers = [next(replies), next(replies), next(replies)]
            if online and answers[2] is None:
                came.append(conn.user_id)
            elif not online and not answers[2]:
                gone.append(conn.user_id)
        if gone:
            pipe = self.ctx.redis.pipeline(transaction=False)
            for user_id in gone:
                pipe.delete(PRESENCE_KEY.format(user_id=user_id))
            pipe.execute()
        if not came and not gone:
            return
        seen = utcnow()
        with self.ctx.db.connection() as db:
            for user_id in gone:
                store.record_last_seen(db, user_id, seen)
            announcements = [(u, True, None, store.watchers_of(db, u)) for u in came] + [
                (u, False, rfc3339(seen), store.watchers_of(db, u)) for u in gone
            ]
        for user_id, online, last_seen, watchers in announcements:
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
                pubsub.subscribe(self.settings.events_channel, SESSIONS_CHANNEL)
                log.info("listening for events on %s and %s", self.settings.events_channel, SESSIONS_CHANNEL)
                if not first:
                    # Events published while we were away are lost: catch every socket up,
                    # and end the sockets of sessions that ended meanwhile.
                    self.recheck_sessions()
                    self._resync_all()
                first, delay = False, 0.5
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    if message.get("channel") == SESSIONS_CHANNEL:
                        self.end_sessions(set(parse_announcement(message["data"])))
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
