"""The expiry sweep (DESIGN.md invariant 7) on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.db.engine import create_engine
from loyalty.db.tables import holds, journals
from loyalty.services.expiry import run_expiry_sweep
from loyalty.services.queries import Queries
from loyalty.services.verify import verify_ledger
from tests.support.scenario import Scenario, new_scenario

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


async def journal_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(journals)) or 0)


async def balance(s: Scenario, member: int) -> tuple[int, int]:
    view = await Queries(s.engine).balance(s.caller, s.program_id, member)
    return view.posted, view.held


async def test_sweep_takes_only_free_points_of_due_lots_and_is_idempotent(
    engine: AsyncEngine,
) -> None:
    clock = Clock()
    s = await new_scenario(engine, clock, expiry_value=30)
    anna, ben = s.member_ids
    await s.ledger.earn(s.caller, "e1", program_id=s.program_id, member_id=anna, points=100)
    clock.now = T0 + timedelta(days=25)  # the 7-day hold below runs until day 32
    await s.ledger.earn(s.caller, "e2", program_id=s.program_id, member_id=anna, points=50)
    await s.ledger.redeem(s.caller, "r1", program_id=s.program_id, member_id=anna, points=30)
    await s.ledger.hold(
        s.caller, "h1", program_id=s.program_id, member_id=anna, points=40, timeout_seconds=604_800
    )
    await s.ledger.earn(s.caller, "e3", program_id=s.program_id, member_id=ben, points=10)
    # Lot 1 (100, expires day 30): 30 redeemed, 40 held -> 30 free. Lot 2 (50) expires day 55.
    assert await balance(s, anna) == (120, 40)

    just_before = await run_expiry_sweep(engine, at=T0 + timedelta(days=30) - timedelta(seconds=1))
    assert (just_before.accounts, just_before.points_expired) == (0, 0)

    at = T0 + timedelta(days=30)
    first = await run_expiry_sweep(engine, at=at)
    assert (first.accounts, first.lots_expired, first.points_expired, first.holds_expired) == (
        1,
        1,
        30,
        0,
    )
    assert await balance(s, anna) == (90, 40)
    assert await balance(s, ben) == (10, 0)
    journals_after_first = await journal_count(engine)

    second = await run_expiry_sweep(engine, at=at)
    assert (second.accounts, second.points_expired, second.holds_expired) == (0, 0, 0)
    assert await journal_count(engine) == journals_after_first
    assert await balance(s, anna) == (90, 40)
    assert await verify_ledger(engine) == []


async def test_sweep_releases_stale_holds_then_expires_what_they_freed(engine: AsyncEngine) -> None:
    clock = Clock()
    s = await new_scenario(engine, clock, expiry_value=30, members=1)
    (anna,) = s.member_ids
    await s.ledger.earn(s.caller, "e1", program_id=s.program_id, member_id=anna, points=100)
    clock.now = T0 + timedelta(days=29)
    hold = await s.ledger.hold(
        s.caller,
        "h1",
        program_id=s.program_id,
        member_id=anna,
        points=60,
        timeout_seconds=3 * 86_400,
    )
    assert hold.result.hold is not None

    # Day 30: the lot is due, but 60 of it are held by a hold that runs until day 32.
    day30 = await run_expiry_sweep(engine, at=T0 + timedelta(days=30))
    assert (day30.points_expired, day30.holds_expired) == (40, 0)
    assert await balance(s, anna) == (60, 60)

    # Day 32: the hold times out; its points are released and, being due, expire at once.
    day32 = await run_expiry_sweep(engine, at=T0 + timedelta(days=32))
    assert (day32.holds_expired, day32.points_expired) == (1, 60)
    assert await balance(s, anna) == (0, 0)
    async with engine.connect() as conn:
        status = await conn.scalar(
            select(holds.c.status).where(holds.c.id == hold.result.hold.hold_id)
        )
    assert status == "expired"
    assert await verify_ledger(engine) == []


async def test_sweep_reports_progress_per_batch(engine: AsyncEngine) -> None:
    clock = Clock()
    s = await new_scenario(engine, clock, expiry_value=1, members=5)
    for index, member in enumerate(s.member_ids):
        await s.ledger.earn(
            s.caller, f"e{index}", program_id=s.program_id, member_id=member, points=5
        )
    seen: list[tuple[int, int]] = []
    result = await run_expiry_sweep(
        engine, at=T0 + timedelta(days=2), batch_size=2, progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(0, 5), (2, 5), (4, 5), (5, 5)]
    assert (result.accounts, result.points_expired) == (5, 25)


async def test_sweep_uses_the_database_clock_by_default(engine: AsyncEngine) -> None:
    clock = Clock()
    clock.now = datetime.now(UTC) - timedelta(days=3)
    s = await new_scenario(engine, clock, expiry_value=1, members=1)
    await s.ledger.earn(
        s.caller, "old", program_id=s.program_id, member_id=s.member_ids[0], points=9
    )
    result = await run_expiry_sweep(engine)
    assert abs(result.at - datetime.now(UTC)) < timedelta(minutes=1)
    assert result.points_expired == 9
