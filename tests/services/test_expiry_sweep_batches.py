"""The set-based expiry sweep writes what the per-account sweep wrote, batch after batch, on
SQLite and PostgreSQL: the same journals, entries, lot draws, hold resolutions and balances,
also when interrupted and run again, and when two sweeps run at once.

Each test plays one history twice, on two programs of their own (A and B, members enrolled in
the same order, the same operations at the same instants), sweeps them differently and compares
the outcome member by member, with ids replaced by positions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.balance_changes import BalanceChange, listen
from loyalty.db.engine import READ_ONLY, create_engine, in_transaction
from loyalty.db.tables import accounts, entries, holds, journals, lot_draws, lots
from loyalty.domain.journals import JournalKind
from loyalty.domain.lots import Lot, expirable
from loyalty.services import ledger_writes as w
from loyalty.services.expiry import SWEEP_CALLER, SweepResult, run_expiry_sweep
from loyalty.services.verify import verify_ledger
from tests.support.scenario import Scenario, new_scenario

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MEMBERS = 14
FIRST_SWEEP = T0 + 31 * DAY
SECOND_SWEEP = T0 + 41 * DAY


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


async def twin_programs(engine: AsyncEngine) -> tuple[Scenario, Scenario]:
    """Programs A and B (points expire after 30 days) with the same history: every member kind
    the sweep meets. At ``FIRST_SWEEP`` (day 31) the day-0 lots are due: free in full, partly
    redeemed, partly refunded into, partly held by a hold still pending (until day 32), freed by
    a hold that timed out on day 27, received by transfer with the sender's expiry, or spent by
    a capture. Some members have nothing due, one only a hold that timed out. At
    ``SECOND_SWEEP`` (day 41) the day-5 and day-10 lots are due and the day-25 holds stale."""
    clock = Clock()
    twins = (
        await new_scenario(engine, clock, expiry_value=30, members=MEMBERS, client_id="client-a"),
        await new_scenario(engine, clock, expiry_value=30, members=MEMBERS, client_id="client-b"),
    )
    redeems: dict[tuple[int, int], int] = {}
    for day in (0, 5, 6, 10, 12, 20, 25, 26, 27, 28, 29):
        clock.now = T0 + day * DAY
        for s in twins:
            for i, member in enumerate(s.member_ids):
                await _history_step(s, day, i, member, redeems)
    return twins


async def _history_step(
    s: Scenario, day: int, i: int, member: int, redeems: dict[tuple[int, int], int]
) -> None:
    ledger, caller, program = s.ledger, s.caller, s.program_id
    key = f"d{day}-m{i}"
    if day == 0 and i % 7 != 6 and i != 13:
        await ledger.earn(caller, key, program_id=program, member_id=member, points=100 + i)
    elif day == 5 and i % 7 == 6:
        await ledger.earn(caller, key, program_id=program, member_id=member, points=40)
    elif day == 6 and i % 7 == 6:  # timed out on day 7: released, nothing due at day 31
        await ledger.hold(
            caller, key, program_id=program, member_id=member, points=25, timeout_seconds=86_400
        )
    elif day == 10 and i % 2 == 0:
        await ledger.earn(caller, key, program_id=program, member_id=member, points=50)
    elif day == 12 and i % 3 == 0 and i != 6:
        done = await ledger.redeem(caller, key, program_id=program, member_id=member, points=30 + i)
        redeems[(s.program_id, i)] = done.result.journal_id
    elif day == 20 and i % 4 == 1:  # times out on day 27, freeing due points
        await ledger.hold(
            caller, key, program_id=program, member_id=member, points=20, timeout_seconds=604_800
        )
    elif day == 25 and i % 4 == 2:  # pending until day 32: its points wait
        await ledger.hold(
            caller, key, program_id=program, member_id=member, points=15, timeout_seconds=604_800
        )
    elif day == 26 and (s.program_id, i) in redeems and i % 2 == 0:
        await ledger.refund(
            caller, key, program_id=program, journal_id=redeems[(s.program_id, i)], points=10
        )
    elif day == 27 and i % 4 == 3:
        await ledger.hold(
            caller, key, program_id=program, member_id=member, points=10, timeout_seconds=604_800
        )
    elif day == 28 and i % 4 == 3:
        hold_id = await _pending_hold(s, member)
        await ledger.capture(caller, key, program_id=program, hold_id=hold_id, points=6)
    elif day == 29 and i % 5 == 4:
        # The receiver (13 earned nothing of its own) gets lots with the sender's dates.
        await ledger.transfer(
            caller,
            key,
            program_id=program,
            from_member_id=member,
            to_member_id=s.member_ids[13],
            points=7,
        )


async def _pending_hold(s: Scenario, member: int) -> int:
    async with s.engine.connect() as conn:
        hold_id = await conn.scalar(
            select(holds.c.id)
            .join(accounts, accounts.c.id == holds.c.account_id)
            .where(
                accounts.c.program_id == s.program_id,
                accounts.c.member_id == member,
                holds.c.status == "pending",
            )
        )
    assert hold_id is not None
    return int(hold_id)


async def member_accounts(engine: AsyncEngine, s: Scenario) -> list[int]:
    async with engine.connect() as conn:
        conn = await conn.execution_options(**READ_ONLY)
        return await accounts_of(conn, s)


async def accounts_of(conn: AsyncConnection, s: Scenario) -> list[int]:
    rows = await conn.scalars(
        select(accounts.c.id)
        .where(accounts.c.program_id == s.program_id, accounts.c.kind == "member")
        .order_by(accounts.c.id)
    )
    return list(rows)


async def reference_sweep(engine: AsyncEngine, account_ids: list[int], at: datetime) -> None:
    """The sweep as it was before it became set-based: account after account, each operation
    written by the ledger's write primitives (DESIGN.md invariant 7 by ``domain.lots``)."""

    async def sweep(conn: AsyncConnection) -> None:
        expired_account: dict[int, int] = {}
        for account in (await w.lock_accounts(conn, account_ids)).values():
            released = await w.settle_stale_holds(conn, SWEEP_CALLER, account, at)
            rows = await conn.execute(
                select(lots.c.id, lots.c.remaining, lots.c.held, lots.c.expires_at).where(
                    lots.c.account_id == account.id,
                    lots.c.remaining > lots.c.held,
                    lots.c.expires_at <= at,
                )
            )
            draws = expirable([Lot(r.id, r.remaining, r.held, r.expires_at) for r in rows], at)
            points = sum(d.points for d in draws)
            if points:
                if account.program_id not in expired_account:
                    system = await w.system_accounts(conn, account.program_id)
                    expired_account[account.program_id] = system["expired"]
                journal_id = await w.insert_journal(
                    conn,
                    SWEEP_CALLER,
                    account,
                    JournalKind.EXPIRE,
                    points=points,
                    delta=-points,
                    at=at,
                )
                await w.insert_entries(
                    conn,
                    journal_id,
                    [(account.id, -points), (expired_account[account.program_id], points)],
                )
                await w.change_lots(conn, journal_id, taken=draws, record=draws)
                account.posted -= points
            if points or released:
                await w.save_account(conn, account)

    await in_transaction(engine, sweep)


