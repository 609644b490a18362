"""Verify the postgres role: container, logins, rights per service, persistence."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import psycopg
import pytest
import whatsapp_testlib as lib
from psycopg import errors

VARS = lib.role_vars()
SPEC = VARS["spec"]
NAME = SPEC["name"]
LOGINS = {login["name"]: login for login in VARS["logins"]}
OWNER_OF = {login["owns"]: name for name, login in LOGINS.items() if login["owns"]}


def connect(user: str, password: str | None = None) -> psycopg.Connection:
    password = password if password is not None else VARS["passwords"].get(user, VARS["superuser_password"])
    return psycopg.connect(
        host=VARS["address"],
        port=VARS["port"],
        dbname=VARS["database"],
        user=user,
        password=password,
        connect_timeout=5,
        autocommit=True,
    )


@pytest.fixture(scope="module")
def probe_tables():
    """One table per owned schema, created by its owner (as migrations will)."""
    suffix = uuid.uuid4().hex[:8]
    tables = {}
    for schema, owner in OWNER_OF.items():
        table = f"{schema}.verify_{suffix}"
        with connect(owner) as conn:
            conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, note text)")
            conn.execute(f"INSERT INTO {table} (note) VALUES ('seed')")
        tables[schema] = table
    return tables


def test_container_follows_the_spec(host):
    data = lib.assert_standard_container(host, SPEC, VARS["restart_policy"])
    assert data["HostConfig"]["ShmSize"] == lib.size_to_bytes(SPEC["shm_size"])
    assert data["Config"]["StopSignal"] == "SIGINT"
    assert data["HostConfig"]["CapDrop"] == ["ALL"]


def test_port_published_on_loopback_only(host):
    data = lib.inspect(host, NAME)
    assert lib.published_bindings(data) == {"5432/tcp": [(VARS["address"], str(VARS["port"]))]}
    assert lib.listening_addresses(host, VARS["port"]) == {VARS["address"]}


def test_runs_as_the_declared_non_root_user(host):
    uid_gid = host.check_output("docker exec %s sh -c 'echo $(id -u):$(id -g)'", NAME)
    assert uid_gid == VARS["user"]


def test_database_is_utf8_and_sized_from_the_memory_limit():
    with connect(VARS["superuser"]) as conn:
        assert conn.execute("SHOW server_encoding").fetchone()[0] == "UTF8"
        assert conn.execute("SHOW shared_buffers").fetchone()[0] == f"{VARS['shared_buffers_mb']}MB"
        assert int(conn.execute("SHOW max_connections").fetchone()[0]) == VARS["max_connections"]
        assert conn.execute("SHOW password_encryption").fetchone()[0] == "scram-sha-256"


def test_a_vanished_client_does_not_keep_its_locks():
    """Dead peers are probed by TCP keepalives, and a transaction left idle is ended: a
    client killed mid-transaction (its node lost, no FIN or RST) releases its row locks."""
    with connect(VARS["superuser"]) as conn:
        assert conn.execute("SHOW tcp_keepalives_idle").fetchone()[0] == "10"
        assert conn.execute("SHOW tcp_keepalives_interval").fetchone()[0] == "5"
        assert conn.execute("SHOW tcp_keepalives_count").fetchone()[0] == "4"
        timeout = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0]
        assert timeout == f"{VARS['idle_in_transaction_timeout']}s"


@pytest.mark.parametrize("login", sorted(LOGINS))
def test_every_service_login_connects(login):
    with connect(login) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == login
        is_super = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        assert is_super is False


def test_a_wrong_password_is_refused():
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(sorted(LOGINS)[0], password="not-the-password-at-all")  # noqa: S106 (a wrong one on purpose)


def test_psql_from_the_host_works():
    psql = shutil.which("psql")
    if psql is None:
        pytest.fail("psql is not installed on this host (Debian: postgresql-client)")
    login = sorted(LOGINS)[0]
    out = subprocess.run(
        [
            psql,
            "-h",
            VARS["address"],
            "-p",
            str(VARS["port"]),
            "-U",
            login,
            "-d",
            VARS["database"],
            "-tAc",
            "SELECT current_user",
        ],
        env={"PGPASSWORD": VARS["passwords"][login], "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.stdout.strip() == login, out.stderr


@pytest.mark.parametrize("login", sorted(LOGINS))
def test_rights_are_exactly_what_each_service_needs(login, probe_tables):
    spec = LOGINS[login]
    with connect(login) as conn:
        for schema, table in probe_tables.items():
            may_read = schema == spec["owns"] or schema in spec["reads"] or schema in spec["writes"]
            may_write = schema == spec["owns"] or schema in spec["writes"]
            if may_read:
                assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] >= 1
            else:
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute(f"SELECT 1 FROM {table}")
            if may_write:
                conn.execute(f"INSERT INTO {table} (note) VALUES (%s)", (login,))
            else:
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute(f"INSERT INTO {table} (note) VALUES (%s)", (login,))
            if schema != spec["owns"]:
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute(f"CREATE TABLE {schema}.intruder_{login} (id int)")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(f"CREATE TABLE public.intruder_{login} (id int)")


def test_data_survives_container_re_creation(host, probe_tables):
    schema, table = next(iter(probe_tables.items()))
    marker = str(uuid.uuid4())
    with connect(OWNER_OF[schema]) as conn:
        conn.execute(f"INSERT INTO {table} (note) VALUES (%s)", (marker,))
    lib.recreate(host, NAME)
    with connect(OWNER_OF[schema]) as conn:
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE note = %s", (marker,)).fetchone()[0] == 1
