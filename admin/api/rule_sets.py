"""Rule-set versions: drafts and their parts (earning rules, promotions, caps, tiers), preview,
simulation against real orders, and publication from a date.

Reads are open to the back office; every change needs owner or program_manager and is audited.
A published version never changes (409 rule_set_not_draft): make a new draft instead.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from loyalty.app.api.params import ProgramId
from loyalty.app.api.schemas import AwareDateTime
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.context import Staff
from loyalty.services.rule_documents import (
    CapDocument,
    EarningRuleDocument,
    PromotionDocument,
    RuleSetDocument,
    TierPolicyDocument,
)
from loyalty.services.rule_sets import (
    MAX_SIMULATION_DAYS,
    PreviewResult,
    RuleSets,
    RuleSetSummary,
    RuleSetView,
    SampleOrder,
    SimulationResult,
)

from .auth import PROGRAM_CONFIGURATORS, requires_role
from .examples import EXAMPLE_RULE_SET, EXAMPLE_SAMPLES
from .responses import problems

Version = Annotated[int, PathParameter(gt=0, le=2**31 - 1, description="Rule-set version")]
RuleCode = Annotated[
    str, PathParameter(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Rule/promotion code")
]

_READ = problems(401, 403, 404, 503, s404="No such program or version (rule_set_not_found)")
_EDIT = problems(
    400,
    401,
    403,
    404,
    409,
    503,
    s400="Bad document (validation_failed, malformed_json)",
    s409="The version is published (rule_set_not_draft)",
)
_CONFIGURE = [requires_role(*PROGRAM_CONFIGURATORS)]
Entry = TypeVar("Entry", EarningRuleDocument, PromotionDocument)


class NewDraftRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: The version to copy; default: the one in force now (or an empty document).
    based_on: Annotated[int, msgspec.Meta(ge=1)] | None = None


class PublishRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: From when the version prices orders; default: now. Never in the past.
    effective_from: AwareDateTime | None = None


class PreviewRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    samples: Annotated[
        list[SampleOrder], msgspec.Meta(min_length=1, max_length=100, examples=[EXAMPLE_SAMPLES])
    ]


class RuleSetController(Controller):
    path = "/programs/{program_id:int}/rule-sets"
    tags = ["Admin: rule sets"]

    @get("/", responses=_READ, summary="List the program's rule-set versions, newest first")
    async def list_versions(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
    ) -> list[RuleSetSummary]:
        return await rule_sets.list_versions(staff, program_id)

    @get(
        "/{version:int}",
        responses=_READ,
        summary="Get a version with its document (drafts: with what stops publication)",
    )
    async def get_version(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
    ) -> RuleSetView:
        return await rule_sets.get(staff, program_id, version)

    @post(
        "/",
        guards=_CONFIGURE,
        responses=_EDIT,
        summary="Start a draft (a copy of a version, by default the one in force)",
    )
    async def create_draft(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        data: JSONBody[NewDraftRequest],
    ) -> RuleSetView:
        return await rule_sets.create_draft(staff, program_id, data.based_on)

    @put(
        "/{version:int}",
        guards=_CONFIGURE,
        responses=_EDIT,
        summary="Replace a draft's whole document",
        description="A draft may be saved with problems; `problems` lists what stops publishing.",
    )
    async def replace_draft(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
        data: JSONBody[Annotated[RuleSetDocument, msgspec.Meta(examples=[EXAMPLE_RULE_SET])]],
    ) -> RuleSetView:
        return await rule_sets.replace_draft(staff, program_id, version, data)

    @delete("/{version:int}", guards=_CONFIGURE, responses=_EDIT, summary="Delete a draft")
    async def delete_draft(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
    ) -> None:
        await rule_sets.delete_draft(staff, program_id, version)

    @put(
        "/{version:int}/earning-rules/{code:str}",
        guards=_CONFIGURE,
        responses=_EDIT,
        summary="Add or replace one earning rule of a draft",
    )
    async def put_earning_rule(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
        code: RuleCode,
        data: JSONBody[EarningRuleDocument],
    ) -> RuleSetView:
        _same_code(code, data.code)
        return await rule_sets.edit_draft(
            staff,
            program_id,
            version,
            "rule_set.put_earning_rule",
            lambda doc: msgspec.structs.replace(
                doc, earning_rules=_upsert(doc.earning_rules, data)
            ),
        )

    @delete(
        "/{version:int}/earning-rules/{code:str}",
        guards=_CONFIGURE,
        responses=_EDIT,
        status_code=200,
        summary="Remove one earning rule from a draft",
    )
    async def delete_earning_rule(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
        code: RuleCode,
    ) -> RuleSetView:
        return await rule_sets.edit_draft(
            staff,
            program_id,
            version,
            "rule_set.delete_earning_rule",
            lambda doc: msgspec.structs.replace(
                doc, earning_rules=_without(doc.earning_rules, code)
            ),
        )

    @put(
        "/{version:int}/promotions/{code:str}",
        guards=_CONFIGURE,
        responses=_EDIT,
        summary="Add or replace one promotion of a draft",
    )
    async def put_promotion(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
        code: RuleCode,
        data: JSONBody[PromotionDocument],
    ) -> RuleSetView:
        _same_code(code, data.code)
        return await rule_sets.edit_draft(
            staff,
            program_id,
            version,
            "rule_set.put_promotion",
            lambda doc: msgspec.structs.replace(doc, promotions=_upsert(doc.promotions, data)),
        )

    @delete(
        "/{version:int}/promotions/{code:str}",
        guards=_CONFIGURE,
        responses=_EDIT,
        status_code=200,
        summary="Remove one promotion from a draft",
    )
    async def delete_promotion(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
        code: RuleCode,
    ) -> RuleSetView:
        return await rule_sets.edit_draft(
            staff,
            program_id,
            version,
            "rule_set.delete_promotion",
            lambda doc: msgspec.structs.replace(doc, promotions=_without(doc.promotions, code)),
        )

    @put(
        "/{version:int}/caps",
        guards=_CONFIGURE,
        responses=_EDIT,
        summary="Set a draft's earning caps (per order, per member per day/week/month)",
    )
    async def put_caps(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
        data: JSONBody[Annotated[list[CapDocument], msgspec.Meta(max_length=4)]],
    ) -> RuleSetView:
        return await rule_sets.edit_draft(
            staff,
            program_id,
            version,
            "rule_set.put_caps",
            lambda doc: msgspec.structs.replace(doc, caps=list(data)),
        )

    @put(
        "/{version:int}/tiers",
        guards=_CONFIGURE,
        responses=_EDIT,
        summary="Set a draft's tier policy: levels, basis, window, downgrade, grace period",
    )
    async def put_tiers(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
        data: JSONBody[TierPolicyDocument],
    ) -> RuleSetView:
        return await rule_sets.edit_draft(
            staff,
            program_id,
            version,
            "rule_set.put_tiers",
            lambda doc: msgspec.structs.replace(doc, tiers=data),
        )

    @delete(
        "/{version:int}/tiers",
        guards=_CONFIGURE,
        responses=_EDIT,
        status_code=200,
        summary="Remove the tier policy from a draft",
    )
    async def delete_tiers(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
    ) -> RuleSetView:
        return await rule_sets.edit_draft(
            staff,
            program_id,
            version,
            "rule_set.delete_tiers",
            lambda doc: msgspec.structs.replace(doc, tiers=None),
        )

    @post(
        "/{version:int}/preview",
        status_code=200,
        responses=problems(400, 401, 403, 404, 422, 503, s422="The draft cannot price orders"),
        summary="Price sample baskets with this version and with the rules in force",
    )
    async def preview(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
        data: JSONBody[PreviewRequest],
    ) -> PreviewResult:
        return await rule_sets.preview(staff, program_id, version, data.samples)

    @get(
        "/{version:int}/simulation",
        responses=problems(400, 401, 403, 404, 422, 503, s422="The draft cannot price orders"),
        summary="Re-price the last days' real orders with this version: points more or fewer",
        description=(
            "Every order of the last `days` days is priced again with this version, with the "
            "tier, member context and time it had, and compared with what was issued."
        ),
    )
    async def simulate(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
        days: Annotated[int, QueryParameter(ge=1, le=MAX_SIMULATION_DAYS)] = 30,
    ) -> SimulationResult:
        return await rule_sets.simulate(staff, program_id, version, days)

    @post(
        "/{version:int}/publish",
        guards=_CONFIGURE,
        status_code=200,
        responses=problems(
            400,
            401,
            403,
            404,
            409,
            422,
            503,
            s400="effective_from lies in the past (effective_from_in_past)",
            s409="Already published (rule_set_not_draft)",
            s422="The draft has problems (rule_set_invalid; `problems` lists them)",
        ),
        summary="Publish a draft from a date (default: now)",
    )
    async def publish(
        self,
        staff: NamedDependency[Staff],
        rule_sets: NamedDependency[RuleSets],
        program_id: ProgramId,
        version: Version,
        data: JSONBody[PublishRequest],
    ) -> RuleSetView:
        return await rule_sets.publish(staff, program_id, version, data.effective_from)


def _same_code(path_code: str, body_code: str) -> None:
    if path_code != body_code:
        raise DomainError(
            ErrorCode.VALIDATION_FAILED,
            f"the body's code {body_code!r} differs from the path's {path_code!r}",
        )


def _upsert(items: list[Entry], item: Entry) -> list[Entry]:
    replaced = [item if existing.code == item.code else existing for existing in items]
    if all(existing.code != item.code for existing in items):
        replaced.append(item)
    return replaced


def _without(items: list[Entry], code: str) -> list[Entry]:
    kept = [item for item in items if item.code != code]
    if len(kept) == len(items):
        raise DomainError(ErrorCode.NOT_FOUND, f"the draft has no entry {code!r}", entry=code)
    return kept
