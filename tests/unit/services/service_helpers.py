"""Helpers for the services' unit tests: settings and apps that never reach a backend.

The DSN and Redis URL point at port 1 on localhost, where nothing listens, so a test that
wrongly reached a store would fail fast instead of talking to a real one.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Flask

from services.common.auth import AccessTokenSigner, AccessTokenVerifier, generate_dev_keypair
from services.user import create_app
from services.user.context import user_context
from services.user.settings import UserSettings

UNREACHABLE_DSN = "postgresql://nobody@127.0.0.1:1/nothing"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@functools.cache
def keypair() -> tuple[str, str]:
    """(private PEM, public PEM), made once per test run."""
    return generate_dev_keypair()


def user_env(**overrides: str) -> dict[str, str]:
    private_pem, public_pem = keypair()
    env = {
        "WHATSAPP_POSTGRES_DSN": UNREACHABLE_DSN,
        "WHATSAPP_REDIS_URL": UNREACHABLE_REDIS,
        "WHATSAPP_JWT_PUBLIC_KEY": public_pem,
        "WHATSAPP_JWT_PRIVATE_KEY": private_pem,
        "WHATSAPP_BCRYPT_COST": "4",
        "WHATSAPP_WEBHOOK_ALLOWED_HOSTS": "hooks.example.com, *.push.example.org",
        "WHATSAPP_MONGODB_URL": "mongodb://127.0.0.1:1/?directConnection=true",
    }
    env.update(overrides)
    return env


def user_settings(**overrides: str) -> UserSettings:
    return UserSettings.from_env(user_env(**overrides))


def user_app(**overrides: str) -> Flask:
    app = create_app(user_settings(**overrides))
    app.config["TESTING"] = True
    return app


def store_untouched(app: Flask) -> bool:
    """True while the app has never created its PostgreSQL pool (the store was not reached)."""
    with app.app_context():
        return user_context().db._pool is None


def signer(**kwargs: Any) -> AccessTokenSigner:
    settings = user_settings()
    options = {"issuer": settings.jwt_issuer, "audience": settings.jwt_audience, "ttl_seconds": 900}
    options.update(kwargs)
    return AccessTokenSigner(keypair()[0], **options)


def verifier() -> AccessTokenVerifier:
    settings = user_settings()
    return AccessTokenVerifier(keypair()[1], issuer=settings.jwt_issuer, audience=settings.jwt_audience)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
