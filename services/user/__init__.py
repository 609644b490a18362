"""The user service: accounts, profiles, contacts, blocks, push devices, presence reads.

Run it with `gunicorn 'services.user:create_app()'`; settings come from WHATSAPP_*
environment variables (services/user/settings.py). The schema is `accounts`
(services/migrations/sql/accounts/).
"""

from __future__ import annotations

from flask import Flask

from services.common.app import create_base_app
from services.common.health import add_readiness_check
from services.common.redis_client import redis_check
from services.user.context import UserContext, init_user_context
from services.user.routes import BLUEPRINTS
from services.user.settings import UserSettings


def create_app(settings: UserSettings | None = None) -> Flask:
    """The user service's app; settings are read from the environment unless given."""
    settings = settings or UserSettings.from_env()
    app = create_base_app(settings.service_name, settings)
    context = UserContext.create(settings)
    init_user_context(app, context)
    add_readiness_check(app, "postgres", context.db.check)
    add_readiness_check(app, "redis", lambda: redis_check(context.redis))
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
