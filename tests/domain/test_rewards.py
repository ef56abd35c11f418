"""Rewards: table-driven values worked out by hand (money in euro cents), eligibility order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from loyalty.domain.basket import Basket, BasketLine, LineKind
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.rewards import (
    Reward,
    RewardKind,
    RewardValue,
    check_redeemable,
    check_reward,
    value,
)
from loyalty.domain.texts import Texts

NAME = Texts("Prämie", "Reward")

FIVE_EUROS_OFF = Reward("FIVE", RewardKind.AMOUNT_OFF, NAME, points_cost=500, amount_off=500)
TEN_PERCENT_OFF = Reward("TEN", RewardKind.PERCENT_OFF, NAME, points_cost=300, percent_off=10)
FREE_COFFEE = Reward("COFFEE", RewardKind.FREE_ITEM, NAME, points_cost=150, sku="COFFEE")
#: 100 points = 1.00 EUR.
POINTS_AS_MONEY = Reward(
    "PAY", RewardKind.POINTS_AS_MONEY, NAME, points_per_step=100, money_per_step=100
)


def basket(*lines: BasketLine) -> Basket:
    return Basket("EUR", lines)


def line(
    line_id: str,
    sku: str,
    quantity: int,
    unit_price: int,
    discount: int = 0,
    kind: LineKind = LineKind.MERCHANDISE,
) -> BasketLine:
    return BasketLine(line_id, sku, quantity, unit_price, line_discount=discount, kind=kind)


#: Merchandise 2 x 12.50 - 1.00 = 24.00 plus a 50.00 gift card and 1.90 tax: net 75.90.
MIXED = basket(
    line("shirt", "SHIRT", 2, 1_250, discount=100),
    line("card", "GIFT50", 1, 5_000, kind=LineKind.GIFT_CARD),
    line("tax", "VAT", 1, 190, kind=LineKind.TAX),
)
#: Coffee 2 x 3.50 = 7.00 and 3 x 3.00 - 1.00 = 8.00 (2.66 a cup after the line discount).
COFFEES = basket(
    line("latte", "COFFEE", 2, 350),
    line("filter", "COFFEE", 3, 300, discount=100),
    line("cake", "CAKE", 1, 420),
)


@pytest.mark.parametrize(
    ("reward", "order", "expected"),
    [
        pytest.param(FIVE_EUROS_OFF, MIXED, RewardValue(500, 500), id="amount-off"),
        pytest.param(
            FIVE_EUROS_OFF,
            basket(line("gum", "GUM", 1, 300)),
            RewardValue(500, 300),  # min(5.00, 3.00): never more than the basket
            id="amount-off-small-basket",
        ),
        pytest.param(FIVE_EUROS_OFF, None, RewardValue(500, 500), id="amount-off-voucher"),
        pytest.param(
            TEN_PERCENT_OFF,
            MIXED,
            RewardValue(300, 240),  # 10 % of the 24.00 merchandise only
            id="percent-off-merchandise-only",
        ),
        pytest.param(
            replace(TEN_PERCENT_OFF, percent_off=15),
            basket(line("a", "A", 1, 2_399)),
            RewardValue(300, 359),  # 15 % of 23.99 = 3.5985, rounded down
            id="percent-off-rounds-down",
        ),
        pytest.param(
            replace(TEN_PERCENT_OFF, percent_off=50, max_discount=1_000),
            basket(line("tv", "TV", 1, 49_900)),
            RewardValue(300, 1_000),  # 50 % of 499.00 = 249.50, capped at 10.00
            id="percent-off-capped",
        ),
        pytest.param(
            replace(TEN_PERCENT_OFF, max_discount=1_000),
            MIXED,
            RewardValue(300, 240),  # 2.40 is under the 10.00 cap
            id="percent-off-under-cap",
        ),
        pytest.param(
            TEN_PERCENT_OFF,
            basket(line("card", "GIFT50", 1, 5_000, kind=LineKind.GIFT_CARD)),
            RewardValue(300, 0),
            id="percent-off-gift-card-only",
        ),
        pytest.param(TEN_PERCENT_OFF, None, RewardValue(300, 0), id="percent-off-voucher"),
        pytest.param(
            FREE_COFFEE,
            COFFEES,
            RewardValue(150, 266, "filter"),  # 8.00 // 3 = 2.66 beats 7.00 // 2 = 3.50
            id="free-item-cheapest-net-unit",
        ),
        pytest.param(
            FREE_COFFEE,
            basket(line("one", "COFFEE", 1, 300), line("two", "COFFEE", 2, 300)),
            RewardValue(150, 300, "one"),
            id="free-item-tie-first-line",
        ),
        pytest.param(FREE_COFFEE, None, RewardValue(150, 0), id="free-item-voucher"),
        pytest.param(
            POINTS_AS_MONEY, None, RewardValue(300, 300), id="points-as-money-300-is-3-euros"
        ),
        pytest.param(
            replace(POINTS_AS_MONEY, points_per_step=500, money_per_step=250),
            MIXED,
            RewardValue(1_500, 750),  # 1,500 // 500 = 3 steps x 2.50
            id="points-as-money-other-rate",
        ),
        pytest.param(
            POINTS_AS_MONEY,
            basket(line("gum", "GUM", 1, 300)),
            RewardValue(300, 300),  # exactly the basket's 3.00
            id="points-as-money-whole-basket",
        ),
    ],
)
def test_value(reward: Reward, order: Basket | None, expected: RewardValue) -> None:
    check_reward(reward)
    chosen = expected.points if reward.kind is RewardKind.POINTS_AS_MONEY else None
    assert value(reward, order, chosen) == expected


def test_points_as_money_scenario() -> None:
    """100 points = 1.00 EUR; the member holds a 10.00 basket."""
    order = basket(line("book", "BOOK", 1, 1_000))
    with pytest.raises(DomainError) as refused:
        value(POINTS_AS_MONEY, order, 350)  # not a whole number of 100-point steps
    assert refused.value.code is ErrorCode.INVALID_POINTS_CHOICE
    assert value(POINTS_AS_MONEY, order, 300) == RewardValue(300, 300)  # 3 x 1.00 = 3.00 off
    with pytest.raises(DomainError) as refused:
        value(POINTS_AS_MONEY, order, 1_100)  # 11.00 would exceed the 10.00 basket
    assert refused.value.code is ErrorCode.INVALID_POINTS_CHOICE
    assert refused.value.extra["max_points_usable"] == 1_000  # 10.00 // 1.00 x 100


@pytest.mark.parametrize(
    ("reward", "order", "chosen", "max_usable"),
    [
        pytest.param(POINTS_AS_MONEY, None, None, None, id="none"),
        pytest.param(POINTS_AS_MONEY, None, 0, None, id="zero"),
        pytest.param(POINTS_AS_MONEY, None, -100, None, id="negative"),
        pytest.param(POINTS_AS_MONEY, None, 350, None, id="not-a-multiple"),
        pytest.param(replace(POINTS_AS_MONEY, min_points=200), None, 100, None, id="below-min"),
        pytest.param(replace(POINTS_AS_MONEY, max_points=1_000), None, 1_100, None, id="over-max"),
        pytest.param(
            POINTS_AS_MONEY,
            basket(line("x", "X", 1, 250)),
            300,
            200,  # 2.50 takes two whole steps: 2.50 // 1.00 = 2, x 100 points
            id="over-basket",
        ),
        pytest.param(
            replace(POINTS_AS_MONEY, max_points=100),
            basket(line("x", "X", 1, 99_000)),
            200,
            None,  # refused by the reward's own maximum before the basket is looked at
            id="over-max-with-basket",
        ),
        pytest.param(
            replace(POINTS_AS_MONEY, max_points=500),
            basket(line("x", "X", 1, 250)),
            300,
            200,
            id="over-basket-under-max",
        ),
        pytest.param(FIVE_EUROS_OFF, MIXED, 400, None, id="fixed-price-other-points"),
    ],
)
def test_points_choice_refused(
    reward: Reward, order: Basket | None, chosen: int | None, max_usable: int | None
) -> None:
    with pytest.raises(DomainError) as refused:
        value(reward, order, chosen)
    assert refused.value.code is ErrorCode.INVALID_POINTS_CHOICE
    assert refused.value.extra.get("max_points_usable") == max_usable


def test_fixed_price_accepts_its_own_price_as_choice() -> None:
    assert value(FIVE_EUROS_OFF, MIXED, 500) == RewardValue(500, 500)


def test_free_item_not_in_basket() -> None:
    with pytest.raises(DomainError) as refused:
        value(FREE_COFFEE, MIXED)
    assert refused.value.code is ErrorCode.REWARD_NOT_APPLICABLE
    assert refused.value.extra["sku"] == "COFFEE"


# --- check_reward ----------------------------------------------------------------------------

NAIVE = datetime(2026, 1, 1)
JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reward", "code"),
    [
        pytest.param(replace(FIVE_EUROS_OFF, code=""), ErrorCode.INVALID_REWARD, id="no-code"),
        pytest.param(replace(FIVE_EUROS_OFF, amount_off=0), ErrorCode.INVALID_REWARD, id="0-off"),
        pytest.param(replace(FIVE_EUROS_OFF, points_cost=0), ErrorCode.INVALID_REWARD, id="free"),
        pytest.param(replace(TEN_PERCENT_OFF, percent_off=0), ErrorCode.INVALID_REWARD, id="0%"),
        pytest.param(replace(TEN_PERCENT_OFF, percent_off=101), ErrorCode.INVALID_REWARD),
        pytest.param(replace(TEN_PERCENT_OFF, max_discount=0), ErrorCode.INVALID_REWARD),
        pytest.param(replace(FREE_COFFEE, sku=None), ErrorCode.INVALID_REWARD, id="no-sku"),
        pytest.param(replace(FREE_COFFEE, sku=""), ErrorCode.INVALID_REWARD, id="empty-sku"),
        pytest.param(replace(POINTS_AS_MONEY, points_per_step=0), ErrorCode.INVALID_REWARD),
        pytest.param(replace(POINTS_AS_MONEY, money_per_step=0), ErrorCode.INVALID_REWARD),
        pytest.param(replace(POINTS_AS_MONEY, min_points=150), ErrorCode.INVALID_REWARD),
        pytest.param(replace(POINTS_AS_MONEY, max_points=250), ErrorCode.INVALID_REWARD),
        pytest.param(replace(POINTS_AS_MONEY, max_points=0), ErrorCode.INVALID_REWARD),
        pytest.param(
            replace(POINTS_AS_MONEY, min_points=500, max_points=300),
            ErrorCode.INVALID_REWARD,
            id="min-over-max",
        ),
        pytest.param(
            replace(POINTS_AS_MONEY, points_cost=100),
            ErrorCode.INVALID_REWARD,
            id="points-as-money-with-price",
        ),
        pytest.param(replace(FIVE_EUROS_OFF, stock=-1), ErrorCode.INVALID_REWARD, id="stock"),
        pytest.param(replace(FIVE_EUROS_OFF, per_member_limit=-1), ErrorCode.INVALID_REWARD),
        pytest.param(
            replace(FIVE_EUROS_OFF, valid_from=FEB, valid_until=JAN),
            ErrorCode.INVALID_WINDOW,
            id="window-backwards",
        ),
        pytest.param(
            replace(FIVE_EUROS_OFF, valid_from=JAN, valid_until=JAN),
            ErrorCode.INVALID_WINDOW,
            id="window-empty",
        ),
        pytest.param(replace(FIVE_EUROS_OFF, valid_from=NAIVE), ErrorCode.INVALID_WINDOW),
        pytest.param(replace(FIVE_EUROS_OFF, valid_until=NAIVE), ErrorCode.INVALID_WINDOW),
    ],
)
def test_check_reward_refuses(reward: Reward, code: ErrorCode) -> None:
    with pytest.raises(DomainError) as refused:
        check_reward(reward)
    assert refused.value.code is code


@pytest.mark.parametrize(
    "reward",
    [
        FIVE_EUROS_OFF,
        replace(TEN_PERCENT_OFF, percent_off=100, max_discount=2_000),
        FREE_COFFEE,
        POINTS_AS_MONEY,
        replace(POINTS_AS_MONEY, min_points=200, max_points=200, stock=0, per_member_limit=0),
        replace(FIVE_EUROS_OFF, valid_from=JAN, valid_until=FEB),
    ],
)
def test_check_reward_accepts(reward: Reward) -> None:
    check_reward(reward)


# --- check_redeemable ------------------------------------------------------------------------

#: For gold and platinum only, in January 2026, twice per member, 10 units in all.
LIMITED = replace(
    FIVE_EUROS_OFF,
    tiers=frozenset({"gold", "platinum"}),
    per_member_limit=2,
    stock=10,
    valid_from=JAN,
    valid_until=FEB,
)
MID_JAN = datetime(2026, 1, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reward", "at", "tier", "mine", "units", "code"),
    [
        # Each row breaks its own rule and every later one it can: the earliest is reported.
        pytest.param(
            replace(LIMITED, active=False), FEB, "silver", 2, 10, ErrorCode.REWARD_INACTIVE
        ),
        pytest.param(
            LIMITED,
            datetime(2025, 12, 31, tzinfo=UTC),
            "silver",
            2,
            10,
            ErrorCode.REWARD_NOT_YET_VALID,
        ),
        pytest.param(LIMITED, FEB, "silver", 2, 10, ErrorCode.REWARD_EXPIRED, id="until-excl"),
        pytest.param(LIMITED, MID_JAN, "silver", 2, 10, ErrorCode.REWARD_TIER_RESTRICTED),
        pytest.param(LIMITED, MID_JAN, None, 0, 0, ErrorCode.REWARD_TIER_RESTRICTED, id="no-tier"),
        pytest.param(LIMITED, MID_JAN, "gold", 2, 10, ErrorCode.REWARD_LIMIT_REACHED),
        pytest.param(LIMITED, MID_JAN, "gold", 1, 10, ErrorCode.REWARD_OUT_OF_STOCK),
    ],
)
def test_check_redeemable_refuses_in_order(
    reward: Reward, at: datetime, tier: str | None, mine: int, units: int, code: ErrorCode
) -> None:
    with pytest.raises(DomainError) as refused:
        check_redeemable(reward, at, tier, mine, units)
    assert refused.value.code is code


@pytest.mark.parametrize(
    ("reward", "at", "tier", "mine", "units"),
    [
        pytest.param(LIMITED, JAN, "gold", 1, 9, id="first-instant-last-unit"),
        pytest.param(FIVE_EUROS_OFF, MID_JAN, None, 99, 10**6, id="unrestricted"),
    ],
)
def test_check_redeemable_accepts(
    reward: Reward, at: datetime, tier: str | None, mine: int, units: int
) -> None:
    check_redeemable(reward, at, tier, mine, units)
