"""Prometheus metrics of the HTTP layer, in a registry owned by each app.

A registry per app (not prometheus-client's global one) lets tests, or one process, build
several apps without "Duplicated timeseries" errors. Services add their own metrics to
`metrics_of(app).registry`. `route` is the URL rule (`/api/v1/users/<user_id>`), never
the raw path, so label cardinality stays bounded; unmatched paths share `unmatched`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    gc_collector,
    platform_collector,
    process_collector,
)

EXTENSION = "whatsapp_metrics"
UNMATCHED_ROUTE = "unmatched"
# Request latencies of a chat backend: milliseconds normally, seconds when a backend stalls.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class HttpMetrics:
    registry: CollectorRegistry
    service: str
    requests_total: Counter
    request_duration_seconds: Histogram

    @classmethod
    def create(cls, service: str) -> HttpMetrics:
        registry = CollectorRegistry(auto_describe=True)
        process_collector.ProcessCollector(registry=registry)
        platform_collector.PlatformCollector(registry=registry)
        gc_collector.GCCollector(registry=registry)
        return cls(
            registry=registry,
            service=service,
            requests_total=Counter(
                "http_requests_total",
                "HTTP requests answered, by route, method and status.",
                ["service", "route", "method", "status"],
                registry=registry,
            ),
            request_duration_seconds=Histogram(
                "http_request_duration_seconds",
                "Time from request start to response, by route and method.",
                ["service", "route", "method"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
        )


def metrics_of(app: Flask | None = None) -> HttpMetrics:
    return (app or current_app).extensions[EXTENSION]


def current_route() -> str:
    return request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE


def init_metrics(app: Flask, service: str) -> HttpMetrics:
    metrics = HttpMetrics.create(service)
    app.extensions[EXTENSION] = metrics

    @app.before_request
    def _start_clock() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _count_request(response: Response) -> Response:
        route, method = current_route(), request.method
        metrics.requests_total.labels(service, route, method, str(response.status_code)).inc()
        started = g.get("request_started")
        if started is not None:
            metrics.request_duration_seconds.labels(service, route, method).observe(
                time.perf_counter() - started
            )
        return response

    return metrics
