"""Balance and history reads at the service level, and the query plans behind them.

The figures call the very service methods the JSON API calls (``Queries.balance`` and
``Queries.history``, whose page comes from ``history_rows``) through an engine configured as
the app configures it, with one pooled connection that is already open: what is measured is
the read itself, not connecting. Each call's time is split in two: the whole call (pool
checkout, BEGIN, the statements, COMMIT, building the result) and the time spent
inside its SQL statements (SQLAlchemy's cursor events around each statement).

The plans are PostgreSQL's EXPLAIN (ANALYZE, BUFFERS) of exactly the statements one call sent,
with the same parameters, captured from those cursor events.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.load import LatencyHistogram
from loyalty.db.engine import create_engine
from loyalty.db.tables import accounts
from loyalty.services.context import Caller
from loyalty.services.queries import Queries

#: Calls made before timing starts: the connection, statement caches and the hot pages of
#: the indexes are warm, as in a running app.
WARMUP_CALLS = 50


@dataclass
class ReadTimes:
    """One read's timings over the sampled members."""

    name: str
    calls: LatencyHistogram
    statements: LatencyHistogram
    samples: int


@dataclass(frozen=True)
class QueryPlan:
    name: str
    statement: str
    plan: str


class _StatementClock:
    """Adds up the time spent inside SQL statements, from SQLAlchemy's cursor events, and
    keeps the statements of the current call when asked to."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.spent = 0.0
        self.capture: list[tuple[str, Any]] | None = None
        self._started = 0.0
        sync_engine = engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", self._before)
        event.listen(sync_engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if self.capture is not None:
            self.capture.append((statement, parameters))
        self._started = time.perf_counter()

    def _after(self, *_: Any) -> None:
        self.spent += time.perf_counter() - self._started


async def member_ids(database_url: str, program_id: int) -> list[int]:
    """Every member of the program that has an account in it."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.scalars(
                select(accounts.c.member_id).where(
                    accounts.c.program_id == program_id, accounts.c.member_id.is_not(None)
                )
            )
            return [int(member_id) for member_id in rows]
    finally:
        await engine.dispose()


async def measure_service_reads(
    database_url: str,
    *,
    merchant_id: int,
    program_id: int,
    members: Sequence[int],
    samples: int = 5000,
    explain_member: int | None = None,
    seed: int = 11,
) -> tuple[list[ReadTimes], list[QueryPlan]]:
    """Time ``Queries.balance`` and ``Queries.history`` (first page of 50, as the API's
    default) for ``samples`` members drawn uniformly from ``members``, then EXPLAIN the
    statements of one call of each for ``explain_member`` (default: the first sampled)."""
    rng = random.Random(seed)
    chosen = [members[rng.randrange(len(members))] for _ in range(samples)]
    engine = create_engine(database_url, pool_size=1)
    clock = _StatementClock(engine)
    queries = Queries(engine)
    caller = Caller("bench", merchant_id)

    async def balance(member_id: int) -> object:
        return await queries.balance(caller, program_id, member_id)

    async def history(member_id: int) -> object:
        return await queries.history(caller, program_id, member_id, limit=50)

    reads = (("balance", balance), ("history", history))
    try:
        for _, read in reads:
            for member_id in chosen[:WARMUP_CALLS]:
                await read(member_id)
        results = []
        for name, read in reads:
            calls, statements = LatencyHistogram(), LatencyHistogram()
            for member_id in rng.sample(chosen, len(chosen)):
                clock.spent = 0.0
                started = time.perf_counter()
                await read(member_id)
                calls.record(time.perf_counter() - started)
                statements.record(clock.spent)
            results.append(ReadTimes(name, calls, statements, len(chosen)))
        plans = []
        target = explain_member if explain_member is not None else chosen[0]
        for name, read in reads:
            clock.capture = []
            await read(target)
            captured, clock.capture = clock.capture, None
            selects = [c for c in captured if c[0].lstrip().upper().startswith("SELECT")]
            async with engine.connect() as conn:
                for number, (statement, parameters) in enumerate(selects, start=1):
                    explained = await conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                    )
                    plan = "\n".join(str(row[0]) for row in explained)
                    title = f"{name}, statement {number} of {len(selects)} (member {target})"
                    plans.append(QueryPlan(title, statement, plan))
        return results, plans
    finally:
        await engine.dispose()
