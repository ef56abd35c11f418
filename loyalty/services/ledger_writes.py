"""The ledger's write primitives, in SQLAlchemy Core: lock accounts, write journals, entries and
lot draws, keep cached balances. Operations (``loyalty.services.ledger``) are built from these,
inside one transaction each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import BigInteger, and_, bindparam, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.balance_changes import BalanceChange, record
from loyalty.db.engine import is_postgres
from loyalty.db.statements import insert_every_column
from loyalty.db.tables import accounts, entries, holds, journals, lot_draws, lots, programs
from loyalty.domain.expiry import ExpiryKind, ExpiryPolicy
from loyalty.domain.journals import HoldStatus, JournalKind
from loyalty.domain.lots import Draw, Lot, draw_fifo
from loyalty.domain.points import credited

from .context import Caller
from .lookups import explain_missing_account
from .results import Balance

SYSTEM_ACCOUNT_KINDS = ("issued", "redeemed", "expired", "adjustments")


@dataclass(slots=True)
class Account:
    """A member account locked for the rest of the transaction, with its program's policy."""

    id: int
    member_id: int
    program_id: int
    posted: int
    held: int
    version: int
    expiry: ExpiryPolicy
    hold_timeout: timedelta
    #: When the member enrolled in the program (tier anniversaries count from it).
    joined_at: datetime
    #: The program's currency (baskets must be in it).
    currency: str

    @property
    def balance(self) -> Balance:
        return Balance(posted=self.posted, held=self.held, available=self.posted - self.held)


_ACCOUNT_COLUMNS = (
    accounts.c.id,
    accounts.c.member_id,
    accounts.c.program_id,
    accounts.c.posted,
    accounts.c.held,
    accounts.c.version,
    accounts.c.created_at,
    programs.c.expiry_kind,
    programs.c.expiry_value,
    programs.c.timezone,
    programs.c.hold_timeout_seconds,
    programs.c.currency,
)


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        member_id=row.member_id,
        program_id=row.program_id,
        posted=row.posted,
        held=row.held,
        version=row.version,
        expiry=ExpiryPolicy(ExpiryKind(row.expiry_kind), row.expiry_value, row.timezone),
        hold_timeout=timedelta(seconds=row.hold_timeout_seconds),
        joined_at=row.created_at,
        currency=row.currency,
    )


# The till's statements are built once: building and cache-keying a statement on each call
# costs more CPU than executing it (bench/ledger_writes.py).
_LOCK_MEMBERS = (
    select(*_ACCOUNT_COLUMNS)
    .join(programs, programs.c.id == accounts.c.program_id)
    .where(
        accounts.c.program_id == bindparam("program_id"),
        accounts.c.member_id.in_(bindparam("member_ids", expanding=True)),
        programs.c.merchant_id == bindparam("merchant_id"),
    )
    .order_by(accounts.c.id)
    .with_for_update(of=accounts)
)


async def lock_members(
    conn: AsyncConnection, caller: Caller, program_id: int, member_ids: Sequence[int]
) -> dict[int, Account]:
    """Lock the members' accounts in account-id order (so that two transfers between the same
    members in opposite directions wait for each other instead of deadlocking)."""
    rows = (
        await conn.execute(
            _LOCK_MEMBERS,
            {
                "program_id": program_id,
                "member_ids": list(member_ids),
                "merchant_id": caller.merchant_id,
            },
        )
    ).all()
    found = {row.member_id: _account(row) for row in rows}
    for member_id in member_ids:
        if member_id not in found:
            await explain_missing_account(conn, caller, program_id, member_id)
    return found


async def lock_accounts(conn: AsyncConnection, account_ids: Sequence[int]) -> dict[int, Account]:
    """Lock accounts already known to belong to the caller's merchant, in id order."""
    rows = (
        await conn.execute(
            select(*_ACCOUNT_COLUMNS)
            .join(programs, programs.c.id == accounts.c.program_id)
            .where(accounts.c.id.in_(account_ids))
            .order_by(accounts.c.id)
            .with_for_update(of=accounts)
        )
    ).all()
    return {row.id: _account(row) for row in rows}


async def system_accounts(conn: AsyncConnection, program_id: int) -> dict[str, int]:
    rows = await conn.execute(
        select(accounts.c.kind, accounts.c.id).where(
            accounts.c.program_id == program_id, accounts.c.member_id.is_(None)
        )
    )
    return {row.kind: row.id for row in rows}


