"""The Alembic revisions build exactly the schema of loyalty.db.tables, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Index, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from loyalty.db.migrate import (
    MIGRATIONS_DIR,
    current_head,
    downgrade,
    ensure_sqlite_directory,
    upgrade,
    upgrade_async,
)
from loyalty.db.tables import metadata
from tests.support.services import run_in_thread, sqlite_url_for

_TABLES = {table.name for table in metadata.sorted_tables}


def _inspect(url: str, work: Any) -> Any:
    """Run ``work(sync_connection)`` against ``url`` (in a worker thread, fresh loop)."""

    async def main() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return run_in_thread(asyncio.run, main())


def _diffs(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


def _version(conn: Connection) -> str | None:
    value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    return None if value is None else str(value)


def _table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _normalize(sql: object) -> str:
    return re.sub(r"\s+", " ", str(sql)).strip().strip("()").lower()


def test_head_matches_the_tables(db_url: str) -> None:
    assert _inspect(db_url, _diffs) == []
    assert _inspect(db_url, _version) == current_head()


def test_check_constraints_and_partial_indexes_exist(db_url: str) -> None:
    """compare_metadata ignores CHECK constraints and index predicates: check them here."""
    dialect = "sqlite" if db_url.startswith("sqlite") else "postgresql"

    def reflect(conn: Connection) -> dict[str, Any]:
        inspector = inspect(conn)
        return {
            table: (
                {ck["name"] for ck in inspector.get_check_constraints(table)},
                {ix["name"]: ix for ix in inspector.get_indexes(table)},
            )
            for table in _TABLES
        }

    reflected = _inspect(db_url, reflect)
    for table in metadata.sorted_tables:
        checks, indexes = reflected[table.name]
        expected_checks = {
            str(c.name) for c in table.constraints if c.__class__.__name__ == "CheckConstraint"
        }
        assert checks == expected_checks, table.name
        for index in table.indexes:
            assert isinstance(index, Index)
            found = indexes.get(str(index.name))
            assert found is not None, f"index {index.name} missing"
            assert bool(found["unique"]) == bool(index.unique), index.name
            where = index.dialect_options[dialect]["where"]
            found_where = found.get("dialect_options", {}).get(f"{dialect}_where")
            assert (found_where is None) == (where is None), index.name
            if dialect == "sqlite" and where is not None:
                assert _normalize(found_where) == _normalize(where), index.name


def test_downgrade_to_base_and_upgrade_again(db_url: str) -> None:
    run_in_thread(downgrade, db_url, "base")
    assert _inspect(db_url, _table_names) & _TABLES == set()
    run_in_thread(upgrade, db_url)
    assert _inspect(db_url, _diffs) == []
    assert _inspect(db_url, _version) == current_head()


def test_upgrade_twice_changes_nothing(sqlite_url: str) -> None:
    run_in_thread(upgrade, sqlite_url)
    assert _inspect(sqlite_url, _version) == current_head()


async def test_upgrade_async_runs_inside_an_event_loop(tmp_path: Path) -> None:
    url = sqlite_url_for(tmp_path / "nested" / "dir" / "loyalty.db")
    ensure_sqlite_directory(url)
    await upgrade_async(url)
    assert await asyncio.to_thread(_inspect, url, _version) == current_head()


def test_one_linear_history_and_shipped_in_the_package() -> None:
    revisions = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))
    assert revisions, "no revisions found"
    assert revisions[-1].startswith(current_head())
    assert MIGRATIONS_DIR.parent.name == "db"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()


@pytest.mark.parametrize(
    ("url", "directory"),
    [
        ("sqlite+aiosqlite:///{tmp}/a/b/loyalty.db", "a/b"),
        ("sqlite+aiosqlite:///:memory:", None),
        ("postgresql+asyncpg://postgres@127.0.0.1/x", None),
    ],
)
def test_ensure_sqlite_directory(tmp_path: Path, url: str, directory: str | None) -> None:
    ensure_sqlite_directory(url.format(tmp=tmp_path))
    if directory is not None:
        assert (tmp_path / directory).is_dir()
    else:
        assert list(tmp_path.iterdir()) == []


async def test_upgrade_refuses_to_run_inside_an_event_loop(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="upgrade_async"):
        upgrade(sqlite_url_for(tmp_path / "loyalty.db"))
    assert not (tmp_path / "loyalty.db").exists()