async def outcome(engine: AsyncEngine, s: Scenario) -> list[dict[str, Any]]:
    """Per member, in enrollment order: balance and version, lots, holds and what the sweeps
    wrote (journals with their entries and lot draws), with ids replaced by positions."""
    found = []
    async with engine.connect() as conn:
        conn = await conn.execution_options(**READ_ONLY)
        system_kind = {
            row.id: row.kind
            for row in await conn.execute(
                select(accounts.c.id, accounts.c.kind).where(
                    accounts.c.program_id == s.program_id, accounts.c.member_id.is_(None)
                )
            )
        }
        for account_id in await accounts_of(conn, s):
            account = (
                await conn.execute(
                    select(accounts.c.posted, accounts.c.held, accounts.c.version).where(
                        accounts.c.id == account_id
                    )
                )
            ).one()
            lot_rows = (
                await conn.execute(
                    select(
                        lots.c.id, lots.c.original, lots.c.remaining, lots.c.held, lots.c.expires_at
                    )
                    .where(lots.c.account_id == account_id)
                    .order_by(lots.c.id)
                )
            ).all()
            lot_index = {row.id: n for n, row in enumerate(lot_rows)}
            hold_rows = (
                await conn.execute(
                    select(
                        holds.c.id,
                        holds.c.points,
                        holds.c.captured,
                        holds.c.status,
                        holds.c.expires_at,
                        holds.c.resolved_at,
                    )
                    .where(holds.c.account_id == account_id)
                    .order_by(holds.c.id)
                )
            ).all()
            hold_index = {row.id: n for n, row in enumerate(hold_rows)}
            swept = []
            journal_rows = (
                await conn.execute(
                    select(journals)
                    .where(
                        journals.c.account_id == account_id,
                        journals.c.client_id == SWEEP_CALLER.client_id,
                    )
                    .order_by(journals.c.id)
                )
            ).all()
            for journal in journal_rows:
                posted = await conn.execute(
                    select(entries.c.account_id, entries.c.amount)
                    .where(entries.c.journal_id == journal.id)
                    .order_by(entries.c.id)
                )
                drawn = await conn.execute(
                    select(lot_draws.c.lot_id, lot_draws.c.points)
                    .where(lot_draws.c.journal_id == journal.id)
                    .order_by(lot_draws.c.id)
                )
                swept.append(
                    {
                        "kind": journal.kind,
                        "points": journal.points,
                        "delta": journal.delta,
                        "held_delta": journal.held_delta,
                        "hold": None if journal.hold_id is None else hold_index[journal.hold_id],
                        "program": journal.program_id == s.program_id,
                        "unset": (
                            journal.counter_account_id,
                            journal.reverses_id,
                            journal.actor,
                            journal.reason,
                            journal.reference,
                        ),
                        "at": (journal.effective_at, journal.created_at),
                        "entries": [
                            (
                                "member"
                                if e.account_id == account_id
                                else system_kind[e.account_id],
                                e.amount,
                            )
                            for e in posted
                        ],
                        "draws": [(lot_index[d.lot_id], d.points) for d in drawn],
                    }
                )
            found.append(
                {
                    "balance": tuple(account),
                    "lots": [tuple(row)[1:] for row in lot_rows],
                    "holds": [tuple(row)[1:] for row in hold_rows],
                    # Per sweep, hold expiries and then the expiry that may take what they freed;
                    # among themselves, the per-account sweep left their order to the database.
                    "swept": sorted(swept, key=_sweep_order),
                    "holds_released_first": [_sweep_order(j)[:2] for j in swept]
                    == sorted(_sweep_order(j)[:2] for j in swept),
                }
            )
    return found


