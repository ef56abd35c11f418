"""A pooled connection the server dropped costs no request: ``in_transaction`` runs the work
again on a fresh one (the engine pings nothing at checkout, see loyalty/db/engine.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import create_engine, in_transaction

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def _backend_pid(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(url: str, pid: int) -> None:
    """End a server process from outside, as a restart or an idle timeout would."""
    killer = create_engine(url)
    try:
        async with killer.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await killer.dispose()


@pytest.mark.parametrize("read_only", [True, False])
async def test_work_runs_again_on_a_fresh_connection(postgres_url: str, read_only: bool) -> None:
    engine = create_engine(postgres_url, pool_size=1)
    try:
        dropped = await in_transaction(engine, _backend_pid, read_only=True)
        await _terminate(postgres_url, dropped)
        runs: list[int] = []

        async def work(conn: AsyncConnection) -> int:
            runs.append(1)
            return await _backend_pid(conn)

        served_by = await in_transaction(engine, work, read_only=read_only)
        assert served_by != dropped
        assert len(runs) == 2  # the first attempt met the dead connection, the second did not
    finally:
        await engine.dispose()


async def test_a_write_that_met_a_dead_connection_is_written_once(postgres_clean_url: str) -> None:
    engine = create_engine(postgres_clean_url, pool_size=1)
    try:
        dropped = await in_transaction(engine, _backend_pid, read_only=True)
        await _terminate(postgres_clean_url, dropped)

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                text("INSERT INTO merchants (name, created_at) VALUES ('reconnect', now())")
            )

        await in_transaction(engine, write)
        async with engine.connect() as conn:
            count = await conn.scalar(
                text("SELECT count(*) FROM merchants WHERE name = 'reconnect'")
            )
        assert count == 1
    finally:
        await engine.dispose()


async def test_a_server_that_stays_away_is_reported_not_retried_forever(postgres_url: str) -> None:
    engine = create_engine(postgres_url.replace(":5432/", ":1/"), pool_size=1)
    try:
        with pytest.raises((DBAPIError, OSError)):
            await in_transaction(engine, _backend_pid, read_only=True)
    finally:
        await engine.dispose()
