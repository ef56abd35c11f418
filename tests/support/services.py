"""Test databases and servers: fresh migrated SQLite files, throw-away PostgreSQL databases,
a flushed Redis database; skip (or fail, with LOYALTY_REQUIRE_SERVICES=1) when a server is down.

Everything here is synchronous. Async work (asyncpg) runs through :func:`run_async`, which uses
``asyncio.run`` in a worker thread so that it never touches the event loop of a test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TypeVar

import asyncpg
import pytest
import redis
from sqlalchemy.engine import URL, make_url

from loyalty.db.migrate import upgrade
from loyalty.db.tables import metadata

T = TypeVar("T")

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
CONNECT_TIMEOUT_SECONDS = 5


def postgres_server_url() -> str:
    return os.environ.get("LOYALTY_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def redis_server_url() -> str:
    return os.environ.get("LOYALTY_TEST_REDIS_URL") or DEFAULT_REDIS_URL


def services_required() -> bool:
    return os.environ.get("LOYALTY_REQUIRE_SERVICES", "") == "1"


def unavailable(what: str, env_var: str, url: str, error: BaseException) -> NoReturn:
    """Skip the test, or fail it when LOYALTY_REQUIRE_SERVICES=1 (CI must not skip silently)."""
    safe = make_url(url).render_as_string(hide_password=True) if "://" in url else url
    reason = (
        f"{what} is not reachable at {safe} ({type(error).__name__}: {error}); "
        f"start it (.ci/run does) or point {env_var} at one"
    )
    if services_required():
        pytest.fail(f"{reason} [LOYALTY_REQUIRE_SERVICES=1]", pytrace=False)
    pytest.skip(reason)


def run_async(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` to completion in a fresh event loop in a worker thread."""

    async def main() -> T:
        return await work()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-support") as pool:
        return pool.submit(asyncio.run, main()).result()


# --- SQLite -------------------------------------------------------------------------------


def sqlite_url_for(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def migrate_sqlite_template(path: Path) -> Path:
    """Create a SQLite database at ``path`` and upgrade it to head (one file: rollback journal)."""
    run_in_thread(upgrade, sqlite_url_for(path))
    return path


def copy_sqlite(template: Path, destination: Path) -> str:
    shutil.copyfile(template, destination)
    return sqlite_url_for(destination)


def run_in_thread(function: Callable[..., T], *args: object) -> T:
    """Alembic's env.py calls ``asyncio.run``: keep it off the test's thread and event loop."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-support") as pool:
        return pool.submit(function, *args).result()


# --- PostgreSQL ---------------------------------------------------------------------------


def _asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_execute(url: URL, *statements: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def check_postgres(server_url: str) -> None:
    """Skip or fail unless the PostgreSQL server answers."""
    url = make_url(server_url)
    failure: BaseException | None = None
    try:
        run_async(lambda: _pg_execute(url, "SELECT 1"))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        failure = error
    if failure is not None:  # outside the except block: no "during handling" traceback
        unavailable("PostgreSQL", "LOYALTY_TEST_POSTGRES_URL", server_url, failure)


@contextmanager
def fresh_postgres_database(server_url: str, *, migrate: bool = True) -> Iterator[str]:
    """Create ``loyalty_test_<hex>`` on the server (migrated to head), yield its URL, drop it."""
    check_postgres(server_url)
    server = make_url(server_url)
    name = f"loyalty_test_{secrets.token_hex(6)}"
    run_async(lambda: _pg_execute(server, f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            run_in_thread(upgrade, url)
        yield url
    finally:
        run_async(lambda: _pg_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def truncate_all_tables(database_url: str) -> None:
    """Empty every table of loyalty.db.tables and restart their id sequences."""
    names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    statement = f"TRUNCATE TABLE {names} RESTART IDENTITY CASCADE"
    run_async(lambda: _pg_execute(make_url(database_url), statement))


# --- Redis --------------------------------------------------------------------------------


def _redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=CONNECT_TIMEOUT_SECONDS,
    )


def check_redis(url: str) -> None:
    """Skip or fail unless the Redis server answers PING."""
    client = _redis_client(url)
    failure: BaseException | None = None
    try:
        client.ping()
    except (OSError, redis.RedisError) as error:
        failure = error
    finally:
        client.close()
    if failure is not None:
        unavailable("Redis", "LOYALTY_TEST_REDIS_URL", url, failure)


def flush_redis(url: str) -> None:
    client = _redis_client(url)
    try:
        client.flushdb()
    finally:
        client.close()
