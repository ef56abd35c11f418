"""The expiry sweep: stale holds released, due lots expired (DESIGN.md invariant 7).

Takes only free (unspent, unheld) points of lots whose time has come, at one instant ``at``
(the database clock by default, so that every process agrees). Running it twice changes
nothing: the second run finds no due lot with free points and no stale pending hold.
Accounts are processed in batches, each batch one transaction that locks its accounts in id
order, so a sweep interleaves with till traffic instead of blocking it.

A batch is a handful of set-based statements whatever its size, on SQLite and PostgreSQL alike:
the ledger's rows are derived from one another inside the database instead of travelling to
Python and back row by row. What it writes is what one operation per account would write: per
stale hold a ``hold_expiry`` journal that un-holds the hold's lot draws; then per account with
due free points one ``expire`` journal with its two entries (the member's, the program's
``expired`` system account's) and one lot draw per lot, in spending order; and the cached
balance moved by the journals' ``delta`` and ``held_delta``, the member's new balance told to
the balance listeners. Every write is confined to accounts the batch has locked, which is what
makes two sweeps at once safe: the second waits for the first's batch and then finds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from functools import partial

import msgspec
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    any_,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.balance_changes import BalanceChange, record
from loyalty.db.engine import database_now, in_transaction, is_postgres
from loyalty.db.tables import accounts, entries, holds, journals, lot_draws, lots
from loyalty.domain.journals import HoldStatus, JournalKind

from .context import Caller

SWEEP_CALLER = Caller(client_id="system:expiry", merchant_id=0)

Progress = Callable[[int, int], None]

#: Member accounts per transaction: large enough that a batch's few statements carry thousands
#: of lots, small enough that a till waiting for one of its members waits milliseconds.
DEFAULT_BATCH_ACCOUNTS = 500


class SweepResult(msgspec.Struct, frozen=True):
    at: datetime
    accounts: int
    holds_expired: int
    lots_expired: int
    points_expired: int

    def __str__(self) -> str:
        return (
            f"expiry sweep at {self.at.isoformat()}: {self.holds_expired} stale holds released, "
            f"{self.points_expired} points expired from {self.lots_expired} lots "
            f"across {self.accounts} accounts"
        )


class _BatchCounts(msgspec.Struct, frozen=True):
    holds_expired: int = 0
    lots_expired: int = 0
    points_expired: int = 0


async def run_expiry_sweep(
    engine: AsyncEngine,
    *,
    at: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_ACCOUNTS,
    progress: Progress | None = None,
) -> SweepResult:
    if at is None:
        at = await in_transaction(engine, database_now, read_only=True)
    account_ids = await in_transaction(engine, partial(_due_accounts, at=at), read_only=True)
    holds_expired = lots_expired = points_expired = 0
    done = 0
    if progress:
        progress(0, len(account_ids))
    for start in range(0, len(account_ids), batch_size):
        batch = account_ids[start : start + batch_size]
        # Counted only once the batch committed: a retried batch is not counted twice.
        counts = await in_transaction(engine, partial(_sweep_batch, account_ids=batch, at=at))
        holds_expired += counts.holds_expired
        lots_expired += counts.lots_expired
        points_expired += counts.points_expired
        done += len(batch)
        if progress:
            progress(done, len(account_ids))
    return SweepResult(
        at=at,
        accounts=len(account_ids),
        holds_expired=holds_expired,
        lots_expired=lots_expired,
        points_expired=points_expired,
    )


async def _due_accounts(conn: AsyncConnection, *, at: datetime) -> list[int]:
    """Accounts with a stale pending hold or a due lot with free points, in id order."""
    stale = select(holds.c.account_id).where(
        holds.c.status == HoldStatus.PENDING, holds.c.expires_at <= at
    )
    due = select(lots.c.account_id).where(lots.c.remaining > lots.c.held, lots.c.expires_at <= at)
    rows = await conn.execute(stale.union(due))
    return sorted(row[0] for row in rows)


async def _sweep_batch(
    conn: AsyncConnection, *, account_ids: Sequence[int], at: datetime
) -> _BatchCounts:
    postgres = is_postgres(conn)
    # SQLite: the transaction's BEGIN IMMEDIATE already excludes every other writer.
    locking = (
        select(accounts.c.id)
        .where(_among(accounts.c.id, account_ids, postgres=postgres))
        # Id order, like every ledger operation: two lockers never wait for each other in turn.
        .order_by(accounts.c.id)
    )
    if postgres:
        locking = locking.with_for_update()
    locked = list(await conn.scalars(locking))
    if not locked:
        return _BatchCounts()
    hold_journal_ids = await _expire_stale_holds(conn, locked, at, postgres=postgres)
    expire_journal_ids, lots_expired, points_expired = await _expire_due_lots(
        conn, locked, at, postgres=postgres
    )
    await _move_balances(conn, hold_journal_ids + expire_journal_ids, postgres=postgres)
    return _BatchCounts(
        holds_expired=len(hold_journal_ids),
        lots_expired=lots_expired,
        points_expired=points_expired,
    )


async def _expire_stale_holds(
    conn: AsyncConnection, account_ids: Sequence[int], at: datetime, *, postgres: bool
) -> list[int]:
    """Release the locked accounts' pending holds whose time is up, as ``resolve_hold`` does
    for a timeout: a ``hold_expiry`` journal each (no entries), their lot draws un-held, the
    hold marked expired. Returns the journals' ids."""
    stale = and_(
        _among(holds.c.account_id, account_ids, postgres=postgres),
        holds.c.status == HoldStatus.PENDING,
        holds.c.expires_at <= at,
    )
    created = (
        await conn.execute(
            insert(journals)
            .from_select(
                [
                    journals.c.program_id,
                    journals.c.kind,
                    journals.c.account_id,
                    journals.c.points,
                    journals.c.delta,
                    journals.c.held_delta,
                    journals.c.hold_id,
                    journals.c.effective_at,
                    journals.c.created_at,
                    journals.c.client_id,
                ],
                select(
                    holds.c.program_id,
                    _value(JournalKind.HOLD_EXPIRY, journals.c.kind),
                    holds.c.account_id,
                    holds.c.points,
                    _value(0, journals.c.delta),
                    -holds.c.points,
                    holds.c.id,
                    _value(at, journals.c.effective_at),
                    _value(at, journals.c.created_at),
                    _value(SWEEP_CALLER.client_id, journals.c.client_id),
                )
                .where(stale)
                .order_by(holds.c.account_id, holds.c.id),
            )
            .returning(journals.c.id, journals.c.account_id, journals.c.hold_id)
        )
    ).all()
    if not created:
        return []
    hold_ids = [row.hold_id for row in created]
    held = (
        select(lot_draws.c.lot_id, func.sum(lot_draws.c.points).label("points"))
        .join(journals, journals.c.id == lot_draws.c.journal_id)
        .where(
            # By account first: the accounts' history index finds the hold journals (no index
            # leads from a hold to its journals, and a scan of all journals would be slow).
            _among(journals.c.account_id, {row.account_id for row in created}, postgres=postgres),
            journals.c.kind == JournalKind.HOLD,
            _among(journals.c.hold_id, hold_ids, postgres=postgres),
        )
        .group_by(lot_draws.c.lot_id)
        .subquery()
    )
    await conn.execute(
        update(lots).where(lots.c.id == held.c.lot_id).values(held=lots.c.held - held.c.points)
    )
    resolved = await conn.execute(
        update(holds)
        .where(
            _among(holds.c.id, hold_ids, postgres=postgres), holds.c.status == HoldStatus.PENDING
        )
        .values(status=str(HoldStatus.EXPIRED), captured=0, resolved_at=at)
    )
    assert resolved.rowcount == len(hold_ids), "a locked account's hold changed under the sweep"
    return [row.id for row in created]


