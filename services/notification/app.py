"""The notification service's app (port 8084): /health, /ready, /metrics, and the push
consumers running as threads beside it. Run: `python -m services.notification --port 8084`
(its own process, services/common/process.py); `create_app()` under a WSGI server with the
consumers in its worker is development mode's form."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from flask import Flask
from prometheus_client import Counter

from services.common.amqp import amqp_connection
from services.common.app import create_base_app
from services.common.db import Database
from services.common.health import add_readiness_check
from services.common.metrics import metrics_of
from services.common.redis_client import create_redis
from services.notification import store
from services.notification.consumer import start_consumers
from services.notification.dedup import PushLedger
from services.notification.delivery import Delivery
from services.notification.settings import NotificationSettings


@dataclass
class NotificationMetrics:
    jobs: Counter


@dataclass
class NotificationContext:
    settings: NotificationSettings
    db: Database
    delivery: Delivery
    metrics: NotificationMetrics
    ledger: PushLedger


def _broker_check(settings: NotificationSettings) -> None:
    with amqp_connection(settings.rabbitmq_url, timeout=settings.backend_timeout_seconds) as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.backend_timeout_seconds)


def create_app(settings: NotificationSettings | None = None, *, background: bool = True) -> Flask:
    settings = settings or NotificationSettings.from_env()
    app = create_base_app(settings.service_name, settings)
    registry = metrics_of(app).registry
    db = Database(settings)
    ctx = NotificationContext(
        settings=settings,
        db=db,
        delivery=Delivery.from_settings(
            settings, remove_device=lambda device_id: store.remove_device(db, device_id), registry=registry
        ),
        metrics=NotificationMetrics(
            jobs=Counter(
                "whatsapp_push_jobs_total",
                "Push jobs handled, by outcome (done, requeued, dead_lettered, duplicate).",
                ["outcome"],
                registry=registry,
            )
        ),
        ledger=PushLedger(
            # Redis down costs the duplicate check, not a wait: no retries.
            create_redis(settings, retries=0),
            claim_seconds=settings.push_claim_seconds,
            done_seconds=settings.push_dedup_seconds,
        ),
    )
    app.extensions["whatsapp_notification"] = ctx
    add_readiness_check(app, "postgres", db.check)
    add_readiness_check(app, "rabbitmq", lambda: _broker_check(settings))
    if background:
        start_consumers(ctx, threading.Event())
    return app