async def free_lots(conn: AsyncConnection, account_id: int) -> list[Lot]:
    rows = await conn.execute(
        select(lots.c.id, lots.c.remaining, lots.c.held, lots.c.expires_at).where(
            lots.c.account_id == account_id, lots.c.remaining > lots.c.held
        )
    )
    return [Lot(r.id, r.remaining, r.held, r.expires_at) for r in rows]


async def lot_ids_created_by(conn: AsyncConnection, journal_id: int) -> frozenset[int]:
    rows = await conn.execute(select(lots.c.id).where(lots.c.journal_id == journal_id))
    return frozenset(row.id for row in rows)


async def draws_of(conn: AsyncConnection, journal_id: int) -> list[Draw]:
    rows = await conn.execute(
        select(lot_draws.c.lot_id, lot_draws.c.points)
        .where(lot_draws.c.journal_id == journal_id)
        .order_by(lot_draws.c.id)
    )
    return [Draw(r.lot_id, r.points) for r in rows]


async def outstanding_draws(conn: AsyncConnection, journal_id: int) -> list[Draw]:
    """What each lot a spend drew from has still to get back: the spend's draws plus the
    (negative) returns its refunds made to those same lots, in the spend's draw order."""
    spent = await draws_of(conn, journal_id)
    rows = await conn.execute(
        select(lot_draws.c.lot_id, func.sum(lot_draws.c.points).label("points"))
        .join(journals, journals.c.id == lot_draws.c.journal_id)
        .where(
            journals.c.reverses_id == journal_id,
            lot_draws.c.lot_id.in_([draw.lot_id for draw in spent]),
        )
        .group_by(lot_draws.c.lot_id)
    )
    undone = {row.lot_id: int(row.points) for row in rows}
    return [Draw(d.lot_id, d.points + undone.pop(d.lot_id, 0)) for d in spent]


_INSERT_JOURNAL = journals.insert().returning(journals.c.id)


class JournalFields(TypedDict, total=False):
    """What an operation says of its journal besides the caller, account and kind."""

    points: Required[int]
    delta: Required[int]
    at: Required[datetime]
    effective_at: datetime | None
    held_delta: int
    counter_account_id: int | None
    reverses_id: int | None
    hold_id: int | None
    actor: str | None
    reason: str | None
    reference: str | None


def _journal_values(
    caller: Caller, account: Account, kind: JournalKind, **fields: Unpack[JournalFields]
) -> dict[str, Any]:
    at = fields["at"]
    return {
        "program_id": account.program_id,
        "kind": str(kind),
        "account_id": account.id,
        "counter_account_id": fields.get("counter_account_id"),
        "points": fields["points"],
        "delta": fields["delta"],
        "held_delta": fields.get("held_delta", 0),
        "reverses_id": fields.get("reverses_id"),
        "hold_id": fields.get("hold_id"),
        "effective_at": fields.get("effective_at") or at,
        "created_at": at,
        "client_id": caller.client_id,
        "actor": fields.get("actor"),
        "reason": fields.get("reason"),
        "reference": fields.get("reference"),
    }


async def insert_journal(
    conn: AsyncConnection,
    caller: Caller,
    account: Account,
    kind: JournalKind,
    **fields: Unpack[JournalFields],
) -> int:
    journal_id = await conn.scalar(
        _INSERT_JOURNAL, _journal_values(caller, account, kind, **fields)
    )
    assert journal_id is not None
    return int(journal_id)


_INSERT_ENTRIES = entries.insert()


async def insert_entries(
    conn: AsyncConnection, journal_id: int, amounts: Iterable[tuple[int, int]]
) -> None:
    """Post a balanced set of ``(account_id, signed amount)``; zero amounts are left out."""
    rows = [
        {"journal_id": journal_id, "account_id": account_id, "amount": amount}
        for account_id, amount in amounts
        if amount
    ]
    assert sum(row["amount"] for row in rows) == 0, "a journal's entries must sum to zero"
    if rows:
        await conn.execute(_INSERT_ENTRIES, rows)


_lot_change = (
    update(lots)
    .where(lots.c.id == bindparam("lot"))
    .values(
        remaining=lots.c.remaining - bindparam("taken"),
        held=lots.c.held + bindparam("held_change"),
    )
)


