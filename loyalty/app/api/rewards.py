"""Rewards for API clients (tills, the member wallet): the catalogue, what a member can redeem,
redeeming (a hold completed or released with the order, or a voucher), and redemptions."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from msgspec import Meta

from loyalty.domain.basket import MAX_LINES
from loyalty.services.context import Caller
from loyalty.services.quotes import EXAMPLE_BASKET, BasketDocument, BasketLineDocument
from loyalty.services.rewards import (
    MAX_REDEMPTIONS_LISTED,
    AvailableRewards,
    Mode,
    RedemptionResult,
    RedemptionView,
    Rewards,
    RewardView,
)

from .params import (
    READ_PROBLEMS,
    WRITE_PROBLEMS,
    IdempotencyKey,
    MemberId,
    ProgramId,
    answer,
    problem_responses,
)
from .schemas import INT64_MAX, Points, Reference

RewardCode = Annotated[
    str, PathParameter(min_length=1, max_length=64, description="The reward's code")
]
RedemptionId = Annotated[int, PathParameter(gt=0, le=INT64_MAX, description="Redemption id")]

#: A redemption may also be refused because the member's tier may not redeem the reward.
REDEEM_PROBLEMS = {
    **WRITE_PROBLEMS,
    **problem_responses({403: "The reward is reserved for other tiers (reward_tier_restricted)"}),
}


class RedeemBasket(BasketDocument):
    """The open order the reward applies to: a basket as orders take it, with at least one line."""

    lines: Annotated[list[BasketLineDocument], Meta(min_length=1, max_length=MAX_LINES)]


class RedeemRewardRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: ``hold``: the points are held until the order completes (``.../complete``) or is voided
    #: (``.../release``); ``voucher``: they are spent now and a 12-digit voucher code issued.
    mode: Annotated[
        Mode,
        Meta(
            description=(
                "hold: reserve the points until the order completes or is voided; "
                "voucher: spend them now and issue a voucher code"
            ),
            examples=["hold"],
        ),
    ]
    #: Points-as-money only: how many points the member uses (a multiple of the reward's step).
    points: Points | None = None
    basket: Annotated[RedeemBasket, Meta(examples=[EXAMPLE_BASKET])] | None = None
    reference: Reference | None = None


class RewardCatalogueController(Controller):
    path = "/programs/{program_id:int}"
    tags = ["Rewards"]

    @get("/rewards", responses=READ_PROBLEMS, summary="The program's active rewards (catalogue)")
    async def catalogue(
        self,
        caller: NamedDependency[Caller],
        rewards: NamedDependency[Rewards],
        program_id: ProgramId,
    ) -> list[RewardView]:
        return await rewards.list_rewards(caller, program_id)

    @get(
        "/members/{member_id:int}/rewards",
        responses=READ_PROBLEMS,
        summary="The rewards a member can redeem now, and why not where not",
        description=(
            "Every active reward with `redeemable` and, when false, the `refusal` code a "
            "redemption would get now: reward_not_yet_valid, reward_expired, "
            "reward_tier_restricted, reward_limit_reached, reward_out_of_stock or "
            "insufficient_points (the member's available points are below `points_from`)."
        ),
    )
    async def available(
        self,
        caller: NamedDependency[Caller],
        rewards: NamedDependency[Rewards],
        program_id: ProgramId,
        member_id: MemberId,
    ) -> AvailableRewards:
        return await rewards.available_rewards(caller, program_id, member_id)

    @post(
        "/members/{member_id:int}/rewards/{reward_code:str}/redeem",
        responses=REDEEM_PROBLEMS,
        summary="Redeem a reward: hold its points for the order, or spend them for a voucher",
        description=(
            "Checks the reward (active, validity window, tier, per-member limit, stock), prices "
            "it against the basket when one is sent, and in one transaction holds (`hold`) or "
            "spends (`voucher`) the points and takes a unit of stock. A held redemption is "
            "completed or released through `/redemptions/{redemption_id}/complete` or "
            "`/release`; when its hold times out it is released by itself."
        ),
    )
    async def redeem(
        self,
        caller: NamedDependency[Caller],
        rewards: NamedDependency[Rewards],
        program_id: ProgramId,
        member_id: MemberId,
        reward_code: RewardCode,
        data: JSONBody[RedeemRewardRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[RedemptionResult]:
        outcome = await rewards.redeem_reward(
            caller,
            idempotency_key or "",
            program_id=program_id,
            member_id=member_id,
            reward_code=reward_code,
            mode=data.mode,
            points=data.points,
            basket=None if data.basket is None else data.basket.basket(),
            reference=data.reference,
        )
        return answer(outcome)

    @get(
        "/members/{member_id:int}/redemptions",
        responses=READ_PROBLEMS,
        summary="A member's redemptions, newest first",
    )
    async def member_redemptions(
        self,
        caller: NamedDependency[Caller],
        rewards: NamedDependency[Rewards],
        program_id: ProgramId,
        member_id: MemberId,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_REDEMPTIONS_LISTED)] = 50,
    ) -> list[RedemptionView]:
        return await rewards.list_redemptions(caller, program_id, member_id, limit=limit)


class RedemptionController(Controller):
    path = "/programs/{program_id:int}/redemptions/{redemption_id:int}"
    tags = ["Rewards"]

    @get("/", responses=READ_PROBLEMS, summary="Get a redemption")
    async def get_redemption(
        self,
        caller: NamedDependency[Caller],
        rewards: NamedDependency[Rewards],
        program_id: ProgramId,
        redemption_id: RedemptionId,
    ) -> RedemptionView:
        return await rewards.get_redemption(caller, program_id, redemption_id)

    @post(
        "/complete",
        responses=WRITE_PROBLEMS,
        summary="The order completed: spend the held points",
        description="redemption_not_pending (409) when the redemption is not pending, including "
        "when its hold timed out (the redemption is then released).",
    )
    async def complete(
        self,
        caller: NamedDependency[Caller],
        rewards: NamedDependency[Rewards],
        program_id: ProgramId,
        redemption_id: RedemptionId,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[RedemptionResult]:
        outcome = await rewards.complete_redemption(
            caller, idempotency_key or "", program_id=program_id, redemption_id=redemption_id
        )
        return answer(outcome)

    @post(
        "/release",
        responses=WRITE_PROBLEMS,
        summary="The order was voided: give the points and the unit of stock back",
    )
    async def release(
        self,
        caller: NamedDependency[Caller],
        rewards: NamedDependency[Rewards],
        program_id: ProgramId,
        redemption_id: RedemptionId,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[RedemptionResult]:
        outcome = await rewards.release_redemption(
            caller, idempotency_key or "", program_id=program_id, redemption_id=redemption_id
        )
        return answer(outcome)
