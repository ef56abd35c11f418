"""Manual point adjustments with per-role limits and four-eyes approval (docs/MEMBER_SUPPORT.md).

Any back-office role may ask; the program's ``adjustment_limits`` decide how many points each
role may move (the defaults: owner no limit, support 10,000, program_manager 2,000). Within the
program's ``adjustment_approval_threshold`` the points post at once; above it the request waits
for another staff member to approve (whose own limit must cover it), reject, or for the
requester to cancel it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, PathParameter, QueryParameter

from loyalty.app.api.params import IdempotencyKey, MemberId, ProgramId
from loyalty.app.api.schemas import INT64_MAX, Reason
from loyalty.services.adjustments import (
    MAX_PAGE,
    AdjustmentPage,
    Adjustments,
    AdjustmentView,
)
from loyalty.services.context import Staff
from loyalty.services.ledger import Ledger

from .responses import problems

RequestId = Annotated[int, PathParameter(gt=0, le=INT64_MAX, description="Adjustment request id")]
Status = Annotated[
    str | None,
    QueryParameter(
        description="Only requests in this status: pending, posted, rejected, cancelled"
    ),
]
BeforeId = Annotated[
    int | None, QueryParameter(ge=1, le=INT64_MAX, description="next_before_id of the last page")
]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)]
#: The most points one request may name (far beyond any sensible limit; the limits decide).
MAX_ADJUSTMENT = 10**12


class AdjustmentRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Positive credits (a new lot, expiring by the program's policy), negative debits.
    points: Annotated[
        int, msgspec.Meta(ge=-MAX_ADJUSTMENT, le=MAX_ADJUSTMENT, examples=[1500, -200])
    ]
    reason: Reason


class DecisionRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    note: Annotated[str, msgspec.Meta(max_length=500, examples=["Checked the receipt"])] | None = (
        None
    )


def provide_adjustments(state: State) -> Adjustments:
    ledger: Ledger = state.ledger
    return Adjustments(ledger)


_DEPENDENCIES = {"adjustments": Provide(provide_adjustments, sync_to_thread=False)}
_WRITE = problems(
    400,
    401,
    403,
    404,
    409,
    422,
    503,
    s403="Beyond the role's limit (adjustment_limit_exceeded), the requester deciding their "
    "own request (four_eyes_required), or not the requester cancelling (forbidden)",
    s404="No such program, member or request (program_not_found, member_not_found, "
    "member_not_enrolled, adjustment_request_not_found)",
    s409="Decided already (adjustment_not_pending); the member was merged or erased "
    "(member_merged, member_erased)",
    s422="A debit beyond the member's available points (insufficient_points)",
)


class AdjustmentController(Controller):
    path = "/programs/{program_id:int}"
    tags = ["Admin: member support"]
    dependencies = _DEPENDENCIES

    @post(
        "/members/{member_id:int}/adjustments",
        responses=_WRITE,
        summary="Adjust a member's points (posts at once, or waits for a second person)",
        description=(
            "Within the program's `adjustment_approval_threshold` (either sign) the points post "
            "at once (`status: posted`, with the journal); above it the request is `pending` "
            "and no points move until another staff member approves it. Beyond the role's "
            "limit in `adjustment_limits` it is refused (403 `adjustment_limit_exceeded`). "
            "An optional Idempotency-Key makes a retry answer the first outcome. "
            "Roles: any back-office role with a limit in the program."
        ),
    )
    async def request_adjustment(
        self,
        staff: NamedDependency[Staff],
        adjustments: NamedDependency[Adjustments],
        program_id: ProgramId,
        member_id: MemberId,
        data: JSONBody[AdjustmentRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[AdjustmentView]:
        view = await adjustments.request(
            staff, program_id, member_id, data.points, data.reason, key=idempotency_key
        )
        return Response(view, status_code=201)

    @get(
        "/adjustments",
        responses=problems(400, 401, 403, 404, 503),
        summary="The program's adjustment requests, newest first (keyset pages)",
    )
    async def list_adjustments(
        self,
        staff: NamedDependency[Staff],
        adjustments: NamedDependency[Adjustments],
        program_id: ProgramId,
        status: Status = None,
        member_id: Annotated[int | None, QueryParameter(ge=1, le=INT64_MAX)] = None,
        before_id: BeforeId = None,
        limit: Limit = 50,
    ) -> AdjustmentPage:
        return await adjustments.list_requests(
            staff,
            program_id=program_id,
            member_id=member_id,
            status=status,
            before_id=before_id,
            limit=limit,
        )

    @post(
        "/adjustments/{request_id:int}/approve",
        status_code=200,
        responses=_WRITE,
        summary="Approve a pending adjustment: its points post now (four eyes)",
        description=(
            "By a staff member other than the requester whose own role limit covers the "
            "amount. The approval and the ledger posting commit together; a request is posted "
            "at most once (a second approval: 409 `adjustment_not_pending`)."
        ),
    )
    async def approve(
        self,
        staff: NamedDependency[Staff],
        adjustments: NamedDependency[Adjustments],
        program_id: ProgramId,
        request_id: RequestId,
        data: JSONBody[DecisionRequest],
    ) -> AdjustmentView:
        return await adjustments.approve(staff, program_id, request_id, data.note)

    @post(
        "/adjustments/{request_id:int}/reject",
        status_code=200,
        responses=_WRITE,
        summary="Reject a pending adjustment (no points move)",
        description="By a staff member other than the requester who may adjust in the program.",
    )
    async def reject(
        self,
        staff: NamedDependency[Staff],
        adjustments: NamedDependency[Adjustments],
        program_id: ProgramId,
        request_id: RequestId,
        data: JSONBody[DecisionRequest],
    ) -> AdjustmentView:
        return await adjustments.reject(staff, program_id, request_id, data.note)

    @post(
        "/adjustments/{request_id:int}/cancel",
        status_code=200,
        responses=_WRITE,
        summary="Cancel your own pending adjustment request",
    )
    async def cancel(
        self,
        staff: NamedDependency[Staff],
        adjustments: NamedDependency[Adjustments],
        program_id: ProgramId,
        request_id: RequestId,
        data: JSONBody[DecisionRequest],
    ) -> AdjustmentView:
        return await adjustments.cancel(staff, program_id, request_id, data.note)


class MerchantAdjustmentController(Controller):
    path = "/adjustments"
    tags = ["Admin: member support"]
    dependencies = _DEPENDENCIES

    @get(
        "/",
        responses=problems(400, 401, 403, 503),
        summary="Adjustment requests of all the merchant's programs (e.g. pending ones)",
    )
    async def list_all(
        self,
        staff: NamedDependency[Staff],
        adjustments: NamedDependency[Adjustments],
        status: Status = None,
        before_id: BeforeId = None,
        limit: Limit = 50,
    ) -> AdjustmentPage:
        return await adjustments.list_requests(
            staff, status=status, before_id=before_id, limit=limit
        )
