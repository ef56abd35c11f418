"""Manual adjustments by staff: per-role limits, and four eyes above the program's threshold.

A request (``adjustment_requests``) is checked against the requester's limit
(``loyalty.domain.adjustments``). Within the program's approval threshold it posts at once, in
the transaction that records it (``posted``, with the journal). Above it, it waits
(``pending``): no points move until another staff member whose own limit covers the amount
approves it; the approval and the ledger posting commit together. Others who may adjust can
reject it (with a note); the requester can cancel it. Every step writes an audit entry on the
member (entity ``member``), so the member's audit trail shows them.

Deciding twice is impossible: a decision is a conditional update (``... WHERE status =
'pending'``) whose loser changes no row and is refused with ``adjustment_not_pending``; an
approval's posting also runs under the ledger's idempotency key ``adjustment-request-<id>``, so
a request can never post a second journal, whatever races.

A negative adjustment needs the points: one the member cannot cover now is refused at once
(``insufficient_points``), whether it would post or wait. If the points are gone by the time
it is approved, the approval is refused the same way and the request stays pending (approve it
later, or reject or cancel it).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction
from loyalty.db.tables import adjustment_requests, members, programs
from loyalty.domain.adjustments import (
    Route,
    check_approver,
    check_rejecter,
    decide_request,
    limits_in_force,
)
from loyalty.domain.errors import DomainError, ErrorCode

from .audit import record_change
from .context import Caller, Staff
from .idempotency import fingerprint
from .ledger import Ledger
from .member_merge import require_current_member
from .results import Balance

MAX_PAGE = 200
#: The ledger client under which approvals post (their keys are ``adjustment-request-<id>``).
APPROVALS_CLIENT = "admin:adjustment-approvals"
#: journals.actor holds at most this many characters.
MAX_JOURNAL_ACTOR = 200


class AdjustmentStatus:
    PENDING = "pending"
    POSTED = "posted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    ALL = (PENDING, POSTED, REJECTED, CANCELLED)


class AdjustmentView(msgspec.Struct, frozen=True, kw_only=True):
    request_id: int
    program_id: int
    member_id: int
    #: The member's name as it is now (erased members: the placeholder name).
    member_name: str
    #: Signed: positive credits, negative debits.
    points: int
    reason: str
    #: pending, posted, rejected or cancelled.
    status: str
    requested_by: int
    requested_by_label: str
    requested_at: datetime
    decided_by: int | None = None
    decided_by_label: str | None = None
    decided_at: datetime | None = None
    decision_note: str | None = None
    #: The ledger journal that moved the points (posted requests).
    journal_id: int | None = None
    #: Whether it needed (or needs) a second person's approval.
    needs_approval: bool
    #: The member's balance after this answer's change (write answers only).
    balance: Balance | None = None


class AdjustmentPage(msgspec.Struct, frozen=True):
    items: list[AdjustmentView]
    #: Pass as ``before_id`` for the next (older) page; None on the last page.
    next_before_id: int | None


class Adjustments:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    # -- asking -------------------------------------------------------------------------------

    async def request(
        self,
        staff: Staff,
        program_id: int,
        member_id: int,
        points: int,
        reason: str,
        *,
        key: str | None = None,
    ) -> AdjustmentView:
        """Ask for an adjustment: posted at once within the threshold, pending above it.
        ``key`` (an Idempotency-Key the client sent) makes a retry answer the first outcome."""
        reason = reason.strip()
        if not reason:
            raise DomainError(ErrorCode.REASON_REQUIRED, "say why the points are adjusted")

        async def work(conn: AsyncConnection) -> AdjustmentView:
            return await self._request(conn, staff, program_id, member_id, points, reason)

        outcome = await self._ledger.executor.run(
            client_id=staff.caller.client_id,
            key=key or f"adjustment-{uuid.uuid4()}",
            request_hash=fingerprint("adjustment-request", program_id, member_id, points, reason),
            result_type=AdjustmentView,
            work=work,
            journal_id_of=lambda view: view.journal_id,
            # A refusal is kept for the client's own key only (a random one is never retried).
            remember_refusals=key is not None,
        )
        return outcome.result

    async def _request(
        self,
        conn: AsyncConnection,
        staff: Staff,
        program_id: int,
        member_id: int,
        points: int,
        reason: str,
    ) -> AdjustmentView:
        now = self._ledger.clock()
        policy = await _policy(conn, staff.caller, program_id)
        route = decide_request(staff.role, points, policy.limits, policy.threshold)
        await require_current_member(conn, staff.merchant_id, member_id)
        account = await self._ledger.lock_member(conn, staff.caller, program_id, member_id, now)
        available = account.posted - account.held
        if points < 0 and -points > available:
            raise DomainError(
                ErrorCode.INSUFFICIENT_POINTS,
                "the member does not have enough available points",
                requested=-points,
                available=available,
            )
        request_id = await conn.scalar(
            adjustment_requests.insert()
            .values(
                program_id=program_id,
                member_id=member_id,
                points=points,
                reason=reason,
                status=AdjustmentStatus.PENDING,
                requested_by=staff.staff_id,
                requested_by_label=staff.label,
                requested_at=now,
            )
            .returning(adjustment_requests.c.id)
        )
        assert request_id is not None
        balance = account.balance
        if route is Route.POST_NOW:
            result = await self._ledger.adjust_within(
                conn,
                now,
                staff.caller,
                account,
                points,
                reason=reason,
                actor=staff.label[:MAX_JOURNAL_ACTOR],
            )
            balance = result.balance
            await conn.execute(
                update(adjustment_requests)
                .where(adjustment_requests.c.id == request_id)
                .values(
                    status=AdjustmentStatus.POSTED, decided_at=now, journal_id=result.journal_id
                )
            )
        view = await _view(conn, int(request_id), balance)
        action = "adjustment.post" if route is Route.POST_NOW else "adjustment.request"
        await _audit(conn, staff, action, view, now)
        return view

    # -- deciding -----------------------------------------------------------------------------

    async def approve(
        self, staff: Staff, program_id: int, request_id: int, note: str | None = None
    ) -> AdjustmentView:
        """Another staff member whose limit covers the amount posts a pending request."""

        async def work(conn: AsyncConnection) -> AdjustmentView:
            return await self._approve(conn, staff, program_id, request_id, _note(note))

        try:
            outcome = await self._ledger.executor.run(
                client_id=APPROVALS_CLIENT,
                key=f"adjustment-request-{request_id}",
                request_hash=fingerprint("adjustment-approval", request_id),
                result_type=AdjustmentView,
                work=work,
                journal_id_of=lambda view: view.journal_id,
                # Refusals (not pending, four eyes, too few points now) must not stick to the
                # key: the request may still be approved later, by someone else.
                remember_refusals=False,
            )
        except DomainError as error:
            if error.code is not ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT:
                raise
            raise DomainError(
                ErrorCode.ADJUSTMENT_NOT_PENDING,
                "another staff member is deciding this request right now",
                request_id=request_id,
            ) from None
        if outcome.replayed:
            # Posted before (by an approval that won a race): never a second time.
            raise _not_pending(request_id, AdjustmentStatus.POSTED)
        return outcome.result

    async def _approve(
        self,
        conn: AsyncConnection,
        staff: Staff,
        program_id: int,
        request_id: int,
        note: str | None,
    ) -> AdjustmentView:
        now = self._ledger.clock()
        policy = await _policy(conn, staff.caller, program_id)
        row = await _pending_row(conn, program_id, request_id)
        check_approver(staff.staff_id, staff.role, row.requested_by, row.points, policy.limits)
        await _decide(conn, staff, row.id, AdjustmentStatus.POSTED, note, now)
        await require_current_member(conn, staff.merchant_id, row.member_id)
        account = await self._ledger.lock_member(conn, staff.caller, program_id, row.member_id, now)
        actor = f"{row.requested_by_label}, approved by {staff.label}"
        result = await self._ledger.adjust_within(
            conn,
            now,
            Caller(client_id=APPROVALS_CLIENT, merchant_id=staff.merchant_id),
            account,
            row.points,
            reason=row.reason,
            actor=actor[:MAX_JOURNAL_ACTOR],
        )
        await conn.execute(
            update(adjustment_requests)
            .where(adjustment_requests.c.id == row.id)
            .values(journal_id=result.journal_id)
        )
        view = await _view(conn, row.id, result.balance)
        await _audit(conn, staff, "adjustment.approve", view, now)
        return view

    async def reject(
        self, staff: Staff, program_id: int, request_id: int, note: str | None = None
    ) -> AdjustmentView:
        """Someone else who may adjust turns a pending request down; no points move."""

        async def work(conn: AsyncConnection) -> AdjustmentView:
            now = self._ledger.clock()
            policy = await _policy(conn, staff.caller, program_id)
            row = await _pending_row(conn, program_id, request_id)
            check_rejecter(staff.staff_id, staff.role, row.requested_by, policy.limits)
            await _decide(conn, staff, row.id, AdjustmentStatus.REJECTED, _note(note), now)
            view = await _view(conn, row.id)
            await _audit(conn, staff, "adjustment.reject", view, now)
            return view

        return await in_transaction(self._ledger.engine, work)

    async def cancel(
        self, staff: Staff, program_id: int, request_id: int, note: str | None = None
    ) -> AdjustmentView:
        """The requester withdraws their pending request."""

        async def work(conn: AsyncConnection) -> AdjustmentView:
            now = self._ledger.clock()
            await _policy(conn, staff.caller, program_id)
            row = await _pending_row(conn, program_id, request_id)
            if row.requested_by != staff.staff_id:
                raise DomainError(
                    ErrorCode.FORBIDDEN,
                    "only the staff member who asked may cancel a request; reject it instead",
                    request_id=request_id,
                )
            changed = await conn.execute(
                update(adjustment_requests)
                .where(
                    adjustment_requests.c.id == row.id,
                    adjustment_requests.c.status == AdjustmentStatus.PENDING,
                )
                .values(
                    status=AdjustmentStatus.CANCELLED, decided_at=now, decision_note=_note(note)
                )
            )
            if not changed.rowcount:
                raise await _not_pending_now(conn, row.id)
            view = await _view(conn, row.id)
            await _audit(conn, staff, "adjustment.cancel", view, now)
            return view

        return await in_transaction(self._ledger.engine, work)

    # -- reading ------------------------------------------------------------------------------

    async def list_requests(
        self,
        staff: Staff,
        *,
        program_id: int | None = None,
        member_id: int | None = None,
        status: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> AdjustmentPage:
        """The merchant's requests (of one program and/or member when given), newest first."""
        limit = max(1, min(limit, MAX_PAGE))
        if status is not None and status not in AdjustmentStatus.ALL:
            raise DomainError(
                ErrorCode.VALIDATION_FAILED,
                f"status must be one of {', '.join(AdjustmentStatus.ALL)}",
                field="status",
            )

        async def work(conn: AsyncConnection) -> AdjustmentPage:
            if program_id is not None:
                await _policy(conn, staff.caller, program_id)
            query = view_query().where(programs.c.merchant_id == staff.merchant_id)
            if program_id is not None:
                query = query.where(adjustment_requests.c.program_id == program_id)
            if member_id is not None:
                query = query.where(adjustment_requests.c.member_id == member_id)
            if status is not None:
                query = query.where(adjustment_requests.c.status == status)
            if before_id is not None:
                query = query.where(adjustment_requests.c.id < before_id)
            rows = (
                await conn.execute(query.order_by(adjustment_requests.c.id.desc()).limit(limit + 1))
            ).all()
            items = [view_of(row) for row in rows[:limit]]
            more = len(rows) > limit
            return AdjustmentPage(
                items=items, next_before_id=items[-1].request_id if more else None
            )

        return await in_transaction(self._ledger.engine, work, read_only=True)


