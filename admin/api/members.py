"""Members as the back office sees them: the list with tiers, one member's tier status, manual
tier assignment (owner, program_manager, support; audited) and segments."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from loyalty.app.api.params import MemberId, ProgramId
from loyalty.app.api.schemas import INT64_MAX, AwareDateTime, Reason
from loyalty.domain.tiers import TierChangeReason
from loyalty.services.context import Staff
from loyalty.services.programs import Programs, SegmentsView
from loyalty.services.rule_documents import Code, Labels
from loyalty.services.tiers import MAX_PAGE, MemberPage, Tiers, TierStatusView

from .auth import READERS, requires_role
from .responses import problems


class AssignTierRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    tier: Code
    #: The earned tier applies again from this moment.
    until: AwareDateTime
    reason: Reason


class SegmentsRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    segments: Labels


class ManagedMemberController(Controller):
    path = "/programs/{program_id:int}/members"
    tags = ["Admin: members and tiers"]

    @get(
        "/",
        responses=problems(400, 401, 403, 404, 503),
        summary="The program's members with their current tier (pages by member id)",
    )
    async def list_members(
        self,
        staff: NamedDependency[Staff],
        tiers: NamedDependency[Tiers],
        program_id: ProgramId,
        tier: Annotated[str | None, QueryParameter(description="Only this tier")] = None,
        after_id: Annotated[int, QueryParameter(ge=0, le=INT64_MAX)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 50,
    ) -> MemberPage:
        return await tiers.members(staff, program_id, tier=tier, after_id=after_id, limit=limit)

    @get(
        "/{member_id:int}/tier",
        responses=problems(401, 403, 404, 503),
        summary="A member's tier status, progress and history",
    )
    async def tier_status(
        self,
        staff: NamedDependency[Staff],
        tiers: NamedDependency[Tiers],
        program_id: ProgramId,
        member_id: MemberId,
    ) -> TierStatusView:
        return await tiers.status(staff.caller, program_id, member_id)

    @put(
        "/{member_id:int}/tier",
        guards=[requires_role(*READERS)],
        responses=problems(400, 401, 403, 404, 503),
        summary="Assign a tier until a date (audited, journaled as a manual change)",
        description=(
            f"The member holds the higher of this tier and the earned one until `until`; the "
            f"change is journaled with reason `{TierChangeReason.MANUAL}`. "
            "Roles: owner, program_manager, support."
        ),
    )
    async def assign_tier(
        self,
        staff: NamedDependency[Staff],
        tiers: NamedDependency[Tiers],
        program_id: ProgramId,
        member_id: MemberId,
        data: JSONBody[AssignTierRequest],
    ) -> TierStatusView:
        return await tiers.assign(staff, program_id, member_id, data.tier, data.until, data.reason)

    @put(
        "/{member_id:int}/segments",
        responses=problems(400, 401, 403, 404, 503),
        summary="Set the segments earning rules and promotions may be limited to (audited)",
    )
    async def set_segments(
        self,
        staff: NamedDependency[Staff],
        programs: NamedDependency[Programs],
        program_id: ProgramId,
        member_id: MemberId,
        data: JSONBody[SegmentsRequest],
    ) -> SegmentsView:
        return await programs.set_segments(staff, program_id, member_id, data.segments)
