"""Expiry sweep benchmark: lots expired per second over 1,000,000 due lots on PostgreSQL.

Not a test: it prints the figure and its conditions (issue 7's target: at least 10,000 lots/s).

    .venv/bin/python bench/expiry_sweep.py                   # 1,000,000 due lots
    .venv/bin/python bench/expiry_sweep.py --lots 50000      # quick

A throw-away database ``loyalty_bench_expiry_<hex>`` is created on the server of
``--postgres-url`` (default: LOYALTY_TEST_POSTGRES_URL, else the local one), migrated by the
project's migrations, and dropped at the end. The merchant's program (points expire 365 days
after earning) is made by ``Programs.create_program``; the volume is written with set-based SQL
(foreign-key triggers off while seeding: each id a row refers to comes from the same statement)
as the ledger would have written it, journal by journal: ``--lots`` due earn lots spread over
one member per five lots, each with its earn journal and two entries, plus one lot per member
not yet due; one member in ten redeemed 5 points from the soonest-expiring lot (redeem journal,
entries, lot draw), one in a hundred holds 3 points under a pending hold, and one in a hundred
under a hold that timed out an hour ago (the sweep releases it, then expires what it freed).
Cached balances agree with the entries, so ``ledger verify`` is clean before the sweep.

Then the real sweep (``run_expiry_sweep``, the database clock, its default batch size) runs once
in this process and is timed from its first query to its last commit. Afterwards no lot may be
left with free points past its date, the sweep must have expired exactly the due free points,
and ``ledger verify`` must find nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import create_engine
from loyalty.db.migrate import upgrade_async
from loyalty.db.tables import merchants
from loyalty.services.context import Caller
from loyalty.services.expiry import DEFAULT_BATCH_ACCOUNTS, run_expiry_sweep
from loyalty.services.ledger import Ledger
from loyalty.services.ledger_writes import system_accounts
from loyalty.services.programs import Programs
from loyalty.services.verify import verify_ledger

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
LOTS_PER_MEMBER = 5
EXPIRY_DAYS = 365
#: Lots and members written per statement while seeding.
CHUNK = 50_000
REDEEMED = 5
HELD = 3

#: (stage, done, total), as bench/bulk_seed.py reports.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SweepFigure:
    lots: int
    seconds: float
    lots_per_second: float
    conditions: str

    def __str__(self) -> str:
        return (
            f"expiry sweep: {self.lots:,} lots expired in {self.seconds:.1f} s = "
            f"{self.lots_per_second:,.0f} lots/s\n  conditions: {self.conditions}"
        )


@dataclass(frozen=True)
class _Seeded:
    program_id: int
    members: int
    due_points: int


async def measure_expiry_sweep(
    server_url: str, *, lots: int = 1_000_000, progress: Progress | None = None
) -> SweepFigure:
    """Seed ``lots`` due lots in a database of its own on ``server_url``'s server, time one
    expiry sweep over them, check the ledger and drop the database."""
    if lots < 1:
        raise ValueError("lots must be positive")
    report: Progress = progress or (lambda stage, done, total: None)
    server = make_url(server_url)
    name = f"loyalty_bench_expiry_{secrets.token_hex(4)}"
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = server.set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False
    )
    try:
        report("creating the database", 0, 1)
        await upgrade_async(url)
        report("creating the database", 1, 1)
        engine = create_engine(url)
        try:
            return await _measure(engine, lots, report)
        finally:
            await engine.dispose()
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _measure(engine: AsyncEngine, lots: int, report: Progress) -> SweepFigure:
    now = datetime.now(UTC)
    seeded = await _seed(engine, lots, now, report)
    report("verifying the seed", 0, 1)
    seed_problems = await verify_ledger(engine)
    if seed_problems:
        raise AssertionError(f"the seed is inconsistent: {[str(p) for p in seed_problems[:3]]}")
    report("verifying the seed", 1, 1)
    report("vacuum analyze", 0, 1)
    # A ledger that grew over a year has statistics and all-visible pages; fresh bulk rows
    # have neither, and the sweep would be timed against an unrepresentative planner.
    await _analyze(engine, "VACUUM ANALYZE", "CHECKPOINT")
    report("vacuum analyze", 1, 1)
    async with engine.connect() as conn:
        version = await conn.scalar(text("SHOW server_version"))

    def swept(done: int, total: int) -> None:
        report("expiry sweep (accounts)", done, total)

    started = time.perf_counter()
    result = await run_expiry_sweep(engine, progress=swept)
    seconds = time.perf_counter() - started

    report("checking", 0, 1)
    async with engine.connect() as conn:
        left = await conn.scalar(
            text("SELECT COUNT(*) FROM lots WHERE remaining > held AND expires_at <= :at"),
            {"at": result.at},
        )
    problems = await verify_ledger(engine)
    report("checking", 1, 1)
    if left or problems:
        raise AssertionError(
            f"the sweep left {left} due lots with free points and verify found "
            f"{len(problems)} differences, e.g. {[str(p) for p in problems[:3]]}"
        )
    if result.lots_expired != lots or result.points_expired != seeded.due_points:
        raise AssertionError(
            f"expected {lots} lots and {seeded.due_points} points to expire, the sweep "
            f"reports {result}"
        )
    conditions = (
        f"PostgreSQL {version} on the same machine ({os.cpu_count()} CPUs), "
        f"{lots:,} due lots of {seeded.members:,} members (about {LOTS_PER_MEMBER} each; "
        f"1 in 10 partly redeemed, 1 in 100 partly under a pending hold, 1 in 100 with a "
        f"timed-out hold released by the sweep) beside {seeded.members:,} lots not yet due; "
        f"{result.holds_expired:,} holds released, {result.points_expired:,} points expired; "
        f"one sweep process, {DEFAULT_BATCH_ACCOUNTS} accounts per transaction, database clock; "
        f"ledger verify clean afterwards"
    )
    return SweepFigure(
        lots=result.lots_expired,
        seconds=seconds,
        lots_per_second=result.lots_expired / seconds,
        conditions=conditions,
    )


async def _seed(engine: AsyncEngine, lots: int, now: datetime, report: Progress) -> _Seeded:
    members = max(1, lots // LOTS_PER_MEMBER)
    async with engine.begin() as conn:
        merchant_id = await conn.scalar(
            merchants.insert().values(name="bench", created_at=now).returning(merchants.c.id)
        )
    assert merchant_id is not None
    caller = Caller("bench", int(merchant_id))
    ledger = Ledger(engine)
    program_id = (
        await Programs(ledger.executor).create_program(
            caller,
            "bench-program",
            code="bench",
            name="Bench",
            currency="EUR",
            expiry_kind="after_days",
            expiry_value=EXPIRY_DAYS,
        )
    ).result.program_id
    async with engine.connect() as conn:
        system = await system_accounts(conn, program_id)

    joined = now - timedelta(days=800)
    for start in range(0, members, CHUNK):
        count = min(CHUNK, members - start)
        async with _bulk(engine) as conn:
            await conn.execute(
                text(
                    """WITH m AS (
                         INSERT INTO members (merchant_id, display_name, created_at)
                         SELECT :merchant, 'Bench member ' || g, :joined
                         FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g
                         ORDER BY g RETURNING id)
                       INSERT INTO accounts (program_id, member_id, kind, created_at)
                       SELECT :program, id, 'member', :joined FROM m ORDER BY id"""
                ),
                {
                    "merchant": merchant_id,
                    "program": program_id,
                    "joined": joined,
                    "lo": start + 1,
                    "hi": start + count,
                },
            )
        report("members", start + count, members)
    async with engine.connect() as conn:
        first, last = (
            await conn.execute(
                text(
                    "SELECT MIN(id), MAX(id) FROM accounts "
                    "WHERE program_id = :program AND kind = 'member'"
                ),
                {"program": program_id},
            )
        ).one()
    assert last - first + 1 == members, "member accounts are expected to have consecutive ids"
    earn = _Earning(program_id, system["issued"], first, members, now)

    for start in range(0, lots, CHUNK):
        count = min(CHUNK, lots - start)
        async with _bulk(engine) as conn:
            await earn.lots(conn, lots, start, count, days_ago=400, spread=300)
        report("due lots", start + count, lots)
    for start in range(0, members, CHUNK):
        count = min(CHUNK, members - start)
        async with _bulk(engine) as conn:
            await earn.lots(conn, members, start, count, days_ago=1, spread=30)
        report("lots not yet due", start + count, members)

    await _analyze(engine, "ANALYZE")  # the statements below join over the new rows
    report("redemptions and holds", 0, 3)
    async with _bulk(engine) as conn:
        await _redeem(conn, program_id, system["redeemed"], now)
    report("redemptions and holds", 1, 3)
    async with _bulk(engine) as conn:
        await _hold(conn, program_id, 1, now - timedelta(hours=2), now + timedelta(days=7))
    report("redemptions and holds", 2, 3)
    async with _bulk(engine) as conn:
        await _hold(conn, program_id, 2, now - timedelta(hours=2), now - timedelta(hours=1))
    report("redemptions and holds", 3, 3)

    async with engine.connect() as conn:
        # Due free points once the timed-out holds are released.
        due_points = await conn.scalar(
            text(
                """SELECT SUM(l.remaining - l.held + COALESCE(stale.points, 0)) FROM lots l
                   LEFT JOIN (SELECT d.lot_id, SUM(d.points) AS points FROM lot_draws d
                              JOIN journals j ON j.id = d.journal_id AND j.kind = 'hold'
                              JOIN holds h ON h.id = j.hold_id
                              WHERE h.status = 'pending' AND h.expires_at <= :now
                              GROUP BY d.lot_id) stale ON stale.lot_id = l.id
                   WHERE l.expires_at <= :now"""
            ),
            {"now": now},
        )
    return _Seeded(program_id=program_id, members=members, due_points=int(due_points or 0))


@dataclass(frozen=True)
class _Earning:
    program_id: int
    issued_id: int
    first_account: int
    members: int
    now: datetime

    async def lots(
        self,
        conn: AsyncConnection,
        lots: int,
        start: int,
        count: int,
        *,
        days_ago: int,
        spread: int,
    ) -> None:
        """Earn lots ``start`` to ``start + count - 1`` of ``lots`` spread evenly (in id order)
        over the members, ``days_ago`` to ``days_ago + spread - 1`` days ago: an earn journal,
        its two entries and its lot each, balances updated."""
        await conn.execute(
            text(
                """WITH plan AS (
                     SELECT CAST(:first AS bigint) + g * :members / :lots AS account_id, g,
                            10 + (g * 7919) % 191 AS points,
                            CAST(:now AS timestamptz)
                              - make_interval(days => :days_ago + CAST(g % :spread AS int),
                                              secs => CAST(g % 86400 AS int)) AS earned_at
                     FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g),
                   j AS (
                     INSERT INTO journals (program_id, kind, account_id, points, delta,
                                           held_delta, effective_at, created_at, client_id)
                     SELECT :program, 'earn', account_id, points, points, 0, earned_at,
                            earned_at, 'bench'
                     FROM plan ORDER BY g
                     RETURNING id, account_id, points, created_at),
                   e AS (
                     INSERT INTO entries (journal_id, account_id, amount)
                     SELECT id, account_id, points FROM j
                     UNION ALL SELECT id, :issued, -points FROM j),
                   l AS (
                     INSERT INTO lots (account_id, journal_id, original, remaining, held,
                                       expires_at, created_at)
                     SELECT account_id, id, points, points, 0,
                            created_at + make_interval(hours => 24 * :expiry_days), created_at
                     FROM j)
                   UPDATE accounts a SET posted = a.posted + s.total, version = a.version + s.n
                   FROM (SELECT account_id, SUM(points) AS total, COUNT(*) AS n FROM j
                         GROUP BY account_id) s
                   WHERE a.id = s.account_id"""
            ),
            {
                "first": self.first_account,
                "members": self.members,
                "lots": lots,
                "now": self.now,
                "days_ago": days_ago,
                "spread": spread,
                "lo": start,
                "hi": start + count - 1,
                "program": self.program_id,
                "issued": self.issued_id,
                "expiry_days": EXPIRY_DAYS,
            },
        )


async def _redeem(conn: AsyncConnection, program_id: int, redeemed_id: int, now: datetime) -> None:
    """One member in ten redeemed a few points, drawn from the soonest-expiring lot."""
    await conn.execute(
        text(
            """WITH target AS (
                 SELECT DISTINCT ON (l.account_id) l.account_id, l.id AS lot_id,
                        CAST(:points AS bigint) AS points
                 FROM lots l JOIN accounts a ON a.id = l.account_id
                 WHERE a.program_id = :program AND a.kind = 'member' AND a.id % 10 = 0
                 ORDER BY l.account_id, l.expires_at, l.id),
               j AS (
                 INSERT INTO journals (program_id, kind, account_id, points, delta, held_delta,
                                       effective_at, created_at, client_id)
                 SELECT :program, 'redeem', account_id, points, -points, 0, :at, :at, 'bench'
                 FROM target ORDER BY account_id
                 RETURNING id, account_id),
               x AS (SELECT j.id, j.account_id, t.lot_id, t.points
                     FROM j JOIN target t USING (account_id)),
               e AS (
                 INSERT INTO entries (journal_id, account_id, amount)
                 SELECT id, account_id, -points FROM x
                 UNION ALL SELECT id, :redeemed, points FROM x),
               d AS (
                 INSERT INTO lot_draws (journal_id, lot_id, points)
                 SELECT id, lot_id, points FROM x),
               l AS (
                 UPDATE lots SET remaining = lots.remaining - x.points FROM x
                 WHERE lots.id = x.lot_id)
               UPDATE accounts a SET posted = a.posted - x.points, version = a.version + 1
               FROM x WHERE a.id = x.account_id"""
        ),
        {"program": program_id, "redeemed": redeemed_id, "points": REDEEMED, "at": now},
    )


async def _hold(
    conn: AsyncConnection, program_id: int, remainder: int, at: datetime, expires_at: datetime
) -> None:
    """One member in a hundred (account id = ``remainder`` mod 100) holds a few points of the
    soonest-expiring lot that has them free, until ``expires_at``."""
    await conn.execute(
        text(
            """WITH target AS (
                 SELECT DISTINCT ON (l.account_id) l.account_id, l.id AS lot_id,
                        CAST(:points AS bigint) AS points
                 FROM lots l JOIN accounts a ON a.id = l.account_id
                 WHERE a.program_id = :program AND a.kind = 'member' AND a.id % 100 = :remainder
                   AND l.remaining - l.held >= CAST(:points AS bigint)
                 ORDER BY l.account_id, l.expires_at, l.id),
               h AS (
                 INSERT INTO holds (program_id, account_id, points, captured, status, expires_at,
                                    created_at)
                 SELECT :program, account_id, points, 0, 'pending', :expires_at, :at
                 FROM target ORDER BY account_id
                 RETURNING id, account_id, points),
               j AS (
                 INSERT INTO journals (program_id, kind, account_id, points, delta, held_delta,
                                       hold_id, effective_at, created_at, client_id)
                 SELECT :program, 'hold', account_id, points, 0, points, id, :at, :at, 'bench'
                 FROM h ORDER BY account_id
                 RETURNING id, account_id),
               x AS (SELECT j.id, j.account_id, t.lot_id, t.points
                     FROM j JOIN target t USING (account_id)),
               d AS (
                 INSERT INTO lot_draws (journal_id, lot_id, points)
                 SELECT id, lot_id, points FROM x),
               l AS (
                 UPDATE lots SET held = lots.held + x.points FROM x WHERE lots.id = x.lot_id)
               UPDATE accounts a SET held = a.held + x.points, version = a.version + 1
               FROM x WHERE a.id = x.account_id"""
        ),
        {
            "program": program_id,
            "remainder": remainder,
            "points": HELD,
            "at": at,
            "expires_at": expires_at,
        },
    )


async def _analyze(engine: AsyncEngine, *commands: str) -> None:
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for command in commands:
            await conn.execute(text(command))


@asynccontextmanager
async def _bulk(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A seeding transaction without foreign-key triggers: every id a row refers to was
    returned by the same statement, and checking them row by row would make the seed take
    several times as long as the sweep it prepares (the sweep runs with every check on)."""
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        yield conn


