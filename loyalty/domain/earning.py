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

How ``quote`` works, step by step (the decisions the bullets above leave open are marked *):
1. Base rules, in rule order. Base points are kept per basket line as exact fractions: a spend
   rule gives each matching line ``net x points / per_amount``, an item rule ``quantity x
   points``. The rule's line shows the rounded sum, at most ``max_points_per_order``.
   * A rule whose line would show 0 points does not fire and leaves nothing on the basket lines
     (a later multiplier must not turn points nobody was shown into visible ones).
   * When ``max_points_per_order`` is below the exact sum, the rule's line fractions are scaled
     by ``max / exact sum``, so that multipliers scale what the rule actually gave. Rounding
     alone does not rescale: the fractions stay exact, which keeps the total monotonic in the
     basket (see 7).
   Visit and minimum-spend bonuses give their points to the order, so nothing multiplies them.
   * Their ``basis`` is the matching net spend.
2. Multiplier rules (rule order), then the tier (if its multiplier is above 1), then promotions
   (promotion order). A multiplier works on the matching lines that have base points: it shows
   ``round(sum of their values x (m - 1))`` (basis: the rounded sum it multiplied) and scales
   their values by ``m``. * When its per-order maximum or a promotion's remaining budget cut the
   points, the values grow by the same proportion only, as in 1.
   * The tier and multiplier promotions round by the rule set's policy (they have none of their
     own).
3. A promotion applies at ``at`` if it runs (window, local weekday, local hours in the rule
   set's time zone), its audience applies, the member has trigger uses left and its budget has
   points left. A bonus promotion adds its points once if any basket line matches its scope.
   * Its ``basis`` is the matching net spend. Points a promotion adds are cut to its remaining
   budget; ``Quote.promotion_points`` records them before caps.
4. Caps come last. The tightest allowance (order cap; period cap minus what the member already
   earned in that period, never below 0) cuts the total with one cap line.
   * On a tie the first cap in ``EarningRules.caps`` names the line.
5. Only lines with points other than 0 are listed; ``total`` is the sum of the lines.
6. * ``quote`` does not validate the rules (``check_earning_rules`` does that when rules are
   saved); it only needs ``at`` to be timezone-aware. Rule and promotion codes share one
   namespace (quote lines name either), so ``check_earning_rules`` refuses a promotion that
   reuses a rule's code. A minimum-spend bonus with ``min_spend == 0`` is an invalid rule (it
   would be a visit bonus without the "one matching line" condition).
7. What this buys (tests/domain/test_quote_properties.py checks it): the total never depends on
   the order of basket lines, base rules, bonus promotions or caps (multipliers round in
   turn, so their order counts). Adding a basket line never lowers the total when no rule has
   a per-order maximum and no promotion a budget, or when every multiplier matches every line
   that has base points. Otherwise it can: a per-order maximum shared out over more lines
   leaves less of it on the lines a scoped multiplier scales. Caps keep the property, because
   the capped total is a non-decreasing function of the uncapped one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from .basket import DEFAULT_EXCLUDED_KINDS, Basket, BasketLine, LineKind
from .calendar import known_zone, local_midnight, require_aware
from .errors import DomainError, ErrorCode
from .texts import Texts
from .tiers import (
    MAX_MULTIPLIER,
    MIN_MULTIPLIER,
    TierLevel,
    multiplier_in_range,
)


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
        if line.kind in self.excluded_kinds:
            return False
        if not self.skus and not self.categories:
            return True
        return line.sku in self.skus or line.category in self.categories


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
    known_zone(rules.timezone, ErrorCode.INVALID_RULE)
    seen: set[str] = set()
    for rule in rules.rules:
        _check_code(rule.code, "rule", seen)
        _check_rule(rule)
    for promotion in rules.promotions:
        _check_code(promotion.code, "promotion", seen)
        _check_promotion(promotion)
    for cap in rules.caps:
        if cap.max_points < 0:
            raise _refusal(
                ErrorCode.INVALID_RATE,
                f"the cap per {cap.period.value!r} must not be negative",
                cap.period.value,
            )


