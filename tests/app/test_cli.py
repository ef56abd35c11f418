"""The ``loyalty`` command line (commands that need no services; those are tested with them)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from loyalty.app.cli import main
from loyalty.db.migrate import current_head
from loyalty.db.tables import metadata


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    conn.close()
    return {name for (name,) in rows}


def _version(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    conn.close()
    return str(version)


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "data" / "loyalty.db"  # the directory does not exist yet
    env = {"LOYALTY_DATABASE_URL": f"sqlite+aiosqlite:///{path}"}
    runner = CliRunner()

    first = runner.invoke(main, ["migrate"], env=env)
    assert first.exit_code == 0, first.output
    assert current_head() in first.output
    assert {t.name for t in metadata.sorted_tables} <= _tables(path)
    assert _version(path) == current_head()

    second = runner.invoke(main, ["migrate"], env=env)
    assert second.exit_code == 0, second.output
    assert _version(path) == current_head()


def test_migrate_defaults_to_var_loyalty_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOYALTY_DATABASE_URL", raising=False)
    result = CliRunner().invoke(main, ["migrate"])
    assert result.exit_code == 0, result.output
    assert _version(tmp_path / "var" / "loyalty.db") == current_head()


def test_bad_configuration_is_a_clean_error() -> None:
    result = CliRunner().invoke(main, ["migrate"], env={"LOYALTY_API_KEYS": "nonsense"})
    assert result.exit_code == 1
    assert "bad configuration" in result.output


@pytest.mark.parametrize("value", ["2025-01-31T00:00:00", "yesterday"])
def test_expire_rejects_timestamps_without_offset(value: str) -> None:
    result = CliRunner().invoke(main, ["ledger", "expire", "--at", value])
    assert result.exit_code == 2
    assert "--at" in result.output


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "migrate", "seed-demo", "ledger"):
        assert command in result.output
    ledger = CliRunner().invoke(main, ["ledger", "--help"])
    assert "verify" in ledger.output
    assert "expire" in ledger.output


def test_seed_verify_and_expire(db_url: str) -> None:
    """The service commands end to end on a migrated database (both back ends)."""
    env = {"LOYALTY_DATABASE_URL": db_url}
    runner = CliRunner()

    # Six weeks of history: a month's expiry sweep and tier review happen inside it.
    seeded = runner.invoke(main, ["seed-demo", "--history-days", "45"], env=env)
    assert seeded.exit_code == 0, seeded.output
    again = runner.invoke(main, ["seed-demo", "--history-days", "45"], env=env)
    assert again.exit_code == 0, again.output
    assert seeded.output.splitlines()[-4:] == again.output.splitlines()[-4:]

    verified = runner.invoke(main, ["ledger", "verify"], env=env)
    assert verified.exit_code == 0, verified.output
    assert "ledger verified: no differences" in verified.output

    expired = runner.invoke(main, ["ledger", "expire", "--at", "2999-01-01T00:00:00Z"], env=env)
    assert expired.exit_code == 0, expired.output
    assert runner.invoke(main, ["ledger", "verify"], env=env).exit_code == 0
