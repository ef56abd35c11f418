"""CSV import benchmark: a 100,000-row member file and a 1,000,000-row transaction file imported
into a fresh database, on SQLite and on PostgreSQL; then a file with bad lines (the report, and
nothing imported). Not a test: it prints figures (docs/IMPORT.md quotes them).

    .venv/bin/python bench/import_csv.py                      # both back ends
    .venv/bin/python bench/import_csv.py --backend sqlite --members 10000 --transactions 100000

Each back end runs in its own process, so that its peak RSS is its own. PostgreSQL: a throw-away
database is created on LOYALTY_TEST_POSTGRES_URL's server (default: the local one) and dropped.
The program has tiers (bronze, silver, gold over the calendar year) and points that expire 365
days after they are earned, so that the import also expires the lots that lapsed before it and
evaluates every member's tier. ``loyalty ledger verify`` runs at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.db.engine import create_engine
from loyalty.db.migrate import upgrade_async
from loyalty.db.tables import merchants, metadata, rule_sets
from loyalty.domain.csv_rows import ImportKind
from loyalty.services.context import Caller
from loyalty.services.demo import demo_rules
from loyalty.services.imports import ImportOutcome, Imports
from loyalty.services.ledger import Ledger
from loyalty.services.programs import Programs
from loyalty.services.verify import verify_ledger

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HISTORY = timedelta(days=730)


def write_members(path: Path, count: int, rng: random.Random) -> None:
    """Semicolons and German decimals, as German Excel writes them."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(
            "external_id;display_name;email;phone;locale;joined_at;marketing_consent;"
            "opening_points\r\n"
        )
        for i in range(1, count + 1):
            joined = NOW - HISTORY - timedelta(days=rng.randrange(0, 365))
            phone = f"0151 {20000000 + i}" if i % 3 == 0 else ""
            consent = ("ja", "nein", "")[i % 3]
            opening = str(rng.randrange(0, 500)) if i % 4 == 0 else ""
            out.write(
                f"M{i:07d};Mitglied {i};mitglied{i}@example.org;{phone};de;"
                f"{joined:%d.%m.%Y %H:%M};{consent};{opening}\r\n"
            )


def write_transactions(path: Path, count: int, members: int, rng: random.Random) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("reference,occurred_at,member,total,currency,points\n")
        start = NOW - HISTORY
        span = int(HISTORY.total_seconds())
        for i in range(1, count + 1):
            at = start + timedelta(seconds=rng.randrange(span))
            cents = rng.randrange(150, 15000)
            if i % 10 == 0:  # one sale in ten without a member
                out.write(f"T{i:08d},{at:%Y-%m-%dT%H:%M:%SZ},,{cents / 100:.2f},EUR,\n")
            else:
                member = rng.randrange(1, members + 1)
                out.write(
                    f"T{i:08d},{at:%Y-%m-%dT%H:%M:%SZ},M{member:07d},{cents / 100:.2f},EUR,"
                    f"{cents // 100}\n"
                )