# --- helpers -----------------------------------------------------------------------------------


class _Policy(msgspec.Struct, frozen=True):
    threshold: int
    limits: dict[str, int | None]


async def _policy(conn: AsyncConnection, caller: Caller, program_id: int) -> _Policy:
    row = (
        await conn.execute(
            select(programs.c.adjustment_approval_threshold, programs.c.adjustment_limits).where(
                programs.c.id == program_id, programs.c.merchant_id == caller.merchant_id
            )
        )
    ).first()
    if row is None:
        raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program", program_id=program_id)
    return _Policy(
        threshold=int(row.adjustment_approval_threshold),
        limits=limits_in_force(row.adjustment_limits),
    )


async def _pending_row(conn: AsyncConnection, program_id: int, request_id: int) -> Any:
    """The request (of the program the caller's merchant owns: ``_policy`` checked it), if it is
    still pending."""
    row = (
        await conn.execute(
            select(adjustment_requests).where(
                adjustment_requests.c.id == request_id,
                adjustment_requests.c.program_id == program_id,
            )
        )
    ).first()
    if row is None:
        raise DomainError(
            ErrorCode.ADJUSTMENT_REQUEST_NOT_FOUND,
            "no such adjustment request",
            request_id=request_id,
        )
    if row.status != AdjustmentStatus.PENDING:
        raise _not_pending(request_id, row.status)
    return row


