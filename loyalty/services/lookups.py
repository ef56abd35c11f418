"""Look-ups shared by operations and reads: scoped existence checks, hold views, how much of
an operation was already undone. Everything here is scoped by the caller's merchant where a
caller is involved: another merchant's ids look exactly like missing ones."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.tables import accounts, holds, journals, members, programs
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.journals import JournalKind

from .context import Caller
from .results import HoldView


async def require_program(conn: AsyncConnection, caller: Caller, program_id: int) -> None:
    found = await conn.scalar(
        select(
            exists().where(
                programs.c.id == program_id, programs.c.merchant_id == caller.merchant_id
            )
        )
    )
    if not found:
        raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program", program_id=program_id)


async def require_member(conn: AsyncConnection, caller: Caller, member_id: int) -> None:
    found = await conn.scalar(
        select(
            exists().where(members.c.id == member_id, members.c.merchant_id == caller.merchant_id)
        )
    )
    if not found:
        raise DomainError(ErrorCode.MEMBER_NOT_FOUND, "no such member", member_id=member_id)


async def explain_missing_account(
    conn: AsyncConnection, caller: Caller, program_id: int, member_id: int
) -> None:
    """Raise the precise reason a member's account could not be found (the error path only)."""
    await require_program(conn, caller, program_id)
    await require_member(conn, caller, member_id)
    raise DomainError(
        ErrorCode.NOT_ENROLLED,
        "the member is not enrolled in this program",
        member_id=member_id,
        program_id=program_id,
    )


async def account_row(
    conn: AsyncConnection, caller: Caller, program_id: int, member_id: int
) -> Any:
    """The member's account in the program (``id``, ``created_at``, the program's
    ``currency``), unlocked: for reads."""
    row = (
        await conn.execute(
            select(accounts.c.id, accounts.c.created_at, programs.c.currency)
            .join(programs, programs.c.id == accounts.c.program_id)
            .where(
                accounts.c.program_id == program_id,
                accounts.c.member_id == member_id,
                programs.c.merchant_id == caller.merchant_id,
            )
        )
    ).first()
    if row is None:
        await explain_missing_account(conn, caller, program_id, member_id)
    return row


async def undone_so_far(conn: AsyncConnection, journal_id: int) -> tuple[int, bool]:
    """Points of the operation already refunded, and whether it was reversed."""
    refunded = await conn.scalar(
        select(func.coalesce(func.sum(journals.c.points), 0)).where(
            journals.c.reverses_id == journal_id, journals.c.kind == JournalKind.REFUND
        )
    )
    reversed_ = await conn.scalar(
        select(
            exists().where(
                journals.c.reverses_id == journal_id, journals.c.kind == JournalKind.REVERSAL
            )
        )
    )
    return int(refunded or 0), bool(reversed_)


async def hold_view(
    conn: AsyncConnection, caller: Caller, program_id: int, hold_id: int
) -> HoldView:
    row = (
        await conn.execute(
            select(holds, accounts.c.member_id)
            .join(accounts, accounts.c.id == holds.c.account_id)
            .join(programs, programs.c.id == holds.c.program_id)
            .where(
                holds.c.id == hold_id,
                holds.c.program_id == program_id,
                programs.c.merchant_id == caller.merchant_id,
            )
        )
    ).first()
    if row is None:
        raise DomainError(ErrorCode.HOLD_NOT_FOUND, "no such hold", hold_id=hold_id)
    return HoldView(
        hold_id=row.id,
        program_id=row.program_id,
        member_id=row.member_id,
        points=row.points,
        captured=row.captured,
        status=row.status,
        expires_at=row.expires_at,
        reference=row.reference,
    )


def member_accounts(member_id: int, merchant_id: int, *more: Any) -> Select[Any]:
    """The member's accounts in the merchant's programs, by program: balances, the program's
    code, name and currency, and ``more`` columns."""
    return (
        select(
            accounts.c.id,
            accounts.c.program_id,
            accounts.c.posted,
            accounts.c.held,
            accounts.c.created_at,
            programs.c.code,
            programs.c.name,
            programs.c.currency,
            *more,
        )
        .join(programs, programs.c.id == accounts.c.program_id)
        .where(accounts.c.member_id == member_id, programs.c.merchant_id == merchant_id)
        .order_by(accounts.c.program_id)
    )


def journals_with_members() -> Select[Any]:
    """Journals with ``main_member`` (the account's member) and ``counter_member``."""
    main, counter = accounts.alias("main"), accounts.alias("counter")
    return (
        select(
            journals,
            main.c.member_id.label("main_member"),
            counter.c.member_id.label("counter_member"),
        )
        .join(main, main.c.id == journals.c.account_id)
        .outerjoin(counter, counter.c.id == journals.c.counter_account_id)
    )


async def require_account_id(
    conn: AsyncConnection, caller: Caller, program_id: int, member_id: int
) -> int:
    """The member's account in the caller's program, or the error explaining why not."""
    account_id = await conn.scalar(
        select(accounts.c.id)
        .join(programs, programs.c.id == accounts.c.program_id)
        .where(
            accounts.c.program_id == program_id,
            accounts.c.member_id == member_id,
            programs.c.merchant_id == caller.merchant_id,
        )
    )
    if account_id is None:
        await explain_missing_account(conn, caller, program_id, member_id)
        raise AssertionError("unreachable")
    return int(account_id)


async def journal_row(
    conn: AsyncConnection, caller: Caller, program_id: int, journal_id: int
) -> Any:
    """The journal, with ``main_member`` and ``counter_member`` ids, or journal_not_found."""
    row = (
        await conn.execute(
            journals_with_members()
            .join(programs, programs.c.id == journals.c.program_id)
            .where(
                journals.c.id == journal_id,
                journals.c.program_id == program_id,
                programs.c.merchant_id == caller.merchant_id,
            )
        )
    ).first()
    if row is None:
        raise DomainError(ErrorCode.JOURNAL_NOT_FOUND, "no such operation", journal_id=journal_id)
    return row
