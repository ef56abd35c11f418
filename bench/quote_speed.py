"""Quote speed: quotes per second for a 20-line basket priced by 30 active rules and promotions.

Run: .venv/bin/python bench/quote_speed.py   (about 3 seconds; prints quotes/s, mean and p99)
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from loyalty.domain.basket import Basket, BasketLine, LineKind
from loyalty.domain.earning import (
    Cap,
    CapPeriod,
    EarningRule,
    EarningRules,
    MemberContext,
    Promotion,
    PromotionKind,
    RuleKind,
    Scope,
    quote,
)
from loyalty.domain.texts import Texts
from loyalty.domain.tiers import TierLevel

NAME = Texts("Regel", "Rule")
AT = datetime(2026, 6, 13, 9, 30, tzinfo=UTC)  # a Saturday morning


def rules() -> EarningRules:
    categories = [f"cat-{n}" for n in range(10)]
    earning = [EarningRule("spend", RuleKind.SPEND, NAME, points=1, per_amount=100)]
    earning += [
        EarningRule(
            f"item-{n}", RuleKind.ITEM, NAME, points=5, scope=Scope(skus=frozenset({f"SKU-{n}"}))
        )
        for n in range(8)
    ]
    earning += [
        EarningRule(
            f"x-{n}",
            RuleKind.MULTIPLIER,
            NAME,
            multiplier=Decimal("1.5"),
            scope=Scope(categories=frozenset({categories[n]})),
        )
        for n in range(8)
    ]
    earning += [EarningRule("visit", RuleKind.VISIT, NAME, points=10)]
    earning += [EarningRule("bonus", RuleKind.MIN_SPEND_BONUS, NAME, points=50, min_spend=5_000)]
    promotions = [
        Promotion(
            f"promo-{n}",
            PromotionKind.MULTIPLIER if n % 2 else PromotionKind.BONUS,
            NAME,
            starts_at=AT - timedelta(days=10),
            ends_at=AT + timedelta(days=10),
            multiplier=Decimal(2),
            bonus_points=25,
            weekdays=frozenset({6, 7}),
            scope=Scope(categories=frozenset({categories[n % 10]})),
            budget_points=1_000_000,
            per_member_limit=100,
        )
        for n in range(11)
    ]
    return EarningRules(
        rules=tuple(earning),
        promotions=tuple(promotions),
        caps=(Cap(CapPeriod.ORDER, 100_000), Cap(CapPeriod.DAY, 200_000)),
    )


def basket(rng: random.Random) -> Basket:
    lines = tuple(
        BasketLine(
            line_id=str(n),
            sku=f"SKU-{rng.randrange(12)}",
            quantity=rng.randint(1, 4),
            unit_price=rng.randint(99, 4999),
            category=f"cat-{rng.randrange(10)}",
            kind=LineKind.GIFT_CARD if n == 19 else LineKind.MERCHANDISE,
        )
        for n in range(20)
    )
    return Basket("EUR", lines, location="berlin")


def main() -> None:
    rng = random.Random(7)
    priced_by = rules()
    assert len(priced_by.rules) + len(priced_by.promotions) == 30
    tier = TierLevel("gold", NAME, 1000, Decimal("1.5"))
    member = MemberContext(earned_in_period={CapPeriod.DAY: 120})
    baskets = [basket(rng) for _ in range(200)]
    for item in baskets[:20]:  # warm up
        quote(item, priced_by, tier, AT, member)
    samples: list[float] = []
    deadline = time.perf_counter() + 3.0
    n = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        quote(baskets[n % len(baskets)], priced_by, tier, AT, member)
        samples.append(time.perf_counter() - started)
        n += 1
    samples.sort()
    total = sum(samples)
    print(f"quotes: {n} in {total:.2f} s of quoting -> {n / total:,.0f} quotes/s (one core)")
    print(
        f"mean {statistics.fmean(samples) * 1e6:.0f} us, p99 {samples[int(n * 0.99)] * 1e6:.0f} us"
    )


if __name__ == "__main__":
    main()