async def change_lots(
    conn: AsyncConnection,
    journal_id: int | None,
    *,
    taken: Iterable[Draw] = (),
    held: Iterable[Draw] = (),
    record: Iterable[Draw] = (),
) -> None:
    """Apply lot changes in one statement per batch: ``taken`` leaves the lots' remainders
    (negative points give back), ``held`` changes what they hold. ``record`` is written to
    ``lot_draws`` under the journal."""
    changes: dict[int, list[int]] = {}
    for draw in taken:
        changes.setdefault(draw.lot_id, [0, 0])[0] += draw.points
    for draw in held:
        changes.setdefault(draw.lot_id, [0, 0])[1] += draw.points
    params = [
        {"lot": lot_id, "taken": t, "held_change": h}
        for lot_id, (t, h) in sorted(changes.items())
        if t or h
    ]
    if params:
        await conn.execute(_lot_change, params)
    records = [
        {"journal_id": journal_id, "lot_id": d.lot_id, "points": d.points}
        for d in record
        if d.points
    ]
    if records:
        await conn.execute(lot_draws.insert(), records)


_INSERT_LOT = lots.insert()
_SAVE_ACCOUNT = (
    update(accounts)
    .where(accounts.c.id == bindparam("account_id"))
    .values(
        posted=bindparam("new_posted"),
        held=bindparam("new_held"),
        version=accounts.c.version + 1,
    )
)


async def insert_lot(
    conn: AsyncConnection,
    account: Account,
    journal_id: int,
    points: int,
    expires_at: datetime | None,
    at: datetime,
) -> None:
    await conn.execute(
        _INSERT_LOT,
        {
            "account_id": account.id,
            "journal_id": journal_id,
            "original": points,
            "remaining": points,
            "held": 0,
            "expires_at": expires_at,
            "created_at": at,
        },
    )


async def save_account(conn: AsyncConnection, account: Account) -> None:
    await conn.execute(
        _SAVE_ACCOUNT,
        {"account_id": account.id, "new_posted": account.posted, "new_held": account.held},
    )
    account.version += 1
    record(
        conn,
        BalanceChange(account.program_id, account.member_id, account.posted, account.held),
    )


async def settle_stale_holds(
    conn: AsyncConnection, caller: Caller, account: Account, at: datetime
) -> set[int]:
    """Release the account's pending holds whose time is up (before anything else touches the
    account, so that expired holds never block the member's points). Returns their ids."""
    if account.held == 0:
        return set()
    rows = (
        await conn.execute(
            select(holds.c.id, holds.c.points).where(
                and_(
                    holds.c.account_id == account.id,
                    holds.c.status == HoldStatus.PENDING,
                    holds.c.expires_at <= at,
                )
            )
        )
    ).all()
    for row in rows:
        await resolve_hold(conn, caller, account, row.id, row.points, (), HoldStatus.EXPIRED, at)
    return {row.id for row in rows}


async def hold_draws(conn: AsyncConnection, hold_id: int) -> list[Draw]:
    rows = await conn.execute(
        select(lot_draws.c.lot_id, lot_draws.c.points)
        .join(journals, journals.c.id == lot_draws.c.journal_id)
        .where(journals.c.hold_id == hold_id, journals.c.kind == JournalKind.HOLD)
        .order_by(lot_draws.c.id)
    )
    return [Draw(r.lot_id, r.points) for r in rows]


async def resolve_hold(
    conn: AsyncConnection,
    caller: Caller,
    account: Account,
    hold_id: int,
    hold_points: int,
    captured: Sequence[Draw],
    status: HoldStatus,
    at: datetime,
    redeemed_account_id: int | None = None,
    reference: str | None = None,
) -> int:
    """Un-hold all of a hold's points and spend the ``captured`` draws of them, in one journal:
    capture (``captured`` non-empty), release, or hold expiry."""
    held = await hold_draws(conn, hold_id)
    spent = list(captured)
    spent_points = sum(d.points for d in spent)
    kind = {
        HoldStatus.CAPTURED: JournalKind.CAPTURE,
        HoldStatus.RELEASED: JournalKind.RELEASE,
        HoldStatus.EXPIRED: JournalKind.HOLD_EXPIRY,
    }[status]
    journal_id = await insert_journal(
        conn,
        caller,
        account,
        kind,
        points=spent_points if status is HoldStatus.CAPTURED else hold_points,
        delta=-spent_points,
        held_delta=-hold_points,
        hold_id=hold_id,
        at=at,
        reference=reference,
    )
    if spent_points:
        assert redeemed_account_id is not None
        await insert_entries(
            conn, journal_id, [(account.id, -spent_points), (redeemed_account_id, spent_points)]
        )
    await change_lots(
        conn,
        journal_id,
        taken=spent,
        held=[Draw(d.lot_id, -d.points) for d in held],
        record=spent,
    )
    await conn.execute(
        update(holds)
        .where(holds.c.id == hold_id)
        .values(status=str(status), captured=spent_points, resolved_at=at)
    )
    account.posted -= spent_points
    account.held -= hold_points
    return journal_id