def _refusal(code: ErrorCode, detail: str, rule: str) -> DomainError:
    return DomainError(code, detail, rule=rule)


def _check_code(code: str, what: str, seen: set[str]) -> None:
    if not code.strip():
        raise _refusal(ErrorCode.INVALID_RULE, f"every {what} needs a code, not {code!r}", code)
    if code in seen:
        # Rules and promotions share one namespace: quote lines and promotion counters name them.
        raise _refusal(ErrorCode.DUPLICATE_CODE, f"the code {code!r} is used twice", code)
    seen.add(code)


def _check_rule(rule: EarningRule) -> None:
    code = rule.code
    if rule.points < 0 or rule.min_spend < 0:
        raise _refusal(
            ErrorCode.INVALID_RATE,
            f"rule {code!r}: points and min_spend must not be negative",
            code,
        )
    if rule.per_amount <= 0:
        raise _refusal(ErrorCode.INVALID_RATE, f"rule {code!r}: per_amount must be positive", code)
    if rule.max_points_per_order is not None and rule.max_points_per_order < 0:
        raise _refusal(
            ErrorCode.INVALID_RATE,
            f"rule {code!r}: max_points_per_order must not be negative",
            code,
        )
    if rule.kind is RuleKind.MULTIPLIER:
        _check_multiplier(rule.multiplier, f"rule {code!r}", code)
    if rule.kind is RuleKind.SPEND and rule.points == 0:
        raise _refusal(
            ErrorCode.INVALID_RULE, f"spend rule {code!r} gives no points (points is 0)", code
        )
    if rule.kind is RuleKind.MIN_SPEND_BONUS and rule.min_spend == 0:
        raise _refusal(
            ErrorCode.INVALID_RULE,
            f"minimum-spend bonus {code!r} needs a min_spend above 0 (or use a visit rule)",
            code,
        )


def _check_multiplier(multiplier: Decimal, what: str, code: str) -> None:
    if not multiplier_in_range(multiplier):
        raise _refusal(
            ErrorCode.INVALID_RATE,
            f"{what}: the multiplier must lie between {MIN_MULTIPLIER} and {MAX_MULTIPLIER}",
            code,
        )


def _check_promotion(promotion: Promotion) -> None:
    code = promotion.code
    what = f"promotion {code!r}"
    if promotion.starts_at.utcoffset() is None or promotion.ends_at.utcoffset() is None:
        raise _refusal(ErrorCode.INVALID_WINDOW, f"{what}: start and end need a time zone", code)
    if promotion.ends_at <= promotion.starts_at:
        raise _refusal(ErrorCode.INVALID_WINDOW, f"{what}: it must end after it starts", code)
    if any(not 1 <= day <= 7 for day in promotion.weekdays):
        raise _refusal(
            ErrorCode.INVALID_WINDOW, f"{what}: weekdays run from 1 (Monday) to 7 (Sunday)", code
        )
    if promotion.hours is not None:
        start, end = promotion.hours
        if start.tzinfo is not None or end.tzinfo is not None:
            raise _refusal(
                ErrorCode.INVALID_WINDOW, f"{what}: hours are local wall-clock times", code
            )
        if end <= start:
            # Overnight windows would need two ranges; managers split them into two promotions.
            raise _refusal(
                ErrorCode.INVALID_WINDOW, f"{what}: hours must end after they start", code
            )
    if promotion.bonus_points < 0:
        raise _refusal(ErrorCode.INVALID_RATE, f"{what}: bonus_points must not be negative", code)
    if promotion.kind is PromotionKind.MULTIPLIER:
        _check_multiplier(promotion.multiplier, what, code)
    if promotion.budget_points is not None and promotion.budget_points <= 0:
        raise _refusal(ErrorCode.INVALID_RULE, f"{what}: a budget must be positive", code)
    if promotion.per_member_limit is not None and promotion.per_member_limit <= 0:
        raise _refusal(ErrorCode.INVALID_RULE, f"{what}: a per-member limit must be positive", code)