async def _decide(
    conn: AsyncConnection,
    staff: Staff,
    request_id: int,
    status: str,
    note: str | None,
    at: datetime,
) -> None:
    """Take the decision if nobody took one meanwhile: the row changes only while pending."""
    changed = await conn.execute(
        update(adjustment_requests)
        .where(
            adjustment_requests.c.id == request_id,
            adjustment_requests.c.status == AdjustmentStatus.PENDING,
        )
        .values(
            status=status,
            decided_by=staff.staff_id,
            decided_by_label=staff.label,
            decided_at=at,
            decision_note=note,
        )
    )
    if not changed.rowcount:
        raise await _not_pending_now(conn, request_id)


async def _not_pending_now(conn: AsyncConnection, request_id: int) -> DomainError:
    status = await conn.scalar(
        select(adjustment_requests.c.status).where(adjustment_requests.c.id == request_id)
    )
    return _not_pending(request_id, str(status))


def _not_pending(request_id: int, status: str) -> DomainError:
    return DomainError(
        ErrorCode.ADJUSTMENT_NOT_PENDING,
        f"this adjustment request is {status} already; nothing was changed",
        request_id=request_id,
        status=status,
    )


def _note(note: str | None) -> str | None:
    if note is None:
        return None
    return note.strip() or None


