"""The migration runner's file rules and plan, without a database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.migrations import runner
from services.migrations.runner import Migration, MigrationError, advisory_lock_key, discover, pending


def write(directory: Path, name: str, text: str = "SELECT 1;") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)


def test_files_are_applied_in_version_order(tmp_path):
    write(tmp_path, "0010_later.sql")
    write(tmp_path, "0002_second.sql")
    write(tmp_path, "0001_first.sql")
    assert [m.label for m in discover(tmp_path)] == ["0001_first", "0002_second", "0010_later"]


@pytest.mark.parametrize("name", ["1_short.sql", "0001-dash.sql", "0001_Upper.sql", "init.sql"])
def test_misnamed_file_is_an_error(tmp_path, name):
    write(tmp_path, name)
    with pytest.raises(MigrationError, match=re.escape(name)):
        discover(tmp_path)


def test_duplicate_version_is_an_error(tmp_path):
    write(tmp_path, "0001_a.sql")
    write(tmp_path, "0001_b.sql")
    with pytest.raises(MigrationError, match="used twice"):
        discover(tmp_path)


def test_pending_skips_what_is_applied():
    first, second = Migration(1, "a", "SELECT 1;"), Migration(2, "b", "SELECT 2;")
    assert pending([first, second], {}) == [first, second]
    assert pending([first, second], {1: first.checksum}) == [second]
    assert pending([first, second], {1: first.checksum, 2: second.checksum}) == []


def test_an_applied_file_that_changed_stops_the_run():
    edited = Migration(1, "a", "SELECT 'edited';")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        pending([edited], {1: Migration(1, "a", "SELECT 1;").checksum})


def test_lock_keys_are_stable_per_schema_and_fit_bigint():
    assert advisory_lock_key("accounts") == advisory_lock_key("accounts")
    assert advisory_lock_key("accounts") != advisory_lock_key("conversations")
    assert -(2**63) <= advisory_lock_key("accounts") < 2**63


def test_accounts_schema_is_shipped_with_its_tables():
    assert "accounts" in runner.schemas_in()
    migrations = discover(runner.SQL_ROOT / "accounts")
    assert migrations[0].version == 1
    text = "\n".join(m.sql for m in migrations)
    for table in ("users", "contacts", "blocks", "devices", "refresh_tokens"):
        assert f"CREATE TABLE accounts.{table}" in text
    # The files run inside the runner's transaction: they must not manage their own.
    assert not re.search(r"^\s*(BEGIN|COMMIT)\b", text, re.I | re.M)


def test_unknown_schema_is_refused_before_connecting():
    with pytest.raises(MigrationError, match="no migrations for schema 'nope'"):
        runner.migrate("postgresql://nobody@127.0.0.1:1/none", ["nope"])


def test_cli_requires_a_dsn(monkeypatch, capsys):
    monkeypatch.delenv("WHATSAPP_POSTGRES_DSN", raising=False)
    with pytest.raises(SystemExit) as exited:
        runner.main([])
    assert exited.value.code == 2
    assert "--dsn is required" in capsys.readouterr().err


def test_cli_reports_an_unreachable_database(capsys):
    assert runner.main(["--dsn", "postgresql://nobody@127.0.0.1:1/none", "--schema", "accounts"]) == 1
    assert "migration failed" in capsys.readouterr().err
