"""Properties of ``quote`` over generated baskets and valid (hence non-negative) rule sets.

What holds, exactly (the module docstring of loyalty.domain.earning explains why):
* the total is the sum of the lines, never negative; only a cap line is negative;
* the total never exceeds the order cap nor a period cap minus what the member earned in that
  period (or 0); no promotion adds more than its remaining budget, none fires for a member who
  used up its trigger limit;
* the same inputs give the same quote; the order of basket lines does not matter at all, the
  order of caps does not change the total, nor does the order of base rules or of bonus
  promotions (multipliers keep their order: each one rounds what the previous ones left);
* adding a basket line never lowers the total (caps included, since the capped total is a
  non-decreasing function of the uncapped one) when no rule has a per-order maximum and no
  promotion a budget, or when every multiplier matches every line that has base points.
  Otherwise it can: ``test_adding_a_line_can_lower_the_total_with_a_shared_maximum``;
* a basket after returns earns what a basket bought without those units earns.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from random import Random
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.basket import Basket, BasketLine, LineKind
from loyalty.domain.earning import (
    Audience,
    Cap,
    CapPeriod,
    EarningRule,
    EarningRules,
    LineSource,
    MemberContext,
    Promotion,
    PromotionKind,
    Quote,
    Rounding,
    RuleKind,
    Scope,
    check_earning_rules,
    period_start,
    quote,
)
from loyalty.domain.texts import Texts
from loyalty.domain.tiers import TierLevel

pytestmark = pytest.mark.property

SKUS = ("BEANS", "MUG", "APPLES", "BREAD")
CATEGORIES = ("bio", "bakery")
LOCATIONS = ("mitte", "munich")
SEGMENTS = ("students", "newsletter")
TIERS = (
    TierLevel("silver", Texts("Silber", "Silver"), 500),
    TierLevel("gold", Texts("Gold", "Gold"), 1000, Decimal("1.5")),
    TierLevel("platinum", Texts("Platin", "Platinum"), 5000, Decimal(2)),
)
MULTIPLIERS = tuple(Decimal(m) for m in ("1", "1.25", "1.5", "2", "3", "10"))
#: Promotions run within these bounds; quotes are asked for within 2026.
EPOCH = datetime(2025, 12, 1, tzinfo=UTC)
YEAR_2026 = (datetime(2026, 1, 1), datetime(2026, 12, 31, 23, 59))


def _subset(values: tuple[str, ...]) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(values), max_size=len(values))


# Strategies are built once, at import: building them inside every draw costs more than the
# quotes themselves.

# --- Baskets -------------------------------------------------------------------------------

QUANTITIES = st.integers(1, 5)
UNIT_PRICES = st.integers(0, 5000)
LINE_SKUS = st.sampled_from(SKUS)
LINE_CATEGORIES = st.sampled_from((None, *CATEGORIES))
#: Mostly merchandise, like real tills.
LINE_KINDS = st.sampled_from((LineKind.MERCHANDISE,) * 4 + tuple(LineKind))
BASKET_LOCATIONS = st.sampled_from((None, *LOCATIONS))


@st.composite
def basket_lines(draw: st.DrawFn, line_id: str) -> BasketLine:
    quantity, unit_price = draw(QUANTITIES), draw(UNIT_PRICES)
    return BasketLine(
        line_id=line_id,
        sku=draw(LINE_SKUS),
        quantity=quantity,
        unit_price=unit_price,
        category=draw(LINE_CATEGORIES),
        line_discount=draw(st.integers(0, quantity * unit_price)),
        kind=draw(LINE_KINDS),
    )


EXTRA_LINES = basket_lines("extra")
#: Uniform, where integers() would favour the empty basket.
LINE_COUNTS = st.sampled_from(range(9))


@st.composite
def baskets(draw: st.DrawFn) -> Basket:
    count = draw(LINE_COUNTS)
    lines = tuple(draw(basket_lines(f"line-{index}")) for index in range(count))
    return Basket("EUR", lines, draw(BASKET_LOCATIONS))


# --- Rules ---------------------------------------------------------------------------------

#: Half of the scopes look at every line, so that rules often give points at all.
SCOPES = st.builds(
    Scope,
    skus=st.one_of(st.just(frozenset[str]()), _subset(SKUS)),
    categories=st.one_of(st.just(frozenset[str]()), _subset(CATEGORIES)),
    excluded_kinds=st.one_of(
        st.just(Scope().excluded_kinds), st.frozensets(st.sampled_from(tuple(LineKind)))
    ),
)
#: Matches every basket line, so a multiplier with it scales every line with base points.
EVERY_LINE = Scope(excluded_kinds=frozenset())
AUDIENCES = st.one_of(
    st.just(Audience()),
    st.builds(
        Audience,
        locations=_subset(LOCATIONS),
        segments=_subset(SEGMENTS),
        tiers=_subset(tuple(tier.code for tier in TIERS)),
    ),
)
RULE_KINDS = st.sampled_from(tuple(RuleKind))
PROMOTION_KINDS = st.sampled_from(tuple(PromotionKind))
ROUNDINGS = st.sampled_from(tuple(Rounding))
RULE_ROUNDINGS = st.one_of(st.none(), ROUNDINGS)
MAXIMUMS = st.one_of(st.none(), st.integers(0, 100))
MULTIPLIER_VALUES = st.sampled_from(MULTIPLIERS)
POINTS = st.integers(0, 50)
PER_AMOUNTS = st.sampled_from((1, 100, 250, 500))
MIN_SPENDS = st.integers(0, 5000)
# Half of the promotions run all of 2026, every day, so that promotions often apply at all.
START_HOURS = st.one_of(st.just(0), st.integers(0, 24 * 420))
LENGTH_HOURS = st.one_of(st.just(24 * 430), st.integers(1, 24 * 400))
WEEKDAYS = st.one_of(st.just(frozenset[int]()), st.frozensets(st.integers(1, 7)))
HOURS = st.one_of(
    st.none(),
    st.lists(st.integers(0, 23), min_size=2, max_size=2, unique=True).map(
        lambda pair: (time(min(pair)), time(max(pair)))
    ),
)
PER_MEMBER_LIMITS = st.one_of(st.none(), st.integers(1, 3))
BUDGETS = st.one_of(st.none(), st.integers(1, 300))
CAPS = st.lists(st.builds(Cap, st.sampled_from(tuple(CapPeriod)), st.integers(0, 300)), max_size=3)
TIMEZONES = st.sampled_from(("Europe/Berlin", "UTC", "America/New_York"))
QUOTE_TIMES = st.datetimes(*YEAR_2026, timezones=st.just(UTC))
MEMBER_TIERS = st.sampled_from((None, *TIERS))
MEMBER_SEGMENTS = _subset(SEGMENTS)
EARNED = st.integers(0, 400)
USES = st.integers(0, 3)
RULE_COUNTS = st.integers(0, 8)
PROMOTION_COUNTS = st.integers(0, 4)


@st.composite
def earning_rule(
    draw: st.DrawFn, code: str, *, limits: bool, scoped_multipliers: bool
) -> EarningRule:
    kind = draw(RULE_KINDS)
    name = Texts(code, code)
    audience, rounding = draw(AUDIENCES), draw(RULE_ROUNDINGS)
    maximum = draw(MAXIMUMS) if limits else None
    if kind is RuleKind.MULTIPLIER:
        return EarningRule(
            code,
            kind,
            name,
            multiplier=draw(MULTIPLIER_VALUES),
            scope=draw(SCOPES) if scoped_multipliers else EVERY_LINE,
            audience=audience,
            rounding=rounding,
            max_points_per_order=maximum,
        )
    points = draw(POINTS)
    min_spend = draw(MIN_SPENDS)
    return EarningRule(
        code,
        kind,
        name,
        # Valid rules: a spend rule gives points, a minimum-spend bonus has a minimum.
        points=max(points, 1) if kind is RuleKind.SPEND else points,
        per_amount=draw(PER_AMOUNTS),
        min_spend=max(min_spend, 1) if kind is RuleKind.MIN_SPEND_BONUS else min_spend,
        scope=draw(SCOPES),
        audience=audience,
        rounding=rounding,
        max_points_per_order=maximum,
    )


@st.composite
def promotion(draw: st.DrawFn, code: str, *, limits: bool, scoped_multipliers: bool) -> Promotion:
    kind = draw(PROMOTION_KINDS)
    starts_at = EPOCH + timedelta(hours=draw(START_HOURS))
    scoped = scoped_multipliers or kind is PromotionKind.BONUS
    return Promotion(
        code=code,
        kind=kind,
        name=Texts(code, code),
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=draw(LENGTH_HOURS)),
        multiplier=draw(MULTIPLIER_VALUES),
        bonus_points=draw(POINTS),
        weekdays=draw(WEEKDAYS),
        hours=draw(HOURS),
        scope=draw(SCOPES) if scoped else EVERY_LINE,
        audience=draw(AUDIENCES),
        per_member_limit=draw(PER_MEMBER_LIMITS),
        budget_points=draw(BUDGETS) if limits else None,
    )


@dataclass(frozen=True)
class Situation:
    """Everything ``quote`` needs besides the basket."""

    rules: EarningRules
    tier: TierLevel | None
    at: datetime
    member: MemberContext

    def quote(self, basket: Basket) -> Quote:
        return quote(basket, self.rules, self.tier, self.at, self.member)


@st.composite
def situations(
    draw: st.DrawFn, *, limits: bool = True, scoped_multipliers: bool = True
) -> Situation:
    rule_count, promotion_count = draw(RULE_COUNTS), draw(PROMOTION_COUNTS)
    rules = EarningRules(
        rules=tuple(
            draw(
                earning_rule(f"rule-{index}", limits=limits, scoped_multipliers=scoped_multipliers)
            )
            for index in range(rule_count)
        ),
        promotions=tuple(
            draw(promotion(f"promo-{index}", limits=limits, scoped_multipliers=scoped_multipliers))
            for index in range(promotion_count)
        ),
        caps=tuple(draw(CAPS)),
        rounding=draw(ROUNDINGS),
        timezone=draw(TIMEZONES),
    )
    codes = [item.code for item in rules.promotions]
    member = MemberContext(
        segments=draw(MEMBER_SEGMENTS),
        earned_in_period={
            period: draw(EARNED) for period in (CapPeriod.DAY, CapPeriod.WEEK, CapPeriod.MONTH)
        },
        promotion_uses={code: draw(USES) for code in codes},
        promotion_points_used={code: draw(EARNED) for code in codes},
    )
    return Situation(rules, draw(MEMBER_TIERS), draw(QUOTE_TIMES), member)


# --- Properties ----------------------------------------------------------------------------


@given(situation=situations(), basket=baskets())
def test_total_is_the_sum_of_explained_lines(situation: Situation, basket: Basket) -> None:
    check_earning_rules(situation.rules)  # the strategies only make valid rule sets
    result = situation.quote(basket)
    assert result.total == sum(line.points for line in result.lines)
    assert result.total >= 0
    assert all(line.points != 0 for line in result.lines)
    assert all((line.points < 0) == (line.source is LineSource.CAP) for line in result.lines)
    # At most one cap line, and it comes last: it cuts the total of everything above it.
    assert all(line.source is not LineSource.CAP for line in result.lines[:-1])
    promotion_lines = {
        line.code: line.points for line in result.lines if line.source is LineSource.PROMOTION
    }
    assert promotion_lines == dict(result.promotion_points)
    assert result.qualifying_spend == sum(
        line.net for line in basket.lines if line.kind is LineKind.MERCHANDISE
    )


@given(situation=situations(), basket=baskets())
def test_caps_budgets_and_trigger_limits_hold(situation: Situation, basket: Basket) -> None:
    result = situation.quote(basket)
    member = situation.member
    for cap in situation.rules.caps:
        earned = 0 if cap.period is CapPeriod.ORDER else member.earned_in_period[cap.period]
        assert result.total <= max(cap.max_points - earned, 0)
    for item in situation.rules.promotions:
        added = result.promotion_points.get(item.code, 0)
        if item.budget_points is not None:
            assert added <= max(item.budget_points - member.promotion_points_used[item.code], 0)
        if (
            item.per_member_limit is not None
            and member.promotion_uses[item.code] >= item.per_member_limit
        ):
            assert added == 0


@given(situation=situations(), basket=baskets(), rng=st.randoms(use_true_random=False))
def test_quote_is_deterministic_and_ignores_independent_orders(
    situation: Situation, basket: Basket, rng: Random
) -> None:
    result = situation.quote(basket)
    assert situation.quote(basket) == result

    lines = list(basket.lines)
    rng.shuffle(lines)
    assert situation.quote(replace(basket, lines=tuple(lines))) == result

    rules = situation.rules
    base = [rule for rule in rules.rules if rule.kind is not RuleKind.MULTIPLIER]
    bonuses = [item for item in rules.promotions if item.kind is PromotionKind.BONUS]
    caps = list(rules.caps)
    for items in (base, bonuses, caps):
        rng.shuffle(items)
    reordered = replace(
        rules,
        # Multipliers keep their relative order; base rules all run before them anyway.
        rules=(*base, *(rule for rule in rules.rules if rule.kind is RuleKind.MULTIPLIER)),
        promotions=(
            *bonuses,
            *(item for item in rules.promotions if item.kind is PromotionKind.MULTIPLIER),
        ),
        caps=tuple(caps),
    )
    again = replace(situation, rules=reordered).quote(basket)
    assert again.total == result.total
    assert Counter(
        (line.code, line.points) for line in again.lines if line.source is not LineSource.CAP
    ) == Counter(
        (line.code, line.points) for line in result.lines if line.source is not LineSource.CAP
    )
    assert again.promotion_points == result.promotion_points


@given(situation=situations(limits=False), basket=baskets(), extra=EXTRA_LINES)
def test_adding_a_line_never_lowers_the_total_without_maximums_or_budgets(
    situation: Situation, basket: Basket, extra: BasketLine
) -> None:
    bigger = replace(basket, lines=(*basket.lines, extra))
    assert situation.quote(bigger).total >= situation.quote(basket).total


@given(situation=situations(scoped_multipliers=False), basket=baskets(), extra=EXTRA_LINES)
def test_adding_a_line_never_lowers_the_total_when_multipliers_match_every_line(
    situation: Situation, basket: Basket, extra: BasketLine
) -> None:
    bigger = replace(basket, lines=(*basket.lines, extra))
    assert situation.quote(bigger).total >= situation.quote(basket).total


def test_adding_a_line_can_lower_the_total_with_a_shared_maximum() -> None:
    """Why the two properties above have conditions: 2 pts per EUR, at most 50, and x10 on bio.

    Apples alone (10 EUR): 20 base points, x10 adds 180: 200. With 30 EUR of wine the 50 points
    are shared 12.5 (apples) / 37.5 (wine), and x10 adds floor(112.5) = 112: 162.
    """
    rules = EarningRules(
        rules=(
            EarningRule(
                "spend", RuleKind.SPEND, Texts("s", "s"), points=2, max_points_per_order=50
            ),
            EarningRule(
                "bio",
                RuleKind.MULTIPLIER,
                Texts("b", "b"),
                multiplier=Decimal(10),
                scope=Scope(categories=frozenset({"bio"})),
            ),
        )
    )
    apples = BasketLine("1", "APPLES", 1, 1000, "bio")
    wine = BasketLine("2", "WINE", 1, 3000)
    at = datetime(2026, 5, 16, tzinfo=UTC)
    assert quote(Basket("EUR", (apples,)), rules, None, at).total == 200
    assert quote(Basket("EUR", (apples, wine)), rules, None, at).total == 162


@st.composite
def baskets_with_returns(draw: st.DrawFn) -> tuple[Basket, dict[str, int]]:
    basket = draw(baskets())
    returned = {
        line.line_id: draw(st.integers(1, line.quantity))
        for line in basket.lines
        if draw(st.booleans())
    }
    return basket, returned


@given(situation=situations(), basket_and_returns=baskets_with_returns())
def test_returns_earn_like_a_basket_bought_without_them(
    situation: Situation, basket_and_returns: tuple[Basket, dict[str, int]]
) -> None:
    basket, returned = basket_and_returns
    kept_lines = []
    for line in basket.lines:
        kept = line.quantity - returned.get(line.line_id, 0)
        if kept:
            # The discount shrinks with the units kept, rounded down in the member's favour.
            discount = line.line_discount * kept // line.quantity
            kept_lines.append(
                BasketLine(
                    line.line_id,
                    line.sku,
                    kept,
                    line.unit_price,
                    line.category,
                    discount,
                    line.kind,
                )
            )
    bought_without = Basket(basket.currency, tuple(kept_lines), basket.location)
    assert situation.quote(basket.returning(returned)) == situation.quote(bought_without)


@given(
    period=st.sampled_from((CapPeriod.DAY, CapPeriod.WEEK, CapPeriod.MONTH)),
    at=st.datetimes(datetime(2000, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC)),
    timezone=st.sampled_from(("Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC")),
)
def test_period_start_is_the_local_midnight_that_began_the_period(
    period: CapPeriod, at: datetime, timezone: str
) -> None:
    start = period_start(period, at, timezone)
    local = start.astimezone(ZoneInfo(timezone))
    assert start <= at
    assert (local.hour, local.minute, local.second) == (0, 0, 0)
    assert at - start < timedelta(
        days={CapPeriod.DAY: 1, CapPeriod.WEEK: 7, CapPeriod.MONTH: 31}[period], hours=1
    )
    if period is CapPeriod.WEEK:
        assert local.isoweekday() == 1
    if period is CapPeriod.MONTH:
        assert local.day == 1
    assert period_start(period, start, timezone) == start
