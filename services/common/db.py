"""PostgreSQL through a psycopg_pool ConnectionPool, opened lazily.

The pool is created on first use and opened without waiting, so a service starts (and
answers /health) while PostgreSQL is still down; requests then get 503 `unavailable`
after the pool timeout, and /ready reports `postgres: down`. Connections are autocommit:
single statements need no transaction, and `transaction()` makes one explicitly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from services.common.config import BaseSettings

# A query stuck on a lock must not hold a worker forever.
STATEMENT_TIMEOUT_MS = 10_000


class Database:
    def __init__(self, settings: BaseSettings):
        self._settings = settings
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = self._create_pool()
        return self._pool

    def _create_pool(self) -> ConnectionPool:
        s = self._settings
        pool = ConnectionPool(
            s.postgres_dsn,
            min_size=min(s.postgres_pool_min_size, s.postgres_pool_max_size),
            max_size=s.postgres_pool_max_size,
            timeout=s.postgres_pool_timeout_seconds,
            name=s.service_name,
            open=False,
            # Hand out only live connections: after a PostgreSQL restart, requests should
            # not be the ones to discover the broken sockets.
            check=ConnectionPool.check_connection,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": s.postgres_connect_timeout_seconds,
                "application_name": f"whatsapp-{s.service_name}",
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            },
        )
        pool.open(wait=False)
        return pool

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        with self.pool.connection(timeout=timeout) as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def stats(self) -> dict[str, int] | None:
        """psycopg_pool's figures (cumulative counters), or None while the pool is unopened."""
        return None if self._pool is None else self._pool.get_stats()

    def check(self) -> None:
        """Readiness: a pooled connection answers a query within the backend timeout."""
        with self.connection(timeout=self._settings.backend_timeout_seconds) as conn:
            conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
