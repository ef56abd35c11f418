"""Ledger write-path benchmark: earn/redeem throughput and latency through the service layer.

Not a test: it prints figures. Issue 7 adds the full HTTP + pgbench suite; this one measures
the ledger itself (lock, lots, journal, entries, balance, idempotency key, commit).

    .venv/bin/python bench/ledger_writes.py --backend sqlite
    .venv/bin/python bench/ledger_writes.py --backend postgres --concurrency 16

PostgreSQL: a throw-away database is created on LOYALTY_TEST_POSTGRES_URL's server and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from loyalty.db.engine import create_engine
from loyalty.db.migrate import upgrade_async
from loyalty.db.tables import merchants
from loyalty.domain.errors import DomainError
from loyalty.services.context import Caller
from loyalty.services.ledger import Ledger
from loyalty.services.programs import Programs
from loyalty.services.verify import verify_ledger

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def run(backend: str, members: int, operations: int, concurrency: int) -> None:
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="loyalty-bench-"))
        url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        drop = None
    else:
        server = make_url(os.environ.get("LOYALTY_TEST_POSTGRES_URL", DEFAULT_PG))
        name = f"loyalty_bench_{secrets.token_hex(4)}"
        dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
        admin = await asyncpg.connect(dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = server.set(database=name).render_as_string(hide_password=False)
        drop = (dsn, name)
    try:
        await upgrade_async(url)
        engine = create_engine(url, pool_size=concurrency)
        async with engine.begin() as conn:
            merchant_id = await conn.scalar(
                merchants.insert()
                .values(name="bench", created_at=datetime.now(UTC))
                .returning(merchants.c.id)
            )
        caller = Caller("bench", int(merchant_id or 0))
        ledger = Ledger(engine)
        programs = Programs(ledger.executor)
        program = (
            await programs.create_program(
                caller,
                "p",
                code="bench",
                name="B",
                currency="EUR",
                expiry_kind="after_days",
                expiry_value=365,
            )
        ).result.program_id
        member_ids = [
            (
                await programs.enroll(caller, f"m{i}", program_id=program, display_name=f"M{i}")
            ).result.member_id
            for i in range(members)
        ]
        rng = random.Random(7)
        plan = [
            ("earn" if rng.random() < 0.7 else "redeem", rng.choice(member_ids), rng.randint(1, 50))
            for _ in range(operations)
        ]
        latencies: list[float] = []
        refused = 0
        queue: asyncio.Queue[tuple[int, tuple[str, int, int]]] = asyncio.Queue()
        for item in enumerate(plan):
            queue.put_nowait(item)

        async def worker() -> None:
            nonlocal refused
            while not queue.empty():
                index, (kind, member, points) = queue.get_nowait()
                started = time.perf_counter()
                try:
                    op = ledger.earn if kind == "earn" else ledger.redeem
                    await op(
                        caller, f"op-{index}", program_id=program, member_id=member, points=points
                    )
                except DomainError:
                    refused += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
        problems = await verify_ledger(engine)
        await engine.dispose()
        cuts = statistics.quantiles(latencies, n=100)
        print(
            f"backend={backend} members={members} operations={operations} "
            f"concurrency={concurrency} (70% earn / 30% redeem, one idempotency key each)"
        )
        print(f"  throughput  {operations / elapsed:8.0f} ops/s   ({elapsed:.2f} s)")
        print(f"  latency     p50 {cuts[49] * 1000:6.2f} ms   p99 {cuts[98] * 1000:6.2f} ms")
        print(
            f"  refused     {refused} (insufficient points)   verify: "
            f"{'clean' if not problems else f'{len(problems)} differences'}"
        )
    finally:
        if drop is not None:
            admin = await asyncpg.connect(drop[0])
            await admin.execute(f'DROP DATABASE IF EXISTS "{drop[1]}" WITH (FORCE)')
            await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--operations", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(run(args.backend, args.members, args.operations, args.concurrency))


if __name__ == "__main__":
    main()
