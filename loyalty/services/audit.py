"""The audit log: every change to program configuration, with who, when, before and after.

Recorded inside the transaction that makes the change, so a change and its audit row commit or
roll back together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.tables import audit_log

from .context import Staff


def as_json(value: Any) -> Any:
    """A Struct, dataclass or plain value as JSON-compatible builtins (for the JSON columns)."""
    return msgspec.to_builtins(value)


async def record_change(
    conn: AsyncConnection,
    staff: Staff,
    *,
    action: str,
    entity: str,
    entity_id: object,
    at: datetime,
    before: Any = None,
    after: Any = None,
    program_id: int | None = None,
) -> None:
    await conn.execute(
        audit_log.insert().values(
            merchant_id=staff.merchant_id,
            program_id=program_id,
            staff_id=staff.staff_id,
            actor=f"{staff.display_name} <{staff.email}>",
            action=action,
            entity=entity,
            entity_id=str(entity_id),
            before=None if before is None else as_json(before),
            after=None if after is None else as_json(after),
            at=at,
        )
    )