def _sweep_order(journal: dict[str, Any]) -> tuple[datetime, bool, int]:
    return journal["at"][1], journal["kind"] == "expire", journal["hold"] or 0


@contextmanager
def balance_changes(engine: AsyncEngine) -> Iterator[list[BalanceChange]]:
    told: list[BalanceChange] = []
    stop = listen(engine, told.extend)
    try:
        yield told
    finally:
        stop()


def told_per_member(told: list[BalanceChange], s: Scenario) -> dict[int, tuple[int, int]]:
    """The last balance told per member (by enrollment position) of the program."""
    last = {}
    for change in told:
        if change.program_id == s.program_id:
            last[s.member_ids.index(change.member_id)] = (change.posted, change.held)
    return last


async def test_batches_write_what_the_per_account_sweep_wrote(engine: AsyncEngine) -> None:
    a, b = await twin_programs(engine)
    for at in (FIRST_SWEEP, SECOND_SWEEP):
        with balance_changes(engine) as told_a:
            await reference_sweep(engine, await member_accounts(engine, a), at)
        with balance_changes(engine) as told_b:
            # A was swept already: these batches (of 4 accounts) find work in B only.
            result = await run_expiry_sweep(engine, at=at, batch_size=4)
        assert told_per_member(told_b, b) == told_per_member(told_a, a)
        assert told_per_member(told_b, b), "the sweep told no balance change"
        assert await outcome(engine, b) == await outcome(engine, a)
        assert await verify_ledger(engine) == []
        assert result.accounts == len(told_per_member(told_b, b))
        members = await outcome(engine, b)
        assert all(m["holds_released_first"] for m in members)
        if at == FIRST_SWEEP:  # the history's cases all happened
            swept = [j for m in members for j in m["swept"]]
            assert {j["kind"] for j in swept} == {"expire", "hold_expiry"}
            due = [lot for m in members for lot in m["lots"] if lot[3] <= at]
            assert any(held > 0 for _, _, held, _ in due), "no due lot partly held"
            assert any(original == 7 for original, _, _, _ in due), "no lot received by transfer"
            assert any(len(j["draws"]) > 1 for j in swept), "no expiry of several lots"


