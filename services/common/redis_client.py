"""Redis client from `WHATSAPP_REDIS_URL`, with timeouts so a dead Redis means a fast 503.

redis-py connects lazily, so creating the client never fails; the first command does.
"""

from __future__ import annotations

import redis

from services.common.config import BaseSettings


def create_redis(settings: BaseSettings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url,
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
