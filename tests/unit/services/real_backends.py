"""Real Redis and PostgreSQL for the user service's unit tests (no fakes), cleaned up after.

Redis: the deployed stack's (the test inventory's address, port and password) when it
answers, else a throw-away `redis-server` started on a free port, else the test is
skipped. Every test uses keys under a prefix of its own and deletes them afterwards.

PostgreSQL: a throw-away database on the deployed stack's server (as its superuser, from
the test inventory), migrated with the project's own runner and dropped after the module.
Without a reachable server the tests are skipped. The stack's own database is never
touched.

`WHATSAPP_TEST_REDIS_URL` and `WHATSAPP_TEST_POSTGRES_DSN` (a superuser's DSN to any
database of the server) override what the inventory says.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import yaml
from conftest import ROOT, TEST_INVENTORY
from psycopg import sql

from services.migrations.runner import migrate


def _deployed_vars() -> dict[str, Any]:
    values: dict[str, Any] = {}
    paths = [
        *sorted((ROOT / "group_vars/all").glob("*.yml")),
        *sorted((Path(TEST_INVENTORY) / "group_vars/whatsapp").glob("*.yml")),
    ]
    for path in paths:
        values.update(yaml.safe_load(path.read_text()) or {})
    return values


DEPLOYED = _deployed_vars()


def stack_redis_url() -> str:
    return os.environ.get("WHATSAPP_TEST_REDIS_URL") or (
        f"redis://:{DEPLOYED.get('redis_password', '')}@{DEPLOYED['whatsapp_publish_address']}:"
        f"{DEPLOYED['redis_port']}/0"
    )


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_url() -> Iterator[str]:
    """A URL of a Redis that answers: the stack's, or a throw-away server's."""
    url = stack_redis_url()
    if _answers(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(f"no Redis answers at {url.split('@')[-1]} and redis-server is not installed")
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 (a fixed local binary)
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while not _answers(url):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.skip("the throw-away redis-server did not start")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.delete(*keys)


def _admin_dsn() -> str:
    return os.environ.get("WHATSAPP_TEST_POSTGRES_DSN") or (
        f"postgresql://{DEPLOYED['postgres_superuser']}:{DEPLOYED.get('postgres_superuser_password', '')}"
        f"@{DEPLOYED['whatsapp_publish_address']}:{DEPLOYED['postgres_port']}/{DEPLOYED['postgres_database']}"
    )


@contextmanager
def throwaway_database(schemas: list[str]) -> Iterator[str]:
    """The DSN of a new database with `schemas` migrated; dropped afterwards."""
    admin_dsn = _admin_dsn()
    try:
        admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL to make a throw-away database on: {str(exc).strip()[:120]}")
    name = f"whatsapp_unit_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            dsn = psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
            migrate(dsn, schemas)
            yield dsn
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
