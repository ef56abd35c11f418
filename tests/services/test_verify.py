"""``loyalty ledger verify`` names each kind of corruption and is silent on a healthy ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.app.cli import main
from loyalty.db.engine import create_engine
from loyalty.db.tables import accounts
from loyalty.services.verify import verify_ledger
from tests.support.scenario import Scenario, new_scenario


def clock() -> datetime:
    return datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


async def busy_ledger(engine: AsyncEngine) -> Scenario:
    s = await new_scenario(engine, clock)
    a, b = s.member_ids
    p = s.program_id
    earned = await s.ledger.earn(s.caller, "e", program_id=p, member_id=a, points=100)
    await s.ledger.redeem(s.caller, "r", program_id=p, member_id=a, points=20)
    hold = await s.ledger.hold(s.caller, "h", program_id=p, member_id=a, points=30)
    assert hold.result.hold is not None
    await s.ledger.capture(s.caller, "c", program_id=p, hold_id=hold.result.hold.hold_id, points=10)
    await s.ledger.hold(s.caller, "h2", program_id=p, member_id=a, points=5)
    await s.ledger.transfer(
        s.caller, "t", program_id=p, from_member_id=a, to_member_id=b, points=15
    )
    await s.ledger.refund(
        s.caller, "f", program_id=p, journal_id=earned.result.journal_id, points=10
    )
    return s


async def test_healthy_ledger_has_no_discrepancies(engine: AsyncEngine) -> None:
    await busy_ledger(engine)
    assert await verify_ledger(engine) == []


@pytest.mark.parametrize(
    ("tamper", "check"),
    [
        pytest.param(
            "UPDATE accounts SET posted = posted + 1 WHERE kind = 'member' AND id = {a}",
            "cached posted balance equals the sum of entries",
            id="cached-balance",
        ),
        pytest.param(
            "UPDATE lots SET remaining = remaining - 1 WHERE account_id = {a} AND remaining > held",
            "lot remainders sum to the posted balance",
            id="lot-remainder",
        ),
        pytest.param(
            "UPDATE entries SET amount = amount + 1 WHERE id = (SELECT MIN(id) FROM entries)",
            "journal entries sum to zero",
            id="unbalanced-journal",
        ),
        pytest.param(
            "UPDATE holds SET status = 'released' WHERE status = 'pending'",
            "cached held equals pending holds",
            id="hold-state",
        ),
        pytest.param(
            "UPDATE lots SET held = 0 WHERE account_id = {a}",
            "cached held equals points held in lots",
            id="lot-held",
        ),
    ],
)
async def test_verify_names_the_broken_invariant(
    engine: AsyncEngine, tamper: str, check: str
) -> None:
    s = await busy_ledger(engine)
    async with engine.begin() as conn:
        account_id = await conn.scalar(
            text("SELECT id FROM accounts WHERE member_id = :m"), {"m": s.member_ids[0]}
        )
        await conn.execute(text(tamper.format(a=account_id)))
    found = await verify_ledger(engine)
    assert check in {d.check for d in found}, found


def test_cli_verify_exit_codes(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    async def prepare(corrupt: bool) -> None:
        engine = create_engine(sqlite_url)
        try:
            if not corrupt:
                await busy_ledger(engine)
            else:
                async with engine.begin() as conn:
                    await conn.execute(
                        update(accounts)
                        .where(accounts.c.kind == "member")
                        .values(posted=accounts.c.posted + 7)
                    )
        finally:
            await engine.dispose()

    monkeypatch.setenv("LOYALTY_DATABASE_URL", sqlite_url)
    asyncio.run(prepare(corrupt=False))
    healthy = CliRunner().invoke(main, ["ledger", "verify"])
    assert healthy.exit_code == 0, healthy.output
    assert "no differences" in healthy.output

    asyncio.run(prepare(corrupt=True))
    broken = CliRunner().invoke(main, ["ledger", "verify"])
    assert broken.exit_code == 1, broken.output
    assert "cached posted balance equals the sum of entries" in broken.output
    assert "expected" in broken.output
