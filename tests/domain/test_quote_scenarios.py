"""Quotes for stories a shop would tell: every expected figure is computed by hand in a comment.

Money is in cents; "1 pt per EUR" is ``points=1, per_amount=100``. The rule set rounds DOWN
unless a scenario says otherwise, and runs in Europe/Berlin (CET = UTC+1, CEST = UTC+2; in 2026
summer time runs from Sunday 29 March to Sunday 25 October).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import Decimal

import pytest

from loyalty.domain.basket import Basket, BasketLine, LineKind
from loyalty.domain.earning import (
    Audience,
    Cap,
    CapPeriod,
    EarningRule,
    EarningRules,
    MemberContext,
    Promotion,
    PromotionKind,
    Rounding,
    RuleKind,
    Scope,
    check_earning_rules,
    period_start,
    quote,
)
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.texts import Texts
from loyalty.domain.tiers import TierLevel

# --- Builders ------------------------------------------------------------------------------

#: Friday 15 May 2026, 12:00 in Berlin (CEST).
FRIDAY = datetime(2026, 5, 15, 10, 0, tzinfo=UTC)
#: Saturday 16 May 2026, 12:00 in Berlin.
SATURDAY = datetime(2026, 5, 16, 10, 0, tzinfo=UTC)
#: Still Friday in UTC, already Saturday 00:30 in Berlin.
FRIDAY_LATE_UTC = datetime(2026, 5, 15, 22, 30, tzinfo=UTC)
#: Still Sunday in UTC, already Monday 00:30 in Berlin.
SUNDAY_LATE_UTC = datetime(2026, 5, 17, 22, 30, tzinfo=UTC)

GOLD = TierLevel("gold", Texts("Gold", "Gold"), threshold=1000, multiplier=Decimal("1.5"))
SILVER = TierLevel("silver", Texts("Silber", "Silver"), threshold=500)
PLATINUM = TierLevel("platinum", Texts("Platin", "Platinum"), threshold=5000, multiplier=Decimal(2))


def texts(code: str) -> Texts:
    return Texts(f"Regel {code}", f"Rule {code}")


def item(
    line_id: str,
    sku: str,
    quantity: int,
    unit_price: int,
    category: str | None = None,
    *,
    discount: int = 0,
    kind: LineKind = LineKind.MERCHANDISE,
) -> BasketLine:
    return BasketLine(line_id, sku, quantity, unit_price, category, discount, kind)


def basket(*lines: BasketLine, location: str | None = None) -> Basket:
    return Basket("EUR", lines, location)


def one_line(cents: int) -> Basket:
    return basket(item("1", "THING", 1, cents))


def rule(code: str, kind: RuleKind = RuleKind.SPEND, **fields: object) -> EarningRule:
    defaults: dict[str, object] = {"points": 1} if kind is RuleKind.SPEND else {}
    return EarningRule(code, kind, texts(code), **{**defaults, **fields})  # type: ignore[arg-type]


SPEND_1_PER_EUR = rule("spend")


def promotion(code: str, kind: PromotionKind, **fields: object) -> Promotion:
    window: dict[str, object] = {
        "starts_at": datetime(2026, 1, 1, tzinfo=UTC),
        "ends_at": datetime(2027, 1, 1, tzinfo=UTC),
    }
    return Promotion(code, kind, texts(code), **{**window, **fields})  # type: ignore[arg-type]


def rules(
    *earning: EarningRule,
    promotions: tuple[Promotion, ...] = (),
    caps: tuple[Cap, ...] = (),
    rounding: Rounding = Rounding.DOWN,
) -> EarningRules:
    return EarningRules(earning, promotions, caps, rounding)


WEEKEND_DOUBLE = promotion(
    "weekend", PromotionKind.MULTIPLIER, multiplier=Decimal(2), weekdays=frozenset({6, 7})
)
HAPPY_HOUR = promotion(
    "happy-hour", PromotionKind.MULTIPLIER, multiplier=Decimal(2), hours=(time(17), time(19))
)
#: Two lines worth 40.00 EUR together.
BASKET_40_EUR = basket(item("1", "SCARF", 2, 1250), item("2", "GLOVES", 1, 1500))


@dataclass(frozen=True)
class Scenario:
    id: str
    #: The story in words: who buys what, when, under which rules.
    story: str
    basket: Basket
    rules: EarningRules
    expected_total: int
    #: (code, points) of every quote line, in quote order.
    expected_lines: tuple[tuple[str, int], ...]
    at: datetime = SATURDAY
    tier: TierLevel | None = None
    member: MemberContext | None = None
    expected_promotion_points: Mapping[str, int] = field(default_factory=dict)
    expected_qualifying_spend: int | None = None


SCENARIOS = [
    # --- Spend rules and rounding ----------------------------------------------------------
    Scenario(
        "spend-rounds-down",
        "1 pt per EUR, rounding down: a 23.99 EUR basket earns 23.",
        one_line(2399),
        rules(SPEND_1_PER_EUR),
        23,  # 2399 x 1 / 100 = 23.99 -> floor 23
        (("spend", 23),),
    ),
    Scenario(
        "spend-half-up-at-a-half",
        "The rule set rounds half up: 23.50 EUR earns 24.",
        one_line(2350),
        rules(SPEND_1_PER_EUR, rounding=Rounding.HALF_UP),
        24,  # 23.5 -> 24
        (("spend", 24),),
    ),
    Scenario(
        "spend-half-up-below-a-half",
        "The rule set rounds half up: 23.49 EUR earns 23.",
        one_line(2349),
        rules(SPEND_1_PER_EUR, rounding=Rounding.HALF_UP),
        23,  # 23.49 -> 23
        (("spend", 23),),
    ),
    Scenario(
        "spend-rule-rounds-up-over-set-policy",
        "The rule rounds up although the set rounds down: 23.01 EUR earns 24.",
        one_line(2301),
        rules(rule("spend", rounding=Rounding.UP)),
        24,  # 23.01 -> ceil 24
        (("spend", 24),),
    ),
    Scenario(
        "spend-2-pts-per-5-eur",
        "2 pts per 5 EUR: 49.99 EUR earns 19.",
        one_line(4999),
        rules(rule("spend", points=2, per_amount=500)),
        19,  # 4999 x 2 / 500 = 19.996 -> 19
        (("spend", 19),),
    ),
    Scenario(
        "spend-counts-net-after-line-discount",
        "Two shirts at 15 EUR with 7 EUR off the line earn on 23 EUR.",
        basket(item("1", "SHIRT", 2, 1500, discount=700)),
        rules(SPEND_1_PER_EUR),
        23,  # 2 x 1500 - 700 = 2300 -> 23
        (("spend", 23),),
    ),
    Scenario(
        "spend-per-order-max-then-tier",
        "2 pts per EUR at most 50 per order; a platinum member doubles what the rule gave.",
        one_line(4000),
        rules(rule("spend", points=2, max_points_per_order=50)),
        100,  # 40 x 2 = 80 -> max 50; platinum x2 adds 50 x (2 - 1) = 50; 50 + 50
        (("spend", 50), ("platinum", 50)),
        tier=PLATINUM,
    ),
    # --- Items and categories --------------------------------------------------------------
    Scenario(
        "item-points-per-unit-of-a-sku",
        "5 pts per bag of coffee beans on top of 1 pt per EUR.",
        basket(item("1", "BEANS", 3, 899), item("2", "MUG", 1, 1200)),
        rules(
            SPEND_1_PER_EUR,
            rule("beans", RuleKind.ITEM, points=5, scope=Scope(skus=frozenset({"BEANS"}))),
        ),
        53,  # spend: 3 x 899 + 1200 = 3897 -> 38.97 -> 38; beans: 3 units x 5 = 15; 38 + 15
        (("spend", 38), ("beans", 15)),
    ),
    Scenario(
        "category-multiplier-doubles-bio",
        "Double points on organic (category bio): apples are bio, bread is not.",
        basket(item("1", "APPLES", 2, 250, "bio"), item("2", "BREAD", 1, 350, "bakery")),
        rules(
            SPEND_1_PER_EUR,
            rule(
                "bio-double",
                RuleKind.MULTIPLIER,
                multiplier=Decimal(2),
                scope=Scope(categories=frozenset({"bio"})),
            ),
        ),
        13,  # spend: 8.50 -> 8 (apples 5, bread 3.5 exact); bio x2 adds 5 x 1 = 5; 8 + 5
        (("spend", 8), ("bio-double", 5)),
    ),
    Scenario(
        "per-order-max-shared-before-a-scoped-multiplier",
        "2 pts per EUR at most 50: a scoped multiplier doubles the bio share of the 50 only.",
        basket(item("1", "APPLES", 1, 1000, "bio"), item("2", "WINE", 1, 3000)),
        rules(
            rule("spend", points=2, max_points_per_order=50),
            rule(
                "bio-double",
                RuleKind.MULTIPLIER,
                multiplier=Decimal(2),
                scope=Scope(categories=frozenset({"bio"})),
            ),
        ),
        62,  # exact 20 + 60 = 80 -> 50, shares x 50/80: apples 12.5, wine 37.5; bio adds 12
        (("spend", 50), ("bio-double", 12)),
    ),
    Scenario(
        "multipliers-stack-on-exact-values",
        "x1.5 on everything, then a platinum tier: each step rounds once, values stay exact.",
        one_line(999),
        rules(SPEND_1_PER_EUR, rule("boost", RuleKind.MULTIPLIER, multiplier=Decimal("1.5"))),
        27,  # spend 9.99 -> 9; boost 9.99 x 0.5 = 4.995 -> 4 (value 14.985); tier 14.985 -> 14
        (("spend", 9), ("boost", 4), ("platinum", 14)),
        tier=PLATINUM,
    ),
    Scenario(
        "multiplier-skips-lines-without-base-points",
        "Base points only on bio; double points on everything only doubles the bio line.",
        basket(item("1", "APPLES", 1, 1000, "bio"), item("2", "WINE", 1, 1000)),
        rules(
            rule("bio-spend", scope=Scope(categories=frozenset({"bio"}))),
            promotions=(promotion("double", PromotionKind.MULTIPLIER, multiplier=Decimal(2)),),
        ),
        20,  # bio-spend 10; double adds 10 x 1 = 10 (wine has no base points)
        (("bio-spend", 10), ("double", 10)),
        expected_promotion_points={"double": 10},
    ),
    # --- Tier and weekend promotion --------------------------------------------------------
    Scenario(
        "tier-and-weekend-double-on-saturday",
        "A gold member (x1.5) shops for 40 EUR on Saturday noon: weekend double points.",
        BASKET_40_EUR,
        rules(SPEND_1_PER_EUR, promotions=(WEEKEND_DOUBLE,)),
        120,  # spend 40; gold adds 40 x 0.5 = 20 (value 60); weekend adds 60 x 1 = 60
        (("spend", 40), ("gold", 20), ("weekend", 60)),
        at=SATURDAY,
        tier=GOLD,
        expected_promotion_points={"weekend": 60},
    ),
    Scenario(
        "tier-without-weekend-on-friday",
        "The same basket on Friday noon: no weekend promotion.",
        BASKET_40_EUR,
        rules(SPEND_1_PER_EUR, promotions=(WEEKEND_DOUBLE,)),
        60,  # spend 40; gold adds 20
        (("spend", 40), ("gold", 20)),
        at=FRIDAY,
        tier=GOLD,
    ),
    Scenario(
        "weekend-by-local-weekday-friday-utc",
        "Friday 22:30 UTC is Saturday 00:30 in Berlin: the weekend has begun.",
        BASKET_40_EUR,
        rules(SPEND_1_PER_EUR, promotions=(WEEKEND_DOUBLE,)),
        120,  # as on Saturday noon: 40 + 20 + 60
        (("spend", 40), ("gold", 20), ("weekend", 60)),
        at=FRIDAY_LATE_UTC,
        tier=GOLD,
        expected_promotion_points={"weekend": 60},
    ),
    Scenario(
        "weekend-over-by-local-weekday-sunday-utc",
        "Sunday 22:30 UTC is Monday 00:30 in Berlin: the weekend is over.",
        BASKET_40_EUR,
        rules(SPEND_1_PER_EUR, promotions=(WEEKEND_DOUBLE,)),
        60,  # 40 + 20
        (("spend", 40), ("gold", 20)),
        at=SUNDAY_LATE_UTC,
        tier=GOLD,
    ),
    Scenario(
        "silver-tier-multiplier-1-adds-no-line",
        "A silver member (x1) earns the plain 40.",
        BASKET_40_EUR,
        rules(SPEND_1_PER_EUR),
        40,
        (("spend", 40),),
        tier=SILVER,
    ),
    # --- Caps ------------------------------------------------------------------------------
    Scenario(
        "day-cap-after-earlier-earnings",
        "At most 100 pts a day; the member earned 80 today already and buys for 45 EUR.",
        one_line(4500),
        rules(SPEND_1_PER_EUR, caps=(Cap(CapPeriod.DAY, 100),)),
        20,  # 45 earned, 100 - 80 = 20 allowed: cut 45 - 20 = 25
        (("spend", 45), ("day", -25)),
        member=MemberContext(earned_in_period={CapPeriod.DAY: 80}),
    ),
    Scenario(
        "tightest-cap-wins-as-one-line",
        "Order cap 30, day cap 100 with 50 earned today: the order cap is tighter.",
        one_line(4500),
        rules(SPEND_1_PER_EUR, caps=(Cap(CapPeriod.DAY, 100), Cap(CapPeriod.ORDER, 30))),
        30,  # 45; allowances: day 100 - 50 = 50, order 30 -> cut 45 - 30 = 15
        (("spend", 45), ("order", -15)),
        member=MemberContext(earned_in_period={CapPeriod.DAY: 50}),
    ),
    Scenario(
        "day-cap-already-exceeded",
        "The member earned 120 today under a 100 cap: nothing more today, never below 0.",
        one_line(4500),
        rules(SPEND_1_PER_EUR, caps=(Cap(CapPeriod.DAY, 100),)),
        0,  # allowance max(100 - 120, 0) = 0: cut all 45
        (("spend", 45), ("day", -45)),
        member=MemberContext(earned_in_period={CapPeriod.DAY: 120}),
    ),
    Scenario(
        "month-cap-not-reached",
        "Month cap 1000 with 900 earned this month: 45 more fit, no cap line.",
        one_line(4500),
        rules(SPEND_1_PER_EUR, caps=(Cap(CapPeriod.MONTH, 1000),)),
        45,  # 900 + 45 <= 1000
        (("spend", 45),),
        member=MemberContext(earned_in_period={CapPeriod.MONTH: 900}),
    ),
    # --- Exclusions ------------------------------------------------------------------------
    Scenario(
        "gift-card-tax-tip-excluded",
        "A shirt, a gift card, VAT and a tip: only the shirt earns and qualifies.",
        basket(
            item("1", "SHIRT", 1, 2000),
            item("2", "GIFT-50", 1, 5000, kind=LineKind.GIFT_CARD),
            item("3", "VAT", 1, 380, kind=LineKind.TAX),
            item("4", "TIP", 1, 300, kind=LineKind.TIP),
        ),
        rules(SPEND_1_PER_EUR),
        20,  # 2000 -> 20; gift card, tax and tip excluded by default
        (("spend", 20),),
        expected_qualifying_spend=2000,
    ),
    Scenario(
        "rule-that-includes-gift-cards",
        "A rule that only excludes tax and tips earns on the gift card too.",
        basket(
            item("1", "SHIRT", 1, 2000),
            item("2", "GIFT-50", 1, 5000, kind=LineKind.GIFT_CARD),
            item("3", "VAT", 1, 380, kind=LineKind.TAX),
        ),
        rules(rule("spend", scope=Scope(excluded_kinds=frozenset({LineKind.TAX, LineKind.TIP})))),
        70,  # (2000 + 5000) / 100 = 70
        (("spend", 70),),
        expected_qualifying_spend=2000,
    ),
    # --- Order bonuses ---------------------------------------------------------------------
    Scenario(
        "min-spend-bonus-reached",
        "50 bonus pts from 50 EUR: a 50.00 EUR basket earns it.",
        one_line(5000),
        rules(
            SPEND_1_PER_EUR, rule("big-basket", RuleKind.MIN_SPEND_BONUS, points=50, min_spend=5000)
        ),
        100,  # 50 + 50
        (("spend", 50), ("big-basket", 50)),
    ),
    Scenario(
        "min-spend-bonus-missed-by-a-cent",
        "The same rules, 49.99 EUR: no bonus.",
        one_line(4999),
        rules(
            SPEND_1_PER_EUR, rule("big-basket", RuleKind.MIN_SPEND_BONUS, points=50, min_spend=5000)
        ),
        49,  # 49.99 -> 49
        (("spend", 49),),
    ),
    Scenario(
        "min-spend-bonus-not-multiplied",
        "A platinum member (x2) reaches the 50 EUR bonus: the tier doubles the spend points only.",
        one_line(5000),
        rules(
            SPEND_1_PER_EUR, rule("big-basket", RuleKind.MIN_SPEND_BONUS, points=50, min_spend=5000)
        ),
        150,  # spend 50; bonus 50; platinum adds 50 x 1 = 50 on the spend points
        (("spend", 50), ("big-basket", 50), ("platinum", 50)),
        tier=PLATINUM,
    ),
    Scenario(
        "visit-points",
        "10 pts per visit plus 1 pt per EUR for one 2.50 EUR coffee.",
        basket(item("1", "COFFEE", 1, 250)),
        rules(SPEND_1_PER_EUR, rule("visit", RuleKind.VISIT, points=10)),
        12,  # spend 2.5 -> 2; visit 10
        (("spend", 2), ("visit", 10)),
    ),
    Scenario(
        "no-visit-for-a-gift-card-only",
        "Only a gift card: no matching line, so no visit points and no spend points.",
        basket(item("1", "GIFT-50", 1, 5000, kind=LineKind.GIFT_CARD)),
        rules(SPEND_1_PER_EUR, rule("visit", RuleKind.VISIT, points=10)),
        0,
        (),
        expected_qualifying_spend=0,
    ),
    # --- Promotion budgets and trigger limits ----------------------------------------------
    Scenario(
        "bonus-promotion-budget-nearly-exhausted",
        "A 50 pt welcome bonus with a 1000 pt budget of which 990 are spent: 10 are left.",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR,
            promotions=(
                promotion("welcome", PromotionKind.BONUS, bonus_points=50, budget_points=1000),
            ),
        ),
        30,  # spend 20; welcome min(50, 1000 - 990) = 10
        (("spend", 20), ("welcome", 10)),
        member=MemberContext(promotion_points_used={"welcome": 990}),
        expected_promotion_points={"welcome": 10},
    ),
    Scenario(
        "multiplier-promotion-budget-nearly-exhausted",
        "Double points with a 500 pt budget of which 495 are spent.",
        one_line(4000),
        rules(
            SPEND_1_PER_EUR,
            promotions=(
                promotion(
                    "double", PromotionKind.MULTIPLIER, multiplier=Decimal(2), budget_points=500
                ),
            ),
        ),
        45,  # spend 40; double would add 40, budget leaves 500 - 495 = 5
        (("spend", 40), ("double", 5)),
        member=MemberContext(promotion_points_used={"double": 495}),
        expected_promotion_points={"double": 5},
    ),
    Scenario(
        "promotion-budget-used-up",
        "The welcome bonus's budget is spent: it does not fire.",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR,
            promotions=(
                promotion("welcome", PromotionKind.BONUS, bonus_points=50, budget_points=1000),
            ),
        ),
        20,
        (("spend", 20),),
        member=MemberContext(promotion_points_used={"welcome": 1000}),
    ),
    Scenario(
        "per-member-trigger-limit-reached",
        "A first-purchase bonus (once per member) the member already had.",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR,
            promotions=(
                promotion("first", PromotionKind.BONUS, bonus_points=100, per_member_limit=1),
            ),
        ),
        20,
        (("spend", 20),),
        member=MemberContext(promotion_uses={"first": 1}),
    ),
    Scenario(
        "per-member-trigger-limit-not-reached",
        "A bonus twice per member, used once so far.",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR,
            promotions=(
                promotion("twice", PromotionKind.BONUS, bonus_points=100, per_member_limit=2),
            ),
        ),
        120,  # 20 + 100
        (("spend", 20), ("twice", 100)),
        member=MemberContext(promotion_uses={"twice": 1}),
        expected_promotion_points={"twice": 100},
    ),
    Scenario(
        "bonus-promotion-needs-a-matching-line",
        "A bonus for buying the new sneaker; the basket has none.",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR,
            promotions=(
                promotion(
                    "sneaker",
                    PromotionKind.BONUS,
                    bonus_points=100,
                    scope=Scope(skus=frozenset({"SNEAKER-2026"})),
                ),
            ),
        ),
        20,
        (("spend", 20),),
    ),
    Scenario(
        "promotion-ends-exclusive",
        "A promotion ending at Saturday noon does not apply at Saturday noon.",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR,
            promotions=(promotion("flash", PromotionKind.BONUS, bonus_points=5, ends_at=SATURDAY),),
        ),
        20,
        (("spend", 20),),
    ),
    Scenario(
        "promotion-starts-inclusive",
        "A promotion starting at Saturday noon applies at Saturday noon.",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR,
            promotions=(
                promotion("flash", PromotionKind.BONUS, bonus_points=5, starts_at=SATURDAY),
            ),
        ),
        25,  # 20 + 5
        (("spend", 20), ("flash", 5)),
        expected_promotion_points={"flash": 5},
    ),
    # --- Audiences -------------------------------------------------------------------------
    Scenario(
        "location-rule-at-its-store",
        "Extra 1 pt per EUR at the Mitte store; the member shops there.",
        basket(item("1", "THING", 1, 2000), location="berlin-mitte"),
        rules(
            SPEND_1_PER_EUR, rule("mitte", audience=Audience(locations=frozenset({"berlin-mitte"})))
        ),
        40,  # 20 + 20
        (("spend", 20), ("mitte", 20)),
    ),
    Scenario(
        "location-rule-elsewhere",
        "The same rules at the Munich store.",
        basket(item("1", "THING", 1, 2000), location="munich"),
        rules(
            SPEND_1_PER_EUR, rule("mitte", audience=Audience(locations=frozenset({"berlin-mitte"})))
        ),
        20,
        (("spend", 20),),
    ),
    Scenario(
        "location-rule-online-without-location",
        "The same rules online (no location).",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR, rule("mitte", audience=Audience(locations=frozenset({"berlin-mitte"})))
        ),
        20,
        (("spend", 20),),
    ),
    Scenario(
        "segment-rule-for-a-student",
        "Students earn an extra 1 pt per EUR; the member is a student.",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR, rule("students", audience=Audience(segments=frozenset({"students"})))
        ),
        40,  # 20 + 20
        (("spend", 20), ("students", 20)),
        member=MemberContext(segments=frozenset({"newsletter", "students"})),
    ),
    Scenario(
        "segment-rule-for-someone-else",
        "The same rules for a member outside the segment.",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR, rule("students", audience=Audience(segments=frozenset({"students"})))
        ),
        20,
        (("spend", 20),),
        member=MemberContext(segments=frozenset({"newsletter"})),
    ),
    Scenario(
        "tier-rule-for-gold",
        "Gold members get 25 pts a visit; a gold member (x1.5) buys for 20 EUR.",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR,
            rule(
                "gold-visit",
                RuleKind.VISIT,
                points=25,
                audience=Audience(tiers=frozenset({"gold"})),
            ),
        ),
        55,  # spend 20; gold-visit 25; gold adds 20 x 0.5 = 10 (visit points not multiplied)
        (("spend", 20), ("gold-visit", 25), ("gold", 10)),
        tier=GOLD,
    ),
    Scenario(
        "tier-rule-for-silver",
        "The same rules for a silver member.",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR,
            rule(
                "gold-visit",
                RuleKind.VISIT,
                points=25,
                audience=Audience(tiers=frozenset({"gold"})),
            ),
        ),
        20,
        (("spend", 20),),
        tier=SILVER,
    ),
    Scenario(
        "tier-rule-without-a-tier",
        "The same rules for a member without a tier.",
        one_line(2000),
        rules(
            SPEND_1_PER_EUR,
            rule(
                "gold-visit",
                RuleKind.VISIT,
                points=25,
                audience=Audience(tiers=frozenset({"gold"})),
            ),
        ),
        20,
        (("spend", 20),),
    ),
    # --- Happy hour 17:00-19:00 Berlin wall-clock time, across daylight saving -------------
    *(
        Scenario(
            f"happy-hour-{label}",
            f"Double points 17:00-19:00 Berlin time; {story}.",
            one_line(2000),
            rules(SPEND_1_PER_EUR, promotions=(HAPPY_HOUR,)),
            40 if inside else 20,  # 20, doubled to 40 inside the hours
            (("spend", 20), ("happy-hour", 20)) if inside else (("spend", 20),),
            at=at,
            expected_promotion_points={"happy-hour": 20} if inside else {},
        )
        for label, story, at, inside in [
            (
                "winter-inside",
                "16:30 UTC in January is 17:30 CET",
                datetime(2026, 1, 15, 16, 30, tzinfo=UTC),
                True,
            ),
            (
                "winter-before",
                "15:30 UTC in January is 16:30 CET",
                datetime(2026, 1, 15, 15, 30, tzinfo=UTC),
                False,
            ),
            (
                "winter-late",
                "17:30 UTC in January is 18:30 CET",
                datetime(2026, 1, 15, 17, 30, tzinfo=UTC),
                True,
            ),
            (
                "summer-inside",
                "16:30 UTC in July is 18:30 CEST",
                datetime(2026, 7, 15, 16, 30, tzinfo=UTC),
                True,
            ),
            (
                "summer-after",
                "17:30 UTC in July is 19:30 CEST",
                datetime(2026, 7, 15, 17, 30, tzinfo=UTC),
                False,
            ),
            (
                "summer-early",
                "15:00 UTC in July is 17:00 CEST, the first minute",
                datetime(2026, 7, 15, 15, 0, tzinfo=UTC),
                True,
            ),
            (
                "summer-end-exclusive",
                "17:00 UTC in July is 19:00 CEST, already over",
                datetime(2026, 7, 15, 17, 0, tzinfo=UTC),
                False,
            ),
            (
                "day-before-spring-switch",
                "15:30 UTC on 28 March is 16:30 CET",
                datetime(2026, 3, 28, 15, 30, tzinfo=UTC),
                False,
            ),
            (
                "spring-switch-day",
                "15:30 UTC on 29 March is 17:30 CEST",
                datetime(2026, 3, 29, 15, 30, tzinfo=UTC),
                True,
            ),
            (
                "day-before-autumn-switch",
                "15:30 UTC on 24 October is 17:30 CEST",
                datetime(2026, 10, 24, 15, 30, tzinfo=UTC),
                True,
            ),
            (
                "autumn-switch-day",
                "15:30 UTC on 25 October is 16:30 CET",
                datetime(2026, 10, 25, 15, 30, tzinfo=UTC),
                False,
            ),
        ]
    ),
    Scenario(
        "empty-basket",
        "A basket with nothing in it earns nothing, visit and minimum-spend bonuses included.",
        basket(),
        rules(
            SPEND_1_PER_EUR,
            rule("visit", RuleKind.VISIT, points=10),
            rule("big-basket", RuleKind.MIN_SPEND_BONUS, points=50, min_spend=1),
        ),
        0,
        (),
        tier=GOLD,
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.id for scenario in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    check_earning_rules(scenario.rules)
    result = quote(scenario.basket, scenario.rules, scenario.tier, scenario.at, scenario.member)
    assert [(line.code, line.points) for line in result.lines] == list(scenario.expected_lines)
    assert result.total == scenario.expected_total
    assert result.total == sum(line.points for line in result.lines)
    assert dict(result.promotion_points) == dict(scenario.expected_promotion_points)
    if scenario.expected_qualifying_spend is not None:
        assert result.qualifying_spend == scenario.expected_qualifying_spend


def test_lines_explain_their_basis() -> None:
    """Bases: matching spend, units, the points a multiplier multiplied, the total a cap cut."""
    result = quote(
        basket(item("1", "BEANS", 3, 899, "bio"), item("2", "MUG", 1, 1200)),
        rules(
            SPEND_1_PER_EUR,
            rule("beans", RuleKind.ITEM, points=5, scope=Scope(skus=frozenset({"BEANS"}))),
            rule("visit", RuleKind.VISIT, points=10),
            rule(
                "bio-double",
                RuleKind.MULTIPLIER,
                multiplier=Decimal(2),
                scope=Scope(categories=frozenset({"bio"})),
            ),
            caps=(Cap(CapPeriod.ORDER, 100),),
        ),
        GOLD,
        SATURDAY,
    )
    # spend 3897 -> 38 (beans 26.97, mug 12 exact); beans 15 units-points (beans 41.97);
    # visit 10; bio-double on 41.97 -> 41; gold x1.5 on 83.94 + 12 = 95.94 -> 47 (floor 47.97);
    # 38 + 15 + 10 + 41 + 47 = 151 -> order cap 100 cuts 51.
    assert [(line.code, line.points, line.basis, line.multiplier) for line in result.lines] == [
        ("spend", 38, 3897, None),
        ("beans", 15, 3, None),
        ("visit", 10, 3897, None),
        ("bio-double", 41, 41, Decimal(2)),
        ("gold", 47, 95, Decimal("1.5")),
        ("order", -51, 151, None),
    ]
    assert result.total == 100
    assert result.lines[-1].name == Texts("Obergrenze pro Einkauf", "Cap per order")
    assert result.lines[4].name == GOLD.name


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        quote(one_line(100), rules(SPEND_1_PER_EUR), None, datetime(2026, 5, 16, 12, 0))


# --- check_earning_rules -------------------------------------------------------------------

NAIVE = datetime(2026, 1, 1)


@pytest.mark.parametrize(
    ("earning_rules", "code", "rule_code"),
    [
        # duplicate_code
        pytest.param(
            rules(SPEND_1_PER_EUR, rule("spend", points=2)),
            ErrorCode.DUPLICATE_CODE,
            "spend",
            id="duplicate-rule",
        ),
        pytest.param(
            rules(promotions=(WEEKEND_DOUBLE, WEEKEND_DOUBLE)),
            ErrorCode.DUPLICATE_CODE,
            "weekend",
            id="duplicate-promotion",
        ),
        pytest.param(
            rules(rule("weekend"), promotions=(WEEKEND_DOUBLE,)),
            ErrorCode.DUPLICATE_CODE,
            "weekend",
            id="promotion-reuses-rule-code",
        ),
        # invalid_rate
        pytest.param(
            rules(rule("spend", points=-1)), ErrorCode.INVALID_RATE, "spend", id="negative-points"
        ),
        pytest.param(
            rules(rule("spend", per_amount=0)),
            ErrorCode.INVALID_RATE,
            "spend",
            id="per-amount-zero",
        ),
        pytest.param(
            rules(rule("big", RuleKind.MIN_SPEND_BONUS, points=5, min_spend=-100)),
            ErrorCode.INVALID_RATE,
            "big",
            id="negative-min-spend",
        ),
        pytest.param(
            rules(rule("spend", max_points_per_order=-1)),
            ErrorCode.INVALID_RATE,
            "spend",
            id="negative-order-max",
        ),
        pytest.param(
            rules(rule("half", RuleKind.MULTIPLIER, multiplier=Decimal("0.5"))),
            ErrorCode.INVALID_RATE,
            "half",
            id="multiplier-rule-below-1",
        ),
        pytest.param(
            rules(rule("x11", RuleKind.MULTIPLIER, multiplier=Decimal(11))),
            ErrorCode.INVALID_RATE,
            "x11",
            id="multiplier-rule-above-10",
        ),
        pytest.param(
            rules(rule("nan", RuleKind.MULTIPLIER, multiplier=Decimal("NaN"))),
            ErrorCode.INVALID_RATE,
            "nan",
            id="multiplier-rule-nan",
        ),
        pytest.param(
            rules(
                promotions=(promotion("less", PromotionKind.MULTIPLIER, multiplier=Decimal("0.9")),)
            ),
            ErrorCode.INVALID_RATE,
            "less",
            id="multiplier-promotion-below-1",
        ),
        pytest.param(
            rules(promotions=(promotion("minus", PromotionKind.BONUS, bonus_points=-5),)),
            ErrorCode.INVALID_RATE,
            "minus",
            id="negative-bonus",
        ),
        pytest.param(
            rules(caps=(Cap(CapPeriod.DAY, -1),)), ErrorCode.INVALID_RATE, "day", id="negative-cap"
        ),
        # invalid_window
        pytest.param(
            rules(
                promotions=(
                    promotion(
                        "p",
                        PromotionKind.BONUS,
                        bonus_points=5,
                        ends_at=datetime(2026, 1, 1, tzinfo=UTC),
                    ),
                )
            ),
            ErrorCode.INVALID_WINDOW,
            "p",
            id="ends-when-it-starts",
        ),
        pytest.param(
            rules(
                promotions=(
                    promotion(
                        "p",
                        PromotionKind.BONUS,
                        bonus_points=5,
                        ends_at=datetime(2025, 12, 1, tzinfo=UTC),
                    ),
                )
            ),
            ErrorCode.INVALID_WINDOW,
            "p",
            id="ends-before-it-starts",
        ),
        pytest.param(
            rules(
                promotions=(promotion("p", PromotionKind.BONUS, bonus_points=5, starts_at=NAIVE),)
            ),
            ErrorCode.INVALID_WINDOW,
            "p",
            id="naive-start",
        ),
        pytest.param(
            rules(
                promotions=(
                    promotion("p", PromotionKind.BONUS, bonus_points=5, hours=(time(19), time(17))),
                )
            ),
            ErrorCode.INVALID_WINDOW,
            "p",
            id="hours-end-before-start",
        ),
        pytest.param(
            rules(
                promotions=(
                    promotion("p", PromotionKind.BONUS, bonus_points=5, weekdays=frozenset({0, 1})),
                )
            ),
            ErrorCode.INVALID_WINDOW,
            "p",
            id="weekday-0",
        ),
        pytest.param(
            rules(
                promotions=(
                    promotion("p", PromotionKind.BONUS, bonus_points=5, weekdays=frozenset({8})),
                )
            ),
            ErrorCode.INVALID_WINDOW,
            "p",
            id="weekday-8",
        ),
        # invalid_rule
        pytest.param(rules(rule("")), ErrorCode.INVALID_RULE, "", id="empty-rule-code"),
        pytest.param(
            rules(promotions=(promotion("  ", PromotionKind.BONUS, bonus_points=5),)),
            ErrorCode.INVALID_RULE,
            "  ",
            id="blank-promotion-code",
        ),
        pytest.param(
            rules(rule("spend", points=0)),
            ErrorCode.INVALID_RULE,
            "spend",
            id="spend-gives-nothing",
        ),
        pytest.param(
            rules(rule("big", RuleKind.MIN_SPEND_BONUS, points=5)),
            ErrorCode.INVALID_RULE,
            "big",
            id="min-spend-bonus-without-min-spend",
        ),
        pytest.param(
            rules(
                promotions=(promotion("p", PromotionKind.BONUS, bonus_points=5, budget_points=0),)
            ),
            ErrorCode.INVALID_RULE,
            "p",
            id="zero-budget",
        ),
        pytest.param(
            rules(
                promotions=(
                    promotion("p", PromotionKind.BONUS, bonus_points=5, per_member_limit=0),
                )
            ),
            ErrorCode.INVALID_RULE,
            "p",
            id="zero-per-member-limit",
        ),
    ],
)
def test_check_earning_rules_refuses(
    earning_rules: EarningRules, code: ErrorCode, rule_code: str
) -> None:
    with pytest.raises(DomainError) as refused:
        check_earning_rules(earning_rules)
    assert refused.value.code is code
    assert refused.value.extra == {"rule": rule_code}
    assert repr(rule_code) in refused.value.detail


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "", "../etc/passwd"])
def test_check_earning_rules_refuses_unknown_time_zone(timezone: str) -> None:
    with pytest.raises(DomainError) as refused:
        check_earning_rules(EarningRules((SPEND_1_PER_EUR,), timezone=timezone))
    assert refused.value.code is ErrorCode.INVALID_RULE
    assert refused.value.extra == {"timezone": timezone}


def test_check_earning_rules_accepts_a_full_rule_set() -> None:
    check_earning_rules(
        rules(
            SPEND_1_PER_EUR,
            rule("beans", RuleKind.ITEM, points=5, scope=Scope(skus=frozenset({"BEANS"}))),
            rule("visit", RuleKind.VISIT, points=10),
            rule("big", RuleKind.MIN_SPEND_BONUS, points=50, min_spend=5000),
            rule("x1", RuleKind.MULTIPLIER, multiplier=Decimal(1)),
            rule("x10", RuleKind.MULTIPLIER, multiplier=Decimal(10), max_points_per_order=0),
            promotions=(
                WEEKEND_DOUBLE,
                HAPPY_HOUR,
                promotion("p", PromotionKind.BONUS, budget_points=1),
            ),
            caps=(Cap(CapPeriod.ORDER, 0), Cap(CapPeriod.DAY, 100), Cap(CapPeriod.DAY, 50)),
        )
    )


# --- period_start --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "at", "timezone", "expected"),
    [
        pytest.param(
            CapPeriod.DAY,
            SATURDAY,
            "Europe/Berlin",
            datetime(2026, 5, 15, 22, 0, tzinfo=UTC),  # Saturday 00:00 CEST
            id="day-summer",
        ),
        pytest.param(
            CapPeriod.DAY,
            FRIDAY_LATE_UTC,
            "Europe/Berlin",
            datetime(2026, 5, 15, 22, 0, tzinfo=UTC),  # already Saturday in Berlin
            id="day-local-date-decides",
        ),
        pytest.param(
            CapPeriod.DAY,
            datetime(2026, 1, 15, 12, 0, tzinfo=UTC),
            "Europe/Berlin",
            datetime(2026, 1, 14, 23, 0, tzinfo=UTC),  # 00:00 CET
            id="day-winter",
        ),
        pytest.param(
            CapPeriod.DAY,
            datetime(2026, 3, 29, 12, 0, tzinfo=UTC),
            "Europe/Berlin",
            datetime(2026, 3, 28, 23, 0, tzinfo=UTC),  # the switch day began in CET
            id="day-of-spring-switch",
        ),
        pytest.param(
            CapPeriod.DAY,
            datetime(2024, 3, 10, 12, 0, tzinfo=UTC),
            "America/Havana",
            datetime(2024, 3, 10, 5, 0, tzinfo=UTC),  # clocks jump 00:00 CST -> 01:00 CDT
            id="day-whose-midnight-is-skipped",
        ),
        pytest.param(
            CapPeriod.WEEK,
            datetime(2026, 5, 17, 12, 0, tzinfo=UTC),  # Sunday
            "Europe/Berlin",
            datetime(2026, 5, 10, 22, 0, tzinfo=UTC),  # Monday 11 May 00:00 CEST
            id="week-from-sunday",
        ),
        pytest.param(
            CapPeriod.WEEK,
            SUNDAY_LATE_UTC,  # Monday 00:30 in Berlin
            "Europe/Berlin",
            datetime(2026, 5, 17, 22, 0, tzinfo=UTC),  # Monday 18 May 00:00 CEST
            id="week-local-monday",
        ),
        pytest.param(
            CapPeriod.WEEK,
            datetime(2026, 3, 29, 12, 0, tzinfo=UTC),  # Sunday, CEST
            "Europe/Berlin",
            datetime(2026, 3, 22, 23, 0, tzinfo=UTC),  # Monday 23 March 00:00 CET
            id="week-across-spring-switch",
        ),
        pytest.param(
            CapPeriod.WEEK,
            datetime(2026, 3, 1, 12, 0, tzinfo=UTC),  # Sunday
            "Europe/Berlin",
            datetime(2026, 2, 22, 23, 0, tzinfo=UTC),  # Monday 23 February 00:00 CET
            id="week-across-month",
        ),
        pytest.param(
            CapPeriod.MONTH,
            datetime(2026, 4, 15, 12, 0, tzinfo=UTC),
            "Europe/Berlin",
            datetime(2026, 3, 31, 22, 0, tzinfo=UTC),  # 1 April 00:00 CEST
            id="month-summer",
        ),
        pytest.param(
            CapPeriod.MONTH,
            datetime(2026, 3, 31, 22, 30, tzinfo=UTC),  # 1 April 00:30 CEST
            "Europe/Berlin",
            datetime(2026, 3, 31, 22, 0, tzinfo=UTC),
            id="month-local-first",
        ),
        pytest.param(
            CapPeriod.MONTH,
            datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
            "UTC",
            datetime(2026, 12, 1, tzinfo=UTC),
            id="month-utc",
        ),
    ],
)
def test_period_start(period: CapPeriod, at: datetime, timezone: str, expected: datetime) -> None:
    start = period_start(period, at, timezone)
    assert start == expected
    assert start.tzinfo is UTC


def test_period_start_refuses_naive_time_and_order_period() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_start(CapPeriod.DAY, datetime(2026, 1, 1), "Europe/Berlin")
    with pytest.raises(ValueError, match="calendar period"):
        period_start(CapPeriod.ORDER, SATURDAY, "Europe/Berlin")