def period_start(period: CapPeriod, at: datetime, timezone: str) -> datetime:
    """The UTC instant the day/week (Monday)/month containing ``at`` began, in ``timezone``."""
    require_aware(at=at)
    zone = ZoneInfo(timezone)
    day = at.astimezone(zone).date()
    if period is CapPeriod.DAY:
        first = day
    elif period is CapPeriod.WEEK:
        first = day - timedelta(days=day.weekday())
    elif period is CapPeriod.MONTH:
        first = day.replace(day=1)
    else:
        raise ValueError(f"the {period} cap has no calendar period")
    return local_midnight(zone, first)


_CAP_NAMES: Mapping[CapPeriod, Texts] = {
    CapPeriod.ORDER: Texts("Obergrenze pro Einkauf", "Cap per order"),
    CapPeriod.DAY: Texts("Obergrenze pro Tag", "Cap per day"),
    CapPeriod.WEEK: Texts("Obergrenze pro Woche", "Cap per week"),
    CapPeriod.MONTH: Texts("Obergrenze pro Monat", "Cap per month"),
}

_NO_MEMBER = MemberContext()
#: The tier multiplies every line that has base points, whatever its kind.
_EVERY_LINE = Scope(excluded_kinds=frozenset())
#: The lines that qualify for tiers: those no earning exclusion applies to by default.
_QUALIFYING = Scope()


def quote(
    basket: Basket,
    rules: EarningRules,
    tier: TierLevel | None,
    at: datetime,
    member: MemberContext | None = None,
) -> Quote:
    """What ``basket`` earns under ``rules`` at ``at``, line by line (see the module docstring)."""
    require_aware(at=at)
    member = member if member is not None else _NO_MEMBER
    pricing = _Pricing(basket.lines)

    multiplier_rules: list[EarningRule] = []
    for rule in rules.rules:
        if not _audience_applies(rule.audience, basket, member, tier):
            continue
        if rule.kind is RuleKind.MULTIPLIER:
            multiplier_rules.append(rule)
        else:
            pricing.apply_base_rule(rule, rule.rounding or rules.rounding)
    for rule in multiplier_rules:
        pricing.multiply(
            LineSource.RULE,
            rule.code,
            rule.name,
            rule.multiplier,
            rule.scope,
            rule.rounding or rules.rounding,
            rule.max_points_per_order,
        )
    if tier is not None and tier.multiplier > 1:
        pricing.multiply(
            LineSource.TIER,
            tier.code,
            tier.name,
            tier.multiplier,
            _EVERY_LINE,
            rules.rounding,
            None,
        )

    promotion_points: dict[str, int] = {}
    local = at.astimezone(ZoneInfo(rules.timezone))
    for promotion in rules.promotions:
        if not _promotion_applies(promotion, at, local, basket, member, tier):
            continue
        remaining = None
        if promotion.budget_points is not None:
            remaining = promotion.budget_points - member.promotion_points_used.get(
                promotion.code, 0
            )
            if remaining <= 0:
                continue
        if promotion.kind is PromotionKind.MULTIPLIER:
            added = pricing.multiply(
                LineSource.PROMOTION,
                promotion.code,
                promotion.name,
                promotion.multiplier,
                promotion.scope,
                rules.rounding,
                remaining,
            )
        else:
            added = pricing.add_order_bonus(
                LineSource.PROMOTION,
                promotion.code,
                promotion.name,
                promotion.bonus_points,
                promotion.scope,
                remaining,
                needs_matching_line=True,
            )
        if added:
            promotion_points[promotion.code] = added

    pricing.apply_caps(rules.caps, member)
    return Quote(
        total=sum(line.points for line in pricing.out),
        lines=tuple(pricing.out),
        qualifying_spend=pricing.spend(pricing.matching(_QUALIFYING)),
        promotion_points=promotion_points,
    )


