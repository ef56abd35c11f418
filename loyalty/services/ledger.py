"""Ledger operations: each one journal, one transaction, idempotent by key (DESIGN.md §3).

Every operation locks the member accounts it touches (in id order), first releases their holds
whose time is up, then applies the pure domain rules and writes journal, entries, lot changes
and cached balances before the idempotency key is stored, all in one commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.tables import accounts, holds, programs
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.journals import (
    HoldStatus,
    JournalKind,
    check_refund,
    reversal_amount,
)
from loyalty.domain.lots import Draw, draw_clawback, draw_fifo, draw_returns, split_capture
from loyalty.domain.points import credited, require_positive

from . import ledger_writes as w
from .context import Caller, utc_now
from .idempotency import IdempotentExecutor, InFlightRegistry, Replayable, fingerprint
from .lookups import hold_view, journal_row, undone_so_far
from .results import HoldView, OperationResult

#: Holds may be asked to last between these bounds; the program sets the default.
MIN_HOLD_TIMEOUT = timedelta(seconds=5)
MAX_HOLD_TIMEOUT = timedelta(days=7)
#: An offline till may report an earn late, never from the future (beyond clock skew).
ALLOWED_CLOCK_SKEW = timedelta(minutes=5)

Work = Callable[[AsyncConnection, datetime], Awaitable[OperationResult]]


class Ledger:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], datetime] = utc_now,
        registry: InFlightRegistry | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.executor = IdempotentExecutor(engine, registry or InFlightRegistry(), clock)
        self._system_accounts: dict[int, dict[str, int]] = {}

    # -- the operations -------------------------------------------------------------------

    async def earn(
        self,
        caller: Caller,
        key: str,
        *,
        program_id: int,
        member_id: int,
        points: int,
        effective_at: datetime | None = None,
        reference: str | None = None,
    ) -> Replayable[OperationResult]:
        require_positive(points)

        async def work(conn: AsyncConnection, now: datetime) -> OperationResult:
            # Checked before the member is looked up: a till's clock error is the first thing
            # it needs to hear about.
            if effective_at is not None and effective_at > now + ALLOWED_CLOCK_SKEW:
                raise DomainError(
                    ErrorCode.EFFECTIVE_AT_IN_FUTURE, "effective_at lies in the future"
                )
            account = await self.lock_member(conn, caller, program_id, member_id, now)
            return await self.earn_within(
                conn, now, caller, account, points, effective_at=effective_at, reference=reference
            )

        body = (program_id, member_id, points, effective_at, reference)
        return await self._run(caller, key, "earn", body, work)

    async def earn_within(
        self,
        conn: AsyncConnection,
        now: datetime,
        caller: Caller,
        account: w.Account,
        points: int,
        *,
        effective_at: datetime | None = None,
        reference: str | None = None,
    ) -> OperationResult:
        """Earn on an account ``lock_member`` locked in the caller's transaction (composite
        operations such as orders, which check ``effective_at`` against the clock first)."""
        issued = (await self._system(conn, account.program_id))["issued"]
        journal_id, expires_at = await w.credit(
            conn,
            caller,
            account,
            JournalKind.EARN,
            points,
            issued,
            now,
            effective_at=effective_at,
            reference=reference,
        )
        await w.save_account(conn, account)
        return _result(
            account,
            journal_id,
            JournalKind.EARN,
            points,
            points,
            now,
            effective_at or now,
            reference=reference,
            lot_expires_at=expires_at,
        )

    async def redeem(
        self,
        caller: Caller,
        key: str,
        *,
        program_id: int,
        member_id: int,
        points: int,
        reference: str | None = None,
    ) -> Replayable[OperationResult]:
        require_positive(points)

        async def work(conn: AsyncConnection, now: datetime) -> OperationResult:
            account = await self.lock_member(conn, caller, program_id, member_id, now)
            return await self.redeem_within(conn, now, caller, account, points, reference=reference)

        body = (program_id, member_id, points, reference)
        return await self._run(caller, key, "redeem", body, work)

    async def redeem_within(
        self,
        conn: AsyncConnection,
        now: datetime,
        caller: Caller,
        account: w.Account,
        points: int,
        *,
        reference: str | None = None,
    ) -> OperationResult:
        """Redeem from an account ``lock_member`` locked in the caller's transaction (composite
        operations such as rewards)."""
        redeemed = (await self._system(conn, account.program_id))["redeemed"]
        journal_id, _, _ = await w.debit(
            conn,
            caller,
            account,
            JournalKind.REDEEM,
            points,
            redeemed,
            now,
            reference=reference,
        )
        await w.save_account(conn, account)
        return _result(
            account,
            journal_id,
            JournalKind.REDEEM,
            points,
            -points,
            now,
            now,
            reference=reference,
        )

    async def hold(
        self,
        caller: Caller,
        key: str,
        *,
        program_id: int,
        member_id: int,
        points: int,
        timeout_seconds: int | None = None,
        reference: str | None = None,
    ) -> Replayable[OperationResult]:
        require_positive(points)
        timeout = None if timeout_seconds is None else timedelta(seconds=timeout_seconds)
        if timeout is not None and not MIN_HOLD_TIMEOUT <= timeout <= MAX_HOLD_TIMEOUT:
            raise DomainError(
                ErrorCode.VALIDATION_FAILED,
                f"timeout_seconds must be between {MIN_HOLD_TIMEOUT.seconds} and "
                f"{int(MAX_HOLD_TIMEOUT.total_seconds())}",
            )

        async def work(conn: AsyncConnection, now: datetime) -> OperationResult:
            account = await self.lock_member(conn, caller, program_id, member_id, now)
            return await self.hold_within(
                conn, now, caller, account, points, hold_for=timeout, reference=reference
            )

        body = (program_id, member_id, points, timeout_seconds, reference)
        return await self._run(caller, key, "hold", body, work)

    async def hold_within(
        self,
        conn: AsyncConnection,
        now: datetime,
        caller: Caller,
        account: w.Account,
        points: int,
        *,
        hold_for: timedelta | None = None,
        reference: str | None = None,
    ) -> OperationResult:
        """Hold on an account ``lock_member`` locked in the caller's transaction (composite
        operations such as rewards)."""
        draws = draw_fifo(await w.free_lots(conn, account.id), points)
        expires_at = now + (hold_for or account.hold_timeout)
        hold_id = await conn.scalar(
            holds.insert()
            .values(
                program_id=account.program_id,
                account_id=account.id,
                points=points,
                captured=0,
                status=str(HoldStatus.PENDING),
                reference=reference,
                expires_at=expires_at,
                created_at=now,
            )
            .returning(holds.c.id)
        )
        assert hold_id is not None
        journal_id = await w.insert_journal(
            conn,
            caller,
            account,
            JournalKind.HOLD,
            points=points,
            delta=0,
            held_delta=points,
            hold_id=hold_id,
            at=now,
            reference=reference,
        )
        await w.change_lots(conn, journal_id, held=draws, record=draws)
        account.held += points
        await w.save_account(conn, account)
        hold = HoldView(
            hold_id=hold_id,
            program_id=account.program_id,
            member_id=account.member_id,
            points=points,
            captured=0,
            status=HoldStatus.PENDING,
            expires_at=expires_at,
            reference=reference,
        )
        return _result(
            account,
            journal_id,
            JournalKind.HOLD,
            points,
            0,
            now,
            now,
            reference=reference,
            hold=hold,
        )

    async def capture(
        self,
        caller: Caller,
        key: str,
        *,
        program_id: int,
        hold_id: int,
        points: int | None = None,
    ) -> Replayable[OperationResult]:
        """Spend ``points`` (all when None) of a pending hold and release the rest."""
        if points is not None:
            require_positive(points)
        return await self._resolve(
            caller, key, "capture", program_id, hold_id, HoldStatus.CAPTURED, points
        )

    async def release(
        self, caller: Caller, key: str, *, program_id: int, hold_id: int
    ) -> Replayable[OperationResult]:
        return await self._resolve(
            caller, key, "release", program_id, hold_id, HoldStatus.RELEASED, None
        )

    async def refund(
        self,
        caller: Caller,
        key: str,
        *,
        program_id: int,
        journal_id: int,
        points: int,
        reason: str | None = None,
    ) -> Replayable[OperationResult]:
        """Give back part or all of an earn (points clawed back, never below zero), a redeem or
        a capture (points returned to the lots they came from)."""
        require_positive(points)
        return await self._undo(caller, key, program_id, journal_id, points, reason)

    async def reverse(
        self,
        caller: Caller,
        key: str,
        *,
        program_id: int,
        journal_id: int,
        reason: str | None = None,
    ) -> Replayable[OperationResult]:
        """Undo what partial refunds have not undone of an operation; at most once."""
        return await self._undo(caller, key, program_id, journal_id, None, reason)

    async def adjust(
        self,
        caller: Caller,
        key: str,
        *,
        program_id: int,
        member_id: int,
        points: int,
        reason: str,
        actor: str,
    ) -> Replayable[OperationResult]:
        """A manual correction by a person, with the reason on record. Positive credits a new
        lot (expiring by the program's policy); negative spends like a redemption."""
        if isinstance(points, bool) or not isinstance(points, int) or points == 0:
            raise DomainError(ErrorCode.INVALID_AMOUNT, "an adjustment must be a non-zero integer")
        require_positive(abs(points))
        if not reason.strip() or not actor.strip():
            raise DomainError(
                ErrorCode.REASON_REQUIRED, "an adjustment needs a reason and an actor"
            )

        async def work(conn: AsyncConnection, now: datetime) -> OperationResult:
            account = await self.lock_member(conn, caller, program_id, member_id, now)
            return await self.adjust_within(
                conn, now, caller, account, points, reason=reason, actor=actor
            )

        body = (program_id, member_id, points, reason, actor)
        return await self._run(caller, key, "adjust", body, work)

    async def adjust_within(
        self,
        conn: AsyncConnection,
        now: datetime,
        caller: Caller,
        account: w.Account,
        points: int,
        *,
        reason: str,
        actor: str,
    ) -> OperationResult:
        """Adjust an account ``lock_member`` locked in the caller's transaction (an adjustment
        request posts in the transaction that records its decision)."""
        counterpart = (await self._system(conn, account.program_id))["adjustments"]
        expires_at = None
        if points > 0:
            journal_id, expires_at = await w.credit(
                conn,
                caller,
                account,
                JournalKind.ADJUST,
                points,
                counterpart,
                now,
                actor=actor,
                reason=reason,
            )
        else:
            journal_id, _, _ = await w.debit(
                conn,
                caller,
                account,
                JournalKind.ADJUST,
                -points,
                counterpart,
                now,
                actor=actor,
                reason=reason,
            )
        await w.save_account(conn, account)
        return _result(
            account,
            journal_id,
            JournalKind.ADJUST,
            abs(points),
            points,
            now,
            now,
            lot_expires_at=expires_at,
        )

    async def transfer(
        self,
        caller: Caller,
        key: str,
        *,
        program_id: int,
        from_member_id: int,
        to_member_id: int,
        points: int,
        reason: str | None = None,
    ) -> Replayable[OperationResult]:
        """Move points between two members of one program. The points keep their expiry dates:
        the receiver gets one lot per lot drawn, so a transfer never extends a point's life."""
        require_positive(points)
        if from_member_id == to_member_id:
            raise DomainError(ErrorCode.SAME_ACCOUNT_TRANSFER, "cannot transfer to the same member")

        async def work(conn: AsyncConnection, now: datetime) -> OperationResult:
            found = await w.lock_members(conn, caller, program_id, [from_member_id, to_member_id])
            for account in found.values():
                await w.settle_stale_holds(conn, caller, account, now)
            source, target = found[from_member_id], found[to_member_id]
            return await self.transfer_within(
                conn, now, caller, source, target, points, reason=reason
            )

        body = (program_id, from_member_id, to_member_id, points, reason)
        return await self._run(caller, key, "transfer", body, work)

    async def transfer_within(
        self,
        conn: AsyncConnection,
        now: datetime,
        caller: Caller,
        source: w.Account,
        target: w.Account,
        points: int,
        *,
        reason: str | None = None,
    ) -> OperationResult:
        """Transfer between two accounts of one program that the caller's transaction locked
        (``w.lock_members``) and settled (a member merge moves every program's points in one
        transaction)."""
        require_positive(points)
        assert source.program_id == target.program_id, "a transfer stays within one program"
        if source.id == target.id:
            raise DomainError(ErrorCode.SAME_ACCOUNT_TRANSFER, "cannot transfer to the same member")
        target.posted = credited(target.posted, points)
        journal_id, draws, source_lots = await w.debit(
            conn,
            caller,
            source,
            JournalKind.TRANSFER,
            points,
            target.id,
            now,
            counter_account_id=target.id,
            reason=reason,
        )
        expiry_of = {lot.id: lot.expires_at for lot in source_lots}
        for draw in draws:
            await w.insert_lot(conn, target, journal_id, draw.points, expiry_of[draw.lot_id], now)
        await w.save_account(conn, source)
        await w.save_account(conn, target)
        return _result(
            source,
            journal_id,
            JournalKind.TRANSFER,
            points,
            -points,
            now,
            now,
            counter=target,
        )

    # -- shared machinery -----------------------------------------------------------------

    async def _run(
        self, caller: Caller, key: str, operation: str, body: tuple[object, ...], work: Work
    ) -> Replayable[OperationResult]:
        async def in_transaction(conn: AsyncConnection) -> OperationResult:
            return await work(conn, self.clock())

        return await self.executor.run(
            client_id=caller.client_id,
            key=key,
            request_hash=fingerprint(operation, *body),
            result_type=OperationResult,
            work=in_transaction,
            journal_id_of=lambda result: result.journal_id,
        )

    async def lock_member(
        self, conn: AsyncConnection, caller: Caller, program_id: int, member_id: int, now: datetime
    ) -> w.Account:
        """Lock the member's account for the rest of the transaction, after settling the holds
        whose time is up: what every operation on one member starts with."""
        account = (await w.lock_members(conn, caller, program_id, [member_id]))[member_id]
        await w.settle_stale_holds(conn, caller, account, now)
        return account

    async def _system(self, conn: AsyncConnection, program_id: int) -> dict[str, int]:
        """System account ids never change once a program exists: cached per process."""
        found = self._system_accounts.get(program_id)
        if found is None:
            found = await w.system_accounts(conn, program_id)
            self._system_accounts[program_id] = found
        return found

    async def _resolve(
        self,
        caller: Caller,
        key: str,
        operation: str,
        program_id: int,
        hold_id: int,
        outcome: HoldStatus,
        points: int | None,
    ) -> Replayable[OperationResult]:
        async def work(conn: AsyncConnection, now: datetime) -> OperationResult:
            return await self.resolve_within(
                conn, now, caller, program_id, hold_id, outcome, points
            )

        return await self._run(caller, key, operation, (program_id, hold_id, points), work)

    async def resolve_within(
        self,
        conn: AsyncConnection,
        now: datetime,
        caller: Caller,
        program_id: int,
        hold_id: int,
        outcome: HoldStatus,
        points: int | None,
    ) -> OperationResult:
        """Capture or release a hold inside the caller's transaction."""
        found = (
            await conn.execute(
                select(holds.c.account_id, accounts.c.member_id)
                .join(accounts, accounts.c.id == holds.c.account_id)
                .join(programs, programs.c.id == holds.c.program_id)
                .where(
                    holds.c.id == hold_id,
                    holds.c.program_id == program_id,
                    programs.c.merchant_id == caller.merchant_id,
                )
            )
        ).first()
        if found is None:
            raise DomainError(ErrorCode.HOLD_NOT_FOUND, "no such hold", hold_id=hold_id)
        account = await self.lock_member(conn, caller, program_id, found.member_id, now)
        hold = (
            await conn.execute(
                select(holds.c.points, holds.c.status, holds.c.reference).where(
                    holds.c.id == hold_id
                )
            )
        ).one()
        _require_pending(HoldStatus(hold.status))
        if outcome is HoldStatus.CAPTURED:
            spend = split_capture(
                await w.hold_draws(conn, hold_id), hold.points if points is None else points
            )
            redeemed = (await self._system(conn, program_id))["redeemed"]
        else:
            spend, redeemed = [], None
        journal_id = await w.resolve_hold(
            conn,
            caller,
            account,
            hold_id,
            hold.points,
            spend,
            outcome,
            now,
            redeemed_account_id=redeemed,
            reference=hold.reference,
        )
        await w.save_account(conn, account)
        captured = sum(d.points for d in spend)
        view = await hold_view(conn, caller, program_id, hold_id)
        kind = JournalKind.CAPTURE if outcome is HoldStatus.CAPTURED else JournalKind.RELEASE
        return _result(
            account,
            journal_id,
            kind,
            captured if spend else hold.points,
            -captured,
            now,
            now,
            reference=hold.reference,
            hold=view,
        )

    async def _undo(
        self,
        caller: Caller,
        key: str,
        program_id: int,
        journal_id: int,
        points: int | None,
        reason: str | None,
    ) -> Replayable[OperationResult]:
        kind = JournalKind.REFUND if points is not None else JournalKind.REVERSAL

        async def work(conn: AsyncConnection, now: datetime) -> OperationResult:
            return await self.undo_within(conn, now, caller, program_id, journal_id, points, reason)

        return await self._run(
            caller, key, str(kind), (program_id, journal_id, points, reason), work
        )

    async def undo_within(
        self,
        conn: AsyncConnection,
        now: datetime,
        caller: Caller,
        program_id: int,
        journal_id: int,
        points: int | None,
        reason: str | None,
    ) -> OperationResult:
        """Refund (``points``) or reverse (None) inside the caller's transaction."""
        kind = JournalKind.REFUND if points is not None else JournalKind.REVERSAL
        original = await journal_row(conn, caller, program_id, journal_id)
        ids = [original.account_id]
        if original.counter_account_id is not None:
            ids.append(original.counter_account_id)
        locked = await w.lock_accounts(conn, ids)
        for account in locked.values():
            await w.settle_stale_holds(conn, caller, account, now)
        member = locked[original.account_id]
        original_kind = JournalKind(original.kind)
        refunded, was_reversed = await undone_so_far(conn, journal_id)
        if points is not None:
            check_refund(original_kind, original.points, refunded, was_reversed, points)
            amount = points
        else:
            amount = reversal_amount(original_kind, original.points, refunded, was_reversed)
        counter = locked.get(original.counter_account_id) if original.counter_account_id else None
        system = await self._system(conn, program_id)
        counterpart = {
            JournalKind.EARN: system["issued"],
            JournalKind.REDEEM: system["redeemed"],
            JournalKind.CAPTURE: system["redeemed"],
            JournalKind.ADJUST: system["adjustments"],
        }.get(original_kind)

        if original.delta > 0:
            # A credit is undone by clawing the points back, never below zero.
            claws = draw_clawback(
                await w.free_lots(conn, member.id),
                amount,
                await w.lot_ids_created_by(conn, journal_id),
            )
            moved = sum(d.points for d in claws)
            delta = -moved
            new_id = await w.insert_journal(
                conn,
                caller,
                member,
                kind,
                points=amount,
                delta=delta,
                reverses_id=journal_id,
                at=now,
                reason=reason,
                reference=original.reference,
            )
            assert counterpart is not None
            await w.insert_entries(conn, new_id, [(member.id, -moved), (counterpart, moved)])
            await w.change_lots(conn, new_id, taken=claws, record=claws)
            member.posted -= moved
        else:
            # A debit is undone by giving the points back to the lots they came from.
            returns = draw_returns(await w.outstanding_draws(conn, journal_id), amount)
            given_back = [Draw(d.lot_id, -d.points) for d in returns]
            claws = []
            if counter is not None:
                claws = draw_clawback(
                    await w.free_lots(conn, counter.id),
                    amount,
                    await w.lot_ids_created_by(conn, journal_id),
                )
                if sum(d.points for d in claws) < amount:
                    raise DomainError(
                        ErrorCode.INSUFFICIENT_POINTS,
                        "the receiving member no longer has the transferred points",
                    )
            member.posted = credited(member.posted, amount)
            delta = amount
            new_id = await w.insert_journal(
                conn,
                caller,
                member,
                kind,
                points=amount,
                delta=delta,
                reverses_id=journal_id,
                counter_account_id=original.counter_account_id,
                at=now,
                reason=reason,
                reference=original.reference,
            )
            other = counter.id if counter is not None else counterpart
            assert other is not None
            await w.insert_entries(conn, new_id, [(member.id, amount), (other, -amount)])
            await w.change_lots(conn, new_id, taken=given_back + claws, record=given_back + claws)
            if counter is not None:
                counter.posted -= amount
        for account in locked.values():
            await w.save_account(conn, account)
        return _result(
            member,
            new_id,
            kind,
            amount,
            delta,
            now,
            now,
            reverses=journal_id,
            counter=counter,
            reference=original.reference,
        )


def _require_pending(status: HoldStatus) -> None:
    if status is HoldStatus.PENDING:
        return
    code, text = {
        HoldStatus.CAPTURED: (ErrorCode.HOLD_ALREADY_CAPTURED, "the hold was already captured"),
        HoldStatus.RELEASED: (ErrorCode.HOLD_ALREADY_RELEASED, "the hold was already released"),
        HoldStatus.EXPIRED: (
            ErrorCode.HOLD_EXPIRED,
            "the hold expired and its points were released",
        ),
    }[status]
    raise DomainError(code, text)


def _result(
    account: w.Account,
    journal_id: int,
    kind: JournalKind,
    points: int,
    delta: int,
    now: datetime,
    effective_at: datetime,
    *,
    reference: str | None = None,
    lot_expires_at: datetime | None = None,
    hold: HoldView | None = None,
    reverses: int | None = None,
    counter: w.Account | None = None,
) -> OperationResult:
    return OperationResult(
        journal_id=journal_id,
        kind=str(kind),
        program_id=account.program_id,
        member_id=account.member_id,
        points=points,
        delta=delta,
        balance=account.balance,
        effective_at=effective_at,
        created_at=now,
        lot_expires_at=lot_expires_at,
        hold=hold,
        reverses_journal_id=reverses,
        counter_member_id=counter.member_id if counter else None,
        counter_balance=counter.balance if counter else None,
        reference=reference,
    )