def _credit_statement() -> Any:
    """PostgreSQL: a credit's journal, its two entries and its lot in one round trip (data-
    modifying CTEs), so that the member's lock is held for less time. Parameters: the
    journal's columns prefixed ``journal_``, ``counterpart_id`` and ``expires_at``."""
    journal = insert_every_column(journals, "journal_").returning(journals.c.id).cte("journal")
    points = bindparam("journal_points", type_=BigInteger)
    entry_rows = select(journal.c.id, bindparam("journal_account_id", type_=BigInteger), points)
    counter_rows = select(journal.c.id, bindparam("counterpart_id", type_=BigInteger), -points)
    posted = (
        insert(entries)
        .from_select(["journal_id", "account_id", "amount"], entry_rows.union_all(counter_rows))
        .cte("posted")
    )
    lot = (
        insert(lots)
        .from_select(
            [
                "account_id",
                "journal_id",
                "original",
                "remaining",
                "held",
                "expires_at",
                "created_at",
            ],
            select(
                bindparam("journal_account_id", type_=BigInteger),
                journal.c.id,
                points,
                points,
                literal(0, BigInteger),
                bindparam("expires_at", type_=lots.c.expires_at.type),
                bindparam("journal_created_at", type_=lots.c.created_at.type),
            ),
        )
        .cte("lot")
    )
    return select(journal.c.id).add_cte(posted).add_cte(lot)


_CREDIT = _credit_statement()


async def credit(
    conn: AsyncConnection,
    caller: Caller,
    account: Account,
    kind: JournalKind,
    points: int,
    counterpart_id: int,
    at: datetime,
    *,
    effective_at: datetime | None = None,
    actor: str | None = None,
    reason: str | None = None,
    reference: str | None = None,
) -> tuple[int, datetime | None]:
    """Credit ``points`` to the member as a new lot expiring by the program's policy, taken
    from ``counterpart_id``. Returns the journal id and the lot's expiry."""
    account.posted = credited(account.posted, points)
    expires_at = account.expiry.expires_at(effective_at or at)
    fields: JournalFields = {
        "points": points,
        "delta": points,
        "at": at,
        "effective_at": effective_at,
        "actor": actor,
        "reason": reason,
        "reference": reference,
    }
    if is_postgres(conn):
        journal = _journal_values(caller, account, kind, **fields)
        parameters = {f"journal_{name}": value for name, value in journal.items()}
        parameters.update(counterpart_id=counterpart_id, expires_at=expires_at)
        journal_id = await conn.scalar(_CREDIT, parameters)
        assert journal_id is not None
        return int(journal_id), expires_at
    journal_id = await insert_journal(conn, caller, account, kind, **fields)
    await insert_entries(conn, journal_id, [(account.id, points), (counterpart_id, -points)])
    await insert_lot(conn, account, journal_id, points, expires_at, at)
    return journal_id, expires_at


async def debit(
    conn: AsyncConnection,
    caller: Caller,
    account: Account,
    kind: JournalKind,
    points: int,
    counterpart_id: int,
    at: datetime,
    *,
    counter_account_id: int | None = None,
    actor: str | None = None,
    reason: str | None = None,
    reference: str | None = None,
) -> tuple[int, list[Draw], list[Lot]]:
    """Spend ``points`` of the member's free points (soonest expiry first) to
    ``counterpart_id``. Returns the journal id, the draws and the lots they came from."""
    lots = await free_lots(conn, account.id)
    draws = draw_fifo(lots, points)
    journal_id = await insert_journal(
        conn,
        caller,
        account,
        kind,
        points=points,
        delta=-points,
        at=at,
        counter_account_id=counter_account_id,
        actor=actor,
        reason=reason,
        reference=reference,
    )
    await insert_entries(conn, journal_id, [(account.id, -points), (counterpart_id, points)])
    await change_lots(conn, journal_id, taken=draws, record=draws)
    account.posted -= points
    return journal_id, draws, lots
