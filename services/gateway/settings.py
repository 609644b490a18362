"""Settings of the gateway: the common ones plus upstream URLs, timeouts and rate limits.

The gateway keeps no data of its own: it never opens PostgreSQL (so `WHATSAPP_POSTGRES_DSN`
is not required here), and Redis holds only rate-limit counters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import Field, field_validator

import services
from services.common.config import BaseSettings

# docs/api/openapi.yaml beside the `services` package: the repository in development, the
# application root inside the service image (the image ships the file at the same place).
DEFAULT_OPENAPI_PATH = Path(services.__file__).resolve().parent.parent / "docs" / "api" / "openapi.yaml"

# Storages of the limits library that need nothing beyond redis-py (memory: tests only).
LIMIT_STORAGE_SCHEMES = frozenset(
    {"memory", "redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster"}
)
RateLimitStrategy = Literal["fixed-window", "sliding-window-counter", "moving-window"]


def check_service_url(value: str) -> str:
    """`http(s)://host[:port][/prefix]` without query, fragment or credentials; no trailing `/`."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError:
        raise ValueError("must be an http(s) URL such as http://whatsapp-user:8081") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as http://whatsapp-user:8081")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not carry a query, a fragment or credentials")
    return value.rstrip("/")


def check_rate_limit(value: str) -> str:
    """A limits string such as `100/second` or `10/second; 300/minute`."""
    try:
        parse_many(value)
    except ValueError:
        raise ValueError("must be a rate limit such as 100/second or '10/second; 300/minute'") from None
    return value


class GatewaySettings(BaseSettings):
    service_name: str = Field(default="gateway", min_length=1, max_length=64)
    # Not used by the gateway; accepted (and validated when given) so one env file can serve all.
    postgres_dsn: str | None = None

    # Base URLs of the services the gateway forwards to (paths are forwarded unchanged).
    user_service_url: str = "http://whatsapp-user:8081"
    chat_service_url: str = "http://whatsapp-chat:8082"
    # Connecting to a service on the same Docker network takes milliseconds: a slow connect
    # means it is down. Reads cover the slowest answer (login runs bcrypt, a send waits for
    # the broker's confirm).
    upstream_connect_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    upstream_read_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Kept-alive connections per service (a gevent worker serves many requests at once).
    upstream_pool_size: int = Field(default=32, ge=1, le=1024)
    # Retries of a refused or failed connect only: the request was never sent, so any method
    # is safe to retry (a replica restarting behind Docker's DNS); reads are never retried.
    upstream_connect_retries: int = Field(default=1, ge=0, le=5)
    # Per-service bound of GET /api/v1/health (each service's /ready, asked in parallel).
    health_timeout_seconds: float = Field(default=1.5, gt=0, le=30)

    rate_limit_enabled: bool = True
    # Counter storage (a limits URI); unset means WHATSAPP_REDIS_URL. Unit tests use memory://.
    rate_limit_storage_url: str | None = None
    rate_limit_strategy: RateLimitStrategy = "fixed-window"
    # Per verified user, shared by every authenticated route.
    rate_limit_api: str = "100/second"
    # Per client IP, shared by the /api/v1/auth/* routes (register, login, refresh, logout).
    rate_limit_auth: str = "10/second"
    # Per client IP, for the other public routes (GET /api/v1/health, /api/v1/openapi.json).
    rate_limit_public: str = "20/second"
    # While the counter storage is down requests are not limited (fail open); it is tried
    # again after this long, so a dead Redis does not cost every request a timeout.
    rate_limit_storage_retry_seconds: float = Field(default=5.0, gt=0, le=300)
    # Proxies in front of the gateway that append to X-Forwarded-For (nginx: 1). The client
    # is the address the outermost of them saw; 0 trusts no header and uses the peer address.
    trusted_proxy_count: int = Field(default=1, ge=0, le=10)
    # The largest media upload (POST /api/v1/media), streamed through; 413 above.
    media_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024**3)

    # The OpenAPI document served (as JSON) at GET /api/v1/openapi.json.
    openapi_path: Path = DEFAULT_OPENAPI_PATH

    @field_validator("user_service_url", "chat_service_url")
    @classmethod
    def _valid_service_url(cls, value: str) -> str:
        return check_service_url(value)

    @field_validator("rate_limit_api", "rate_limit_auth", "rate_limit_public")
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        return check_rate_limit(value)

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _valid_storage_url(cls, value: str | None) -> str | None:
        if value is not None and value.partition("://")[0] not in LIMIT_STORAGE_SCHEMES:
            raise ValueError("must be a storage URI such as redis://host:6379/0 or memory://")
        return value

    @field_validator("openapi_path")
    @classmethod
    def _openapi_file_exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"no file at {value}")
        return value

    @property
    def upstream_urls(self) -> dict[str, str]:
        """`{service name: base URL}` of every service the gateway forwards to."""
        return {"user": self.user_service_url, "chat": self.chat_service_url}

    @property
    def limiter_storage_url(self) -> str:
        if self.rate_limit_storage_url:
            return self.rate_limit_storage_url
        # The limits library spells a Redis socket path redis+unix://.
        if self.redis_url.startswith("unix://"):
            return "redis+unix://" + self.redis_url.removeprefix("unix://")
        return self.redis_url
