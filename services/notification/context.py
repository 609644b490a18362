"""The notification service's collaborators, made once per process: settings, the device
store, the providers' delivery, the push ledger and the metrics."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from prometheus_client import CollectorRegistry, Counter

from services.common.db import Database
from services.common.redis_client import create_redis
from services.notification import store
from services.notification.dedup import PushLedger
from services.notification.delivery import Delivery
from services.notification.settings import NotificationSettings

EXTENSION = "whatsapp_notification"


@dataclass
class NotificationMetrics:
    jobs: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NotificationMetrics:
        return cls(
            jobs=Counter(
                "whatsapp_push_jobs_total",
                "Push jobs handled, by outcome (done, requeued, dead_lettered, duplicate).",
                ["outcome"],
                registry=registry,
            )
        )


@dataclass
class NotificationContext:
    settings: NotificationSettings
    db: Database
    delivery: Delivery
    metrics: NotificationMetrics
    ledger: PushLedger

    @classmethod
    def create(cls, settings: NotificationSettings, registry: CollectorRegistry) -> NotificationContext:
        db = Database(settings)
        return cls(
            settings=settings,
            db=db,
            delivery=Delivery.from_settings(
                settings,
                remove_device=lambda device_id: store.remove_device(db, device_id),
                registry=registry,
            ),
            metrics=NotificationMetrics.create(registry),
            ledger=PushLedger(
                # Redis down costs the duplicate check, not a wait: no retries.
                create_redis(settings, retries=0),
                claim_seconds=settings.push_claim_seconds,
                done_seconds=settings.push_dedup_seconds,
            ),
        )


def notification_context(app: Flask) -> NotificationContext:
    return app.extensions[EXTENSION]