class _LinePoints:
    """Exact points per basket line: integer numerators over one shared denominator.

    The same numbers as a list of ``Fraction`` (no precision is lost), at a fraction of the cost:
    ``Fraction`` normalises every intermediate result, which made quotes several times slower.
    """

    __slots__ = ("denominator", "numerators")

    def __init__(self, count: int) -> None:
        self.numerators = [0] * count
        self.denominator = 1

    def held(self, indexes: Iterable[int]) -> int:
        """The numerator of the points the lines at ``indexes`` hold together."""
        return sum(self.numerators[index] for index in indexes)

    def add(self, gains: Iterable[tuple[int, int]], denominator: int) -> None:
        """Add ``gain / denominator`` to the line of every ``(index, gain)``."""
        common = math.lcm(self.denominator, denominator)
        if common != self.denominator:
            widen = common // self.denominator
            self.numerators = [numerator * widen for numerator in self.numerators]
            self.denominator = common
        factor = common // denominator
        for index, gain in gains:
            self.numerators[index] += gain * factor
        self._reduce()

    def scale(self, indexes: Iterable[int], numerator: int, denominator: int) -> None:
        """Multiply the points of the lines at ``indexes`` by ``numerator / denominator``."""
        scaled = set(indexes)
        # The other lines keep their value over the new denominator.
        self.numerators = [
            value * (numerator if index in scaled else denominator)
            for index, value in enumerate(self.numerators)
        ]
        self.denominator *= denominator
        self._reduce()

    def _reduce(self) -> None:
        divisor = math.gcd(self.denominator, *self.numerators)
        if divisor > 1:
            self.numerators = [numerator // divisor for numerator in self.numerators]
            self.denominator //= divisor


class _Pricing:
    """The quote under construction: exact points per basket line, and the explained lines."""

    __slots__ = ("basket_lines", "line_points", "matches", "nets", "out")

    def __init__(self, basket_lines: Sequence[BasketLine]) -> None:
        self.basket_lines = basket_lines
        self.nets = [line.net for line in basket_lines]
        #: Base points each basket line carries so far, multipliers included.
        self.line_points = _LinePoints(len(basket_lines))
        self.out: list[QuoteLine] = []
        #: The lines each scope matches: rules and promotions share few scopes between them.
        self.matches: dict[Scope, list[int]] = {}

    def matching(self, scope: Scope) -> list[int]:
        """Indexes of the basket lines ``scope`` matches, worked out once per scope and quote."""
        found = self.matches.get(scope)
        if found is None:
            found = [index for index, line in enumerate(self.basket_lines) if scope.matches(line)]
            self.matches[scope] = found
        return found

    def spend(self, indexes: Iterable[int]) -> int:
        return sum(self.nets[index] for index in indexes)

    def apply_base_rule(self, rule: EarningRule, rounding: Rounding) -> None:
        if rule.kind in (RuleKind.VISIT, RuleKind.MIN_SPEND_BONUS):
            self.add_order_bonus(
                LineSource.RULE,
                rule.code,
                rule.name,
                rule.points,
                rule.scope,
                rule.max_points_per_order,
                needs_matching_line=rule.kind is RuleKind.VISIT,
                min_spend=rule.min_spend,
            )
            return
        matching = self.matching(rule.scope)
        # Each line gains ``gain / denominator`` points.
        if rule.kind is RuleKind.SPEND:
            gains = [(index, self.nets[index] * rule.points) for index in matching]
            denominator = rule.per_amount
            basis = self.spend(matching)
        else:
            lines = self.basket_lines
            gains = [(index, lines[index].quantity * rule.points) for index in matching]
            denominator = 1
            basis = sum(lines[index].quantity for index in matching)
        gained = sum(gain for _, gain in gains)
        limit = rule.max_points_per_order
        points = _at_most(_round(gained, denominator, rounding), limit)
        if points <= 0:
            return
        if limit is not None and gained > limit * denominator:
            # The lines share the maximum in proportion: gain / denominator x limit / exact sum.
            gains = [(index, gain * limit) for index, gain in gains]
            denominator = gained
        self.line_points.add(gains, denominator)
        self.out.append(QuoteLine(LineSource.RULE, rule.code, rule.name, points, basis))

    def add_order_bonus(
        self,
        source: LineSource,
        code: str,
        name: Texts,
        points: int,
        scope: Scope,
        limit: int | None,
        *,
        needs_matching_line: bool,
        min_spend: int = 0,
    ) -> int:
        """Points for the whole order (visit, minimum spend, bonus promotion); never multiplied."""
        matching = self.matching(scope)
        spend = self.spend(matching)
        if (needs_matching_line and not matching) or spend < min_spend:
            return 0
        points = _at_most(points, limit)
        if points <= 0:
            return 0
        self.out.append(QuoteLine(source, code, name, points, spend))
        return points

    def multiply(
        self,
        source: LineSource,
        code: str,
        name: Texts,
        multiplier: Decimal,
        scope: Scope,
        rounding: Rounding,
        limit: int | None,
    ) -> int:
        """Scale the points of the lines ``scope`` matches that have base points by
        ``multiplier``; return what it added."""
        numerators = self.line_points.numerators
        indexes = [index for index in self.matching(scope) if numerators[index] > 0]
        if not indexes:
            return 0
        held = self.line_points.held(indexes)
        denominator = self.line_points.denominator
        factor, per = multiplier.as_integer_ratio()
        # The lines hold ``held / denominator``; the multiplier adds that x (factor / per - 1).
        added, added_per = held * (factor - per), denominator * per
        points = _at_most(_round(added, added_per, rounding), limit)
        if points <= 0:
            return 0
        if limit is not None and added > limit * added_per:
            # The lines grow by ``limit`` together, each in proportion to what it held.
            self.line_points.scale(indexes, held + limit * denominator, held)
        else:
            self.line_points.scale(indexes, factor, per)
        basis = _round(held, denominator, rounding)
        self.out.append(QuoteLine(source, code, name, points, basis, multiplier=multiplier))
        return points

    def apply_caps(self, caps: Iterable[Cap], member: MemberContext) -> None:
        total = sum(line.points for line in self.out)
        tightest: tuple[int, CapPeriod] | None = None
        for cap in caps:
            allowance = cap.max_points
            if cap.period is not CapPeriod.ORDER:
                allowance -= member.earned_in_period.get(cap.period, 0)
            allowance = max(allowance, 0)
            # Strictly less: on a tie the first cap names the line.
            if allowance < total and (tightest is None or allowance < tightest[0]):
                tightest = (allowance, cap.period)
        if tightest is not None:
            allowance, period = tightest
            self.out.append(
                QuoteLine(
                    LineSource.CAP, period.value, _CAP_NAMES[period], allowance - total, total
                )
            )


def _at_most(points: int, limit: int | None) -> int:
    """``points`` cut to a per-order maximum or a promotion's remaining budget, if any."""
    return points if limit is None else min(points, limit)


def _round(numerator: int, denominator: int, rounding: Rounding) -> int:
    """``numerator / denominator`` rounded to a whole number. HALF_UP rounds halves up, which is
    away from zero for every value a quote shows (a value below 0 only ever means "no line")."""
    if rounding == Rounding.DOWN:
        return numerator // denominator
    if rounding == Rounding.UP:
        return -(-numerator // denominator)
    return (2 * numerator + denominator) // (2 * denominator)


def _audience_applies(
    audience: Audience, basket: Basket, member: MemberContext, tier: TierLevel | None
) -> bool:
    if audience.locations and basket.location not in audience.locations:
        return False
    if audience.segments and not audience.segments & member.segments:
        return False
    return not audience.tiers or (tier is not None and tier.code in audience.tiers)


def _promotion_applies(
    promotion: Promotion,
    at: datetime,
    local: datetime,
    basket: Basket,
    member: MemberContext,
    tier: TierLevel | None,
) -> bool:
    if not promotion.starts_at <= at < promotion.ends_at:
        return False
    if promotion.weekdays and local.isoweekday() not in promotion.weekdays:
        return False
    if promotion.hours is not None:
        start, end = promotion.hours
        # Wall-clock time: a 17:00-19:00 happy hour follows the clocks across daylight saving.
        if not start <= local.time() < end:
            return False
    if not _audience_applies(promotion.audience, basket, member, tier):
        return False
    limit = promotion.per_member_limit
    return limit is None or member.promotion_uses.get(promotion.code, 0) < limit
