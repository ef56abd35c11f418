"""One reward of a program's catalogue: ``/admin/programs/{id}/rewards/{code}`` (its form, or
read-only for support) and ``/admin/programs/{id}/new-reward`` (an empty form). The form posts to
the reward API (``programs.js``); the catalogue itself is listed on the program's page."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter
from litestar.response import Template

from admin.web.programs import TEXTS, definition_json, localized
from admin.web.rule_set_pages import money_input
from admin.web.shell import page_language, page_texts, render
from loyalty.app.api.params import ProgramId
from loyalty.app.dependencies import provide_rewards
from loyalty.services.context import Staff
from loyalty.services.queries import Queries
from loyalty.services.rewards import Rewards, RewardView

RewardCode = Annotated[str, PathParameter(min_length=1, max_length=64)]
REWARD_KINDS = ("amount_off", "percent_off", "free_item", "points_as_money")
_REWARDS = {"rewards": Provide(provide_rewards, sync_to_thread=False)}


@get("/admin/programs/{program_id:int}/new-reward", include_in_schema=False, dependencies=_REWARDS)
async def new_reward_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    queries: NamedDependency[Queries],
    program_id: ProgramId,
) -> Template:
    return await _reward_page(request, staff, queries, program_id, None)


@get(
    "/admin/programs/{program_id:int}/rewards/{code:str}",
    include_in_schema=False,
    dependencies=_REWARDS,
)
async def reward_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    queries: NamedDependency[Queries],
    rewards: NamedDependency[Rewards],
    program_id: ProgramId,
    code: RewardCode,
) -> Template:
    reward = await rewards.get_reward(staff.caller, program_id, code)
    return await _reward_page(request, staff, queries, program_id, reward)


async def _reward_page(
    request: Request[Any, Any, Any],
    staff: Staff,
    queries: Queries,
    program_id: int,
    reward: RewardView | None,
) -> Template:
    language = page_language(request)
    texts = page_texts(TEXTS, language)
    program = await queries.program(staff.caller, program_id)
    definition = None if reward is None else reward.definition
    name = "" if definition is None else localized(definition.name, language)
    title = texts["reward_title_new"] if reward is None else texts["reward_title"].format(name=name)
    return render(
        request,
        staff,
        template="admin/reward.html",
        texts=TEXTS,
        active="programs",
        title=title,
        program=program,
        program_name=(program.name_de if language == "de" else program.name_en) or program.name,
        reward=reward,
        definition=definition,
        definition_json=definition_json(definition) if definition is not None else "",
        reward_kinds=REWARD_KINDS,
        money_input=money_input,
    )


REWARD_PAGES = [new_reward_page, reward_page]
