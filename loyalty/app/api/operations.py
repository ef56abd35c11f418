"""Operations addressed by their own id: holds (capture, release), journals (refund,
reverse), and transfers between members."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from loyalty.services.context import Caller
from loyalty.services.ledger import Ledger
from loyalty.services.queries import Queries
from loyalty.services.results import HoldView, JournalView, OperationResult

from .params import (
    READ_PROBLEMS,
    WRITE_PROBLEMS,
    HoldId,
    IdempotencyKey,
    JournalId,
    ProgramId,
    answer,
)
from .schemas import CaptureRequest, RefundRequest, ReverseRequest, TransferRequest


class HoldController(Controller):
    path = "/programs/{program_id:int}/holds/{hold_id:int}"
    tags = ["Ledger"]

    @get("/", responses=READ_PROBLEMS, summary="Get a hold")
    async def get_hold(
        self,
        caller: NamedDependency[Caller],
        queries: NamedDependency[Queries],
        program_id: ProgramId,
        hold_id: HoldId,
    ) -> HoldView:
        return await queries.hold(caller, program_id, hold_id)

    @post(
        "/capture",
        responses=WRITE_PROBLEMS,
        summary="Spend all or part of a hold; the rest is released",
    )
    async def capture(
        self,
        caller: NamedDependency[Caller],
        ledger: NamedDependency[Ledger],
        program_id: ProgramId,
        hold_id: HoldId,
        data: JSONBody[CaptureRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OperationResult]:
        outcome = await ledger.capture(
            caller,
            idempotency_key or "",
            program_id=program_id,
            hold_id=hold_id,
            points=data.points,
        )
        return answer(outcome)

    @post("/release", responses=WRITE_PROBLEMS, summary="Release a hold (order voided)")
    async def release(
        self,
        caller: NamedDependency[Caller],
        ledger: NamedDependency[Ledger],
        program_id: ProgramId,
        hold_id: HoldId,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OperationResult]:
        outcome = await ledger.release(
            caller, idempotency_key or "", program_id=program_id, hold_id=hold_id
        )
        return answer(outcome)


class JournalController(Controller):
    path = "/programs/{program_id:int}/journals/{journal_id:int}"
    tags = ["Ledger"]

    @get("/", responses=READ_PROBLEMS, summary="Get an operation, with how much of it was refunded")
    async def get_journal(
        self,
        caller: NamedDependency[Caller],
        queries: NamedDependency[Queries],
        program_id: ProgramId,
        journal_id: JournalId,
    ) -> JournalView:
        return await queries.journal(caller, program_id, journal_id)

    @post(
        "/refund",
        responses=WRITE_PROBLEMS,
        summary="Refund part or all of an earn, redeem or capture",
        description=(
            "Earned points are clawed back (never below zero: what the member already spent "
            "is not taken); spent points return to the lots they came from."
        ),
    )
    async def refund(
        self,
        caller: NamedDependency[Caller],
        ledger: NamedDependency[Ledger],
        program_id: ProgramId,
        journal_id: JournalId,
        data: JSONBody[RefundRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OperationResult]:
        outcome = await ledger.refund(
            caller,
            idempotency_key or "",
            program_id=program_id,
            journal_id=journal_id,
            points=data.points,
            reason=data.reason,
        )
        return answer(outcome)

    @post(
        "/reverse",
        responses=WRITE_PROBLEMS,
        summary="Reverse what refunds have not yet undone; at most once",
    )
    async def reverse(
        self,
        caller: NamedDependency[Caller],
        ledger: NamedDependency[Ledger],
        program_id: ProgramId,
        journal_id: JournalId,
        data: JSONBody[ReverseRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OperationResult]:
        outcome = await ledger.reverse(
            caller,
            idempotency_key or "",
            program_id=program_id,
            journal_id=journal_id,
            reason=data.reason,
        )
        return answer(outcome)


class TransferController(Controller):
    path = "/programs/{program_id:int}/transfers"
    tags = ["Ledger"]

    @post(
        "/",
        responses=WRITE_PROBLEMS,
        summary="Move points between two members of the program (expiry dates kept)",
    )
    async def transfer(
        self,
        caller: NamedDependency[Caller],
        ledger: NamedDependency[Ledger],
        program_id: ProgramId,
        data: JSONBody[TransferRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OperationResult]:
        outcome = await ledger.transfer(
            caller,
            idempotency_key or "",
            program_id=program_id,
            from_member_id=data.from_member_id,
            to_member_id=data.to_member_id,
            points=data.points,
            reason=data.reason,
        )
        return answer(outcome)