async def _expire_due_lots(
    conn: AsyncConnection, account_ids: Sequence[int], at: datetime, *, postgres: bool
) -> tuple[list[int], int, int]:
    """Expire the free points of the locked accounts' due lots: one ``expire`` journal per
    account, its entries, a lot draw per lot. Returns the journals' ids, lots and points."""
    due = and_(
        _among(lots.c.account_id, account_ids, postgres=postgres),
        lots.c.remaining > lots.c.held,
        lots.c.expires_at <= at,
    )
    free = lots.c.remaining - lots.c.held
    per_account = (
        select(lots.c.account_id, func.sum(free).label("points"))
        .where(due)
        .group_by(lots.c.account_id)
        .subquery()
    )
    created = (
        await conn.execute(
            insert(journals)
            .from_select(
                [
                    journals.c.program_id,
                    journals.c.kind,
                    journals.c.account_id,
                    journals.c.points,
                    journals.c.delta,
                    journals.c.held_delta,
                    journals.c.effective_at,
                    journals.c.created_at,
                    journals.c.client_id,
                ],
                select(
                    accounts.c.program_id,
                    _value(JournalKind.EXPIRE, journals.c.kind),
                    per_account.c.account_id,
                    per_account.c.points,
                    -per_account.c.points,
                    _value(0, journals.c.held_delta),
                    _value(at, journals.c.effective_at),
                    _value(at, journals.c.created_at),
                    _value(SWEEP_CALLER.client_id, journals.c.client_id),
                )
                .join(accounts, accounts.c.id == per_account.c.account_id)
                .order_by(per_account.c.account_id),
            )
            .returning(journals.c.id, journals.c.points)
        )
    ).all()
    if not created:
        return [], 0, 0
    journal_ids = [row.id for row in created]
    points = sum(int(row.points) for row in created)
    swept = _among(journals.c.id, journal_ids, postgres=postgres)

    expired_account = accounts.alias("expired_account")
    members_side = select(
        journals.c.id.label("journal_id"),
        journals.c.account_id.label("account_id"),
        journals.c.delta.label("amount"),
    ).where(swept)
    program_side = (
        select(journals.c.id, expired_account.c.id, journals.c.points)
        .join(
            expired_account,
            and_(
                expired_account.c.program_id == journals.c.program_id,
                expired_account.c.member_id.is_(None),
                expired_account.c.kind == "expired",
            ),
        )
        .where(swept)
    )
    posted = await conn.execute(
        insert(entries).from_select(
            [entries.c.journal_id, entries.c.account_id, entries.c.amount],
            # The member's entry first, as ``insert_entries`` writes them.
            union_all(members_side, program_side).order_by(
                literal_column("journal_id"), literal_column("amount")
            ),
        )
    )
    assert posted.rowcount == 2 * len(journal_ids), "a program without an 'expired' account"

    drawn = await conn.execute(
        insert(lot_draws).from_select(
            [lot_draws.c.journal_id, lot_draws.c.lot_id, lot_draws.c.points],
            select(journals.c.id, lots.c.id, free)
            .join(journals, journals.c.account_id == lots.c.account_id)
            .where(due, swept)
            # Spending order (domain.lots.spending_order): soonest expiry first, then age.
            .order_by(journals.c.id, lots.c.expires_at, lots.c.id),
        )
    )
    taken = await conn.execute(update(lots).where(due).values(remaining=lots.c.held))
    assert taken.rowcount == drawn.rowcount, "a locked account's lots changed under the sweep"
    return journal_ids, int(drawn.rowcount), points


