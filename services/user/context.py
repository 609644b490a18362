"""The user service's collaborators, made once per app and reached through `user_context()`."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app

from services.common.auth import AccessTokenSigner
from services.common.db import Database
from services.common.redis_client import create_redis
from services.user.passwords import PasswordHasher
from services.user.settings import UserSettings
from services.user.tokens import TokenIssuer

EXTENSION = "whatsapp_user"


@dataclass
class UserContext:
    settings: UserSettings
    db: Database
    redis: redis.Redis
    passwords: PasswordHasher
    tokens: TokenIssuer

    @classmethod
    def create(cls, settings: UserSettings) -> UserContext:
        return cls(
            settings=settings,
            db=Database(settings),
            redis=create_redis(settings),
            passwords=PasswordHasher(settings.bcrypt_cost),
            tokens=TokenIssuer(
                AccessTokenSigner(
                    settings.jwt_private_key,
                    issuer=settings.jwt_issuer,
                    audience=settings.jwt_audience,
                    ttl_seconds=settings.access_token_ttl_seconds,
                ),
                refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
            ),
        )


def init_user_context(app: Flask, context: UserContext) -> None:
    app.extensions[EXTENSION] = context


def user_context() -> UserContext:
    return current_app.extensions[EXTENSION]
