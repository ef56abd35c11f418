"""Programs and enrollment."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from loyalty.services.context import Caller
from loyalty.services.programs import Programs
from loyalty.services.queries import Queries
from loyalty.services.results import EnrollmentResult, ProgramView

from .params import READ_PROBLEMS, WRITE_PROBLEMS, IdempotencyKey, ProgramId, answer
from .schemas import CreateProgramRequest, EnrollRequest


class ProgramController(Controller):
    path = "/programs"
    tags = ["Programs"]

    @get("/", responses=READ_PROBLEMS, summary="List the merchant's programs")
    async def list_programs(
        self, caller: NamedDependency[Caller], queries: NamedDependency[Queries]
    ) -> list[ProgramView]:
        return await queries.programs(caller)

    @post("/", responses=WRITE_PROBLEMS, summary="Create a program")
    async def create_program(
        self,
        caller: NamedDependency[Caller],
        programs: NamedDependency[Programs],
        data: JSONBody[CreateProgramRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ProgramView]:
        outcome = await programs.create_program(
            caller,
            idempotency_key or "",
            code=data.code,
            name=data.name,
            currency=data.currency,
            timezone=data.timezone,
            expiry_kind=data.expiry_kind,
            expiry_value=data.expiry_value,
            hold_timeout_seconds=data.hold_timeout_seconds,
        )
        return answer(outcome)

    @get("/{program_id:int}", responses=READ_PROBLEMS, summary="Get a program")
    async def get_program(
        self,
        caller: NamedDependency[Caller],
        queries: NamedDependency[Queries],
        program_id: ProgramId,
    ) -> ProgramView:
        return await queries.program(caller, program_id)

    @post(
        "/{program_id:int}/members",
        responses=WRITE_PROBLEMS,
        summary="Enroll a member",
        description="Enroll an existing member (member_id) or create and enroll a new one.",
    )
    async def enroll(
        self,
        caller: NamedDependency[Caller],
        programs: NamedDependency[Programs],
        program_id: ProgramId,
        data: JSONBody[EnrollRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[EnrollmentResult]:
        outcome = await programs.enroll(
            caller,
            idempotency_key or "",
            program_id=program_id,
            member_id=data.member_id,
            display_name=data.display_name,
            email=data.email,
        )
        return answer(outcome)
