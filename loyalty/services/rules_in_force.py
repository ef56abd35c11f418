"""Which published rule-set version prices a moment: the latest ``effective_from`` not after it.

Published versions never change, so their compiled form is cached per process, keyed by the
version's row id and its document (ids alone could repeat across databases in one process).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.tables import programs, rule_sets
from loyalty.domain.errors import DomainError, ErrorCode

from .rule_documents import CompiledRules, compiled_version


@dataclass(frozen=True, slots=True)
class RulesInForce:
    rule_set_id: int
    version: int
    rules: CompiledRules


async def rules_in_force(conn: AsyncConnection, program_id: int, at: datetime) -> RulesInForce:
    found = await find_rules_in_force(conn, program_id, at)
    if found is None:
        raise DomainError(
            ErrorCode.NO_RULES_IN_FORCE,
            "no published rule set is in force at that time",
            program_id=program_id,
            at=at.isoformat(),
        )
    return found


async def find_rules_in_force(
    conn: AsyncConnection, program_id: int, at: datetime
) -> RulesInForce | None:
    row = (
        await conn.execute(
            select(
                rule_sets.c.id,
                rule_sets.c.version,
                rule_sets.c.document,
                programs.c.timezone,
                programs.c.rounding,
            )
            .join(programs, programs.c.id == rule_sets.c.program_id)
            .where(
                rule_sets.c.program_id == program_id,
                rule_sets.c.status == "published",
                rule_sets.c.effective_from <= at,
            )
            .order_by(rule_sets.c.effective_from.desc(), rule_sets.c.version.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    return RulesInForce(row.id, row.version, compiled_rule_set(row))


def compiled_rule_set(row: Any) -> CompiledRules:
    """``row`` has the version's id and document and its program's timezone and rounding."""
    return compiled_version(row.id, msgspec.json.encode(row.document), row.timezone, row.rounding)


async def rules_by_id(conn: AsyncConnection, rule_set_id: int) -> CompiledRules:
    """The rules of one version (an order keeps the id of the version that priced it)."""
    row = (
        await conn.execute(
            select(rule_sets.c.id, rule_sets.c.document, programs.c.timezone, programs.c.rounding)
            .join(programs, programs.c.id == rule_sets.c.program_id)
            .where(rule_sets.c.id == rule_set_id)
        )
    ).one()
    return compiled_rule_set(row)
