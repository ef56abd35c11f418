"""The reward catalogue of a program: the back office reads it (the router admits only the back
office here), owners and program managers change it. Every change is written to the audit log."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, QueryParameter

from loyalty.app.api.params import ProgramId
from loyalty.app.api.rewards import RewardCode
from loyalty.app.dependencies import provide_rewards
from loyalty.services.context import Staff
from loyalty.services.rewards import Rewards, RewardView
from loyalty.services.rule_documents import RewardDefinition

from .auth import PROGRAM_CONFIGURATORS, requires_role
from .responses import problems

_NOT_FOUND = (
    "Unknown program or reward, or one of another merchant (program_not_found, reward_not_found)"
)
_BAD_DEFINITION = (
    "Bad input (validation_failed, malformed_json) or a reward that cannot work "
    "(invalid_reward, invalid_window)"
)
#: Reading or archiving one reward, or listing them.
_PROBLEMS = problems(400, 401, 403, 404, 503, s404=_NOT_FOUND)


class RewardAdminController(Controller):
    path = "/programs/{program_id:int}/rewards"
    tags = ["Admin: rewards"]
    dependencies = {"rewards": Provide(provide_rewards, sync_to_thread=False)}

    @get(
        "/",
        responses=_PROBLEMS,
        summary="List the program's rewards",
        description="By code, with units redeemed and stock left. Archived rewards only with "
        "`include_inactive=true`. Roles: owner, program_manager, support.",
    )
    async def list_rewards(
        self,
        staff: NamedDependency[Staff],
        rewards: NamedDependency[Rewards],
        program_id: ProgramId,
        include_inactive: Annotated[
            bool, QueryParameter(description="Also list archived (inactive) rewards")
        ] = False,
    ) -> list[RewardView]:
        return await rewards.list_rewards(
            staff.caller, program_id, include_inactive=include_inactive
        )

    @get(
        "/{code:str}",
        responses=_PROBLEMS,
        summary="Get a reward",
        description="Roles: owner, program_manager, support.",
    )
    async def get_reward(
        self,
        staff: NamedDependency[Staff],
        rewards: NamedDependency[Rewards],
        program_id: ProgramId,
        code: RewardCode,
    ) -> RewardView:
        return await rewards.get_reward(staff.caller, program_id, code)

    @post(
        "/",
        guards=[requires_role(*PROGRAM_CONFIGURATORS)],
        responses=problems(
            400,
            401,
            403,
            404,
            409,
            503,
            s400=_BAD_DEFINITION,
            s404=_NOT_FOUND,
            s409="The program has a reward with this code (reward_code_taken)",
        ),
        summary="Create a reward",
        description="Owners and program managers. Fixed-price kinds (amount_off, percent_off, "
        "free_item) cost `points_cost`; points_as_money takes `money_per_step` minor units off "
        "for every `points_per_step` points the member chooses to use.",
    )
    async def create_reward(
        self,
        staff: NamedDependency[Staff],
        rewards: NamedDependency[Rewards],
        program_id: ProgramId,
        data: JSONBody[RewardDefinition],
    ) -> RewardView:
        return await rewards.create_reward(staff, program_id, data)

    @put(
        "/{code:str}",
        guards=[requires_role(*PROGRAM_CONFIGURATORS)],
        responses=problems(
            400,
            401,
            403,
            404,
            503,
            s400=_BAD_DEFINITION + "; a body whose code is not the path's (validation_failed); "
            "stock below the units already redeemed (invalid_reward)",
            s404=_NOT_FOUND,
        ),
        summary="Replace a reward's definition",
        description="Owners and program managers. The code cannot change; `active` switches the "
        "reward off or on again. Pending redemptions keep the points they hold.",
    )
    async def update_reward(
        self,
        staff: NamedDependency[Staff],
        rewards: NamedDependency[Rewards],
        program_id: ProgramId,
        code: RewardCode,
        data: JSONBody[RewardDefinition],
    ) -> RewardView:
        return await rewards.update_reward(staff, program_id, code, data)

    @post(
        "/{code:str}/archive",
        status_code=200,
        guards=[requires_role(*PROGRAM_CONFIGURATORS)],
        responses=_PROBLEMS,
        summary="Archive a reward (switch it off)",
        description="Owners and program managers. Members no longer see or redeem it; pending "
        "redemptions can still be completed. Archiving twice changes nothing.",
    )
    async def archive_reward(
        self,
        staff: NamedDependency[Staff],
        rewards: NamedDependency[Rewards],
        program_id: ProgramId,
        code: RewardCode,
    ) -> RewardView:
        return await rewards.archive_reward(staff, program_id, code)
