"""Real Redis and PostgreSQL for the services' unit tests (no fakes), started here and
removed after: nothing of the deployed stack is touched, so these tests run before it exists
and beside the layers that deploy it.

Redis: a throw-away `redis-server` on 127.0.0.1 at a free port, nothing saved. Every test
uses keys under a prefix of its own and deletes them afterwards.

PostgreSQL: a throw-away cluster of Debian's `postgresql` binaries (initdb, pg_ctl) in a
temporary directory, listening on a Unix socket there only, run as the `postgres` account
when the tests run as root; each module gets a database migrated with the project's own
runner.

`WHATSAPP_TEST_REDIS_URL` and `WHATSAPP_TEST_POSTGRES_DSN` (a superuser's DSN to any
database of a server) use servers of one's own instead. Without either the server or its
program the tests fail, naming the package to install: they are never skipped.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from services.migrations.runner import migrate

START_SECONDS = 30


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
    """The URL of a throw-away Redis (or WHATSAPP_TEST_REDIS_URL's)."""
    if os.environ.get("WHATSAPP_TEST_REDIS_URL"):
        yield os.environ["WHATSAPP_TEST_REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server; scripts/test.sh does)")
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 (a fixed local binary)
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _answers(url):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"the throw-away redis-server did not start (exit code {process.poll()})")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.delete(*keys)


def _postgres_programs() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail("initdb is missing (apt-get install postgresql; scripts/test.sh does)")
    return Path(initdb).parent


def _as_postgres(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def _local_postgres() -> Iterator[str]:
    """The superuser DSN of a throw-away PostgreSQL cluster, stopped and removed after."""
    programs = _postgres_programs()
    base = Path(tempfile.mkdtemp(prefix="whatsapp-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
    try:
        server = f"-c listen_addresses='' -k {base} -c fsync=off -c full_page_writes=off"
        steps = [
            [str(programs / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
            [str(programs / "pg_ctl"), "-D", str(data), "-w", "-t", str(START_SECONDS)]
            + ["-l", str(base / "log"), "-o", server, "start"],
        ]
        for step in steps:
            done = subprocess.run(_as_postgres(step), capture_output=True, text=True, check=False)  # noqa: S603
            if done.returncode != 0:
                log = (base / "log").read_text() if (base / "log").exists() else ""
                pytest.fail(f"the throw-away PostgreSQL did not start: {done.stderr.strip()} {log[-500:]}")
        yield psycopg.conninfo.make_conninfo(host=str(base), user="postgres", dbname="postgres")
    finally:
        if data.exists():
            stop = [str(programs / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(_as_postgres(stop), capture_output=True, check=False)  # noqa: S603
        shutil.rmtree(base, ignore_errors=True)


_shared: dict[str, str] = {}


@contextmanager
def _admin_dsn() -> Iterator[str]:
    """WHATSAPP_TEST_POSTGRES_DSN, or one local server for the whole pytest run (started by
    the first module that needs it, stopped when the run ends): each module's throw-away
    database lives on it."""
    if os.environ.get("WHATSAPP_TEST_POSTGRES_DSN"):
        yield os.environ["WHATSAPP_TEST_POSTGRES_DSN"]
        return
    if "dsn" not in _shared:
        server = ExitStack()
        _shared["dsn"] = server.enter_context(_local_postgres())
        atexit.register(server.close)
    yield _shared["dsn"]


@contextmanager
def throwaway_database(schemas: list[str]) -> Iterator[str]:
    """The DSN of a new database with `schemas` migrated; dropped afterwards."""
    with _admin_dsn() as admin_dsn:
        try:
            admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as exc:
            pytest.fail(f"no PostgreSQL to make a throw-away database on: {str(exc).strip()[:200]}")
        name = f"whatsapp_unit_{uuid.uuid4().hex[:12]}"
        with admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            try:
                dsn = psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
                migrate(dsn, schemas)
                yield dsn
            finally:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
