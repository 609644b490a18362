"""The chat service: conversations, messages, and the WebSocket `/ws` (port 8082).

Run it with `gunicorn --worker-class gevent 'services.chat:create_app()'` (one worker
holds thousands of sockets; see benchmarks/README.md for the measurement behind it).
Settings come from WHATSAPP_* environment variables (services/chat/settings.py); the
schema is `conversations` (services/migrations/sql/conversations/).
"""

from __future__ import annotations

import threading

from flask import Flask

from services.chat.accept import Acceptor
from services.chat.context import ChatContext, init_chat_context
from services.chat.hub import Hub
from services.chat.media import media_bp
from services.chat.outbox import start_relay
from services.chat.routes import BLUEPRINTS
from services.chat.settings import ChatSettings
from services.chat.ws import init_ws
from services.common.app import BODY_LIMITS_CONFIG, create_base_app
from services.common.health import add_readiness_check
from services.common.metrics import metrics_of
from services.common.mongo import mongo_check
from services.common.redis_client import redis_check


def create_app(settings: ChatSettings | None = None, *, background: bool = True) -> Flask:
    """The chat app; `background=False` (tests) starts no listener, heartbeat or relay."""
    settings = settings or ChatSettings.from_env()
    app = create_base_app(settings.service_name, settings)
    app.config[BODY_LIMITS_CONFIG] = {media_bp.url_prefix: settings.media_max_bytes}
    context = ChatContext.create(settings, metrics_of(app).registry)
    context.hub = Hub(context)
    context.acceptor = Acceptor(context)
    init_chat_context(app, context)
    add_readiness_check(app, "postgres", context.db.check)
    add_readiness_check(app, "redis", lambda: redis_check(context.redis))
    add_readiness_check(app, "mongodb", lambda: mongo_check(context.mongo))
    add_readiness_check(app, "rabbitmq", context.publisher.check)
    for blueprint in (*BLUEPRINTS, media_bp):
        app.register_blueprint(blueprint)
    init_ws(app, settings.ws_max_frame_bytes, settings.ws_ping_interval_seconds, settings.ws_compression)
    if background:
        context.hub.start()
        context.acceptor.start()
        start_relay(context, threading.Event())
    return app
