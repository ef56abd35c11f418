"""The programs list (``/admin/programs``) and one program's page (``/admin/programs/{id}``):
settings, card colours, rule-set versions and the reward catalogue.

Pages read through the services; every change is a call of the admin API from the page (the
forms are handled by ``programs.js``), so the API's role guards decide. Owners and program
managers see the forms, support staff the same data read-only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency, Provide
from litestar.response import Template

from admin.web.programs import TEXTS, live_version, localized, version_rows
from admin.web.reward_pages import REWARD_PAGES
from admin.web.rule_set_pages import RULE_SET_PAGES, app_now
from admin.web.shell import page_language, page_texts, render
from loyalty.app.api.params import ProgramId
from loyalty.app.dependencies import provide_rewards
from loyalty.domain.card_style import DEFAULT_STYLE
from loyalty.services.context import Staff
from loyalty.services.programs import Programs
from loyalty.services.queries import Queries
from loyalty.services.results import ProgramView
from loyalty.services.rewards import Rewards, RewardView
from loyalty.services.rule_sets import RuleSets

#: The manual-adjustment policy (docs/MEMBER_SUPPORT.md), shown when the program view has it.
ADJUSTMENT_FIELDS = (
    "adjustment_approval_threshold",
    "adjustment_limits",
    "adjustment_limits_in_force",
)


@get("/admin/programs", include_in_schema=False)
async def programs_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    queries: NamedDependency[Queries],
    rule_sets: NamedDependency[RuleSets],
) -> Template:
    now = app_now(request)
    rows = []
    for program in await queries.programs(staff.caller):
        versions = version_rows(await rule_sets.list_versions(staff, program.program_id), now)
        rows.append(
            {
                "program": program,
                "live": live_version(versions),
                "drafts": [row.version for row in versions if row.state == "draft"],
                "scheduled": [row for row in versions if row.state == "scheduled"],
            }
        )
    texts = page_texts(TEXTS, page_language(request))
    return render(
        request,
        staff,
        template="admin/programs.html",
        texts=TEXTS,
        active="programs",
        title=texts["programs_title"],
        rows=rows,
    )


@get(
    "/admin/programs/{program_id:int}",
    include_in_schema=False,
    dependencies={"rewards": Provide(provide_rewards, sync_to_thread=False)},
)
async def program_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    programs: NamedDependency[Programs],
    rule_sets: NamedDependency[RuleSets],
    rewards: NamedDependency[Rewards],
    program_id: ProgramId,
) -> Template:
    language = page_language(request)
    program = await programs.managed_program(staff.caller, program_id)
    versions = version_rows(await rule_sets.list_versions(staff, program_id), app_now(request))
    catalogue = await rewards.list_rewards(staff.caller, program_id, include_inactive=True)
    return render(
        request,
        staff,
        template="admin/program.html",
        texts=TEXTS,
        active="programs",
        title=localized_name(program, language),
        program=program,
        program_name=localized_name(program, language),
        versions=versions,
        live=live_version(versions),
        rewards=[reward_row(reward, language) for reward in catalogue],
        point_value=point_value_text(program.point_value_micros),
        colours=card_colours(program),
        adjustments=adjustment_settings(program),
    )


def localized_name(program: ProgramView, language: str) -> str:
    chosen = program.name_de if language == "de" else program.name_en
    return chosen or program.name


def point_value_text(micros: int) -> str:
    """Millionths of the currency unit as the decimal a person types (10000 -> "0.01")."""
    value = Decimal(micros).scaleb(-6)
    return f"{value:.6f}".rstrip("0").rstrip(".") if micros else "0"


def card_colours(program: ProgramView) -> dict[str, str]:
    """The card's colours as set, or the default style's (a form needs a colour in each)."""
    return {
        "background": program.card_background or DEFAULT_STYLE.background,
        "foreground": program.card_foreground or DEFAULT_STYLE.foreground,
        "accent": program.card_accent or DEFAULT_STYLE.accent,
    }


def adjustment_settings(program: ProgramView) -> dict[str, Any]:
    """The adjustment-policy settings the program view carries (none on older versions)."""
    return {name: getattr(program, name) for name in ADJUSTMENT_FIELDS if hasattr(program, name)}


def reward_row(reward: RewardView, language: str) -> dict[str, Any]:
    return {
        "view": reward,
        "name": localized(reward.definition.name, language),
        "kind": str(reward.definition.kind),
    }


PROGRAM_PAGES = [programs_page, program_page, *RULE_SET_PAGES, *REWARD_PAGES]
