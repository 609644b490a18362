"""The notification service's app (port 8084): /health, /ready, /metrics, and the push
consumers running as threads beside it. Run: `python -m services.notification --port 8084`
(its own process, services/common/process.py); `create_app()` under a WSGI server with the
consumers in its worker is development mode's form."""

from __future__ import annotations

import threading

from flask import Flask

from services.common.amqp import amqp_connection
from services.common.app import create_base_app
from services.common.health import add_readiness_check
from services.common.metrics import metrics_of
from services.notification.consumer import start_consumers
from services.notification.context import EXTENSION, NotificationContext
from services.notification.settings import NotificationSettings


def _broker_check(settings: NotificationSettings) -> None:
    with amqp_connection(settings.rabbitmq_url, timeout=settings.backend_timeout_seconds) as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.backend_timeout_seconds)


def create_app(settings: NotificationSettings | None = None, *, background: bool = True) -> Flask:
    settings = settings or NotificationSettings.from_env()
    app = create_base_app(settings.service_name, settings)
    ctx = NotificationContext.create(settings, metrics_of(app).registry)
    app.extensions[EXTENSION] = ctx
    add_readiness_check(app, "postgres", ctx.db.check)
    add_readiness_check(app, "rabbitmq", lambda: _broker_check(settings))
    if background:
        start_consumers(ctx, threading.Event())
    return app
