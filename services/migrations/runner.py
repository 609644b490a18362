"""Apply the numbered SQL migrations of each schema, once each, in order.

Layout: `services/migrations/sql/<schema>/<NNNN>_<what>.sql`; one directory per schema,
because each schema is owned by (and migrated as) one service's login.

Usage: `python -m services.migrations.runner --dsn postgresql://svc_user@.../whatsapp
--schema accounts` (the DSN defaults to WHATSAPP_POSTGRES_DSN; without --schema, every
schema directory is migrated, which needs a login allowed to write them all).

Per schema the runner takes a PostgreSQL advisory lock (a second runner waits, then
finds nothing left to do), records applied files in `<schema>.schema_migrations` with a
checksum, refuses to go on when an applied file was edited afterwards, and applies each
pending file together with its record in one transaction: a failing file leaves nothing
behind and is retried by the next run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

SQL_ROOT = Path(__file__).resolve().parent / "sql"
FILE_NAME = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql")
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
LOCK_TIMEOUT_SECONDS = 120


class MigrationError(Exception):
    """The migrations cannot be applied safely; the message says why."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def schemas_in(root: Path = SQL_ROOT) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and SCHEMA_NAME.fullmatch(p.name))


def discover(schema_dir: Path) -> list[Migration]:
    """The schema's migrations in version order; a misnamed or duplicate file is an error."""
    migrations: dict[int, Migration] = {}
    for path in sorted(schema_dir.glob("*.sql")):
        match = FILE_NAME.fullmatch(path.name)
        if not match:
            raise MigrationError(f"{path}: name must look like 0001_what_it_does.sql")
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(f"{path}: version {version:04d} is used twice")
        migrations[version] = Migration(version, match["name"], path.read_text(encoding="utf-8"))
    return [migrations[v] for v in sorted(migrations)]


def pending(migrations: Iterable[Migration], applied: dict[int, str]) -> list[Migration]:
    """What is left to apply, given `{version: checksum}` already recorded in the database."""
    todo = []
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is None:
            todo.append(migration)
        elif recorded != migration.checksum:
            raise MigrationError(
                f"{migration.label} was edited after it was applied; add a new migration instead"
            )
    return todo


def advisory_lock_key(schema: str) -> int:
    """A stable signed 64-bit key per schema for pg_advisory_lock."""
    digest = hashlib.sha256(f"whatsapp-migrations:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _ensure_schema(conn: psycopg.Connection, schema: str) -> None:
    if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone():
        return
    try:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    except psycopg.errors.InsufficientPrivilege:
        raise MigrationError(
            f"schema {schema} does not exist and this login may not create it "
            "(the postgres role creates each schema, owned by its service's login)"
        ) from None


def _applied(conn: psycopg.Connection, schema: str, *, create: bool) -> dict[int, str]:
    """`{version: checksum}` recorded so far; the table is created unless this is a dry run."""
    table = sql.Identifier(schema, "schema_migrations")
    if create:
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(table)
        )
    elif conn.execute("SELECT to_regclass(%s)", (f"{schema}.schema_migrations",)).fetchone()[0] is None:
        return {}
    rows = conn.execute(sql.SQL("SELECT version, checksum FROM {}").format(table)).fetchall()
    return {version: checksum for version, checksum in rows}


def _apply(conn: psycopg.Connection, schema: str, migration: Migration) -> None:
    with conn.transaction():
        # Unqualified names in a file land in its own schema, never in public.
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        # No parameters: psycopg sends the file as one simple query, all its statements.
        conn.execute(migration.sql)
        conn.execute(
            sql.SQL("INSERT INTO {} (version, name, checksum) VALUES (%s, %s, %s)").format(
                sql.Identifier(schema, "schema_migrations")
            ),
            (migration.version, migration.name, migration.checksum),
        )


def migrate_schema(
    conn: psycopg.Connection, schema: str, *, root: Path = SQL_ROOT, dry_run: bool = False
) -> list[str]:
    """Apply what is pending for `schema` on an autocommit connection; the labels applied."""
    migrations = discover(root / schema)
    key = advisory_lock_key(schema)
    conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{LOCK_TIMEOUT_SECONDS}s")))
    conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    try:
        if not dry_run:
            _ensure_schema(conn, schema)
        todo = pending(migrations, _applied(conn, schema, create=not dry_run))
        done = []
        for migration in todo:
            if dry_run:
                print(f"{schema}: would apply {migration.label}")
                continue
            started = time.monotonic()
            try:
                _apply(conn, schema, migration)
            except psycopg.Error as exc:
                raise MigrationError(f"{schema}: {migration.label} failed: {exc}") from exc
            print(f"{schema}: applied {migration.label} ({(time.monotonic() - started) * 1000:.0f} ms)")
            done.append(migration.label)
        if not todo:
            print(f"{schema}: up to date ({len(migrations)} migrations)")
        return done
    finally:
        # A broken connection has dropped the lock with its session already.
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def migrate(
    dsn: str, schemas: list[str] | None = None, *, root: Path = SQL_ROOT, dry_run: bool = False
) -> dict[str, list[str]]:
    known = schemas_in(root)
    for schema in schemas or []:
        if schema not in known:
            raise MigrationError(f"no migrations for schema {schema!r} (known: {', '.join(known)})")
    with psycopg.connect(
        dsn, autocommit=True, connect_timeout=10, application_name="whatsapp-migrations"
    ) as conn:
        return {s: migrate_schema(conn, s, root=root, dry_run=dry_run) for s in (schemas or known)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.migrations.runner", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--dsn", default=os.environ.get("WHATSAPP_POSTGRES_DSN"), help="default: WHATSAPP_POSTGRES_DSN"
    )
    parser.add_argument("--schema", action="append", help="a schema to migrate (repeatable; default: all)")
    parser.add_argument("--dry-run", action="store_true", help="list pending migrations, apply nothing")
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("--dsn is required (or set WHATSAPP_POSTGRES_DSN)")
    try:
        migrate(args.dsn, args.schema, dry_run=args.dry_run)
    except (MigrationError, psycopg.OperationalError) as exc:
        print(f"migration failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
