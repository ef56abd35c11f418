"""Rewards a member spends points on, and what each is worth against a basket.

Fixed-points rewards (amount off, percent off with a cap, a free item by SKU) cost
``points_cost``; points-as-money lets the cashier or member choose how many points to use at
``money_per_step`` minor units for every ``points_per_step`` points.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .basket import Basket
from .texts import NO_TEXT, Texts


class RewardKind(StrEnum):
    AMOUNT_OFF = "amount_off"
    PERCENT_OFF = "percent_off"
    FREE_ITEM = "free_item"
    POINTS_AS_MONEY = "points_as_money"


@dataclass(frozen=True, slots=True)
class Reward:
    code: str
    kind: RewardKind
    name: Texts
    description: Texts = NO_TEXT
    #: Fixed price in points; 0 for points-as-money.
    points_cost: int = 0
    amount_off: int = 0
    percent_off: int = 0
    #: Upper bound of a percent-off discount, minor units; None: no cap.
    max_discount: int | None = None
    sku: str | None = None
    points_per_step: int = 0
    money_per_step: int = 0
    min_points: int = 0
    max_points: int | None = None
    #: Tier codes that may redeem it; empty: every tier.
    tiers: frozenset[str] = frozenset()
    per_member_limit: int | None = None
    #: Units available in total; None: unlimited.
    stock: int | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class RewardValue:
    points: int
    #: Money off the basket, minor units (0 when redeemed without a basket, e.g. a voucher).
    discount: int
    #: Free item's line id when the reward is a free item applied to a basket.
    line_id: str | None = None


def check_reward(reward: Reward) -> None:
    """Refuse a reward that cannot work (invalid_reward, invalid_rate, invalid_window)."""
    raise NotImplementedError


def check_redeemable(
    reward: Reward,
    at: datetime,
    tier: str | None,
    member_redemptions: int,
    units_redeemed: int,
) -> None:
    """Refuse with reward_inactive, reward_not_yet_valid, reward_expired, reward_tier_restricted,
    reward_limit_reached, reward_out_of_stock."""
    raise NotImplementedError


def value(reward: Reward, basket: Basket | None, points_chosen: int | None = None) -> RewardValue:
    """Points it costs and money it takes off. Points-as-money needs ``points_chosen`` (a multiple
    of ``points_per_step`` within min/max, else invalid_points_choice) and never discounts more
    than the basket's net; a free item needs its SKU in the basket (reward_not_applicable)."""
    raise NotImplementedError
