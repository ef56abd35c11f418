"""The expiry sweep: stale holds released, due lots expired (DESIGN.md invariant 7).

Takes only free (unspent, unheld) points of lots whose time has come, at one instant ``at``
(the database clock by default, so that every process agrees). Running it twice changes
nothing: the second run finds no due lot with free points and no stale pending hold.
Accounts are processed in batches, each batch one transaction that locks its accounts in id
order, so a sweep interleaves with till traffic instead of blocking it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import database_now, in_transaction
from loyalty.db.tables import holds, lots
from loyalty.domain.journals import HoldStatus, JournalKind
from loyalty.domain.lots import Lot, expirable

from . import ledger_writes as w
from .context import Caller

SWEEP_CALLER = Caller(client_id="system:expiry", merchant_id=0)

Progress = Callable[[int, int], None]


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


async def run_expiry_sweep(
    engine: AsyncEngine,
    *,
    at: datetime | None = None,
    batch_size: int = 200,
    progress: Progress | None = None,
) -> SweepResult:
    if at is None:
        at = await in_transaction(engine, database_now, read_only=True)
    sweep_at = at

    async def due_accounts(conn: AsyncConnection) -> list[int]:
        stale = select(holds.c.account_id).where(
            holds.c.status == HoldStatus.PENDING, holds.c.expires_at <= sweep_at
        )
        due = select(lots.c.account_id).where(
            lots.c.remaining > lots.c.held, lots.c.expires_at <= sweep_at
        )
        rows = await conn.execute(stale.union(due))
        return sorted(row[0] for row in rows)

    account_ids = await in_transaction(engine, due_accounts, read_only=True)
    totals = [0, 0, 0]  # holds released, lots expired, points expired
    system: dict[int, int] = {}

    async def sweep(conn: AsyncConnection, *, batch: list[int]) -> tuple[int, int, int]:
        counts = [0, 0, 0]
        for account in (await w.lock_accounts(conn, batch)).values():
            released = await w.settle_stale_holds(conn, SWEEP_CALLER, account, sweep_at)
            rows = await conn.execute(
                select(lots.c.id, lots.c.remaining, lots.c.held, lots.c.expires_at).where(
                    lots.c.account_id == account.id,
                    lots.c.remaining > lots.c.held,
                    lots.c.expires_at <= sweep_at,
                )
            )
            draws = expirable(
                [Lot(r.id, r.remaining, r.held, r.expires_at) for r in rows], sweep_at
            )
            points = sum(d.points for d in draws)
            if points:
                if account.program_id not in system:
                    accounts_of = await w.system_accounts(conn, account.program_id)
                    system[account.program_id] = accounts_of["expired"]
                journal_id = await w.insert_journal(
                    conn,
                    SWEEP_CALLER,
                    account,
                    JournalKind.EXPIRE,
                    points=points,
                    delta=-points,
                    at=sweep_at,
                )
                await w.insert_entries(
                    conn, journal_id, [(account.id, -points), (system[account.program_id], points)]
                )
                await w.change_lots(conn, journal_id, taken=draws, record=draws)
                account.posted -= points
            if points or released:
                await w.save_account(conn, account)
            counts[0] += len(released)
            counts[1] += len(draws)
            counts[2] += points
        return counts[0], counts[1], counts[2]

    done = 0
    if progress:
        progress(0, len(account_ids))
    for start in range(0, len(account_ids), batch_size):
        batch = account_ids[start : start + batch_size]
        # Counted only once the batch committed: a retried batch is not counted twice.
        counts = await in_transaction(engine, partial(sweep, batch=batch))
        totals = [t + c for t, c in zip(totals, counts, strict=True)]
        done += len(batch)
        if progress:
            progress(done, len(account_ids))
    return SweepResult(
        at=sweep_at,
        accounts=len(account_ids),
        holds_expired=totals[0],
        lots_expired=totals[1],
        points_expired=totals[2],
    )