def write_bad(path: Path, count: int) -> None:
    """A member file with three bad lines among good ones."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("external_id,display_name,email,opening_points\n")
        for i in range(1, count + 1):
            email = f"neu{i}@example.org"
            points = "10"
            if i == 10:
                email = "not-an-address"
            if i == 500:
                points = "zehn"
            name = "" if i == 900 else f"Neu {i}"
            out.write(f"N{i:06d},{name},{email},{points}\n")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def database(backend: str, folder: Path) -> tuple[str, tuple[str, str] | None]:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{folder / 'bench.db'}", None
    server = make_url(os.environ.get("LOYALTY_TEST_POSTGRES_URL", DEFAULT_PG))
    name = f"loyalty_import_bench_{secrets.token_hex(4)}"
    dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return server.set(database=name).render_as_string(hide_password=False), (dsn, name)


async def drop(target: tuple[str, str] | None) -> None:
    if target is None:
        return
    dsn, name = target
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def setup(engine: AsyncEngine) -> tuple[int, int]:
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
        Caller("bench", merchant_id),
        "program",
        code="bench",
        name="Bench",
        currency="EUR",
        expiry_kind="after_days",
        expiry_value=365,
    )
    program_id = created.result.program_id
    # Version 2 with tiers, in force since before the history began.
    document = msgspec.structs.replace(demo_rules(NOW), promotions=[])
    async with engine.begin() as conn:
        await conn.execute(
            rule_sets.insert().values(
                program_id=program_id,
                version=2,
                status="published",
                document=msgspec.to_builtins(document),
                effective_from=NOW - HISTORY * 2,
                created_at=NOW - HISTORY * 2,
                created_by="bench",
                published_at=NOW - HISTORY * 2,
                published_by="bench",
            )
        )
    return merchant_id, program_id


async def counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            table.name: int(await conn.scalar(select(func.count()).select_from(table)) or 0)
            for table in metadata.sorted_tables
        }


def show(label: str, outcome: ImportOutcome, rows: int) -> None:
    run = outcome.run
    total = sum(outcome.seconds.values())
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in outcome.seconds.items())
    print(
        f"  {label}: {run.status}, {run.rows_imported} imported, "
        f"{run.rows_already_present} already present, {run.rows_invalid} invalid; "
        f"{total:.1f} s ({phases}); {rows / total:,.0f} rows/s; "
        f"peak RSS so far {peak_rss_mb():.0f} MB",
        flush=True,
    )


async def bench(backend: str, member_count: int, transaction_count: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="loyalty-import-files-"))
    try:
        await run_bench(backend, member_count, transaction_count, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def run_bench(backend: str, member_count: int, transaction_count: int, folder: Path) -> None:
    rng = random.Random(6)
    member_file = folder / "members.csv"
    transaction_file = folder / "transactions.csv"
    bad_file = folder / "bad-members.csv"
    write_members(member_file, member_count, rng)
    write_transactions(transaction_file, transaction_count, member_count, rng)
    write_bad(bad_file, 1000)
    url, target = await database(backend, folder)
    print(
        f"{backend}: {member_count:,} members ({member_file.stat().st_size / 1e6:.1f} MB), "
        f"{transaction_count:,} transactions ({transaction_file.stat().st_size / 1e6:.1f} MB); "
        f"peak RSS before importing {peak_rss_mb():.0f} MB",
        flush=True,
    )
    try:
        await upgrade_async(url)
        engine = create_engine(url, pool_size=2)
        try:
            merchant_id, program_id = await setup(engine)
            imports = Imports(engine, clock=lambda: NOW)

            async def run(kind: ImportKind, path: Path) -> ImportOutcome:
                return await imports.import_file(
                    path,
                    kind=kind,
                    program_id=program_id,
                    filename=path.name,
                    merchant_id=merchant_id,
                )

            outcome = await run(ImportKind.MEMBERS, member_file)
            show("members", outcome, member_count)
            outcome = await run(ImportKind.TRANSACTIONS, transaction_file)
            show("transactions", outcome, transaction_count)
            print(f"  lots already expired at import: {outcome.lots_expired:,}")
            outcome = await run(ImportKind.TRANSACTIONS, transaction_file)
            show("transactions again (idempotent re-run)", outcome, transaction_count)
            started = time.monotonic()
            differences = await verify_ledger(engine)
            print(
                f"  ledger verify: {len(differences)} differences "
                f"({time.monotonic() - started:.1f} s)"
            )
            before = await counts(engine)
            outcome = await run(ImportKind.MEMBERS, bad_file)
            after = await counts(engine)
            changed = {
                name: after[name] - before[name]
                for name in after
                if after[name] != before[name] and name not in {"import_runs", "audit_log"}
            }
            print(
                f"  file with bad lines: {outcome.run.status}, {outcome.run.rows_invalid} invalid "
                f"of {outcome.run.rows_total}; rows added outside import_runs/audit_log: "
                f"{changed or 'none'}"
            )
            for problem in outcome.run.problems:
                print(f"    line {problem.line}: {problem.code}: {problem.message}")
        finally:
            await engine.dispose()
    finally:
        await drop(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--transactions", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.backend == "both":
        for backend in ("sqlite", "postgres"):
            subprocess.run(  # noqa: S603 (this very script, with our own arguments)
                [
                    sys.executable,
                    __file__,
                    "--backend",
                    backend,
                    "--members",
                    str(args.members),
                    "--transactions",
                    str(args.transactions),
                ],
                check=True,
            )
        return
    asyncio.run(bench(args.backend, args.members, args.transactions))


if __name__ == "__main__":
    main()
