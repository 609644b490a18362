"""`create_base_app`: what every service's Flask app has before its own routes.

JSON logs with request ids, the contract's error shape, HTTP metrics, /health, /ready and
/metrics, the 64 KiB body cap, and access-token checks (public key only) for
`require_user()`.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, current_app, g, request

from services.common.auth import AccessTokenVerifier, init_auth
from services.common.config import BaseSettings
from services.common.errors import PayloadTooLarge, register_error_handlers
from services.common.health import INFO_EXTENSION
from services.common.health import bp as health_bp
from services.common.logging import configure_logging
from services.common.metrics import current_route, init_metrics
from services.common.request_id import init_request_ids

MAX_BODY_BYTES = 64 * 1024
SETTINGS_EXTENSION = "whatsapp_settings"
# {path prefix: byte limit} for the few routes that take more than MAX_BODY_BYTES
# (the media upload): set by the app that serves them.
BODY_LIMITS_CONFIG = "WHATSAPP_BODY_LIMITS"
# Probes hit these every few seconds; logging each at INFO would drown the real traffic.
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})

access_log = logging.getLogger("services.access")


def path_under(path: str, prefix: str) -> bool:
    """`path` is `prefix` or below it (`/api/v1/media/x`, not `/api/v1/mediax`)."""
    return path == prefix or path.startswith(prefix + "/")


def body_limit() -> int:
    """This request's body cap: MAX_BODY_BYTES, or its route's own (BODY_LIMITS_CONFIG)."""
    for prefix, limit in current_app.config.get(BODY_LIMITS_CONFIG, {}).items():
        if path_under(request.path, prefix):
            return int(limit)
    return int(current_app.config["MAX_CONTENT_LENGTH"])


def _enforce_body_cap() -> None:
    # Werkzeug only refuses an oversized body when a view reads it; refusing up front
    # answers 413 whatever the view does (or whether the content type is right).
    limit = body_limit()
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body larger than {limit // 1024} KiB")


def _log_request(response: Response) -> Response:
    started = g.get("request_started")
    access_log.log(
        logging.DEBUG if request.path in QUIET_PATHS else logging.INFO,
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "path": request.path,
            "route": current_route(),
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
        },
    )
    return response


def create_base_app(service_name: str, settings: BaseSettings) -> Flask:
    # No static folder: these are JSON APIs, and /static/<path> would be one more route to answer.
    app = Flask(f"services.{service_name}", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # keep the contract's field order in answers
    app.extensions[SETTINGS_EXTENSION] = settings
    app.extensions[INFO_EXTENSION] = {
        "service": service_name,
        "version": settings.version,
        # Slightly above the backends' own timeouts, so they report first.
        "ready_timeout": settings.backend_timeout_seconds + 0.5,
    }

    configure_logging(settings, service_name)
    # Hook order matters: the request id exists before anything can log or fail.
    init_request_ids(app)
    init_metrics(app, service_name)
    app.before_request(_enforce_body_cap)
    app.after_request(_log_request)
    register_error_handlers(app)
    app.register_blueprint(health_bp)
    init_auth(
        app,
        AccessTokenVerifier(
            settings.jwt_public_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        ),
    )
    return app
