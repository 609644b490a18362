"""The API gateway: the one HTTP entry behind nginx (port 8080 in production).

For every /api/v1 request it takes or makes the request id, checks the body cap (413),
verifies the access token once (auth.py), applies rate limits (limits.py) and forwards to
the owning service by path prefix (routing.py, proxy.py, upstream.py). Its own routes:
GET /api/v1/health (health.py), GET /api/v1/openapi.json (openapi.py), and /health,
/ready (Redis), /metrics from the common library. `GET /ws` does not pass through it.

Run it with `gunicorn 'services.gateway:create_app()'`; settings come from WHATSAPP_*
environment variables (services/gateway/settings.py, listed in README.md beside this file).
"""

from __future__ import annotations

from flask import Flask

from services.common.app import BODY_LIMITS_CONFIG, create_base_app
from services.common.health import add_readiness_check
from services.common.redis_client import redis_check
from services.gateway import auth, health, openapi, proxy
from services.gateway.context import GatewayContext, init_gateway_context
from services.gateway.limits import init_rate_limits
from services.gateway.routing import STREAMED_PREFIXES
from services.gateway.settings import GatewaySettings


def create_app(settings: GatewaySettings | None = None) -> Flask:
    """The gateway's app; settings are read from the environment unless given."""
    settings = settings or GatewaySettings.from_env()
    app = create_base_app(settings.service_name, settings)
    app.config[BODY_LIMITS_CONFIG] = dict.fromkeys(STREAMED_PREFIXES, settings.media_max_bytes)
    openapi.init_openapi(app, settings.openapi_path)
    context = GatewayContext.create(app, settings)
    init_gateway_context(app, context)
    add_readiness_check(app, "redis", lambda: redis_check(context.redis))
    for blueprint in (health.bp, openapi.bp, proxy.auth_proxy_bp, proxy.api_proxy_bp):
        app.register_blueprint(blueprint)
    # Authentication first: the limiter counts authenticated requests per verified user.
    app.before_request(auth.authenticate)
    init_rate_limits(
        app,
        settings,
        per_user=[proxy.api_proxy_bp],
        per_ip=[proxy.auth_proxy_bp],
        public=[health.bp, openapi.bp],
    )
    return app