async def _move_balances(
    conn: AsyncConnection, journal_ids: Sequence[int], *, postgres: bool
) -> None:
    """Move each account's cached balance by what its journals did to it (``delta``,
    ``held_delta``), one version step per account, and note the new balances for the
    listeners."""
    if not journal_ids:
        return
    moved = (
        select(
            journals.c.account_id,
            func.sum(journals.c.delta).label("delta"),
            func.sum(journals.c.held_delta).label("held_delta"),
        )
        .where(_among(journals.c.id, journal_ids, postgres=postgres))
        .group_by(journals.c.account_id)
        .subquery()
    )
    rows = await conn.execute(
        update(accounts)
        .where(accounts.c.id == moved.c.account_id)
        .values(
            posted=accounts.c.posted + moved.c.delta,
            held=accounts.c.held + moved.c.held_delta,
            version=accounts.c.version + 1,
        )
        .returning(accounts.c.program_id, accounts.c.member_id, accounts.c.posted, accounts.c.held)
    )
    for row in rows:
        record(conn, BalanceChange(row.program_id, row.member_id, row.posted, row.held))


def _among(
    column: ColumnElement[int], ids: Collection[int], *, postgres: bool
) -> ColumnElement[bool]:
    """``column`` is one of ``ids``. PostgreSQL gets one array parameter, so that every batch
    size shares one prepared statement; SQLite an expanded ``IN`` list."""
    values = sorted(ids)
    if postgres:
        return column == any_(bindparam(None, values, type_=ARRAY(BigInteger)))
    return column.in_(values)


def _value(value: object, like: ColumnElement[object]) -> ColumnElement[object]:
    """A constant for an ``INSERT ... SELECT``, bound with the target column's type (UTC
    datetimes stored as the column stores them)."""
    return literal(value, like.type)
