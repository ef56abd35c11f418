"""Rotating-code uses against a real database: one sale per member and step (more rewards on
that sale may use the code), and the sweep forgets uses no code can match any more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import create_engine, in_transaction
from loyalty.db.tables import rotating_code_uses
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.member_cards import forget_used_codes, use_rotating_step
from tests.support.scenario import new_scenario

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


async def test_a_step_redeems_once_and_is_forgotten_when_no_code_can_match(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        s = await new_scenario(engine, lambda: T0, members=2)
        first, second = s.member_ids

        async def use(member_id: int, step: int, at: datetime, sale: str | None = "pos:A") -> None:
            async def work(conn: AsyncConnection) -> None:
                await use_rotating_step(conn, member_id, step, at, sale)

            await in_transaction(engine, work)

        await use(first, 100, T0)
        await use(second, 100, T0)  # another member's step is theirs
        await use(first, 101, T0 + timedelta(seconds=30))
        await use(first, 100, T0 + timedelta(seconds=2))  # a second reward on the same sale
        for sale in ("pos:B", None):
            with pytest.raises(DomainError) as replay:
                await use(first, 100, T0 + timedelta(seconds=5), sale)
            assert replay.value.code is ErrorCode.ROTATING_CODE_REPLAYED

        # Two minutes later no code of step 100 is accepted: its uses can go.
        assert await forget_used_codes(engine, T0 + timedelta(minutes=2, seconds=1)) == 2
        async with engine.connect() as conn:
            left = await conn.scalar(select(func.count()).select_from(rotating_code_uses))
        assert left == 1
    finally:
        await engine.dispose()
