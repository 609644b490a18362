"""The gateway's collaborators, made once per app and reached through `gateway_context()`."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app

from services.common.metrics import metrics_of
from services.common.redis_client import create_redis
from services.gateway.settings import GatewaySettings
from services.gateway.upstream import UpstreamMetrics, Upstreams, UpstreamTimeouts

EXTENSION = "whatsapp_gateway"


@dataclass
class GatewayContext:
    settings: GatewaySettings
    upstreams: Upstreams
    redis: redis.Redis

    @classmethod
    def create(cls, app: Flask, settings: GatewaySettings) -> GatewayContext:
        return cls(
            settings=settings,
            upstreams=Upstreams(
                settings.upstream_urls,
                timeouts=UpstreamTimeouts(
                    connect=settings.upstream_connect_timeout_seconds,
                    read=settings.upstream_read_timeout_seconds,
                ),
                pool_size=settings.upstream_pool_size,
                connect_retries=settings.upstream_connect_retries,
                metrics=UpstreamMetrics(metrics_of(app).registry),
            ),
            redis=create_redis(settings),
        )


def init_gateway_context(app: Flask, context: GatewayContext) -> None:
    app.extensions[EXTENSION] = context


def gateway_context() -> GatewayContext:
    return current_app.extensions[EXTENSION]
