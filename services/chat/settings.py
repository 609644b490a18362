"""Settings of the chat service: the message path's backends plus WebSocket tunables."""

from __future__ import annotations

import os
import socket

from pydantic import Field

from services.common.config import MessagingSettings


def default_instance_id() -> str:
    # The container's hostname is unique per replica; the pid separates gunicorn workers.
    return f"{socket.gethostname()}-{os.getpid()}"


class ChatSettings(MessagingSettings):
    service_name: str = Field(default="chat", min_length=1, max_length=64)
    instance_id: str = Field(default_factory=default_instance_id, min_length=1, max_length=128)
    # The contract: frames above 64 KiB close the socket with 1009.
    ws_max_frame_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    # Server pings keep NATs and proxies from dropping idle sockets.
    ws_ping_interval_seconds: float = Field(default=25.0, gt=0, le=300)
    # permessage-deflate when a client offers it. Off by default: the contract's frames are
    # small JSON that compresses little, deflating each one for each socket cost chat about
    # a tenth of its CPU, and a socket's zlib state (~300 KiB) dwarfs its other memory.
    ws_compression: bool = False
    # Frames waiting for one slow socket; beyond it the socket is closed (it will catch up).
    ws_send_queue_size: int = Field(default=2000, ge=10, le=100_000)
    # A user is online while a key with this TTL is refreshed by their sockets.
    presence_ttl_seconds: int = Field(default=60, ge=5, le=3600)
    # Messages sent per conversation when a client reconnects (the rest: history pages).
    catch_up_limit: int = Field(default=1000, ge=1, le=10_000)
    # Sockets catching up at once (a reconnect storm waits in line, live delivery goes on).
    catch_up_concurrency: int = Field(default=16, ge=1, le=1000)
    # Accepted messages not yet stored by message_processor after this long are re-published.
    outbox_relay_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    outbox_relay_age_seconds: float = Field(default=10.0, gt=0, le=3600)
    # The queue message_processor consumes (the relay waits until it is drained).
    messages_queue: str = Field(default="messages.process", min_length=1)
    # The accept path's batches (services/chat/accept.py): at most this many messages share
    # one transaction and one confirmed publish; a batch waits this long to fill (0: takes
    # what is waiting, so a lone message waits for nothing).
    accept_batch_max: int = Field(default=200, ge=1, le=5000)
    accept_batch_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    # Sends waiting to be recorded, over all sockets: beyond it a socket's send is answered
    # `rate_limited` at once (overload gets a clear answer, not minutes of queueing).
    accept_queue_max: int = Field(default=1000, ge=10, le=1_000_000)
    # Sends of one socket in the accept pipeline at once (its acks still leave in order);
    # the socket's next frame waits for a slot.
    ws_sends_in_flight: int = Field(default=64, ge=1, le=10_000)
    # Order per socket: a message.new whose predecessor was not sent waits this long before
    # the gap is read from PostgreSQL; after order_gap_max_ms it goes out anyway (the
    # missing one follows when it is recorded: late, never lost).
    order_gap_wait_ms: float = Field(default=200.0, ge=1, le=60_000)
    order_gap_max_ms: float = Field(default=5000.0, ge=1, le=600_000)
    # Broker connections shared by concurrent senders (each publish waits for its confirm).
    amqp_pool_size: int = Field(default=16, ge=1, le=256)
    # Redis pub/sub channel every chat instance listens on (message_processor publishes).
    events_channel: str = Field(default="whatsapp:events", min_length=1)
    # Open sockets per user over every chat instance; the next upgrade is refused with 429.
    ws_max_sockets_per_user: int = Field(default=10, ge=1, le=10_000)
    # Message rate per socket (frames per second), beyond it `rate_limited` error frames.
    ws_messages_per_second: float = Field(default=50.0, gt=0, le=10_000)
    # The largest media upload (the contract: 16 MiB by default; 413 above).
    media_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024**3)
