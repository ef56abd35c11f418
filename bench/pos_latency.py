"""Till latency over HTTP: identify, preview and complete against a real app process.

Not a test: it prints figures. A throw-away PostgreSQL database (on LOYALTY_TEST_POSTGRES_URL's
server) gets a program with the starter rules, a terminal and ``--members`` members; the app
runs in one uvicorn process on loopback. Requests go out open-loop at ``--rate`` per second
for ``--seconds`` per operation; latency counts from when a request was due, not from when it
was sent, so a stalled server is not hidden (coordinated omission).

    .venv/bin/python bench/pos_latency.py --rate 100 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import socket
import statistics
import sys
import time
from datetime import UTC, datetime

import asyncpg
import httpx
from sqlalchemy import select
from sqlalchemy.engine import make_url

from loyalty.db.engine import create_engine
from loyalty.db.migrate import upgrade_async
from loyalty.db.tables import members, merchants
from loyalty.services.context import Caller, Staff
from loyalty.services.ledger import Ledger
from loyalty.services.programs import Programs
from loyalty.services.staff import StaffDirectory
from loyalty.services.terminals import Terminals

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BASKET = {
    "currency": "EUR",
    "lines": [
        {"line_id": str(i), "sku": f"SKU-{i}", "quantity": 1 + i % 3, "unit_price": 199 + 100 * i}
        for i in range(5)
    ],
}


async def seed(url: str, member_count: int) -> tuple[str, list[str]]:
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            merchant_id = int(
                await conn.scalar(
                    merchants.insert()
                    .values(name="bench", created_at=datetime.now(UTC))
                    .returning(merchants.c.id)
                )
                or 0
            )
        caller = Caller("bench", merchant_id)
        programs = Programs(Ledger(engine).executor)
        program = await programs.create_program(
            caller, "p", code="bench", name="Bench", currency="EUR"
        )
        program_id = program.result.program_id
        for index in range(member_count):
            await programs.enroll(caller, f"m{index}", program_id=program_id, display_name="M")
        owner = await StaffDirectory(engine).provision_staff(
            merchant_id,
            email="owner@bench.example",
            password=secrets.token_urlsafe(24),  # never used: the terminal key is
            role="owner",
            display_name="Owner",
        )
        staff = Staff(owner.staff_id, merchant_id, "owner", owner.email, owner.display_name)
        issued = await Terminals(engine).create_terminal(
            staff, program_id=program_id, code="till", location="bench", name="Till"
        )
        async with engine.connect() as conn:
            cards = list((await conn.scalars(select(members.c.card_number))).all())
        return issued.api_key, [str(card) for card in cards]
    finally:
        await engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until_up(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(f"{base}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the app did not start")


async def drive(
    client: httpx.AsyncClient, name: str, rate: float, seconds: float, request: object
) -> None:
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2

    async def one(index: int) -> None:
        nonlocal errors
        due = start + index / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        response = await request(client, index)  # type: ignore[operator]
        latencies.append(time.perf_counter() - due)
        if response.status_code >= 400:
            errors += 1

    await asyncio.gather(*(one(index) for index in range(total)))
    latencies.sort()
    ms = [value * 1000 for value in latencies]
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(
        f"{name:9s} {total:6d} requests at {rate:.0f}/s: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
        f"max {ms[-1]:6.2f} ms  errors {errors}"
    )


async def run(rate: float, seconds: float, member_count: int) -> None:
    server = make_url(os.environ.get("LOYALTY_TEST_POSTGRES_URL", DEFAULT_PG))
    name = f"loyalty_pos_bench_{secrets.token_hex(4)}"
    dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = server.set(database=name).render_as_string(hide_password=False)
    app = None
    try:
        api_key, cards = await seed(url, member_count)
        port = free_port()
        env = {
            **os.environ,
            "LOYALTY_DATABASE_URL": url,
            "LOYALTY_SWEEP_INTERVAL_SECONDS": "0",
            # One key drives the whole load: far above a real till's per-key limit.
            "LOYALTY_POS_RATE_LIMIT": "0",
        }
        app = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            "loyalty.app.factory:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        await wait_until_up(base)
        rng = random.Random(7)
        headers = {"Authorization": f"Bearer {api_key}"}
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=f"{base}/api/v1/pos", headers=headers, limits=limits, timeout=10
        ) as client:

            def card() -> dict[str, str]:
                return {"value": rng.choice(cards)}

            async def identify(c: httpx.AsyncClient, _: int) -> httpx.Response:
                return await c.post("/identify", json={"member": card()})

            async def preview(c: httpx.AsyncClient, _: int) -> httpx.Response:
                return await c.post("/preview", json={"member": card(), "order": BASKET})

            async def complete(c: httpx.AsyncClient, index: int) -> httpx.Response:
                body = {
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "member": card(),
                    "order": BASKET,
                }
                return await c.post(f"/transactions/B-{index}/complete", json=body)

            print(
                f"PostgreSQL, one uvicorn process, {member_count} members, 5-line basket, "
                f"open loop at {rate:.0f} requests/s for {seconds:.0f} s each; "
                f"latency from when each request was due"
            )
            for label, request in (
                ("warm-up", identify),
                ("identify", identify),
                ("preview", preview),
                ("complete", complete),
            ):
                await drive(client, label, rate, seconds, request)
    finally:
        if app is not None:
            app.terminate()
            await asyncio.wait_for(app.wait(), timeout=10)
        admin = await asyncpg.connect(dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--members", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(args.rate, args.seconds, args.members))


if __name__ == "__main__":
    main()
