"""Engines for both back ends, and the one way the services run a transaction.

SQLite (embedded default): WAL, foreign keys on, and every write transaction opened with
``BEGIN IMMEDIATE`` so that a writer takes the single write lock at its start instead of failing
with "database is locked" half-way. Read-only work can ask for a deferred BEGIN with the
``loyalty_read_only`` execution option. PostgreSQL: asyncpg with a pool; ``SELECT ... FOR UPDATE``
does the row locking that the SQLite write lock gives for free.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .balance_changes import announce, take

T = TypeVar("T")

READ_ONLY = {"loyalty_read_only": True}

#: PostgreSQL SQLSTATEs after which the whole transaction may simply run again.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_MAX_ATTEMPTS = 8


def is_sqlite_url(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    if is_sqlite_url(url):
        engine = create_async_engine(url, echo=echo)
        _configure_sqlite(engine)
        return engine
    # No pre-ping: it would cost a round trip at every checkout. A pooled connection the
    # server dropped fails on its transaction's first statement instead; SQLAlchemy then
    # recycles the whole pool and ``in_transaction`` runs the work again on a fresh connection.
    return create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size)


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite would emit a deferred one).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get("loyalty_read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


#: SQLite admits one writer at a time. Writers of this process queue on an asyncio lock (fair,
#: no sleeping) instead of on SQLite's busy handler, which polls with growing sleeps and turned
#: a few concurrent writers into second-long tail latencies.
_sqlite_writers: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


def _writer_lock(engine: AsyncEngine) -> asyncio.Lock | None:
    if engine.dialect.name != "sqlite":
        return None
    lock = _sqlite_writers.get(engine)
    if lock is None:
        lock = _sqlite_writers[engine] = asyncio.Lock()
    return lock


def is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


async def database_now(conn: AsyncConnection) -> datetime:
    """The database's clock, so that every app process agrees on what is due."""
    if is_postgres(conn):
        value = (await conn.execute(text("SELECT statement_timestamp()"))).scalar_one()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    raw = (await conn.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"))).scalar_one()
    return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, DBAPIError):
        orig = error.orig
        sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if sqlstate in _RETRYABLE_SQLSTATES:
            return True
        if isinstance(error, OperationalError) and "database is locked" in str(orig):
            return True
    return False


async def in_transaction(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    *,
    read_only: bool = False,
) -> T:
    """Run ``work`` in one transaction, running it again after a deadlock or serialization
    failure so that callers never see one (the work must be safe to repeat: it is, because a
    rolled-back attempt left no trace). Also again, once, when the connection turns out dead
    before the commit (the server restarted since it was pooled): that transaction never
    committed either. A connection lost during the commit is not retried: whether it
    committed is unknown, and the caller's retry with its idempotency key finds out."""
    reconnected = False
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        committing = False
        try:
            if read_only:
                async with engine.connect() as conn:
                    conn = await conn.execution_options(**READ_ONLY)
                    async with conn.begin():
                        return await work(conn)
            lock = _writer_lock(engine)
            if lock is None:
                async with engine.begin() as conn:
                    take(conn)  # nothing a failed attempt noted
                    result = await work(conn)
                    changes = take(conn)
                    committing = True
            else:
                async with lock, engine.begin() as conn:
                    take(conn)
                    result = await work(conn)
                    changes = take(conn)
                    committing = True
            announce(engine, changes)  # committed
            return result
        except DBAPIError as error:
            lost = error.connection_invalidated and not committing and not reconnected
            if attempt == _MAX_ATTEMPTS or not (lost or is_retryable(error)):
                raise
            reconnected = reconnected or lost
            await asyncio.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 - jitter only
    raise AssertionError("unreachable")
