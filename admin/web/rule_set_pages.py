"""One rule-set version (``/admin/programs/{id}/rule-sets/{version}``): its document in plain
language; for a draft and a configurator the editors (tiers, earning rules, promotions, caps),
delete and publish; for everyone the simulator (a sample basket priced under this version and
the live one, side by side) and the look back at real purchases.

``/admin/programs/{id}/simulator?version=N`` leads to the simulator of a version (default: the
newest draft, else the live version).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from admin.web.programs import (
    TEXTS,
    Describer,
    decimal_text,
    definition_json,
    line_names,
    live_version,
    localized,
    script_texts,
    version_rows,
)
from admin.web.shell import Formats, page_language, page_texts, render
from loyalty.app.api.params import ProgramId
from loyalty.domain.earning import CapPeriod
from loyalty.services.context import Staff
from loyalty.services.queries import Queries
from loyalty.services.rule_documents import RuleSetDocument, TierPolicyDocument
from loyalty.services.rule_sets import RuleSets

Version = Annotated[int, PathParameter(gt=0, le=2**31 - 1)]
RULE_KINDS = ("spend", "item", "visit", "min_spend_bonus", "multiplier")
PROMOTION_KINDS = ("multiplier", "bonus")
CAP_PERIODS = tuple(str(period) for period in CapPeriod)


def app_now(request: Request[Any, Any, Any]) -> datetime:
    """The app's clock (the services' one: tests move it), for which version is live."""
    now: datetime = request.app.state.ledger.executor.now()
    return now


@get("/admin/programs/{program_id:int}/rule-sets/{version:int}", include_in_schema=False)
async def rule_set_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    queries: NamedDependency[Queries],
    rule_sets: NamedDependency[RuleSets],
    program_id: ProgramId,
    version: Version,
) -> Template:
    language = page_language(request)
    texts = page_texts(TEXTS, language)
    program = await queries.program(staff.caller, program_id)
    view = await rule_sets.get(staff, program_id, version)
    versions = version_rows(await rule_sets.list_versions(staff, program_id), app_now(request))
    state = next(row.state for row in versions if row.version == version)
    live = live_version(versions)
    live_document = (
        (await rule_sets.get(staff, program_id, live)).document
        if live is not None and live != version
        else view.document
    )
    describe = Describer(texts, Formats(language), program.currency)
    document = view.document
    name = (program.name_de if language == "de" else program.name_en) or program.name
    return render(
        request,
        staff,
        template="admin/rule_set.html",
        texts=TEXTS,
        active="programs",
        title=texts["rule_set_title"].format(program=name, n=version),
        program=program,
        program_name=name,
        view=view,
        state=state,
        live=live,
        describe=describe,
        rules=[
            {
                "doc": rule,
                "name": localized(rule.name, language),
                "parts": describe.rule(rule),
                "json": definition_json(rule),
            }
            for rule in document.earning_rules
        ],
        promotions=[
            {
                "doc": promotion,
                "name": localized(promotion.name, language),
                "parts": describe.promotion(promotion),
                "json": definition_json(promotion),
            }
            for promotion in document.promotions
        ],
        caps={str(cap.period): cap.max_points for cap in document.caps},
        cap_periods=CAP_PERIODS,
        rule_kinds=RULE_KINDS,
        promotion_kinds=PROMOTION_KINDS,
        tiers=document.tiers,
        tier_levels=tier_levels(document.tiers, language),
        money_input=money_input,
        decimal_text=decimal_text,
        simulator=simulator_data(document, live_document, language, texts),
    )


@get("/admin/programs/{program_id:int}/simulator", include_in_schema=False)
async def simulator_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    rule_sets: NamedDependency[RuleSets],
    program_id: ProgramId,
    version: Annotated[int | None, QueryParameter(gt=0, le=2**31 - 1, required=False)] = None,
) -> Redirect:
    if version is None:
        versions = version_rows(await rule_sets.list_versions(staff, program_id), app_now(request))
        drafts = [row.version for row in versions if row.state == "draft"]
        version = max(drafts) if drafts else live_version(versions)
    else:
        await rule_sets.get(staff, program_id, version)
    if version is None:
        return Redirect(f"/admin/programs/{program_id}", status_code=303)
    return Redirect(f"/admin/programs/{program_id}/rule-sets/{version}#simulator", status_code=303)


def money_input(minor: int) -> str:
    """Minor units as the decimal text of a form field ("1.00"); the script reads both marks."""
    return f"{Decimal(minor).scaleb(-2):.2f}"


def threshold_input(value: int, basis: str) -> str:
    return money_input(value) if basis == "spend" else str(value)


def tier_levels(tiers: TierPolicyDocument | None, language: str) -> list[dict[str, Any]]:
    if tiers is None:
        return []
    basis = str(tiers.basis)
    return [
        {
            "doc": level,
            "name": localized(level.name, language),
            "perks": localized(level.perks, language),
            "threshold_input": threshold_input(level.threshold, basis),
            "multiplier": decimal_text(level.multiplier),
        }
        for level in tiers.levels
    ]


def simulator_data(
    document: RuleSetDocument,
    live_document: RuleSetDocument,
    language: str,
    texts: dict[str, str],
) -> dict[str, Any]:
    """What the simulator's script needs: the version's tier policy (a member's tier under
    it), the tiers to pick from, names of the simulation's lines, its texts."""
    tiers = document.tiers
    draft_tiers = (
        None
        if tiers is None
        else {
            "basis": str(tiers.basis),
            "window": str(tiers.window),
            "levels": [
                {"code": level.code, "threshold": level.threshold} for level in tiers.levels
            ],
        }
    )
    choices: dict[str, str] = {}
    for source in (document, live_document):
        if source.tiers is not None:
            for level in source.tiers.levels:
                choices.setdefault(level.code, localized(level.name, language))
    return {
        "tiers": draft_tiers,
        "live_basis": None if live_document.tiers is None else str(live_document.tiers.basis),
        "tier_choices": list(choices.items()),
        "names": line_names([document, live_document], language),
        "texts": script_texts(texts),
    }


RULE_SET_PAGES = [rule_set_page, simulator_page]
