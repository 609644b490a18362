"""message_processor: consumes accepted messages, stores them, fans them out (port 8085).

Run it with `python -m services.message_processor --port 8085`: its own process, the
consumers in threads, /health, /ready and /metrics beside them (services/common/process.py).
`create_app()` with the consumers as threads of a WSGI worker is development mode's form.
"""

from __future__ import annotations

import threading

from flask import Flask

from services.common.app import create_base_app
from services.common.health import add_readiness_check
from services.common.metrics import metrics_of
from services.common.mongo import mongo_check
from services.common.pool_metrics import register_pool_metrics
from services.common.redis_client import redis_check
from services.message_processor.consumer import start_consumers
from services.message_processor.context import EXTENSION, ProcessorContext
from services.message_processor.settings import ProcessorSettings


def create_app(settings: ProcessorSettings | None = None, *, background: bool = True) -> Flask:
    settings = settings or ProcessorSettings.from_env()
    app = create_base_app(settings.service_name, settings)
    ctx = ProcessorContext.create(settings, metrics_of(app).registry)
    app.extensions[EXTENSION] = ctx
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
