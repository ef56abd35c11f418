"""Analytics report benchmark: how long the back office's analytics take on a large program, on
SQLite and on PostgreSQL. Not a test: it prints figures (docs/ANALYTICS.md).

    .venv/bin/python bench/analytics_report.py                  # both back ends, full size
    .venv/bin/python bench/analytics_report.py --small          # 10,000 members, quick
    .venv/bin/python bench/analytics_report.py --backend sqlite --members 50000 --runs 5

The dataset: ``--members`` members (default 100,000) who joined at random over the two years
before the report's "today" (1 November 2026). Each buys at a steady rate of their own
(exponentially distributed) from joining until they lapse (an exponentially distributed
lifetime, 500 days on average) or today, scaled to ``--orders-per-member`` orders on average
(default 10: about 1,000,000 orders), in time order as a till writes them. Every order has its
earn journal (two entries); about one order in twenty is followed by a redemption of 100 points,
one in a hundred has a partial return, one member in 500 is erased. The rows are written
directly (sqlite3 executemany, PostgreSQL COPY), not through the services: the ledger is not
consistent to the point (no lots, no tier states), but every row satisfies the schema's
constraints, and the program, its rules and its system accounts are made by
``Programs.create_program`` in a database migrated by the project's migrations.

Then, in a separate process (so that its peak RSS is the report's, not the data builder's), each
report is timed ``--runs`` times (median and max): the dashboard default (the last 30 days,
daily, with the at-risk list: ``Analytics.dashboard``), ``Analytics.report`` over one year
weekly and over two years monthly, and the at-risk list alone (``Analytics.at_risk``).

PostgreSQL: a throw-away database ``loyalty_bench_analytics_<hex>`` is created on the server of
``--postgres-url`` (default: LOYALTY_TEST_POSTGRES_URL, else the local one), migrated and dropped
at the end. SQLite: a file in a temporary folder, removed at the end. ``--keep`` keeps both (and
prints their URLs); ``--measure URL`` then times the reports again on a kept database, without
building it (to compare a change on the same data):

    .venv/bin/python bench/analytics_report.py --measure sqlite+aiosqlite:////tmp/.../bench.db
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.engine import make_url

from loyalty.db.engine import create_engine
from loyalty.db.migrate import upgrade_async
from loyalty.db.tables import accounts, merchants, programs, rule_sets
from loyalty.domain.analytics import BucketSize
from loyalty.services.analytics import Analytics, AnalyticsQuery
from loyalty.services.context import Caller
from loyalty.services.ledger import Ledger
from loyalty.services.programs import Programs

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TODAY = date(2026, 11, 1)
HISTORY = timedelta(days=730)
CHUNK = 100_000
LIFETIME = 500 * 86_400  # seconds: how long a member keeps buying, on average
MAX_ORDERS = 250
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime in SQLite

BASKET = json.dumps(
    {
        "currency": "EUR",
        "lines": [
            {"line_id": str(i), "sku": f"SKU-{i}", "quantity": 1, "unit_price": 450}
            for i in range(3)
        ],
    }
)
QUOTE = json.dumps({"total": 13, "lines": [], "version": 1, "tier": None})

COLUMNS = {
    "members": ["id", "merchant_id", "display_name", "email", "created_at", "deleted_at"],
    "accounts": ["id", "program_id", "member_id", "kind", "posted", "created_at"],
    "journals": [
        "id",
        "program_id",
        "kind",
        "account_id",
        "points",
        "delta",
        "effective_at",
        "created_at",
        "reference",
    ],
    "entries": ["id", "journal_id", "account_id", "amount"],
    "orders": [
        "id",
        "program_id",
        "account_id",
        "reference",
        "occurred_at",
        "rule_set_id",
        "basket",
        "context",
        "quote",
        "points",
        "qualifying_spend",
        "journal_id",
        "created_at",
    ],
    "order_returns": [
        "id",
        "order_id",
        "quantities",
        "points",
        "qualifying_spend",
        "journal_id",
        "reference",
        "created_at",
    ],
}
TIME_COLUMNS = {"created_at", "deleted_at", "effective_at", "occurred_at"}

Rows = dict[str, list[tuple[Any, ...]]]
Writer = Callable[[Rows], Awaitable[None]]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- The dataset -----------------------------------------------------------------------------


class Ids:
    """The next free id of each table (the rows are written with explicit ids)."""

    def __init__(self, start: dict[str, int]) -> None:
        self.next = dict(start)

    def take(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value


def generate(
    member_count: int,
    mean_orders: float,
    merchant_id: int,
    program_id: int,
    rule_set_id: int,
    system: dict[str, int],
    ids: Ids,
    seed: int,
) -> Iterator[Rows]:
    """The rows, in chunks of about CHUNK orders (members and accounts first)."""
    rng = random.Random(seed)
    start = NOW - HISTORY
    span = int(HISTORY.total_seconds())
    joined: list[int] = []  # seconds after start, per member index
    member_ids: list[int] = []
    account_ids: list[int] = []
    batch: Rows = {"members": [], "accounts": []}
    for index in range(member_count):
        offset = rng.randrange(span)
        at = start + timedelta(seconds=offset)
        member_id, account_id = ids.take("members"), ids.take("accounts")
        joined.append(offset)
        member_ids.append(member_id)
        account_ids.append(account_id)
        erased = NOW - timedelta(days=3) if index % 500 == 499 else None
        batch["members"].append(
            (member_id, merchant_id, f"Member {index}", f"m{index}@example.org", at, erased)
        )
        # posted is set after the orders (a second pass), 0 is valid meanwhile.
        batch["accounts"].append((account_id, program_id, member_id, "member", 0, at))
    yield batch
    # Each member buys at a steady rate of their own (exponentially distributed) from joining
    # until they lapse (after an exponentially distributed lifetime, mean LIFETIME) or today;
    # the rates are scaled so that members buy ``mean_orders`` times on average.
    ends = [min(span, joined[i] + int(rng.expovariate(1 / LIFETIME))) for i in range(member_count)]
    weights = [rng.expovariate(1) * (ends[i] - joined[i]) for i in range(member_count)]
    scale = mean_orders * member_count / (sum(weights) or 1)
    # Orders in time order, as a till writes them: (seconds after start) << 20 | member index.
    events: list[int] = []
    for index in range(member_count):
        count = min(MAX_ORDERS, int(weights[index] * scale + rng.random()))
        first, last = joined[index], max(joined[index] + 1, ends[index])
        events.extend((rng.randrange(first, last) << 20) | index for _ in range(count))
    events.sort()
    balance = [0] * member_count
    batch = {"journals": [], "entries": [], "orders": [], "order_returns": []}
    for event in events:
        index = event & 0xFFFFF
        at = start + timedelta(seconds=event >> 20)
        account_id = account_ids[index]
        spend = rng.randrange(300, 6000)
        points = spend // 100
        order_id, journal_id = ids.take("orders"), ids.take("journals")
        batch["journals"].append(
            (
                journal_id,
                program_id,
                "earn",
                account_id,
                points,
                points,
                at,
                at,
                f"order:{order_id}",
            )
        )
        batch["entries"].append((ids.take("entries"), journal_id, account_id, points))
        batch["entries"].append((ids.take("entries"), journal_id, system["issued"], -points))
        batch["orders"].append(
            (
                order_id,
                program_id,
                account_id,
                f"o{order_id}",
                at,
                rule_set_id,
                BASKET,
                "{}",
                QUOTE,
                points,
                spend,
                journal_id,
                at,
            )
        )
        balance[index] += points
        draw = rng.random()
        if draw < 0.05 and balance[index] > 100:
            later = at + timedelta(minutes=5)
            journal_id = ids.take("journals")
            batch["journals"].append(
                (journal_id, program_id, "redeem", account_id, 100, -100, later, later, None)
            )
            batch["entries"].append((ids.take("entries"), journal_id, account_id, -100))
            batch["entries"].append((ids.take("entries"), journal_id, system["redeemed"], 100))
            balance[index] -= 100
        elif draw > 0.99:
            later = at + timedelta(days=2)
            batch["order_returns"].append(
                (ids.take("order_returns"), order_id, '{"0": 1}', 0, 450, None, None, later)
            )
        if len(batch["orders"]) >= CHUNK:
            yield batch
            batch = {"journals": [], "entries": [], "orders": [], "order_returns": []}
    yield batch
    # Balances: a member account's posted is the sum of its entries.
    yield {"posted": [(balance[i], account_ids[i]) for i in range(member_count) if balance[i]]}


# --- Back ends -------------------------------------------------------------------------------


async def create_database(url: str) -> tuple[str, str, str]:
    """A fresh database on the server of ``url``: (its URL, the admin DSN, its name)."""
    server = make_url(url)
    name = f"loyalty_bench_analytics_{secrets.token_hex(4)}"
    dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return server.set(database=name).render_as_string(hide_password=False), dsn, name


async def drop_database(dsn: str, name: str) -> None:
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def setup(url: str) -> tuple[int, int, int, dict[str, int], dict[str, int]]:
    """Migrate; a merchant and a program through the services: (merchant, program, rule set,
    system account ids by kind, next free id per table)."""
    await upgrade_async(url)
    engine = create_engine(url, pool_size=2)
    try:
        async with engine.begin() as conn:
            merchant_id = int(
                await conn.scalar(
                    merchants.insert()
                    .values(name="bench", created_at=NOW - HISTORY * 2)
                    .returning(merchants.c.id)
                )
                or 0
            )
        programs = Programs(Ledger(engine, clock=lambda: NOW - HISTORY * 2).executor)
        created = await programs.create_program(
            Caller("bench", merchant_id), "program", code="bench", name="Bench", currency="EUR"
        )
        program_id = created.result.program_id
        async with engine.connect() as conn:
            rule_set_id = int(
                await conn.scalar(
                    select(rule_sets.c.id).where(rule_sets.c.program_id == program_id)
                )
                or 0
            )
            system = {
                row.kind: row.id
                for row in await conn.execute(
                    select(accounts.c.id, accounts.c.kind).where(
                        accounts.c.program_id == program_id, accounts.c.member_id.is_(None)
                    )
                )
            }
            start = {}
            for table in COLUMNS:
                highest = await conn.exec_driver_sql(f"SELECT max(id) FROM {table}")  # noqa: S608
                start[table] = int(highest.scalar() or 0) + 1
    finally:
        await engine.dispose()
    return merchant_id, program_id, rule_set_id, system, start


def sqlite_writer(path: Path) -> tuple[Writer, Callable[[], None]]:
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime(SQLITE_TIME)
        return value

    async def write(rows: Rows) -> None:
        for table, batch in rows.items():
            if table == "posted":
                db.executemany("UPDATE accounts SET posted = ? WHERE id = ?", batch)
                continue
            columns = COLUMNS[table]
            marks = ", ".join("?" * len(columns))
            times = [i for i, column in enumerate(columns) if column in TIME_COLUMNS]
            converted = []
            for row in batch:
                values = list(row)
                for i in times:
                    values[i] = plain(values[i])
                converted.append(values)
            db.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
                converted,
            )
        db.commit()

    def close() -> None:
        db.execute("ANALYZE")
        db.commit()
        db.close()

    return write, close


async def postgres_writer(dsn: str) -> tuple[Writer, Callable[[], Awaitable[None]]]:
    pg = await asyncpg.connect(dsn)

    async def write(rows: Rows) -> None:
        for table, batch in rows.items():
            if table == "posted":
                await pg.executemany("UPDATE accounts SET posted = $1 WHERE id = $2", batch)
            elif batch:
                await pg.copy_records_to_table(table, records=batch, columns=COLUMNS[table])

    async def close() -> None:
        for table in COLUMNS:
            await pg.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT max(id) FROM {table}))"
            )
        await pg.execute("VACUUM ANALYZE")
        await pg.close()

    return write, close


async def build(backend: str, url: str, args: argparse.Namespace) -> None:
    started = time.monotonic()
    merchant_id, program_id, rule_set_id, system, start = await setup(url)
    chunks = generate(
        args.members,
        args.orders_per_member,
        merchant_id,
        program_id,
        rule_set_id,
        system,
        Ids(start),
        args.seed,
    )
    counts: dict[str, int] = {}
    if backend == "sqlite":
        write, close = sqlite_writer(Path(make_url(url).database or ""))
        for rows in chunks:
            await write(rows)
            for table, batch in rows.items():
                counts[table] = counts.get(table, 0) + len(batch)
        close()
    else:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        pg_write, pg_close = await postgres_writer(dsn)
        for rows in chunks:
            await pg_write(rows)
            for table, batch in rows.items():
                counts[table] = counts.get(table, 0) + len(batch)
        await pg_close()
    print(
        f"{backend}: {counts['members']:,} members, {counts['orders']:,} orders, "
        f"{counts['journals']:,} journals, {counts['entries']:,} entries, "
        f"{counts['order_returns']:,} returns over {HISTORY.days} days up to {TODAY}; "
        f"built in {time.monotonic() - started:.0f} s",
        flush=True,
    )


# --- Timing ----------------------------------------------------------------------------------


async def measure(url: str, runs: int) -> None:
    """Time each report ``runs`` times; print a table (run in a process of its own)."""
    engine = create_engine(url, pool_size=2)
    analytics = Analytics(engine, clock=lambda: NOW)
    year = AnalyticsQuery(first=TODAY - timedelta(days=364), last=TODAY)
    two_years = AnalyticsQuery(
        first=TODAY - timedelta(days=729), last=TODAY, bucket=BucketSize.MONTH
    )
    try:
        async with engine.connect() as conn:
            merchant_id, program_id = (
                await conn.execute(
                    select(programs.c.merchant_id, programs.c.id).where(programs.c.code == "bench")
                )
            ).one()
        cases: Sequence[tuple[str, Callable[[], Awaitable[Any]]]] = [
            (
                "30 days daily + at-risk (dashboard)",
                lambda: analytics.dashboard(merchant_id, program_id, AnalyticsQuery()),
            ),
            ("1 year weekly (report)", lambda: analytics.report(merchant_id, program_id, year)),
            (
                "2 years monthly (report)",
                lambda: analytics.report(merchant_id, program_id, two_years),
            ),
            (
                "at-risk list alone",
                lambda: analytics.at_risk(merchant_id, program_id, AnalyticsQuery()),
            ),
        ]
        print(f"  {'report':<38} {'median':>8} {'max':>8}   figures", flush=True)
        for label, call in cases:
            seconds = []
            result: Any = None
            for _ in range(runs):
                started = time.perf_counter()
                result = await call()
                seconds.append(time.perf_counter() - started)
            print(
                f"  {label:<38} {statistics.median(seconds):7.2f}s {max(seconds):7.2f}s   "
                f"{describe(result)}",
                flush=True,
            )
    finally:
        await engine.dispose()
    print(f"  runs per report: {runs}; peak RSS of the timing process {peak_rss_mb():.0f} MB")


def describe(result: Any) -> str:
    if isinstance(result, tuple):
        figures, at_risk = result
        return f"{describe(figures)}; at-risk list {len(at_risk.members):,}"
    if hasattr(result, "purchases"):
        return (
            f"{result.purchases.orders:,} orders, {result.members.at_end:,} members, "
            f"{result.rfm.customers:,} RFM customers, {result.at_risk_members:,} at risk"
        )
    return f"{len(result.members):,} members at risk"


async def bench(backend: str, args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="loyalty-analytics-bench-"))
    target: tuple[str, str] | None = None
    url = ""
    try:
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        else:
            url, dsn, name = await create_database(args.postgres_url)
            target = (dsn, name)
        await build(backend, url, args)
        # The timing in a process of its own, so that its peak RSS is the report's.
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--measure", url, "--runs", str(args.runs)
        )
        if await child.wait() != 0:
            raise SystemExit(f"the timing process failed ({child.returncode})")
    finally:
        if args.keep:
            print(f"  kept: {url}", flush=True)
        else:
            if target is not None:
                await drop_database(*target)
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--orders-per-member", type=float, default=10.0)
    parser.add_argument("--small", action="store_true", help="10,000 members (a quick run)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each report")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("LOYALTY_TEST_POSTGRES_URL", DEFAULT_PG),
        help="server for the throw-away database (default: LOYALTY_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument(
        "--measure", metavar="URL", help="only time the reports on a kept bench database"
    )
    args = parser.parse_args()
    if args.measure:
        asyncio.run(measure(args.measure, args.runs))
        return
    if args.small:
        args.members = 10_000
    if args.members >= 1 << 20:
        parser.error("--members: at most 1,048,575")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(
        f"analytics report benchmark: {args.members:,} members, mean "
        f"{args.orders_per_member:g} orders each, report date {TODAY}, {args.runs} runs each",
        flush=True,
    )
    for backend in backends:
        asyncio.run(bench(backend, args))


if __name__ == "__main__":
    main()
