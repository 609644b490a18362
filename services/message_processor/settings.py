"""Settings of message_processor: the message path's backends plus consumer tunables."""

from __future__ import annotations

from pydantic import Field

from services.common.config import MessagingSettings


class ProcessorSettings(MessagingSettings):
    service_name: str = Field(default="message_processor", min_length=1, max_length=64)
    # The queue it consumes (declared by the rabbitmq role, dead-lettered to <queue>.dead).
    messages_queue: str = Field(default="messages.process", min_length=1)
    # Unacknowledged deliveries the broker hands each consumer at once.
    prefetch: int = Field(default=200, ge=1, le=10_000)
    # Consumers (threads, one broker connection each) in this process.
    concurrency: int = Field(default=1, ge=1, le=64)
    # Messages handled together: one MongoDB insert_many, one PostgreSQL transaction, one
    # Redis pipeline. A batch closes when full or after batch_wait_ms.
    batch_size: int = Field(default=100, ge=1, le=5_000)
    batch_wait_ms: int = Field(default=10, ge=1, le=5_000)
    # One try at storing a batch in MongoDB ends after this long, retries and server
    # selection included (pymongo.timeout). Without it a paused MongoDB held a first try for
    # 9-11 s (socket timeout, then a retryable write), longer than chat's outbox relay waits
    # (outbox_relay_age_seconds, 10) before it publishes an unstored row no processor lists
    # as held: a batch is listed from its second try on (services/common/held.py).
    mongo_attempt_seconds: float = Field(default=5.0, gt=0, le=60)
    # While a backend is down the batch is retried, waiting up to this long between tries.
    retry_max_delay_seconds: float = Field(default=5.0, gt=0, le=300)
    # Redis pub/sub channel the chat instances listen on.
    events_channel: str = Field(default="whatsapp:events", min_length=1)
