"""Reads: balances, history, single operations, holds, programs and members.

Balances are O(1) (the cached row) plus one index range over the account's lots for the
expiring-soon list. History pages by journal id (keyset), newest first, so page N costs what
page 1 costs.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, journals, lots, members, merchants, programs
from loyalty.domain.errors import DomainError, ErrorCode

from .context import Caller
from .lookups import (
    explain_missing_account,
    hold_view,
    journal_row,
    journals_with_members,
    require_account_id,
    require_program,
    undone_so_far,
)
from .programs import program_view
from .results import (
    BalanceView,
    ExpiringPoints,
    HistoryItem,
    HistoryPage,
    HoldView,
    JournalView,
    MemberView,
    ProgramView,
)

MAX_PAGE_SIZE = 200
#: How many distinct expiry dates the balance lists.
EXPIRY_DATES_SHOWN = 12


# The balance is the most frequent read (wallets, tills, vendors): its statements built once.
_ACCOUNT_BALANCE = (
    select(accounts.c.id, accounts.c.posted, accounts.c.held, accounts.c.version)
    .join(programs, programs.c.id == accounts.c.program_id)
    .where(
        accounts.c.program_id == bindparam("program_id"),
        accounts.c.member_id == bindparam("member_id"),
        programs.c.merchant_id == bindparam("merchant_id"),
    )
)
_EXPIRING = (
    select(lots.c.expires_at, func.sum(lots.c.remaining - lots.c.held).label("points"))
    .where(
        lots.c.account_id == bindparam("account_id"),
        lots.c.expires_at.is_not(None),
        lots.c.remaining > lots.c.held,
    )
    .group_by(lots.c.expires_at)
    .order_by(lots.c.expires_at)
    .limit(EXPIRY_DATES_SHOWN)
)


class Queries:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _read(self, work: Any) -> Any:
        return await in_transaction(self._engine, work, read_only=True)

    async def balance(self, caller: Caller, program_id: int, member_id: int) -> BalanceView:
        async def work(conn: AsyncConnection) -> BalanceView:
            found = await conn.execute(
                _ACCOUNT_BALANCE,
                {
                    "program_id": program_id,
                    "member_id": member_id,
                    "merchant_id": caller.merchant_id,
                },
            )
            account = found.first()
            if account is None:
                await explain_missing_account(conn, caller, program_id, member_id)
                raise AssertionError("unreachable")
            rows = await conn.execute(_EXPIRING, {"account_id": account.id})
            return BalanceView(
                program_id=program_id,
                member_id=member_id,
                posted=account.posted,
                held=account.held,
                available=account.posted - account.held,
                expiring=[ExpiringPoints(r.expires_at, int(r.points)) for r in rows],
                version=account.version,
            )

        result: BalanceView = await self._read(work)
        return result

    async def history(
        self,
        caller: Caller,
        program_id: int,
        member_id: int,
        *,
        cursor: str | None = None,
        limit: int = 50,
    ) -> HistoryPage:
        before = decode_cursor(cursor) if cursor else None
        limit = max(1, min(limit, MAX_PAGE_SIZE))

        async def work(conn: AsyncConnection) -> HistoryPage:
            account_id = await require_account_id(conn, caller, program_id, member_id)
            rows = await history_rows(conn, account_id, before, limit)
            return HistoryPage(
                items=[_history_item(row, account_id) for row in rows[:limit]],
                next_cursor=next_cursor(rows, limit),
            )

        result: HistoryPage = await self._read(work)
        return result

    async def journal(self, caller: Caller, program_id: int, journal_id: int) -> JournalView:
        async def work(conn: AsyncConnection) -> JournalView:
            row = await journal_row(conn, caller, program_id, journal_id)
            refunded, reversed_ = await undone_so_far(conn, journal_id)
            return JournalView(
                journal_id=row.id,
                kind=row.kind,
                program_id=row.program_id,
                member_id=row.main_member,
                points=row.points,
                delta=row.delta,
                held_delta=row.held_delta,
                effective_at=row.effective_at,
                created_at=row.created_at,
                refunded=refunded,
                reversed=reversed_,
                reverses_journal_id=row.reverses_id,
                hold_id=row.hold_id,
                counter_member_id=row.counter_member,
                actor=row.actor,
                reason=row.reason,
                reference=row.reference,
            )

        result: JournalView = await self._read(work)
        return result

    async def hold(self, caller: Caller, program_id: int, hold_id: int) -> HoldView:
        async def work(conn: AsyncConnection) -> HoldView:
            return await hold_view(conn, caller, program_id, hold_id)

        result: HoldView = await self._read(work)
        return result

    async def programs(self, caller: Caller) -> list[ProgramView]:
        async def work(conn: AsyncConnection) -> list[ProgramView]:
            rows = await conn.execute(
                select(programs)
                .where(programs.c.merchant_id == caller.merchant_id)
                .order_by(programs.c.id)
            )
            return [program_view(row) for row in rows]

        result: list[ProgramView] = await self._read(work)
        return result

    async def program(self, caller: Caller, program_id: int) -> ProgramView:
        async def work(conn: AsyncConnection) -> ProgramView:
            await require_program(conn, caller, program_id)
            row = (await conn.execute(select(programs).where(programs.c.id == program_id))).one()
            return program_view(row)

        result: ProgramView = await self._read(work)
        return result

    async def public_program(self, program_id: int) -> ProgramView:
        """A program as anyone may see it on its wallet's welcome page (names, currency):
        ``program_not_found`` for no such program."""

        async def work(conn: AsyncConnection) -> ProgramView:
            row = (await conn.execute(select(programs).where(programs.c.id == program_id))).first()
            if row is None:
                raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program")
            return program_view(row)

        result: ProgramView = await self._read(work)
        return result

    async def merchant_name(self, program_id: int) -> str:
        """The name of the merchant that runs the program (the controller the wallet's privacy
        notice names)."""

        async def work(conn: AsyncConnection) -> str:
            name = await conn.scalar(
                select(merchants.c.name)
                .join(programs, programs.c.merchant_id == merchants.c.id)
                .where(programs.c.id == program_id)
            )
            if name is None:
                raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program")
            return str(name)

        result: str = await self._read(work)
        return result

    async def member(self, caller: Caller, member_id: int) -> MemberView:
        async def work(conn: AsyncConnection) -> MemberView:
            row = (
                await conn.execute(
                    select(members).where(
                        members.c.id == member_id, members.c.merchant_id == caller.merchant_id
                    )
                )
            ).first()
            if row is None:
                raise DomainError(ErrorCode.MEMBER_NOT_FOUND, "no such member", member_id=member_id)
            program_ids = await conn.execute(
                select(accounts.c.program_id)
                .where(accounts.c.member_id == member_id)
                .order_by(accounts.c.program_id)
            )
            return MemberView(
                member_id=row.id,
                display_name=row.display_name,
                email=row.email,
                created_at=row.created_at,
                program_ids=[r.program_id for r in program_ids],
            )

        result: MemberView = await self._read(work)
        return result


async def history_rows(
    conn: AsyncConnection, account_id: int, before: int | None, limit: int
) -> Sequence[Any]:
    """Up to ``limit + 1`` of the account's journals older than ``before``, newest first.

    Keyset paging by journal id; a row more than asked says another page follows. The rows
    carry ``main_member`` and ``counter_member`` (see :func:`history_fields`).
    """
    # Two index range scans (as the member, as a transfer's receiver), merged.
    parts = []
    for column in (journals.c.account_id, journals.c.counter_account_id):
        part = select(journals.c.id).where(column == account_id)
        if before is not None:
            part = part.where(journals.c.id < before)
        parts.append(part.order_by(journals.c.id.desc()).limit(limit + 1))
    ids = union_all(*(p.subquery().select() for p in parts)).subquery()
    rows: Sequence[Any] = (
        await conn.execute(
            journals_with_members()
            .where(journals.c.id.in_(select(ids.c.id)))
            .order_by(journals.c.id.desc())
            .limit(limit + 1)
        )
    ).all()
    return rows


def next_cursor(rows: Sequence[Any], limit: int) -> str | None:
    """The cursor after a page of :func:`history_rows`; None when it was the last page."""
    return encode_cursor(rows[limit - 1].id) if len(rows) > limit else None


def history_fields(row: Any, account_id: int) -> dict[str, Any]:
    """A :func:`history_rows` row as :class:`HistoryItem` fields, seen from the account."""
    as_receiver = row.account_id != account_id
    return dict(
        journal_id=row.id,
        kind=row.kind,
        points=row.points,
        delta=-row.delta if as_receiver else row.delta,
        held_delta=0 if as_receiver else row.held_delta,
        effective_at=row.effective_at,
        created_at=row.created_at,
        reverses_journal_id=row.reverses_id,
        hold_id=row.hold_id,
        counter_member_id=row.main_member if as_receiver else row.counter_member,
        reference=row.reference,
        reason=row.reason,
    )


def _history_item(row: Any, account_id: int) -> HistoryItem:
    return HistoryItem(**history_fields(row, account_id))


def encode_cursor(journal_id: int) -> str:
    return base64.urlsafe_b64encode(f"j{journal_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("j"):
            raise ValueError(raw)
        value = int(raw[1:])
        if value <= 0:
            raise ValueError(raw)
        return value
    except (ValueError, UnicodeDecodeError):
        raise DomainError(ErrorCode.INVALID_CURSOR, "the cursor is not one this API gave") from None
