"""message_processor: consumes accepted messages, stores them, fans them out (port 8085).

Run it with `python -m services.message_processor --port 8085`: its own process, the
consumers in threads, /health, /ready and /metrics beside them (services/common/process.py).
`create_app()` with the consumers as threads of a WSGI worker is development mode's form.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import redis
from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Histogram
from pymongo.database import Database as MongoDatabase

from services.common.amqp import ConfirmedPublisher
from services.common.app import create_base_app
from services.common.db import Database
from services.common.health import add_readiness_check
from services.common.metrics import metrics_of
from services.common.mongo import create_mongo, mongo_check
from services.common.pool_metrics import register_pool_metrics
from services.common.redis_client import create_redis, redis_check
from services.message_processor.consumer import start_consumers
from services.message_processor.settings import ProcessorSettings


@dataclass
class ProcessorMetrics:
    messages: Counter
    notifications: Counter
    batch_seconds: Histogram
    backend_retries: Counter
    consumer_restarts: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ProcessorMetrics:
        return cls(
            messages=Counter(
                "whatsapp_messages_processed_total",
                "Deliveries handled, by outcome (stored, duplicate, erased, requeued, dead_lettered).",
                ["outcome"],
                registry=registry,
            ),
            notifications=Counter(
                "whatsapp_notifications_queued_total",
                "Push jobs queued for members without a live socket.",
                registry=registry,
            ),
            batch_seconds=Histogram(
                "whatsapp_processor_batch_seconds",
                "Time to process one batch (store, mark, fan out, queue pushes).",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                registry=registry,
            ),
            backend_retries=Counter(
                "whatsapp_processor_backend_retries_total",
                "Batches retried because a backend was down.",
                registry=registry,
            ),
            consumer_restarts=Counter(
                "whatsapp_processor_consumer_restarts_total",
                "Broker connections lost and re-opened.",
                registry=registry,
            ),
        )


@dataclass
class ProcessorContext:
    settings: ProcessorSettings
    db: Database
    redis: redis.Redis
    mongo: MongoDatabase
    notifications: ConfirmedPublisher
    metrics: ProcessorMetrics


def create_app(settings: ProcessorSettings | None = None, *, background: bool = True) -> Flask:
    settings = settings or ProcessorSettings.from_env()
    app = create_base_app(settings.service_name, settings)
    ctx = ProcessorContext(
        settings=settings,
        db=Database(settings),
        redis=create_redis(settings),
        mongo=create_mongo(settings.mongodb_url, settings.mongodb_database, settings),
        notifications=ConfirmedPublisher(
            settings.rabbitmq_url, timeout=settings.backend_timeout_seconds, pool_size=2
        ),
        metrics=ProcessorMetrics.create(metrics_of(app).registry),
    )
    app.extensions["whatsapp_processor"] = ctx
    register_pool_metrics(
        metrics_of(app).registry,
        databases={"message_processor": ctx.db},
        publishers={"notifications": ctx.notifications},
    )
    add_readiness_check(app, "postgres", ctx.db.check)
    add_readiness_check(app, "redis", lambda: redis_check(ctx.redis))
    add_readiness_check(app, "mongodb", lambda: mongo_check(ctx.mongo))
    add_readiness_check(app, "rabbitmq", ctx.notifications.check)
    if background:
        start_consumers(ctx, threading.Event())
    return app
