"""Prometheus figures of the connection pools, read at each scrape, so a wait shows where it is.

- PostgreSQL (psycopg_pool's `get_stats()`): connections open and idle, requests waiting
  for one, how many requests and how long they waited in all, timeouts.
- RabbitMQ publishers (kombu's pool): connections in use and the pool's limit, batches
  confirmed.
A pool that was never used (opened lazily) reports nothing rather than being opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.common.amqp import ConfirmedPublisher
from services.common.db import Database


class PoolCollector(Collector):
    def __init__(self, databases: dict[str, Database], publishers: dict[str, ConfirmedPublisher]):
        self.databases = databases
        self.publishers = publishers

    def collect(self) -> Iterator[Any]:
        size = GaugeMetricFamily(
            "whatsapp_db_pool_connections", "PostgreSQL connections open.", labels=["pool"]
        )
        idle = GaugeMetricFamily(
            "whatsapp_db_pool_available", "PostgreSQL connections idle.", labels=["pool"]
        )
        waiting = GaugeMetricFamily(
            "whatsapp_db_pool_requests_waiting", "Requests waiting for a connection now.", labels=["pool"]
        )
        requests = CounterMetricFamily(
            "whatsapp_db_pool_requests", "Connections handed out by the pool.", labels=["pool"]
        )
        waited = CounterMetricFamily(
            "whatsapp_db_pool_wait_seconds", "Time requests spent waiting for a connection.", labels=["pool"]
        )
        timeouts = CounterMetricFamily(
            "whatsapp_db_pool_timeouts", "Requests that got no connection in time.", labels=["pool"]
        )
        for name, database in self.databases.items():
            stats = database.stats()
            if stats is None:
                continue
            size.add_metric([name], stats.get("pool_size", 0))
            idle.add_metric([name], stats.get("pool_available", 0))
            waiting.add_metric([name], stats.get("requests_waiting", 0))
            requests.add_metric([name], stats.get("requests_num", 0))
            waited.add_metric([name], stats.get("requests_wait_ms", 0) / 1000)
            timeouts.add_metric([name], stats.get("requests_errors", 0))
        yield from (size, idle, waiting, requests, waited, timeouts)
        in_use = GaugeMetricFamily(
            "whatsapp_amqp_pool_in_use", "Publisher connections in use now.", labels=["pool"]
        )
        limit = GaugeMetricFamily(
            "whatsapp_amqp_pool_limit", "Publisher connections at most.", labels=["pool"]
        )
        batches = CounterMetricFamily(
            "whatsapp_amqp_confirmed_batches",
            "Publishes whose confirms were awaited together.",
            labels=["pool"],
        )
        for name, publisher in self.publishers.items():
            used, most = publisher.pool_state()
            in_use.add_metric([name], used)
            limit.add_metric([name], most)
            batches.add_metric([name], publisher.batches)
        yield from (in_use, limit, batches)


def register_pool_metrics(
    registry: CollectorRegistry,
    *,
    databases: dict[str, Database] | None = None,
    publishers: dict[str, ConfirmedPublisher] | None = None,
) -> None:
    registry.register(PoolCollector(databases or {}, publishers or {}))
