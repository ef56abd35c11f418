"""The rewards service against real databases: the catalogue (audited), stock under concurrent
redemptions, lapsed holds, holds resolved through the ledger, voucher codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.db.engine import create_engine
from loyalty.db.tables import audit_log, holds, reward_redemptions, rewards, staff_users
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services import rewards as rewards_module
from loyalty.services.context import Staff
from loyalty.services.queries import Queries
from loyalty.services.rewards import RedemptionResult, Rewards
from loyalty.services.rule_documents import LocalizedText, RewardDefinition
from loyalty.services.verify import verify_ledger
from tests.support.scenario import Scenario, new_scenario

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
#: The programs of ``new_scenario`` hold points for 900 seconds by default.
HOLD_TIMEOUT = timedelta(seconds=900)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class World:
    s: Scenario
    rewards: Rewards
    staff: Staff
    clock: Clock
    engine: AsyncEngine

    @property
    def program_id(self) -> int:
        return self.s.program_id

    async def earn(self, member_id: int, points: int) -> None:
        await self.s.ledger.earn(
            self.s.caller,
            f"earn-{member_id}-{points}-{self.clock.now.isoformat()}",
            program_id=self.program_id,
            member_id=member_id,
            points=points,
        )

    async def available(self, member_id: int) -> tuple[int, int, int]:
        view = await Queries(self.engine).balance(self.s.caller, self.program_id, member_id)
        return view.posted, view.held, view.available

    async def redeem(self, key: str, member_id: int, code: str, mode: str = "hold") -> Any:
        return await self.rewards.redeem_reward(
            self.s.caller,
            key,
            program_id=self.program_id,
            member_id=member_id,
            reward_code=code,
            mode=mode,  # type: ignore[arg-type]
        )

    async def row(self, table: Any, row_id: int) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(table).where(table.c.id == row_id))).one()


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


async def new_world(engine: AsyncEngine, members: int = 2) -> World:
    clock = Clock()
    s = await new_scenario(engine, clock, members=members)
    async with engine.begin() as conn:
        staff_id = await conn.scalar(
            staff_users.insert()
            .values(
                merchant_id=s.caller.merchant_id,
                email=f"pm-{s.caller.merchant_id}@example.com",
                display_name="Pat Manager",
                role="program_manager",
                password_hash="not-a-hash",
                active=True,
                created_at=T0,
            )
            .returning(staff_users.c.id)
        )
    assert staff_id is not None
    staff = Staff(
        staff_id=int(staff_id),
        merchant_id=s.caller.merchant_id,
        role="program_manager",
        email=f"pm-{s.caller.merchant_id}@example.com",
        display_name="Pat Manager",
    )
    return World(s, Rewards(s.ledger), staff, clock, engine)


def definition(code: str = "coffee", **fields: Any) -> RewardDefinition:
    values: dict[str, Any] = {
        "code": code,
        "kind": "amount_off",
        "name": LocalizedText(de="Kaffee gratis", en="Free coffee"),
        "points_cost": 100,
        "amount_off": 250,
    }
    values.update(fields)
    return msgspec.convert(values, RewardDefinition, from_attributes=True)


def refused(error: pytest.ExceptionInfo[DomainError], code: ErrorCode) -> dict[str, Any]:
    assert error.value.code is code, error.value
    return error.value.extra


# -- the catalogue ------------------------------------------------------------------------------


async def test_catalogue_changes_are_audited_and_checked(engine: AsyncEngine) -> None:
    world = await new_world(engine)
    w, pid = world.rewards, world.program_id
    created = await w.create_reward(world.staff, pid, definition(stock=3))
    assert (created.code, created.active, created.units_redeemed, created.stock_left) == (
        "coffee",
        True,
        0,
        3,
    )
    with pytest.raises(DomainError) as taken:
        await w.create_reward(world.staff, pid, definition(points_cost=5))
    refused(taken, ErrorCode.REWARD_CODE_TAKEN)
    with pytest.raises(DomainError) as invalid:
        await w.create_reward(world.staff, pid, definition("free", points_cost=0))
    refused(invalid, ErrorCode.INVALID_REWARD)
    with pytest.raises(DomainError) as mismatch:
        await w.update_reward(world.staff, pid, "coffee", definition("tea"))
    refused(mismatch, ErrorCode.VALIDATION_FAILED)

    updated = await w.update_reward(world.staff, pid, "coffee", definition(points_cost=120))
    assert updated.definition.points_cost == 120
    assert updated.stock_left is None
    archived = await w.archive_reward(world.staff, pid, "coffee")
    assert archived.active is False
    assert archived.definition.active is False
    again = await w.archive_reward(world.staff, pid, "coffee")  # changes nothing
    assert again.active is False

    assert await w.list_rewards(world.s.caller, pid) == []
    listed = await w.list_rewards(world.s.caller, pid, include_inactive=True)
    assert [view.code for view in listed] == ["coffee"]
    assert (await w.get_reward(world.s.caller, pid, "coffee")).definition.points_cost == 120
    with pytest.raises(DomainError) as missing:
        await w.get_reward(world.s.caller, pid, "tea")
    refused(missing, ErrorCode.REWARD_NOT_FOUND)

    async with engine.connect() as conn:
        entries = (
            await conn.execute(
                select(audit_log.c.action, audit_log.c.entity_id, audit_log.c.staff_id)
                .where(audit_log.c.entity == "reward")
                .order_by(audit_log.c.id)
            )
        ).all()
    assert [tuple(entry) for entry in entries] == [
        ("reward.create", "coffee", world.staff.staff_id),
        ("reward.update", "coffee", world.staff.staff_id),
        ("reward.archive", "coffee", world.staff.staff_id),
    ]


async def test_another_merchant_sees_nothing(engine: AsyncEngine) -> None:
    world = await new_world(engine)
    other = await new_world(engine)
    await world.rewards.create_reward(world.staff, world.program_id, definition())
    with pytest.raises(DomainError) as foreign:
        await other.rewards.list_rewards(other.s.caller, world.program_id)
    refused(foreign, ErrorCode.PROGRAM_NOT_FOUND)
    with pytest.raises(DomainError) as written:
        await other.rewards.create_reward(other.staff, world.program_id, definition("tea"))
    refused(written, ErrorCode.PROGRAM_NOT_FOUND)


async def test_stock_cannot_drop_below_the_units_redeemed(engine: AsyncEngine) -> None:
    world = await new_world(engine)
    a, b = world.s.member_ids
    await world.rewards.create_reward(world.staff, world.program_id, definition(stock=5))
    for member in (a, b):
        await world.earn(member, 100)
        await world.redeem(f"r-{member}", member, "coffee")
    with pytest.raises(DomainError) as below:
        await world.rewards.update_reward(
            world.staff, world.program_id, "coffee", definition(stock=1)
        )
    assert refused(below, ErrorCode.INVALID_REWARD)["units_redeemed"] == 2
    # Once a hold lapses its unit is back, and the update may go down to what is left.
    world.clock.advance(seconds=HOLD_TIMEOUT.total_seconds())
    updated = await world.rewards.update_reward(
        world.staff, world.program_id, "coffee", definition(stock=0)
    )
    assert (updated.units_redeemed, updated.stock_left) == (0, 0)
    async with engine.connect() as conn:
        units = await conn.scalar(select(rewards.c.units_redeemed))
        statuses = (await conn.execute(select(reward_redemptions.c.status))).scalars().all()
    assert units == 0
    assert statuses == ["released", "released"]
    assert await verify_ledger(engine) == []


# -- concurrency --------------------------------------------------------------------------------


async def test_two_tills_race_for_the_last_unit(engine: AsyncEngine) -> None:
    """On PostgreSQL the two redemptions really overlap: the reward row lock decides."""
    world = await new_world(engine)
    a, b = world.s.member_ids
    await world.rewards.create_reward(world.staff, world.program_id, definition(stock=1))
    await world.earn(a, 300)
    await world.earn(b, 300)

    outcomes = await asyncio.gather(
        world.redeem("race-a", a, "coffee", "voucher"),
        world.redeem("race-b", b, "coffee", "voucher"),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1, outcomes
    assert len(lost) == 1
    assert isinstance(lost[0], DomainError)
    assert lost[0].code is ErrorCode.REWARD_OUT_OF_STOCK
    winner = won[0].result
    loser = b if winner.member_id == a else a
    assert winner.balance.available == 200
    assert await world.available(winner.member_id) == (200, 0, 200)
    assert await world.available(loser) == (300, 0, 300)
    view = await world.rewards.get_reward(world.s.caller, world.program_id, "coffee")
    assert (view.units_redeemed, view.stock_left) == (1, 0)
    assert await verify_ledger(engine) == []


async def test_many_tills_never_oversell(engine: AsyncEngine) -> None:
    world = await new_world(engine, members=6)
    await world.rewards.create_reward(world.staff, world.program_id, definition(stock=2))
    for member in world.s.member_ids:
        await world.earn(member, 100)
    outcomes = await asyncio.gather(
        *(world.redeem(f"many-{m}", m, "coffee") for m in world.s.member_ids),
        return_exceptions=True,
    )
    won = [o.result for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 2, outcomes
    assert all(isinstance(e, DomainError) for e in lost), lost
    assert {e.code for e in lost if isinstance(e, DomainError)} == {ErrorCode.REWARD_OUT_OF_STOCK}
    for result in won:
        assert (result.balance.posted, result.balance.held) == (100, 100)
    async with engine.connect() as conn:
        assert await conn.scalar(select(rewards.c.units_redeemed)) == 2
    assert await verify_ledger(engine) == []


# -- lapsed holds -------------------------------------------------------------------------------


async def test_a_lapsed_hold_releases_the_redemption(engine: AsyncEngine) -> None:
    world = await new_world(engine)
    a, b = world.s.member_ids
    await world.rewards.create_reward(world.staff, world.program_id, definition(stock=1))
    await world.earn(a, 100)
    await world.earn(b, 100)
    held: RedemptionResult = (await world.redeem("hold-a", a, "coffee")).result
    assert (held.status, held.balance.posted, held.balance.held) == ("pending", 100, 100)
    refusal = (await world.rewards.available_rewards(world.s.caller, world.program_id, b)).rewards
    assert refusal[0].refusal == "reward_out_of_stock"

    world.clock.advance(seconds=HOLD_TIMEOUT.total_seconds())
    # On read: released, the unit back in stock, although nothing was written yet.
    view = await world.rewards.get_redemption(world.s.caller, world.program_id, held.redemption_id)
    assert (view.status, view.resolved_at) == ("released", held.hold_expires_at)
    assert [
        v.status for v in await world.rewards.list_redemptions(world.s.caller, world.program_id, a)
    ] == ["released"]
    catalogue = await world.rewards.list_rewards(world.s.caller, world.program_id)
    assert (catalogue[0].units_redeemed, catalogue[0].stock_left) == (0, 1)
    offer = await world.rewards.available_rewards(world.s.caller, world.program_id, a)
    assert (offer.available_points, offer.rewards[0].redeemable) == (100, True)
    assert (await world.row(rewards, catalogue[0].reward_id)).units_redeemed == 1

    # Completing it is refused, and the refusal makes the release durable.
    with pytest.raises(DomainError) as late:
        await world.rewards.complete_redemption(
            world.s.caller,
            "complete-a",
            program_id=world.program_id,
            redemption_id=held.redemption_id,
        )
    assert refused(late, ErrorCode.REDEMPTION_NOT_PENDING)["redemption_status"] == "released"
    row = await world.row(reward_redemptions, held.redemption_id)
    assert (row.status, row.resolved_at, row.journal_id) == ("released", held.hold_expires_at, None)
    assert (await world.row(rewards, catalogue[0].reward_id)).units_redeemed == 0
    assert held.hold_id is not None
    assert (await world.row(holds, held.hold_id)).status == "expired"
    assert await world.available(a) == (100, 0, 100)
    # The same key answers the same refusal.
    with pytest.raises(DomainError) as replay:
        await world.rewards.complete_redemption(
            world.s.caller,
            "complete-a",
            program_id=world.program_id,
            redemption_id=held.redemption_id,
        )
    assert replay.value.replayed
    assert await verify_ledger(engine) == []


async def test_units_of_lapsed_holds_come_back_when_stock_runs_out(engine: AsyncEngine) -> None:
    world = await new_world(engine)
    a, b = world.s.member_ids
    created = await world.rewards.create_reward(world.staff, world.program_id, definition(stock=1))
    await world.earn(a, 100)
    await world.earn(b, 100)
    held = (await world.redeem("hold-a", a, "coffee")).result
    world.clock.advance(seconds=HOLD_TIMEOUT.total_seconds() + 1)
    taken = (await world.redeem("voucher-b", b, "coffee", "voucher")).result
    assert (taken.status, taken.balance.posted, taken.balance.held) == ("completed", 0, 0)
    assert (await world.row(reward_redemptions, held.redemption_id)).status == "released"
    assert (await world.row(rewards, created.reward_id)).units_redeemed == 1
    # A's hold stays pending in the ledger until A's next operation or the sweep (its points
    # are as good as free); A's next operation releases it.
    assert await world.available(a) == (100, 100, 0)
    await world.earn(a, 1)
    assert await world.available(a) == (101, 0, 101)
    assert await verify_ledger(engine) == []


async def test_a_hold_captured_through_the_ledger_completes_the_redemption(
    engine: AsyncEngine,
) -> None:
    world = await new_world(engine)
    a, _ = world.s.member_ids
    created = await world.rewards.create_reward(world.staff, world.program_id, definition(stock=2))
    await world.earn(a, 150)
    held = (await world.redeem("hold-a", a, "coffee")).result
    assert held.hold_id is not None
    captured = await world.s.ledger.capture(
        world.s.caller, "till-capture", program_id=world.program_id, hold_id=held.hold_id
    )
    view = await world.rewards.get_redemption(world.s.caller, world.program_id, held.redemption_id)
    assert (view.status, view.journal_id) == ("completed", captured.result.journal_id)
    with pytest.raises(DomainError) as done:
        await world.rewards.release_redemption(
            world.s.caller,
            "release-a",
            program_id=world.program_id,
            redemption_id=held.redemption_id,
        )
    assert refused(done, ErrorCode.REDEMPTION_NOT_PENDING)["redemption_status"] == "completed"
    row = await world.row(reward_redemptions, held.redemption_id)
    assert (row.status, row.journal_id) == ("completed", captured.result.journal_id)
    assert (await world.row(rewards, created.reward_id)).units_redeemed == 1
    assert await world.available(a) == (50, 0, 50)
    assert await verify_ledger(engine) == []


async def test_lapsed_redemptions_do_not_count_against_the_member_limit(
    engine: AsyncEngine,
) -> None:
    world = await new_world(engine)
    a, _ = world.s.member_ids
    await world.rewards.create_reward(world.staff, world.program_id, definition(per_member_limit=1))
    await world.earn(a, 300)
    await world.redeem("first", a, "coffee")
    with pytest.raises(DomainError) as limit:
        await world.redeem("second", a, "coffee")
    assert refused(limit, ErrorCode.REWARD_LIMIT_REACHED)["limit"] == 1
    world.clock.advance(seconds=HOLD_TIMEOUT.total_seconds())
    again = (await world.redeem("third", a, "coffee", "voucher")).result
    assert (again.balance.posted, again.balance.held) == (200, 0)
    statuses = [
        v.status for v in await world.rewards.list_redemptions(world.s.caller, world.program_id, a)
    ]
    assert statuses == ["completed", "released"]
    assert await verify_ledger(engine) == []


# -- vouchers -----------------------------------------------------------------------------------


@pytest.fixture
def colliding_codes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    codes = ["000000000042", "000000000042", "000000000042", "987654321098"]
    issued: list[str] = []

    def next_code() -> str:
        code = codes.pop(0)
        issued.append(code)
        return code

    monkeypatch.setattr(rewards_module, "new_voucher_code", next_code)
    return issued


async def test_a_colliding_voucher_code_is_drawn_again(
    engine: AsyncEngine, colliding_codes: list[str]
) -> None:
    world = await new_world(engine)
    a, b = world.s.member_ids
    await world.rewards.create_reward(world.staff, world.program_id, definition())
    await world.earn(a, 100)
    await world.earn(b, 100)
    first = (await world.redeem("v-a", a, "coffee", "voucher")).result
    second = (await world.redeem("v-b", b, "coffee", "voucher")).result
    assert first.voucher_code == "000000000042"
    assert second.voucher_code == "987654321098"
    assert colliding_codes == ["000000000042", "000000000042", "000000000042", "987654321098"]
    assert (second.balance.posted, second.balance.held) == (0, 0)
    assert await verify_ledger(engine) == []


def test_voucher_codes_are_twelve_random_digits() -> None:
    codes = {rewards_module.new_voucher_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(code) == 12 and code.isdigit() for code in codes)
