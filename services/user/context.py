"""The user service's collaborators, made once per app and reached through `user_context()`."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app
from pymongo.database import Database as MongoDatabase

from services.common.auth import AccessTokenSigner
from services.common.db import Database
from services.common.mongo import create_mongo
from services.common.redis_client import create_redis
from services.user.passwords import PasswordHasher
from services.user.settings import UserSettings
from services.user.throttle import LoginThrottle, throttle_secret
from services.user.tokens import TokenIssuer

EXTENSION = "whatsapp_user"


@dataclass
class UserContext:
    settings: UserSettings
    db: Database
    redis: redis.Redis
    passwords: PasswordHasher
    tokens: TokenIssuer
    login_throttle: LoginThrottle
    mongo: MongoDatabase

    @classmethod
    def create(cls, settings: UserSettings) -> UserContext:
        redis_client = create_redis(settings)
        return cls(
            settings=settings,
            db=Database(settings),
            redis=redis_client,
            passwords=PasswordHasher(settings.bcrypt_cost, concurrent=settings.password_checks_concurrent),
            tokens=TokenIssuer(
                AccessTokenSigner(
                    settings.jwt_private_key,
                    issuer=settings.jwt_issuer,
                    audience=settings.jwt_audience,
                    ttl_seconds=settings.access_token_ttl_seconds,
                ),
                refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
                redis_client=redis_client,
            ),
            login_throttle=LoginThrottle(
                redis_client,
                max_failures=settings.login_max_failures,
                window_seconds=settings.login_failure_window_seconds,
                secret=throttle_secret(settings.jwt_private_key),
            ),
            mongo=create_mongo(settings.mongodb_url, settings.mongodb_database, settings),
        )


def init_user_context(app: Flask, context: UserContext) -> None:
    app.extensions[EXTENSION] = context


def user_context() -> UserContext:
    return current_app.extensions[EXTENSION]
