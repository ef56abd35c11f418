"""Which published rule-set version prices a moment: the latest ``effective_from`` not after it.

Published versions never change, so their compiled form is cached per database engine (ids are
only unique within one database) and per program rounding and time zone (a version without its
own rounding uses the program's). On the till's path a cached version costs one small query and
no document transfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.tables import programs, rule_sets
from loyalty.domain.errors import DomainError, ErrorCode

from .rule_documents import CompiledRules, compile_rules, document_from_builtins

_CacheKey = tuple[int, str, str]
_COMPILED: WeakKeyDictionary[Engine, dict[_CacheKey, CompiledRules]] = WeakKeyDictionary()


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
            select(rule_sets.c.id, rule_sets.c.version, programs.c.timezone, programs.c.rounding)
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
    rules = await _compiled(conn, (row.id, row.timezone, row.rounding))
    return RulesInForce(row.id, row.version, rules)


async def rules_by_id(conn: AsyncConnection, rule_set_id: int) -> CompiledRules:
    """The rules of one published version (an order keeps the id of the version that priced it)."""
    row = (
        await conn.execute(
            select(programs.c.timezone, programs.c.rounding)
            .join(rule_sets, rule_sets.c.program_id == programs.c.id)
            .where(rule_sets.c.id == rule_set_id)
        )
    ).one()
    return await _compiled(conn, (rule_set_id, row.timezone, row.rounding))


async def _compiled(conn: AsyncConnection, key: _CacheKey) -> CompiledRules:
    cache = _COMPILED.setdefault(conn.sync_engine, {})
    found = cache.get(key)
    if found is None:
        document = await conn.scalar(select(rule_sets.c.document).where(rule_sets.c.id == key[0]))
        found = compile_rules(document_from_builtins(document), key[1], key[2])
        cache[key] = found
    return found
