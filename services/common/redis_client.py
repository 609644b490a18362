"""Redis client from `WHATSAPP_REDIS_URL`, with timeouts so a dead Redis means a fast 503.

redis-py connects lazily, so creating the client never fails; the first command does.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.common.config import BaseSettings


def create_redis(settings: BaseSettings, *, retries: int | None = None) -> redis.Redis:
    """`retries`: how often a failed command is tried again at once (None: redis-py's
    default, three times with a backoff of seconds; 0 for a caller that does without Redis
    rather than wait for it)."""
    extra = {} if retries is None else {"retry": Retry(NoBackoff(), retries)}
    return redis.Redis.from_url(
        settings.redis_url,
        **extra,
        socket_timeout=settings.backend_timeout_seconds,
        socket_connect_timeout=settings.backend_timeout_seconds,
        # Ping a connection idle this long before reusing it (Redis may have restarted).
        health_check_interval=30,
        decode_responses=True,
        client_name=f"whatsapp-{settings.service_name}",
    )


def redis_check(client: redis.Redis) -> None:
    """Readiness: Redis answers PING."""
    if not client.ping():
        raise redis.ConnectionError("PING did not answer PONG")
