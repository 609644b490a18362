"""`GET /ws`: the WebSocket of the contract.

The token is checked before the upgrade (a `before_request` hook), so a bad or missing
one is refused with 401 and no socket is opened. Each socket has a reader (this request's
thread or greenlet) and a writer (Connection.write_loop); frames a client sends are
handled one after another, so a client's own sends are acknowledged in order.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pydantic
from flask import Flask, current_app, g, request
from flask_sock import Sock

from services.chat.accept import SendRequest
from services.chat.context import ChatContext, chat_context
from services.chat.handshake import check_upgrade
from services.chat.hub import CLOSE_UNAUTHORIZED, Connection
from services.chat.messages import message_json
from services.chat.models import FRAME_MODELS, AuthFrame, ReceiptFrame, SendFrame, TypingFrame
from services.chat.receipts import mark_and_announce
from services.common.auth import VERIFIER_EXTENSION, AccessTokenVerifier, bearer_token
from services.common.errors import ApiError, NotFound, Unauthorized, describe_validation_error
from services.common.request_id import new_request_id
from services.common.times import rfc3339

log = logging.getLogger(__name__)

WS_PATH = "/ws"
RECEIVE_TIMEOUT_SECONDS = 10.0
WRITER_DRAIN_SECONDS = 5.0
sock = Sock()


def authenticate_upgrade() -> None:
    """401 before the upgrade for a bad or missing token (header, or ?access_token= for
    browsers), or one of a session that has ended; 429 for a user with every socket in use."""
    if request.path != WS_PATH:
        return
    header = request.headers.get("Authorization")
    token = bearer_token(header) if header else query_token(request.query_string)
    if not token:
        raise Unauthorized("missing bearer token")
    verifier: AccessTokenVerifier = current_app.extensions[VERIFIER_EXTENSION]
    claims = verifier.verify(token)
    g.user_id, g.session_id, g.token_expires_at = claims["sub"], claims.get("sid"), float(claims["exp"])
    chat_context().hub.admit(g.user_id, g.session_id)


def query_token(query_string: bytes) -> str:
    """`access_token` of the query string, spelt exactly so (nginx's log redaction looks for
    that name; a percent-encoded spelling of it is not accepted). Tokens need no escaping."""
    for pair in query_string.decode("latin-1").split("&"):
        name, _, value = pair.partition("=")
        if name == "access_token":
            return value
    return ""


class TokenBucket:
    """Frames per second per socket, with a burst of twice the rate."""

    def __init__(self, rate: float):
        self.rate, self.capacity = rate, max(1.0, rate * 2)
        self.tokens, self.stamp = self.capacity, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def error_frame(code: str, message: str, ref: str | None = None) -> dict[str, Any]:
    frame = {"type": "error", "code": code, "message": message}
    if ref:
        frame["ref"] = ref
    return frame


def handle_frame(ctx: ChatContext, conn: Connection, raw: str | bytes, bucket: TokenBucket) -> None:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        conn.send(error_frame("validation_error", "frame is not valid JSON"))
        return
    if not isinstance(data, dict):
        conn.send(error_frame("validation_error", "frame must be a JSON object"))
        return
    ref = data.get("client_msg_id") if isinstance(data.get("client_msg_id"), str) else None
    kind = data.get("type")
    model = FRAME_MODELS.get(kind) if isinstance(kind, str) else None
    ctx.metrics.frames_received.labels(kind if model else "invalid").inc()
    if model is None:
        conn.send(error_frame("validation_error", f"unknown frame type {str(kind)[:40]!r}", ref))
        return
    if not bucket.take():
        conn.send(error_frame("rate_limited", "too many frames; slow down", ref))
        return
    try:
        frame = model.model_validate(data)
        if isinstance(frame, AuthFrame):
            _reauthenticate(ctx, conn, frame)
        elif isinstance(frame, SendFrame):
            _send(ctx, conn, frame)
        elif isinstance(frame, ReceiptFrame):
            _receipt(ctx, conn, frame)
        elif isinstance(frame, TypingFrame):
            _typing(ctx, conn, frame)
        else:
            conn.send({"type": "pong"})
    except pydantic.ValidationError as exc:
        conn.send(error_frame("validation_error", describe_validation_error(exc), ref))
    except ApiError as exc:
        conn.send(error_frame(exc.code, exc.message, ref))
    except Exception as exc:  # a backend hiccup must not close the socket
        log.warning("frame %s failed: %s: %s", kind, type(exc).__name__, exc)
        conn.send(error_frame("unavailable", "a backend service is unavailable; try again", ref))


def _reauthenticate(ctx: ChatContext, conn: Connection, frame: AuthFrame) -> None:
    """A fresh token keeps the socket open past the old one's expiry. Another user's token
    ends the socket; an invalid, expired or ended one, or one of another session, is refused
    and changes nothing."""
    verifier: AccessTokenVerifier = current_app.extensions[VERIFIER_EXTENSION]
    claims = verifier.verify(frame.access_token)  # Unauthorized: an error frame, nothing else
    if claims["sub"] != conn.user_id:
        conn.send(error_frame("unauthorized", "that access token is another user's"))
        conn.close(code=CLOSE_UNAUTHORIZED, reason="another user's token")
        return
    if conn.session_id is not None and claims.get("sid") != conn.session_id:
        # The socket stays its session's (catch-up marks, push targets): refused, nothing changes.
        conn.send(error_frame("unauthorized", "that access token is another session's: open a new socket"))
        return
    ctx.hub.check_session(claims.get("sid"))
    conn.reauthenticate(claims.get("sid"), float(claims["exp"]))
    conn.send({"type": "auth.ok", "expires_at": rfc3339(float(claims["exp"]))})


def _send(ctx: ChatContext, conn: Connection, frame: SendFrame) -> None:
    """Hand the send to the acceptor and go on reading: the ack (or error) is sent when its
    batch is recorded and confirmed. A socket has at most ws_sends_in_flight sends in the
    pipeline; its acks leave in the order of its sends (the stages keep that order)."""
    started = time.perf_counter()
    acceptor = ctx.acceptor
    assert acceptor is not None, "the chat context has no acceptor"
    ref = frame.client_msg_id
    if acceptor.waiting >= ctx.settings.accept_queue_max:
        ctx.metrics.sends_refused.inc()
        conn.send(error_frame("rate_limited", "the server is busy; send again in a moment", ref))
        return
    if not conn.in_flight.acquire(timeout=ctx.settings.backend_timeout_seconds * 3 + 5):
        conn.send(error_frame("unavailable", "the message was not accepted in time; send it again", ref))
        return

    def answered(request: SendRequest) -> None:
        conn.in_flight.release()
        error = request.error
        if error is None and request.row is not None:
            ack = {"type": "message.ack", "client_msg_id": ref, "message": message_json(request.row)}
            conn.send(ack)
            ctx.metrics.send_seconds.observe(time.perf_counter() - started)
        elif isinstance(error, ApiError):
            conn.send(error_frame(error.code, error.message, ref))
        else:
            conn.send(error_frame("unavailable", "a backend service is unavailable; try again", ref))

    acceptor.submit_nowait(
        SendRequest(
            sender=conn.user_id,
            conversation_id=frame.conversation_id,
            client_msg_id=ref,
            body=frame.body,
            ttl_seconds=frame.ttl_seconds,
            encrypted=frame.encrypted,
            reply_to=frame.reply_to,
            media_id=frame.media_id,
            request_id=g.get("request_id") or new_request_id(),
            on_done=answered,
        )
    )


def _receipt(ctx: ChatContext, conn: Connection, frame: ReceiptFrame) -> None:
    mark_and_announce(
        ctx,
        conversation_id=frame.conversation_id,
        reader=conn.user_id,
        up_to_seq=frame.up_to_seq,
        status=frame.status,
        session_id=conn.session_id,
        from_conn=conn.id,
    )


def _typing(ctx: ChatContext, conn: Connection, frame: TypingFrame) -> None:
    members = ctx.hub.members(frame.conversation_id)
    if conn.user_id not in members:
        raise NotFound("no such conversation")
    ctx.hub.publish_event(
        ctx.hub.audience(frame.conversation_id, conn.user_id),
        {
            "type": "typing",
            "conversation_id": frame.conversation_id,
            "user_id": conn.user_id,
            "state": frame.state,
        },
    )


@sock.route(WS_PATH)
def websocket(ws: Any) -> None:
    ctx = chat_context()
    hub = ctx.hub
    conn = Connection(
        ws,
        g.user_id,
        hub,
        ctx.settings.ws_send_queue_size,
        ctx.settings.ws_sends_in_flight,
        session_id=g.session_id,
        expires_at=g.token_expires_at,
    )
    hub.register(conn)
    writer = threading.Thread(target=conn.write_loop, name=f"ws-writer-{conn.id[:8]}", daemon=True)
    writer.start()
    bucket = TokenBucket(ctx.settings.ws_messages_per_second)
    try:
        hub.came_online(conn)  # queued for the hub's presence loop: it cannot fail here
        try:
            hub.catch_up(conn)
        except Exception as exc:
            # Without catch-up the client could miss messages: make it reconnect later.
            log.warning("catch-up for %s failed (%s): closing the socket", conn.user_id, exc)
            conn.close()
        while not conn.closed.is_set():
            # The writer closes the socket when the connection ends, which wakes this read;
            # the timeout is only a safety net (a short one woke every idle socket each second).
            raw = ws.receive(timeout=RECEIVE_TIMEOUT_SECONDS)
            if raw is None:
                continue
            handle_frame(ctx, conn, raw, bucket)
    finally:
        conn.close()
        hub.unregister(conn)
        hub.went_offline(conn)
        # The writer sends what is queued (an error frame, say) and the close code (4401)
        # before the handler returns and the socket is closed under it.
        writer.join(timeout=WRITER_DRAIN_SECONDS)


def without_compression() -> None:
    """Decline permessage-deflate: the upgrade answers as if the client offered no extension
    (simple_websocket accepts whatever extension the request's headers offer)."""
    if request.path == WS_PATH:
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def init_ws(app: Flask, settings_max_frame: int, ping_interval: float, compression: bool = False) -> None:
    app.config["SOCK_SERVER_OPTIONS"] = {
        "max_message_size": settings_max_frame,
        "ping_interval": ping_interval,
    }
    app.before_request(check_upgrade)
    app.before_request(authenticate_upgrade)
    if not compression:
        app.before_request(without_compression)
    sock.init_app(app)
