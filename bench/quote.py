"""Quote benchmark: how many baskets per second ``quote`` prices, in one process.

Not a test: it prints figures. The basket has 20 lines; the rule set has 30 active rules and
promotions (spend, item, visit, minimum-spend, category multipliers, a weekend double-points
promotion, bonuses with budgets and trigger limits), a gold tier and order/day/week caps, so
that every step of ``quote`` runs.

    .venv/bin/python bench/quote.py
    .venv/bin/python bench/quote.py --seconds 10
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime
from datetime import time as clock
from decimal import Decimal

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
    Quote,
    Rounding,
    RuleKind,
    Scope,
    check_earning_rules,
    quote,
)
from loyalty.domain.texts import Texts
from loyalty.domain.tiers import TierLevel

CATEGORIES = ("bio", "bakery", "dairy", "drinks", "household")
#: Saturday 16 May 2026, 17:30 in Berlin: the weekend and happy-hour promotions both run.
AT = datetime(2026, 5, 16, 15, 30, tzinfo=UTC)
GOLD = TierLevel("gold", Texts("Gold", "Gold"), threshold=1000, multiplier=Decimal("1.5"))


def build_basket(rng: random.Random) -> Basket:
    lines = [
        BasketLine(
            line_id=str(index),
            sku=f"SKU-{rng.randint(1, 40)}",
            quantity=rng.randint(1, 4),
            unit_price=rng.randint(99, 4999),
            category=rng.choice(CATEGORIES),
        )
        for index in range(17)
    ]
    lines[3] = BasketLine("3", "SKU-7", 2, 1299, "bio", line_discount=300)
    lines += [
        BasketLine("17", "GIFT-25", 1, 2500, kind=LineKind.GIFT_CARD),
        BasketLine("18", "VAT", 1, 1900, kind=LineKind.TAX),
        BasketLine("19", "TIP", 1, 200, kind=LineKind.TIP),
    ]
    return Basket("EUR", tuple(lines), location="berlin-mitte")


def build_rules(rng: random.Random) -> EarningRules:
    def name(code: str) -> Texts:
        return Texts(f"Regel {code}", f"Rule {code}")

    rules: list[EarningRule] = [
        EarningRule("spend", RuleKind.SPEND, name("spend"), points=1),
        EarningRule(
            "mitte",
            RuleKind.SPEND,
            name("mitte"),
            points=1,
            per_amount=500,
            audience=Audience(locations=frozenset({"berlin-mitte"})),
            rounding=Rounding.HALF_UP,
        ),
        EarningRule("visit", RuleKind.VISIT, name("visit"), points=10),
        EarningRule(
            "big-basket", RuleKind.MIN_SPEND_BONUS, name("big-basket"), points=50, min_spend=5000
        ),
    ]
    rules += [
        EarningRule(
            f"item-{index}",
            RuleKind.ITEM,
            name(f"item-{index}"),
            points=rng.randint(1, 5),
            scope=Scope(skus=frozenset(f"SKU-{rng.randint(1, 40)}" for _ in range(3))),
            max_points_per_order=40,
        )
        for index in range(10)
    ]
    rules += [
        EarningRule(
            f"{category}-spend",
            RuleKind.SPEND,
            name(f"{category}-spend"),
            points=2,
            per_amount=300,
            scope=Scope(categories=frozenset({category})),
            rounding=Rounding.UP,
        )
        for category in CATEGORIES[:3]
    ]
    rules += [
        EarningRule(
            f"{category}-x{multiplier}",
            RuleKind.MULTIPLIER,
            name(f"{category}-x{multiplier}"),
            multiplier=Decimal(multiplier),
            scope=Scope(categories=frozenset({category})),
            max_points_per_order=200,
        )
        for category, multiplier in zip(CATEGORIES, ("2", "1.5", "1.25", "3", "2"), strict=True)
    ]
    always = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    promotions = (
        Promotion(
            "weekend",
            PromotionKind.MULTIPLIER,
            name("weekend"),
            *always,
            multiplier=Decimal(2),
            weekdays=frozenset({6, 7}),
        ),
        Promotion(
            "happy-hour",
            PromotionKind.MULTIPLIER,
            name("happy-hour"),
            *always,
            multiplier=Decimal("1.5"),
            hours=(clock(17), clock(19)),
            budget_points=1_000_000,
        ),
        Promotion(
            "gold-bio",
            PromotionKind.MULTIPLIER,
            name("gold-bio"),
            *always,
            multiplier=Decimal("1.25"),
            scope=Scope(categories=frozenset({"bio"})),
            audience=Audience(tiers=frozenset({"gold"})),
        ),
        *(
            Promotion(
                f"bonus-{index}",
                PromotionKind.BONUS,
                name(f"bonus-{index}"),
                *always,
                bonus_points=25,
                scope=Scope(categories=frozenset({CATEGORIES[index]})),
                per_member_limit=5,
                budget_points=50_000,
            )
            for index in range(5)
        ),
    )
    caps = (Cap(CapPeriod.ORDER, 5000), Cap(CapPeriod.DAY, 8000), Cap(CapPeriod.WEEK, 20000))
    return EarningRules(tuple(rules), promotions, caps)


def run(seconds: float) -> None:
    rng = random.Random(7)
    basket, rules = build_basket(rng), build_rules(rng)
    check_earning_rules(rules)
    member = MemberContext(
        segments=frozenset({"newsletter"}),
        earned_in_period={CapPeriod.DAY: 120, CapPeriod.WEEK: 900},
        promotion_uses={"bonus-0": 1},
        promotion_points_used={"happy-hour": 5000, "bonus-1": 1000},
    )
    sample: Quote = quote(basket, rules, GOLD, AT, member)
    for _ in range(200):  # warm up caches (time zones, enum hashes) before measuring
        quote(basket, rules, GOLD, AT, member)

    latencies: list[int] = []
    began = time.perf_counter_ns()
    deadline = began + int(seconds * 1e9)
    now = began
    while now < deadline:
        quote(basket, rules, GOLD, AT, member)
        after = time.perf_counter_ns()
        latencies.append(after - now)
        now = after
    elapsed = (now - began) / 1e9

    active = len(rules.rules) + len(rules.promotions)
    print(
        f"basket={len(basket.lines)} lines  rules+promotions={active}  caps={len(rules.caps)}  "
        f"tier={GOLD.code}  quote lines={len(sample.lines)}  total={sample.total}"
    )
    cuts = statistics.quantiles(latencies, n=100)
    print(f"  throughput  {len(latencies) / elapsed:8.0f} quotes/s   ({elapsed:.2f} s)")
    print(
        f"  latency     mean {statistics.fmean(latencies) / 1000:6.1f} us   "
        f"p50 {cuts[49] / 1000:6.1f} us   p99 {cuts[98] / 1000:6.1f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    run(args.seconds)


if __name__ == "__main__":
    main()