@contextmanager
def _printed_progress() -> Iterator[Progress]:
    """Progress on stderr: on a terminal one line per stage, rewritten in place; in a log one
    line per finished stage, with the time since the stage before it finished."""
    live = sys.stderr.isatty()
    current = [""]
    began = [time.perf_counter()]

    def show(stage: str, done: int, total: int) -> None:
        if stage != current[0]:
            if live and current[0]:
                sys.stderr.write("\n")
            current[0] = stage
        if live:
            sys.stderr.write(f"\r  {stage}: {done:,} / {total:,}")
        elif done == total:
            finished = time.perf_counter()
            sys.stderr.write(f"  {stage}: {total:,} ({finished - began[0]:.1f} s)\n")
            began[0] = finished
        sys.stderr.flush()

    try:
        yield show
    finally:
        if live and current[0]:
            sys.stderr.write("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lots", type=int, default=1_000_000, help="due lots to expire")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("LOYALTY_TEST_POSTGRES_URL", DEFAULT_PG),
        help="a postgresql+asyncpg URL of the server (its database is not used)",
    )
    args = parser.parse_args()
    with _printed_progress() as progress:
        figure = asyncio.run(
            measure_expiry_sweep(args.postgres_url, lots=args.lots, progress=progress)
        )
    print(figure)


if __name__ == "__main__":
    main()
