"""The chat service's collaborators, made once per process and reached through `chat_context()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from flask import Flask, current_app
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo.database import Database as MongoDatabase

from services.chat.settings import ChatSettings
from services.common.amqp import ConfirmedPublisher
from services.common.db import Database
from services.common.mongo import create_mongo
from services.common.pool_metrics import register_pool_metrics
from services.common.redis_client import create_redis

if TYPE_CHECKING:
    from services.chat.accept import Acceptor
    from services.chat.hub import Hub

EXTENSION = "whatsapp_chat"


@dataclass
class ChatMetrics:
    sockets: Gauge
    messages_accepted: Counter
    frames_received: Counter
    frames_sent: Counter
    send_seconds: Histogram
    accept_batch_size: Histogram
    accept_record_seconds: Histogram
    order_gaps_filled: Counter
    order_gaps_forced: Counter
    sends_refused: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ChatMetrics:
        return cls(
            sockets=Gauge("whatsapp_websocket_connections", "Open WebSocket connections.", registry=registry),
            messages_accepted=Counter(
                "whatsapp_messages_accepted_total",
                "Messages acknowledged to senders (new, or a repeat of an accepted client_msg_id).",
                ["kind"],
                registry=registry,
            ),
            sends_refused=Counter(
                "whatsapp_sends_refused_total",
                "message.send frames answered rate_limited because the accept queue was full.",
                registry=registry,
            ),
            frames_received=Counter(
                "whatsapp_ws_frames_received_total",
                "WebSocket frames received, by type.",
                ["type"],
                registry=registry,
            ),
            frames_sent=Counter(
                "whatsapp_ws_frames_sent_total",
                "WebSocket frames sent, by type.",
                ["type"],
                registry=registry,
            ),
            send_seconds=Histogram(
                "whatsapp_message_accept_seconds",
                "Time from a message.send frame to its ack (seq, store, confirmed publish).",
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                registry=registry,
            ),
            accept_batch_size=Histogram(
                "whatsapp_accept_batch_size",
                "Messages recorded together in one PostgreSQL transaction and published together.",
                buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
                registry=registry,
            ),
            accept_record_seconds=Histogram(
                "whatsapp_accept_record_seconds",
                "Time of one accept batch's PostgreSQL transaction (membership, seqs, record).",
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                registry=registry,
            ),
            order_gaps_filled=Counter(
                "whatsapp_order_gaps_filled_total",
                "Gaps in one socket's message.new seqs looked up in PostgreSQL (frames held meanwhile).",
                registry=registry,
            ),
            order_gaps_forced=Counter(
                "whatsapp_order_gaps_forced_total",
                "Gaps given up on after order_gap_max_ms (the held frames sent; the missing one late).",
                registry=registry,
            ),
        )


@dataclass
class ChatContext:
    settings: ChatSettings
    db: Database
    redis: redis.Redis
    mongo: MongoDatabase
    publisher: ConfirmedPublisher
    metrics: ChatMetrics
    hub: Hub | None = None
    acceptor: Acceptor | None = None

    @classmethod
    def create(cls, settings: ChatSettings, registry: CollectorRegistry) -> ChatContext:
        context = cls(
            settings=settings,
            db=Database(settings),
            redis=create_redis(settings),
            mongo=create_mongo(settings.mongodb_url, settings.mongodb_database, settings),
            publisher=ConfirmedPublisher(
                settings.rabbitmq_url,
                timeout=settings.backend_timeout_seconds,
                pool_size=settings.amqp_pool_size,
            ),
            metrics=ChatMetrics.create(registry),
        )
        register_pool_metrics(
            registry, databases={"chat": context.db}, publishers={"messages": context.publisher}
        )
        Gauge(
            "whatsapp_accept_queue_depth",
            "Messages waiting for the accept path's next batch.",
            registry=registry,
        ).set_function(lambda: context.acceptor.waiting if context.acceptor else 0)
        Gauge(
            "whatsapp_ws_send_queue_frames",
            "Frames queued for the sockets' writers, all sockets together.",
            registry=registry,
        ).set_function(lambda: sum(c.queue.qsize() for c in context.hub.connections()) if context.hub else 0)
        return context


def init_chat_context(app: Flask, context: ChatContext) -> None:
    app.extensions[EXTENSION] = context


def chat_context() -> ChatContext:
    return current_app.extensions[EXTENSION]
