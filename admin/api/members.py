"""Members as the back office sees them: the list with tiers, one member's tier status, manual
tier assignment (owner, program_manager, support; audited) and segments; search by card number,
email, phone or name, the member 360-degree view with the full ledger, and merging two records
of one person (owner, support; docs/MEMBER_SUPPORT.md)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, QueryParameter

from loyalty.app.api.params import MemberId, ProgramId
from loyalty.app.api.schemas import INT64_MAX, AwareDateTime, Reason
from loyalty.domain.tiers import TierChangeReason
from loyalty.services.context import Staff
from loyalty.services.ledger import Ledger
from loyalty.services.member_merge import MemberMerges, MergeView
from loyalty.services.member_profile import (
    LEDGER_PAGE,
    MAX_LEDGER_PAGE,
    LedgerPage,
    MemberProfile,
    MemberProfiles,
)
from loyalty.services.member_search import (
    DEFAULT_PAGE,
    MAX_QUERY_LENGTH,
    MemberSearch,
    MemberSearchPage,
)
from loyalty.services.member_search import MAX_PAGE as MAX_SEARCH_PAGE
from loyalty.services.programs import Programs, SegmentsView
from loyalty.services.rule_documents import Code, Labels
from loyalty.services.tiers import MAX_PAGE, MemberPage, Tiers, TierStatusView

from .auth import MEMBER_SUPPORTERS, READERS, requires_role
from .responses import problems


class AssignTierRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    tier: Code
    #: The earned tier applies again from this moment.
    until: AwareDateTime
    reason: Reason


class SegmentsRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    segments: Labels


class MergeRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: The member who keeps the points (the record the person goes on with).
    into_member_id: Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX, examples=[42])]
    reason: Reason


def provide_member_profiles(state: State) -> MemberProfiles:
    ledger: Ledger = state.ledger
    return MemberProfiles(ledger, clock=ledger.clock)


def provide_member_search(state: State) -> MemberSearch:
    ledger: Ledger = state.ledger
    return MemberSearch(ledger.engine)


def provide_member_merges(state: State) -> MemberMerges:
    ledger: Ledger = state.ledger
    return MemberMerges(ledger)


class ManagedMemberController(Controller):
    path = "/programs/{program_id:int}/members"
    tags = ["Admin: members and tiers"]
    dependencies = {"member_profiles": Provide(provide_member_profiles, sync_to_thread=False)}

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

    @get(
        "/{member_id:int}/ledger",
        responses=problems(400, 401, 403, 404, 503),
        summary="A member's ledger in the program: every journal, newest first (keyset pages)",
        description="Includes the actor of manual operations and transfers received.",
    )
    async def ledger(
        self,
        staff: NamedDependency[Staff],
        member_profiles: NamedDependency[MemberProfiles],
        program_id: ProgramId,
        member_id: MemberId,
        cursor: Annotated[
            str | None, QueryParameter(max_length=64, description="next_cursor of the last page")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LEDGER_PAGE)] = LEDGER_PAGE,
    ) -> LedgerPage:
        return await member_profiles.ledger(
            staff, program_id, member_id, cursor=cursor, limit=limit
        )


class MemberSupportController(Controller):
    path = "/members"
    tags = ["Admin: member support"]
    dependencies = {
        "member_search": Provide(provide_member_search, sync_to_thread=False),
        "member_profiles": Provide(provide_member_profiles, sync_to_thread=False),
        "member_merges": Provide(provide_member_merges, sync_to_thread=False),
    }

    @get(
        "/",
        responses=problems(400, 401, 403, 503),
        summary="Search members by card number, email, phone, name or member number",
        description=(
            "One query, read every way it can be: a card number (spaces and dashes allowed), "
            "an email address (exact, any case), a phone number (exact, national numbers read "
            "as German), a member number, or part of a name (case-insensitive). Erased members "
            "are listed without personal data; merged ones with `merged_into_id`."
        ),
    )
    async def search(
        self,
        staff: NamedDependency[Staff],
        member_search: NamedDependency[MemberSearch],
        q: Annotated[
            str,
            QueryParameter(
                min_length=1,
                max_length=MAX_QUERY_LENGTH,
                description="Card number, email, phone, name or member number",
            ),
        ],
        after_id: Annotated[int, QueryParameter(ge=0, le=INT64_MAX)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_SEARCH_PAGE)] = DEFAULT_PAGE,
    ) -> MemberSearchPage:
        return await member_search.search(staff, q, after_id=after_id, limit=limit)

    @get(
        "/{member_id:int}",
        responses=problems(401, 403, 404, 503, s404="No such member (member_not_found)"),
        summary="The member 360-degree view",
        description=(
            "Profile and consents, merges, and per program: balance with lots and expiry "
            "dates, pending holds, tier and its history, the first ledger page (more through "
            "`/programs/{program_id}/members/{member_id}/ledger`), orders with returns, "
            "redemptions, adjustment requests; and the member's audit trail."
        ),
    )
    async def profile(
        self,
        staff: NamedDependency[Staff],
        member_profiles: NamedDependency[MemberProfiles],
        member_id: MemberId,
    ) -> MemberProfile:
        return await member_profiles.profile(staff, member_id)

    @post(
        "/{member_id:int}/merge",
        status_code=200,
        guards=[requires_role(*MEMBER_SUPPORTERS)],
        responses=problems(
            400,
            401,
            403,
            404,
            409,
            503,
            s400="Bad input, or a member merged into itself (merge_into_itself)",
            s404="No such member (member_not_found)",
            s409="A member is erased or merged already (member_erased, member_merged), or the "
            "member to merge has points held for an open sale (member_has_pending_holds)",
        ),
        summary="Merge this member into another one (audited)",
        description=(
            "Both records belong to one person. In one transaction the member's available "
            "points move to `into_member_id` by ledger transfers (per program; lots keep "
            "their expiry dates; the target's account is opened where it has none), the "
            "record is marked merged and can no longer be used (till, wallet, sign-in). "
            "Roles: owner, support."
        ),
    )
    async def merge(
        self,
        staff: NamedDependency[Staff],
        member_merges: NamedDependency[MemberMerges],
        member_id: MemberId,
        data: JSONBody[MergeRequest],
    ) -> MergeView:
        return await member_merges.merge(staff, member_id, data.into_member_id, data.reason)
