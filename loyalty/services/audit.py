"""The audit log: every change to program configuration, with who, when, before and after.

Recorded inside the transaction that makes the change, so a change and its audit row commit or
roll back together. Read back merchant by merchant, newest first, in keyset pages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import audit_log
from loyalty.domain.errors import DomainError, ErrorCode

from .context import Staff

#: The actor of changes no staff user made: the command line, the demo seed.
SYSTEM_ACTOR = "system"
DEFAULT_AUDIT_PAGE_SIZE = 50
MAX_AUDIT_PAGE_SIZE = 200


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
    """A change a staff user made (to their own merchant)."""
    await record_entry(
        conn,
        staff.merchant_id,
        staff,
        action=action,
        entity=entity,
        entity_id=entity_id,
        at=at,
        before=before,
        after=after,
        program_id=program_id,
    )


async def record_entry(
    conn: AsyncConnection,
    merchant_id: int,
    staff: Staff | None,
    *,
    action: str,
    entity: str,
    entity_id: object,
    at: datetime,
    before: Any = None,
    after: Any = None,
    program_id: int | None = None,
) -> None:
    """A change of the merchant's, made by ``staff`` or, when None, by the system (the command
    line, the demo seed). ``before`` and ``after`` may be Structs, dataclasses or plain values.
    """
    await conn.execute(
        audit_log.insert().values(
            merchant_id=merchant_id,
            program_id=program_id,
            staff_id=None if staff is None else staff.staff_id,
            actor=SYSTEM_ACTOR if staff is None else staff.label,
            action=action,
            entity=entity,
            entity_id=str(entity_id),
            before=None if before is None else msgspec.to_builtins(before),
            after=None if after is None else msgspec.to_builtins(after),
            at=at,
        )
    )


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One recorded change."""

    id: int
    at: datetime
    #: Who made it, as they were called then ("Jana Huber <jana@example.com>" or "system").
    actor: str
    #: The staff user who made it; None for changes made by the system.
    staff_id: int | None
    action: str
    entity: str
    entity_id: str
    program_id: int | None
    #: The entity as it was before and after the change (None where it did not exist).
    before: Any
    after: Any


class AuditPage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Audit entries, newest first."""

    entries: list[AuditEntry]
    #: Pass as ``before_id`` for the next (older) page; None on the last page.
    next_before_id: int | None


def check_time_range(since: datetime | None, until: datetime | None) -> None:
    """A time range of the audit log: aware times (a naive one means a different instant on
    every server), ``since`` before ``until``."""
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.utcoffset() is None:
            raise DomainError(
                ErrorCode.VALIDATION_FAILED,
                f"'{name}' needs a time zone, e.g. 2025-03-01T00:00:00Z",
                parameter=name,
            )
    if since is not None and until is not None and since >= until:
        raise DomainError(
            ErrorCode.VALIDATION_FAILED,
            f"the time range is empty: 'from' ({since.isoformat()}) must be before "
            f"'to' ({until.isoformat()})",
            parameter="from",
        )


async def audit_entries(
    engine: AsyncEngine,
    merchant_id: int,
    *,
    program_id: int | None = None,
    entity: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
    staff_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = DEFAULT_AUDIT_PAGE_SIZE,
) -> AuditPage:
    """The merchant's audit entries, newest first, ``limit`` at a time: keyset pages on the id
    (stable while new entries arrive, unlike offsets).

    Every filter given must match: the program, the kind of entity and which one
    (``entity_id`` as recorded, e.g. a terminal's code), the action, the staff user who acted,
    and the time (``since`` inclusive, ``until`` exclusive)."""
    check_time_range(since, until)
    limit = max(1, min(limit, MAX_AUDIT_PAGE_SIZE))
    query = select(*(audit_log.c[name] for name in AuditEntry.__struct_fields__)).where(
        audit_log.c.merchant_id == merchant_id
    )
    if program_id is not None:
        query = query.where(audit_log.c.program_id == program_id)
    if entity is not None:
        query = query.where(audit_log.c.entity == entity)
    if entity_id is not None:
        query = query.where(audit_log.c.entity_id == entity_id)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if staff_id is not None:
        query = query.where(audit_log.c.staff_id == staff_id)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    # One row more than asked tells whether an older page exists.
    query = query.order_by(audit_log.c.id.desc()).limit(limit + 1)

    async def read(conn: AsyncConnection) -> AuditPage:
        rows = (await conn.execute(query)).all()
        entries = [AuditEntry(**row._mapping) for row in rows[:limit]]
        more = len(rows) > limit
        return AuditPage(entries=entries, next_before_id=entries[-1].id if more else None)

    return await in_transaction(engine, read, read_only=True)