async def test_an_interrupted_sweep_run_again_ends_as_one_uninterrupted_run(
    engine: AsyncEngine,
) -> None:
    a, b = await twin_programs(engine)
    statements = 0

    def fail_in_second_batch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal statements
        if statement.startswith("INSERT INTO lot_draws"):
            statements += 1
            if statements == 2:
                raise RuntimeError("the sweep's process died")

    # Batches of 4 accounts: the first commits, the second dies half-way (its lots are
    # drawn but not yet reduced), all in A. The run again sweeps the rest of A and all of B.
    event.listen(engine.sync_engine, "before_cursor_execute", fail_in_second_batch)
    try:
        with pytest.raises(RuntimeError, match="process died"):
            await run_expiry_sweep(engine, at=FIRST_SWEEP, batch_size=4)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", fail_in_second_batch)
    assert statements == 2
    assert await verify_ledger(engine) == []
    a_accounts = set(await member_accounts(engine, a))
    async with engine.connect() as conn:
        swept_so_far = set(
            await conn.scalars(
                select(journals.c.account_id).where(journals.c.client_id == SWEEP_CALLER.client_id)
            )
        )
    assert swept_so_far, "the first batch did not commit"
    assert swept_so_far < a_accounts, "the interruption came too late to prove anything"

    again = await run_expiry_sweep(engine, at=FIRST_SWEEP, batch_size=4)
    assert again.accounts > 0
    assert await outcome(engine, a) == await outcome(engine, b)
    for at in (FIRST_SWEEP, SECOND_SWEEP):
        await run_expiry_sweep(engine, at=at)
    assert await outcome(engine, a) == await outcome(engine, b)
    assert await verify_ledger(engine) == []
    nothing = await run_expiry_sweep(engine, at=SECOND_SWEEP)
    assert nothing == SweepResult(
        at=SECOND_SWEEP, accounts=0, holds_expired=0, lots_expired=0, points_expired=0
    )


async def test_two_sweeps_at_once_expire_everything_exactly_once(
    engine: AsyncEngine, db_url: str
) -> None:
    a, b = await twin_programs(engine)
    for at in (FIRST_SWEEP, SECOND_SWEEP):
        await reference_sweep(engine, await member_accounts(engine, a), at)
    # Two processes' worth of connections (PostgreSQL: row locks decide; SQLite: the file's
    # write lock), in the same batches over the same accounts, so that they collide.
    other = create_engine(db_url)
    try:
        for at in (FIRST_SWEEP, SECOND_SWEEP):
            results = await asyncio.gather(
                run_expiry_sweep(engine, at=at, batch_size=3),
                run_expiry_sweep(other, at=at, batch_size=3),
            )
            swept = [j for member in await outcome(engine, b) for j in member["swept"]]
            at_this_time = [j for j in swept if j["at"][1] == at]
            assert sum(r.holds_expired for r in results) == sum(
                j["kind"] == "hold_expiry" for j in at_this_time
            )
            assert sum(r.lots_expired for r in results) == sum(
                len(j["draws"]) for j in at_this_time if j["kind"] == "expire"
            )
            assert sum(r.points_expired for r in results) == sum(
                j["points"] for j in at_this_time if j["kind"] == "expire"
            )
    finally:
        await other.dispose()
    assert await outcome(engine, b) == await outcome(engine, a)
    assert await verify_ledger(engine) == []
