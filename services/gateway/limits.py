"""Rate limits (Flask-Limiter, counters in Redis so every gateway replica shares them).

- Authenticated routes: `rate_limit_api` per verified user, one budget over all of them.
- /api/v1/auth/*: `rate_limit_auth` per client IP (password guessing, account creation).
- Other public routes (/api/v1/health, /api/v1/openapi.json): `rate_limit_public` per IP.
- /health, /ready and /metrics (health checks and Prometheus) are not limited.

Over the limit: 429 `rate_limited` in the contract's shape with `Retry-After` (seconds).
When the counter storage is down, requests pass unlimited (fail open, logged) instead of
failing: an outage of Redis must not take the API down with it. It is tried again after
`rate_limit_storage_retry_seconds`, so a hung Redis does not cost every request a timeout.

The client IP is the address the outermost trusted proxy saw: with `trusted_proxy_count`
N, the N-th entry from the right of X-Forwarded-For (entries further left are whatever the
client sent and prove nothing), else nginx's X-Real-IP, else the peer address.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits.errors import StorageError
from prometheus_client import Counter

from services.common.errors import RateLimited
from services.common.metrics import metrics_of
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

LIMITER_EXTENSION = "whatsapp_gateway_limiter"
TRUSTED_PROXIES_CONFIG = "WHATSAPP_TRUSTED_PROXY_COUNT"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def client_ip() -> str:
    """The client's address as the outermost trusted proxy saw it (see the module docstring)."""
    peer = request.remote_addr or "unknown"
    trusted = current_app.config.get(TRUSTED_PROXIES_CONFIG, 0)
    if trusted <= 0:
        return peer
    hops = [hop.strip() for hop in ",".join(request.headers.getlist("X-Forwarded-For")).split(",")]
    hops = [hop for hop in hops if hop]
    # Too few entries: nginx's X-Real-IP (set from the address it saw), if there is one.
    candidate = hops[-trusted] if len(hops) >= trusted else request.headers.get("X-Real-IP", "").strip()
    # Garbage (or nothing) where an address should be: fall back to what the socket says.
    return candidate if _is_ip(candidate) else peer


def ip_key() -> str:
    return f"ip:{client_ip()}"


def user_key() -> str:
    """The verified user (set by the authentication hook, which runs before the limiter)."""
    user_id = g.get("user_id")
    return f"user:{user_id}" if user_id else ip_key()


class FailOpenLimiter(Limiter):
    """Flask-Limiter answering 429 in the contract's shape, and passing requests while its
    storage is down instead of failing them."""

    def __init__(self, *args: Any, storage_retry_seconds: float, storage_errors: Counter, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.storage_retry_seconds = storage_retry_seconds
        self.storage_errors = storage_errors
        self._unlimited_until = 0.0

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        if time.monotonic() < self._unlimited_until:
            return
        try:
            super()._check_request_limit(callable_name=callable_name, in_middleware=in_middleware)
        except RateLimitExceeded as exc:
            raise RateLimited(
                "too many requests, slow down", retry_after=self._seconds_until_reset(exc)
            ) from None
        except StorageError as exc:
            self._unlimited_until = time.monotonic() + self.storage_retry_seconds
            self.storage_errors.inc()
            log.warning(
                "rate limit storage unavailable, not limiting for %.0f s: %s",
                self.storage_retry_seconds,
                f"{type(exc.storage_error).__name__}: {exc.storage_error}",
            )

    def _seconds_until_reset(self, exc: RateLimitExceeded) -> int:
        """Whole seconds until the breached limit's window lets a request through again."""
        breached = self.current_limit
        if breached is not None:
            try:
                return max(1, math.ceil(breached.window.reset_time - time.time()))
            except StorageError:
                pass
        return max(1, int(exc.limit.limit.get_expiry()))


def init_rate_limits(
    app: Flask,
    settings: GatewaySettings,
    *,
    per_user: Iterable[Blueprint],
    per_ip: Iterable[Blueprint],
    public: Iterable[Blueprint],
) -> FailOpenLimiter:
    """Attach the limiter; call after the authentication hook so `user_key` sees the user."""
    app.config[TRUSTED_PROXIES_CONFIG] = settings.trusted_proxy_count
    app.config["RATELIMIT_ENABLED"] = settings.rate_limit_enabled
    limiter = FailOpenLimiter(
        key_func=ip_key,
        storage_uri=settings.limiter_storage_url,
        storage_options={
            # StorageError for any storage failure, so only those fail open (not our bugs).
            "wrap_exceptions": True,
            "socket_connect_timeout": settings.backend_timeout_seconds,
            "socket_timeout": settings.backend_timeout_seconds,
        },
        strategy=settings.rate_limit_strategy,
        key_prefix="gateway",
        headers_enabled=False,
        storage_retry_seconds=settings.rate_limit_storage_retry_seconds,
        storage_errors=Counter(
            "gateway_rate_limit_storage_errors_total",
            "Rate-limit checks that found the counter storage down (requests then pass).",
            registry=metrics_of(app).registry,
        ),
    )
    # Shared scopes: one budget per key over all routes of a group, not one per route.
    groups = (
        (per_user, settings.rate_limit_api, "api", user_key),
        (per_ip, settings.rate_limit_auth, "auth", ip_key),
        (public, settings.rate_limit_public, "public", ip_key),
    )
    for blueprints, limit, scope, key_func in groups:
        shared = limiter.shared_limit(limit, scope=scope, key_func=key_func)
        for blueprint in blueprints:
            shared(blueprint)
    limiter.init_app(app)
    app.extensions[LIMITER_EXTENSION] = limiter
    return limiter
