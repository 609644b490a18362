"""Settings of the user service: the common ones plus signing, bcrypt, login throttling and
webhook hosts."""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, field_validator, model_validator

from services.common.auth import keys_match, load_private_key
from services.common.config import BaseSettings, SettingsError, check_mongodb_url, pem_from_env

# A host name (or IPv4 address), optionally `*.` for any subdomain of it.
ALLOWED_HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


class UserSettings(BaseSettings):
    service_name: str = Field(default="user", min_length=1, max_length=64)
    # Only the user service holds the private key: it alone mints access tokens.
    jwt_private_key: str
    # bcrypt work factor: 12 is ~0.25 s per hash on one core; 4 only for tests.
    bcrypt_cost: int = Field(default=12, ge=4, le=16)
    # bcrypt computations at once (login and register); beyond them both answer 503 at
    # once. Keep it below gunicorn's threads, so other routes always find a free thread.
    password_checks_concurrent: int = Field(default=4, ge=1, le=256)
    # Failed logins one phone may have within the window (any address); the next attempt,
    # and every one until the oldest failure leaves the window, answers 429.
    login_max_failures: int = Field(default=10, ge=1, le=10_000)
    login_failure_window_seconds: int = Field(default=900, ge=1, le=86_400)
    # Hosts webhook devices may point at (comma separated); empty refuses every webhook,
    # so the service cannot be aimed at internal addresses by default.
    webhook_allowed_hosts: tuple[str, ...] = ()
    # The message store, reached only when an account is deleted (its messages' bodies are
    # erased there too); connected lazily, so the service runs while MongoDB is down.
    mongodb_url: str
    mongodb_database: str = Field(default="whatsapp", min_length=1, max_length=63)
    # Where chat instances hear about events for sockets (a deleted account's messages).
    events_channel: str = Field(default="whatsapp:events", min_length=1)

    @field_validator("jwt_private_key")
    @classmethod
    def _valid_private_key(cls, value: str) -> str:
        pem = pem_from_env(value)
        load_private_key(pem)
        return pem

    @field_validator("mongodb_url")
    @classmethod
    def _valid_mongodb_url(cls, value: str) -> str:
        return check_mongodb_url(value)

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(h.strip().lower().rstrip(".") for h in value.split(",") if h.strip())
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _valid_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if not ALLOWED_HOST.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name (or *.domain)")
        return value

    @model_validator(mode="after")
    def _keys_are_a_pair(self) -> Self:
        # A mismatched pair would mint tokens that every service (this one too) refuses.
        if not keys_match(self.jwt_private_key, self.jwt_public_key):
            raise SettingsError("WHATSAPP_JWT_PRIVATE_KEY does not match WHATSAPP_JWT_PUBLIC_KEY")
        return self
