"""The JSON form of a rule set and of a reward, as managers write them and as they are stored.

A rule-set document holds what prices an order: earning rules, promotions, caps and the tier
policy. It is versioned (``rule_sets.document``); the conversion to the pure domain types
happens here, and ``problems_of`` lists everything that stops a draft from being published.
Shapes (types, lengths, known enum values) are checked by msgspec when a request is decoded;
meaning (ascending thresholds, windows that end after they start, rates) by the domain checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from loyalty.domain.basket import DEFAULT_EXCLUDED_KINDS, LineKind
from loyalty.domain.earning import (
    Audience,
    Cap,
    CapPeriod,
    EarningRule,
    EarningRules,
    Promotion,
    PromotionKind,
    Rounding,
    RuleKind,
    Scope,
    check_earning_rules,
)
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.rewards import Reward, RewardKind, check_reward
from loyalty.domain.texts import Texts
from loyalty.domain.tiers import (
    DowngradePolicy,
    TierBasis,
    TierLevel,
    TierPolicy,
    TierWindow,
    check_tier_policy,
)

Code = Annotated[
    str,
    Meta(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Lower-case letters, digits, '-' and '_'; unique within its list.",
        examples=["points-per-euro"],
    ),
]
Name = Annotated[str, Meta(max_length=200)]
Label = Annotated[str, Meta(max_length=64)]
Labels = Annotated[list[Label], Meta(max_length=500)]
RoundingName = Literal["down", "half_up", "up"]


class LocalizedText(Struct, frozen=True, forbid_unknown_fields=True):
    """The same text in German and English (the UI's two languages)."""

    de: Annotated[str, Meta(max_length=2000)]
    en: Annotated[str, Meta(max_length=2000)]

    def texts(self) -> Texts:
        return Texts(de=self.de, en=self.en)


EMPTY_TEXT = LocalizedText(de="", en="")


class ScopeDocument(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Which basket lines count: empty lists mean any SKU/category. ``excluded_kinds`` defaults to
    gift cards, tax, tips and delivery."""

    skus: Labels = msgspec.field(default_factory=list)
    categories: Labels = msgspec.field(default_factory=list)
    excluded_kinds: list[LineKind] | None = None

    def scope(self) -> Scope:
        excluded = (
            DEFAULT_EXCLUDED_KINDS
            if self.excluded_kinds is None
            else frozenset(self.excluded_kinds)
        )
        return Scope(frozenset(self.skus), frozenset(self.categories), excluded)


class AudienceDocument(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Where and for whom: empty lists mean everywhere, everyone, every tier."""

    locations: Labels = msgspec.field(default_factory=list)
    segments: Labels = msgspec.field(default_factory=list)
    tiers: Labels = msgspec.field(default_factory=list)

    def audience(self) -> Audience:
        return Audience(frozenset(self.locations), frozenset(self.segments), frozenset(self.tiers))


class EarningRuleDocument(Struct, forbid_unknown_fields=True, omit_defaults=True):
    code: Code
    kind: RuleKind
    name: LocalizedText
    points: int = 0
    per_amount: int = 100
    min_spend: int = 0
    multiplier: Decimal = Decimal(1)
    scope: ScopeDocument = msgspec.field(default_factory=ScopeDocument)
    audience: AudienceDocument = msgspec.field(default_factory=AudienceDocument)
    rounding: RoundingName | None = None
    max_points_per_order: int | None = None

    def rule(self) -> EarningRule:
        return EarningRule(
            code=self.code,
            kind=self.kind,
            name=self.name.texts(),
            points=self.points,
            per_amount=self.per_amount,
            min_spend=self.min_spend,
            multiplier=self.multiplier,
            scope=self.scope.scope(),
            audience=self.audience.audience(),
            rounding=None if self.rounding is None else Rounding(self.rounding),
            max_points_per_order=self.max_points_per_order,
        )


class HoursDocument(Struct, forbid_unknown_fields=True):
    """Local wall-clock hours, start included, end excluded."""

    start: time
    end: time


class PromotionDocument(Struct, forbid_unknown_fields=True, omit_defaults=True):
    code: Code
    kind: PromotionKind
    name: LocalizedText
    starts_at: datetime
    ends_at: datetime
    multiplier: Decimal = Decimal(1)
    bonus_points: int = 0
    weekdays: Annotated[list[int], Meta(max_length=7)] = msgspec.field(default_factory=list)
    hours: HoursDocument | None = None
    scope: ScopeDocument = msgspec.field(default_factory=ScopeDocument)
    audience: AudienceDocument = msgspec.field(default_factory=AudienceDocument)
    per_member_limit: int | None = None
    budget_points: int | None = None

    def promotion(self) -> Promotion:
        return Promotion(
            code=self.code,
            kind=self.kind,
            name=self.name.texts(),
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            multiplier=self.multiplier,
            bonus_points=self.bonus_points,
            weekdays=frozenset(self.weekdays),
            hours=None if self.hours is None else (self.hours.start, self.hours.end),
            scope=self.scope.scope(),
            audience=self.audience.audience(),
            per_member_limit=self.per_member_limit,
            budget_points=self.budget_points,
        )


class CapDocument(Struct, forbid_unknown_fields=True):
    period: CapPeriod
    max_points: int


class TierLevelDocument(Struct, forbid_unknown_fields=True, omit_defaults=True):
    code: Code
    name: LocalizedText
    threshold: int
    multiplier: Decimal = Decimal(1)
    perks: LocalizedText = EMPTY_TEXT

    def level(self) -> TierLevel:
        return TierLevel(
            code=self.code,
            name=self.name.texts(),
            threshold=self.threshold,
            multiplier=self.multiplier,
            perks=self.perks.texts(),
        )


class TierPolicyDocument(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Ordered levels (the first is the base level, threshold 0) and how members move."""

    levels: Annotated[list[TierLevelDocument], Meta(max_length=20)]
    basis: TierBasis = TierBasis.POINTS
    window: TierWindow = TierWindow.CALENDAR_YEAR
    downgrade: DowngradePolicy = DowngradePolicy.ONE_STEP
    grace_days: int = 0

    def policy(self, timezone: str) -> TierPolicy:
        return TierPolicy(
            levels=tuple(level.level() for level in self.levels),
            basis=self.basis,
            window=self.window,
            downgrade=self.downgrade,
            grace_days=self.grace_days,
            timezone=timezone,
        )


class RuleSetDocument(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Everything that prices an order, as one versioned document."""

    earning_rules: Annotated[list[EarningRuleDocument], Meta(max_length=200)] = msgspec.field(
        default_factory=list
    )
    promotions: Annotated[list[PromotionDocument], Meta(max_length=200)] = msgspec.field(
        default_factory=list
    )
    caps: Annotated[list[CapDocument], Meta(max_length=4)] = msgspec.field(default_factory=list)
    tiers: TierPolicyDocument | None = None
    #: None: the program's rounding.
    rounding: RoundingName | None = None


#: A new program starts with one point for every full unit of currency spent.
STARTER_RULES = RuleSetDocument(
    earning_rules=[
        EarningRuleDocument(
            code="points-per-unit",
            kind=RuleKind.SPEND,
            name=LocalizedText(de="1 Punkt je 1,00 Umsatz", en="1 point per 1.00 spent"),
            points=1,
            per_amount=100,
        )
    ]
)


class RuleProblem(Struct):
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class CompiledRules:
    """A rule-set document turned into the domain's types, ready for ``quote`` and tiers."""

    earning: EarningRules
    tiers: TierPolicy | None


def compile_rules(document: RuleSetDocument, timezone: str, rounding: str) -> CompiledRules:
    """The domain form of ``document``; raises the first DomainError that stops it."""
    try:
        earning = EarningRules(
            rules=tuple(rule.rule() for rule in document.earning_rules),
            promotions=tuple(promotion.promotion() for promotion in document.promotions),
            caps=tuple(Cap(cap.period, cap.max_points) for cap in document.caps),
            rounding=Rounding(document.rounding or rounding),
            timezone=timezone,
        )
    except ValueError as error:
        raise DomainError(ErrorCode.INVALID_RULE, str(error)) from None
    check_earning_rules(earning)
    tiers = None if document.tiers is None else document.tiers.policy(timezone)
    if tiers is not None:
        check_tier_policy(tiers)
    _check_tier_references(document, tiers)
    return CompiledRules(earning=earning, tiers=tiers)


def problems_of(document: RuleSetDocument, timezone: str, rounding: str) -> list[RuleProblem]:
    """What stops ``document`` from being published (empty: publishable)."""
    try:
        compile_rules(document, timezone, rounding)
    except DomainError as error:
        return [RuleProblem(code=str(error.code), detail=error.detail)]
    return []


def _check_tier_references(document: RuleSetDocument, tiers: TierPolicy | None) -> None:
    known = set() if tiers is None else {level.code for level in tiers.levels}
    audiences = [(rule.code, rule.audience) for rule in document.earning_rules] + [
        (promotion.code, promotion.audience) for promotion in document.promotions
    ]
    for code, audience in audiences:
        unknown = sorted(set(audience.tiers) - known)
        if unknown:
            raise DomainError(
                ErrorCode.UNKNOWN_TIER,
                f"{code!r} is limited to tiers the policy does not define: {', '.join(unknown)}",
                rule=code,
            )


def document_from_builtins(value: object) -> RuleSetDocument:
    return msgspec.convert(value, RuleSetDocument)


# -- rewards ------------------------------------------------------------------------------


class RewardDefinition(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A reward in the catalogue. Fixed-points kinds cost ``points_cost``; points-as-money takes
    ``money_per_step`` minor units off for every ``points_per_step`` points the member uses."""

    code: Code
    kind: RewardKind
    name: LocalizedText
    description: LocalizedText = EMPTY_TEXT
    points_cost: int = 0
    amount_off: int = 0
    percent_off: int = 0
    max_discount: int | None = None
    sku: Label | None = None
    points_per_step: int = 0
    money_per_step: int = 0
    min_points: int = 0
    max_points: int | None = None
    tiers: Labels = msgspec.field(default_factory=list)
    per_member_limit: int | None = None
    stock: int | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    active: bool = True

    def reward(self) -> Reward:
        reward = Reward(
            code=self.code,
            kind=self.kind,
            name=self.name.texts(),
            description=self.description.texts(),
            points_cost=self.points_cost,
            amount_off=self.amount_off,
            percent_off=self.percent_off,
            max_discount=self.max_discount,
            sku=self.sku,
            points_per_step=self.points_per_step,
            money_per_step=self.money_per_step,
            min_points=self.min_points,
            max_points=self.max_points,
            tiers=frozenset(self.tiers),
            per_member_limit=self.per_member_limit,
            stock=self.stock,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            active=self.active,
        )
        check_reward(reward)
        return reward
