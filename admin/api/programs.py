"""Programs as a manager sees them: create, read, and change names, point value and rounding."""

from __future__ import annotations

import uuid

from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from loyalty.app.api.params import ProgramId
from loyalty.app.api.schemas import CreateProgramRequest
from loyalty.services.context import Staff
from loyalty.services.programs import (
    ManagedProgramView,
    PointValue,
    ProgramChanges,
    Programs,
    ProgramSettings,
    Text200,
    Text2000,
)
from loyalty.services.results import ProgramView
from loyalty.services.rule_documents import RoundingName

from .auth import PROGRAM_CONFIGURATORS, requires_role
from .responses import problems


class ManagedProgramRequest(CreateProgramRequest, kw_only=True):
    name_de: Text200 | None = None
    name_en: Text200 | None = None
    description_de: Text2000 = ""
    description_en: Text2000 = ""
    point_value_micros: PointValue = 10_000
    rounding: RoundingName = "down"


class ManagedProgramController(Controller):
    path = "/programs"
    tags = ["Admin: programs"]

    @get("/", responses=problems(401, 403, 503), summary="List the merchant's programs")
    async def list_programs(
        self, staff: NamedDependency[Staff], programs: NamedDependency[Programs]
    ) -> list[ManagedProgramView]:
        return await programs.managed_programs(staff.caller)

    @get(
        "/{program_id:int}",
        responses=problems(401, 403, 404, 503, s404="No such program (program_not_found)"),
        summary="Get a program",
    )
    async def get_program(
        self,
        staff: NamedDependency[Staff],
        programs: NamedDependency[Programs],
        program_id: ProgramId,
    ) -> ManagedProgramView:
        return await programs.managed_program(staff.caller, program_id)

    @post(
        "/",
        guards=[requires_role(*PROGRAM_CONFIGURATORS)],
        responses=problems(400, 401, 403, 409, 503, s409="The code is taken (program_code_taken)"),
        summary="Create a program (audited)",
        description="It starts with rule-set version 1: one point per unit of currency spent.",
    )
    async def create_program(
        self,
        staff: NamedDependency[Staff],
        programs: NamedDependency[Programs],
        data: JSONBody[ManagedProgramRequest],
    ) -> ProgramView:
        outcome = await programs.create_program(
            staff.caller,
            f"admin-{uuid.uuid4()}",
            code=data.code,
            name=data.name,
            currency=data.currency,
            timezone=data.timezone,
            expiry_kind=data.expiry_kind,
            expiry_value=data.expiry_value,
            hold_timeout_seconds=data.hold_timeout_seconds,
            settings=ProgramSettings(
                name_de=data.name_de or data.name,
                name_en=data.name_en or data.name,
                description_de=data.description_de,
                description_en=data.description_en,
                point_value_micros=data.point_value_micros,
                rounding=data.rounding,
            ),
            staff=staff,
        )
        return outcome.result

    @patch(
        "/{program_id:int}",
        guards=[requires_role(*PROGRAM_CONFIGURATORS)],
        responses=problems(400, 401, 403, 404, 503),
        summary="Change a program's names, descriptions, point value, rounding (audited)",
        description=(
            "Only the fields sent change. `adjustment_approval_threshold` and "
            "`adjustment_limits` set the manual-adjustment policy (docs/MEMBER_SUPPORT.md): "
            "`adjustment_limits: null` goes back to the defaults. "
            "Roles: owner, program_manager."
        ),
    )
    async def update_program(
        self,
        staff: NamedDependency[Staff],
        programs: NamedDependency[Programs],
        program_id: ProgramId,
        data: JSONBody[ProgramChanges],
    ) -> ManagedProgramView:
        return await programs.update_program(staff, program_id, data)
