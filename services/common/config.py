"""Typed settings, parsed once from `WHATSAPP_*` environment variables.

Each field of a settings class is read from `WHATSAPP_<FIELD NAME IN CAPITALS>`: the field
`postgres_dsn` comes from `WHATSAPP_POSTGRES_DSN`. When that variable is unset or empty,
`WHATSAPP_POSTGRES_DSN_FILE` may name a file holding the value instead (Docker secrets are
files, and PEM keys with their newlines are awkward in an environment). A missing or
malformed value stops start-up with a `SettingsError` naming the variable, never its value
(it may be a secret).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services import __version__
from services.common.auth import load_public_key

ENV_PREFIX = "WHATSAPP_"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def pem_from_env(value: str) -> str:
    """PEM text from an environment value: `\\n` escapes become newlines (one-line env files)."""
    value = value.strip()
    if "\n" not in value and "\\n" in value:
        value = value.replace("\\n", "\n")
    return value + "\n"


class BaseSettings(BaseModel):
    """What every service reads. Services subclass it, set `service_name` and add fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_name: str = Field(min_length=1, max_length=64)
    version: str = __version__
    log_level: LogLevel = "INFO"

    postgres_dsn: str
    postgres_pool_min_size: int = Field(default=1, ge=0, le=100)
    postgres_pool_max_size: int = Field(default=10, ge=1, le=200)
    # How long a request waits for a pooled connection before answering 503.
    postgres_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    postgres_connect_timeout_seconds: int = Field(default=3, ge=1, le=60)

    redis_url: str
    # Socket timeouts of Redis calls and of each readiness check: a dead backend must
    # turn into a fast 503, not a hung worker.
    backend_timeout_seconds: float = Field(default=2.0, gt=0, le=30)

    jwt_public_key: str
    jwt_issuer: str = Field(default="whatsapp-user", min_length=1)
    jwt_audience: str = Field(default="whatsapp", min_length=1)
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=60, le=365 * 86_400)

    # Logstash shipping is off unless a host is given.
    logstash_host: str | None = None
    logstash_port: int = Field(default=5000, ge=1, le=65_535)
    # The on-disk queue that holds log events while Logstash is away (default: a temp file).
    logstash_queue_path: str | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("postgres_dsn")
    @classmethod
    def _valid_dsn(cls, value: str) -> str:
        try:
            params = conninfo_to_dict(value)
        except psycopg.ProgrammingError as exc:
            raise ValueError("not a PostgreSQL connection string (postgresql://user@host/db)") from exc
        # libpq would only find a bad port at the first connection, long after start-up.
        for port in str(params.get("port") or "5432").split(","):
            if not port.isdigit() or not 0 < int(port) < 65_536:
                raise ValueError("the port in the connection string is not a number from 1 to 65535")
        return value

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("jwt_public_key")
    @classmethod
    def _valid_public_key(cls, value: str) -> str:
        pem = pem_from_env(value)
        load_public_key(pem)  # raises ValueError naming what is wrong
        return pem

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read, validate and freeze the settings; raise SettingsError naming the variable."""
        environ = os.environ if environ is None else environ
        raw: dict[str, str] = {}
        for field in cls.model_fields:
            value = _read_variable(environ, env_name(field))
            if value is not None:
                raw[field] = value
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise SettingsError(describe_errors(exc)) from None


def _read_variable(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value:
        return value
    path = environ.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\n")
    except OSError as exc:
        raise SettingsError(f"{name}_FILE names a file that cannot be read: {exc.strerror}") from None


def describe_errors(exc: ValidationError) -> str:
    """One clause per problem, each naming the variable (values are never echoed)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        variable = env_name(str(error["loc"][0])) if error["loc"] else "settings"
        if error["type"] == "missing":
            problems.append(f"{variable} is missing")
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{variable} is malformed: {message}")
    return "; ".join(problems)


def check_amqp_url(value: str) -> str:
    """A broker URL, or ValueError (shared by every settings class that has one)."""
    if not value.startswith(("amqp://", "amqps://")):
        raise ValueError("must be an amqp:// or amqps:// URL")
    return value


def check_mongodb_url(value: str) -> str:
    """A MongoDB URL, or ValueError (shared by every settings class that has one)."""
    if not value.startswith(("mongodb://", "mongodb+srv://")):
        raise ValueError("must be a mongodb:// URL")
    return value


class MessagingSettings(BaseSettings):
    """What the services on the message path add: the message store and the broker."""

    mongodb_url: str
    mongodb_database: str = Field(default="whatsapp", min_length=1, max_length=63)
    rabbitmq_url: str
    # Exchanges and routing keys of the message path (declared by the rabbitmq role).
    messages_exchange: str = "whatsapp.messages"
    messages_routing_key: str = "message.created"
    notifications_exchange: str = "whatsapp.notifications"
    notifications_routing_key: str = "notification.send"

    @field_validator("mongodb_url")
    @classmethod
    def _valid_mongodb_url(cls, value: str) -> str:
        return check_mongodb_url(value)

    @field_validator("rabbitmq_url")
    @classmethod
    def _valid_rabbitmq_url(cls, value: str) -> str:
        return check_amqp_url(value)
