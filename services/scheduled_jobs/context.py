"""What every job gets: settings, backends, metrics and the leader election."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import kombu
import redis
from pymongo.database import Database as MongoDatabase

from services.common.amqp import amqp_connection
from services.common.db import Database
from services.scheduled_jobs.leader import LeaderElection
from services.scheduled_jobs.metrics import JobMetrics
from services.scheduled_jobs.settings import ScheduledJobsSettings


class Broker:
    """RabbitMQ for the jobs (a connection per run) and for /ready (one pooled connection)."""

    def __init__(self, url: str, *, timeout: float):
        self._url = url
        self._timeout = timeout
        self._pool = amqp_connection(url, timeout=timeout).Pool(limit=1)

    @contextmanager
    def connection(self) -> Iterator[kombu.Connection]:
        with amqp_connection(self._url, timeout=self._timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=self._timeout)
            yield conn

    def check(self) -> None:
        """Readiness: a pooled connection to the broker opens."""
        with self._pool.acquire(block=True, timeout=self._timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=self._timeout)

    def close(self) -> None:
        self._pool.force_close_all()


@dataclass
class JobsContext:
    settings: ScheduledJobsSettings
    db: Database
    redis: redis.Redis
    mongo: MongoDatabase
    broker: Broker
    metrics: JobMetrics
    election: LeaderElection
    # What a job keeps from one run to the next (the presence SCAN cursor, queues known down).
    state: dict[str, Any] = field(default_factory=dict)

    def leading(self) -> bool:
        return self.election.is_leader()
