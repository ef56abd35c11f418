"""Earning rules, promotions and caps: what a basket earns, and why (DESIGN.md section 4).

``quote`` is pure and deterministic: the same basket, rules, tier, time and member context always
give the same quote. Every point of the total comes from one explained line, so that the
cashier, the member and the manager all see the same reasons.

Semantics (docs/RULES.md explains them for managers):
* Base rules (spend, item) give points to the basket lines they match; visit and minimum-spend
  bonuses give points to the order as a whole.
* Multipliers (multiplier rules, the member's tier, multiplier promotions) scale the base points of
  the lines they match, one after the other: each adds ``points so far x (multiplier - 1)``.
  Order bonuses are not multiplied.
* Fixed-bonus promotions add their points when they apply.
* Caps (per rule, per order, per member per day/week/month) cut the total; a cut is a line
  with negative points so that the quote still equals the sum of its lines.
* Rounding happens once per explained line, by the rule's rounding policy (or the rule set's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from enum import StrEnum

from .basket import DEFAULT_EXCLUDED_KINDS, Basket, BasketLine, LineKind
from .texts import Texts
from .tiers import TierLevel


class Rounding(StrEnum):
    DOWN = "down"
    HALF_UP = "half_up"
    UP = "up"


class RuleKind(StrEnum):
    #: ``points`` for every ``per_amount`` minor units of matching spend.
    SPEND = "spend"
    #: ``points`` once per order with at least ``min_spend`` of matching spend.
    VISIT = "visit"
    #: ``points`` per unit of every matching line.
    ITEM = "item"
    #: ``points`` once per order when matching spend reaches ``min_spend``.
    MIN_SPEND_BONUS = "min_spend_bonus"
    #: Multiplies the base points of matching lines by ``multiplier``.
    MULTIPLIER = "multiplier"


class CapPeriod(StrEnum):
    ORDER = "order"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class PromotionKind(StrEnum):
    MULTIPLIER = "multiplier"
    BONUS = "bonus"


@dataclass(frozen=True, slots=True)
class Scope:
    """Which basket lines a rule or promotion looks at. Empty sets mean "any"."""

    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    excluded_kinds: frozenset[LineKind] = DEFAULT_EXCLUDED_KINDS

    def matches(self, line: BasketLine) -> bool:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Audience:
    """Where and for whom a rule or promotion applies. Empty sets mean "everyone, everywhere"."""

    locations: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    tiers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class EarningRule:
    code: str
    kind: RuleKind
    name: Texts
    points: int = 0
    per_amount: int = 100
    min_spend: int = 0
    multiplier: Decimal = Decimal(1)
    scope: Scope = Scope()
    audience: Audience = Audience()
    #: None: the rule set's rounding.
    rounding: Rounding | None = None
    max_points_per_order: int | None = None


@dataclass(frozen=True, slots=True)
class Promotion:
    code: str
    kind: PromotionKind
    name: Texts
    #: UTC instants; the promotion runs for ``starts_at <= at < ends_at``.
    starts_at: datetime
    ends_at: datetime
    multiplier: Decimal = Decimal(1)
    bonus_points: int = 0
    #: ISO weekdays in the program's time zone (1 = Monday ... 7 = Sunday); empty: every day.
    weekdays: frozenset[int] = frozenset()
    #: Local wall-clock hours ``start <= t < end``; None: all day.
    hours: tuple[time, time] | None = None
    scope: Scope = Scope()
    audience: Audience = Audience()
    #: How many orders of one member it may apply to; None: unlimited.
    per_member_limit: int | None = None
    #: Points it may add across all members; None: unlimited.
    budget_points: int | None = None


@dataclass(frozen=True, slots=True)
class Cap:
    period: CapPeriod
    max_points: int


@dataclass(frozen=True, slots=True)
class EarningRules:
    """One version of a program's earning rules: what ``quote`` prices a basket with."""

    rules: tuple[EarningRule, ...] = ()
    promotions: tuple[Promotion, ...] = ()
    caps: tuple[Cap, ...] = ()
    rounding: Rounding = Rounding.DOWN
    timezone: str = "Europe/Berlin"


@dataclass(frozen=True, slots=True)
class MemberContext:
    """What ``quote`` must know about the member and the program's counters at quote time."""

    segments: frozenset[str] = frozenset()
    #: Points the member already earned (by quotes) in the current day/week/month, local time.
    earned_in_period: Mapping[CapPeriod, int] = field(default_factory=dict)
    #: Orders of this member each promotion already applied to.
    promotion_uses: Mapping[str, int] = field(default_factory=dict)
    #: Points each promotion already added across all members.
    promotion_points_used: Mapping[str, int] = field(default_factory=dict)


class LineSource(StrEnum):
    RULE = "rule"
    TIER = "tier"
    PROMOTION = "promotion"
    CAP = "cap"


@dataclass(frozen=True, slots=True)
class QuoteLine:
    source: LineSource
    #: The rule, tier or promotion code, or the cap period.
    code: str
    name: Texts
    #: Negative only for cap lines.
    points: int
    #: What the line worked from: matching spend (minor units) for spend rules, units for item
    #: rules, the points it multiplied for multipliers, the points it cut for caps.
    basis: int
    multiplier: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    total: int
    lines: tuple[QuoteLine, ...]
    #: Net spend of the lines no earning exclusion applies to by default (tier qualification).
    qualifying_spend: int
    #: Points each promotion added before caps (what budgets and trigger limits count).
    promotion_points: Mapping[str, int] = field(default_factory=dict)


def check_earning_rules(rules: EarningRules) -> None:
    """Refuse rules ``quote`` cannot honour, with a specific code (invalid_rate, invalid_window,
    duplicate_code, invalid_rule)."""
    raise NotImplementedError


def period_start(period: CapPeriod, at: datetime, timezone: str) -> datetime:
    """The UTC instant the day/week (Monday)/month containing ``at`` began, in ``timezone``."""
    raise NotImplementedError


def quote(
    basket: Basket,
    rules: EarningRules,
    tier: TierLevel | None,
    at: datetime,
    member: MemberContext | None = None,
) -> Quote:
    raise NotImplementedError
