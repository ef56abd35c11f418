"""The shared fixtures of tests/conftest.py do what they promise."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from loyalty.db.tables import merchants


def _sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite+aiosqlite:///"))


@pytest.mark.parametrize("attempt", [1, 2])
def test_sqlite_url_is_a_private_fresh_copy(sqlite_url: str, attempt: int) -> None:
    path = _sqlite_path(sqlite_url)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM merchants").fetchone() == (0,)
        conn.execute(
            "INSERT INTO merchants (name, created_at) VALUES (?, '2025-01-01 00:00:00')",
            (f"attempt {attempt}",),
        )
    conn.close()


@pytest.mark.parametrize("attempt", [1, 2])
async def test_db_url_starts_empty_with_ids_from_one(db_url: str, attempt: int) -> None:
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM merchants"))).scalar_one() == 0
            result = await conn.execute(
                merchants.insert()
                .values(name=f"attempt {attempt}", created_at=datetime.now(UTC))
                .returning(merchants.c.id)
            )
            assert result.scalar_one() == 1
    finally:
        await engine.dispose()


@pytest.mark.parametrize("attempt", [1, 2])
def test_redis_url_is_flushed(redis_url: str, attempt: int) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set(f"attempt:{attempt}", "1")
    finally:
        client.close()


def test_markers_come_from_fixtures(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("integration") is None


def test_postgres_fixture_is_marked(
    postgres_clean_url: str, request: pytest.FixtureRequest
) -> None:
    assert request.node.get_closest_marker("postgres") is not None
    assert request.node.get_closest_marker("integration") is not None
