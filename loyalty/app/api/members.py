"""A member's account in a program: balance, history, and the operations on it."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from loyalty.services.context import Caller
from loyalty.services.ledger import Ledger
from loyalty.services.queries import MAX_PAGE_SIZE, Queries
from loyalty.services.results import BalanceView, HistoryPage, MemberView, OperationResult

from .params import READ_PROBLEMS, WRITE_PROBLEMS, IdempotencyKey, MemberId, ProgramId, answer
from .schemas import AdjustRequest, EarnRequest, HoldRequest, RedeemRequest


class MemberController(Controller):
    path = "/members"
    tags = ["Members"]

    @get(
        "/{member_id:int}",
        responses=READ_PROBLEMS,
        summary="Get a member and the programs they are enrolled in",
    )
    async def get_member(
        self,
        caller: NamedDependency[Caller],
        queries: NamedDependency[Queries],
        member_id: MemberId,
    ) -> MemberView:
        return await queries.member(caller, member_id)


class AccountController(Controller):
    path = "/programs/{program_id:int}/members/{member_id:int}"
    tags = ["Ledger"]

    @get(
        "/balance",
        responses=READ_PROBLEMS,
        summary="Balance: posted, held, available, and points by expiry date",
    )
    async def balance(
        self,
        caller: NamedDependency[Caller],
        queries: NamedDependency[Queries],
        program_id: ProgramId,
        member_id: MemberId,
    ) -> BalanceView:
        return await queries.balance(caller, program_id, member_id)

    @get(
        "/history",
        responses=READ_PROBLEMS,
        summary="Operations on the account, newest first (keyset pages)",
    )
    async def history(
        self,
        caller: NamedDependency[Caller],
        queries: NamedDependency[Queries],
        program_id: ProgramId,
        member_id: MemberId,
        cursor: Annotated[
            str | None,
            QueryParameter(max_length=64, description="next_cursor of the last page"),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)] = 50,
    ) -> HistoryPage:
        return await queries.history(caller, program_id, member_id, cursor=cursor, limit=limit)

    @post(
        "/earn",
        responses=WRITE_PROBLEMS,
        summary="Credit points (a new lot expiring by the program's policy)",
    )
    async def earn(
        self,
        caller: NamedDependency[Caller],
        ledger: NamedDependency[Ledger],
        program_id: ProgramId,
        member_id: MemberId,
        data: JSONBody[EarnRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OperationResult]:
        outcome = await ledger.earn(
            caller,
            idempotency_key or "",
            program_id=program_id,
            member_id=member_id,
            points=data.points,
            effective_at=data.effective_at,
            reference=data.reference,
        )
        return answer(outcome)

    @post(
        "/redeem", responses=WRITE_PROBLEMS, summary="Spend points at once (soonest-expiring first)"
    )
    async def redeem(
        self,
        caller: NamedDependency[Caller],
        ledger: NamedDependency[Ledger],
        program_id: ProgramId,
        member_id: MemberId,
        data: JSONBody[RedeemRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OperationResult]:
        outcome = await ledger.redeem(
            caller,
            idempotency_key or "",
            program_id=program_id,
            member_id=member_id,
            points=data.points,
            reference=data.reference,
        )
        return answer(outcome)

    @post(
        "/holds",
        responses=WRITE_PROBLEMS,
        summary="Hold points for an open order (captured or released later)",
    )
    async def hold(
        self,
        caller: NamedDependency[Caller],
        ledger: NamedDependency[Ledger],
        program_id: ProgramId,
        member_id: MemberId,
        data: JSONBody[HoldRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OperationResult]:
        outcome = await ledger.hold(
            caller,
            idempotency_key or "",
            program_id=program_id,
            member_id=member_id,
            points=data.points,
            timeout_seconds=data.timeout_seconds,
            reference=data.reference,
        )
        return answer(outcome)

    @post(
        "/adjustments",
        responses=WRITE_PROBLEMS,
        summary="Manual adjustment by a person, with a reason",
    )
    async def adjust(
        self,
        caller: NamedDependency[Caller],
        ledger: NamedDependency[Ledger],
        program_id: ProgramId,
        member_id: MemberId,
        data: JSONBody[AdjustRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OperationResult]:
        outcome = await ledger.adjust(
            caller,
            idempotency_key or "",
            program_id=program_id,
            member_id=member_id,
            points=data.points,
            reason=data.reason,
            actor=data.actor,
        )
        return answer(outcome)
