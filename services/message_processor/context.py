"""The message processor's collaborators, made once per process: settings, backends, metrics."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Histogram
from pymongo.database import Database as MongoDatabase

from services.common.amqp import ConfirmedPublisher
from services.common.db import Database
from services.common.mongo import create_mongo
from services.common.redis_client import create_redis
from services.message_processor.settings import ProcessorSettings

EXTENSION = "whatsapp_processor"


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

    @classmethod
    def create(cls, settings: ProcessorSettings, registry: CollectorRegistry) -> ProcessorContext:
        return cls(
            settings=settings,
            db=Database(settings),
            redis=create_redis(settings),
            mongo=create_mongo(settings.mongodb_url, settings.mongodb_database, settings),
            notifications=ConfirmedPublisher(
                settings.rabbitmq_url, timeout=settings.backend_timeout_seconds, pool_size=2
            ),
            metrics=ProcessorMetrics.create(registry),
        )


def processor_context(app: Flask) -> ProcessorContext:
    return app.extensions[EXTENSION]
