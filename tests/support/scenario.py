"""A merchant, a program and enrolled members, made through the real services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.db.tables import merchants
from loyalty.services.context import Caller
from loyalty.services.ledger import Ledger
from loyalty.services.programs import Programs


@dataclass
class Scenario:
    engine: AsyncEngine
    ledger: Ledger
    caller: Caller
    program_id: int
    member_ids: list[int]


async def new_scenario(
    engine: AsyncEngine,
    clock: Callable[[], datetime],
    *,
    expiry_kind: str = "after_days",
    expiry_value: int = 30,
    members: int = 2,
    client_id: str = "test-client",
) -> Scenario:
    async with engine.begin() as conn:
        merchant_id = await conn.scalar(
            merchants.insert()
            .values(name="Test merchant", created_at=clock())
            .returning(merchants.c.id)
        )
    assert merchant_id is not None
    caller = Caller(client_id=client_id, merchant_id=int(merchant_id))
    ledger = Ledger(engine, clock=clock)
    programs = Programs(ledger.executor)
    program = await programs.create_program(
        caller,
        f"program-{merchant_id}",
        code=f"p{merchant_id}",
        name="Test",
        currency="EUR",
        expiry_kind=expiry_kind,
        expiry_value=expiry_value,
    )
    member_ids = []
    for index in range(members):
        enrolled = await programs.enroll(
            caller,
            f"enroll-{merchant_id}-{index}",
            program_id=program.result.program_id,
            display_name=f"Member {index}",
        )
        member_ids.append(enrolled.result.member_id)
    return Scenario(engine, ledger, caller, program.result.program_id, member_ids)