def view_query() -> Select[Any]:
    return (
        select(adjustment_requests, members.c.display_name.label("member_name"))
        .join(members, members.c.id == adjustment_requests.c.member_id)
        .join(programs, programs.c.id == adjustment_requests.c.program_id)
    )


def view_of(row: Any, balance: Balance | None = None) -> AdjustmentView:
    return AdjustmentView(
        request_id=row.id,
        program_id=row.program_id,
        member_id=row.member_id,
        member_name=row.member_name,
        points=row.points,
        reason=row.reason,
        status=row.status,
        requested_by=row.requested_by,
        requested_by_label=row.requested_by_label,
        requested_at=row.requested_at,
        decided_by=row.decided_by,
        decided_by_label=row.decided_by_label,
        decided_at=row.decided_at,
        decision_note=row.decision_note,
        journal_id=row.journal_id,
        # A request that was never pending posted at once; the rest waited for a second person.
        needs_approval=not (row.status == AdjustmentStatus.POSTED and row.decided_by is None),
        balance=balance,
    )


async def _view(
    conn: AsyncConnection, request_id: int, balance: Balance | None = None
) -> AdjustmentView:
    row = (await conn.execute(view_query().where(adjustment_requests.c.id == request_id))).one()
    return view_of(row, balance)


async def _audit(
    conn: AsyncConnection, staff: Staff, action: str, view: AdjustmentView, at: datetime
) -> None:
    """On the member, so that their audit trail shows every step of the request."""
    after = msgspec.to_builtins(view)
    after.pop("balance", None)
    await record_change(
        conn,
        staff,
        action=action,
        entity="member",
        entity_id=view.member_id,
        at=at,
        after=after,
        program_id=view.program_id,
    )
