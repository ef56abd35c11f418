"""Rewards a member spends points on, and what each is worth against a basket.

Fixed-points rewards (amount off, percent off with a cap, a free item by SKU) cost
``points_cost``; points-as-money lets the cashier or member choose how many points to use at
``money_per_step`` minor units for every ``points_per_step`` points.

Semantics of ``value`` (money in integer minor units, rounded down in the shop's favour):

* AMOUNT_OFF: ``amount_off``, but never more than the basket's net; without a basket (a voucher)
  its face value.
* PERCENT_OFF: ``percent_off`` % of the net of the basket's merchandise lines (gift cards, tax,
  tips and delivery excluded), rounded down, capped by ``max_discount``; 0 without a basket.
* FREE_ITEM: the net unit price (line net // quantity) of the cheapest line with the SKU, whose
  ``line_id`` is returned; reward_not_applicable when no line has it; 0 without a basket.
* POINTS_AS_MONEY: ``points_chosen`` must be a positive multiple of ``points_per_step`` within
  ``min_points``..``max_points``; it takes ``points_chosen // points_per_step * money_per_step``
  off and must not exceed the basket's net (the refusal names the most points usable).
* Fixed-price rewards refuse a ``points_chosen`` other than None or their ``points_cost``.

``check_redeemable`` refuses in a fixed order: inactive, not yet valid, expired (``valid_until``
is exclusive), tier restricted, member limit reached, out of stock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .basket import Basket, BasketLine, LineKind
from .errors import DomainError, ErrorCode
from .texts import NO_TEXT, Texts

MAX_PERCENT = 100


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
    #: Money off the basket, minor units. Without a basket (a voucher): an amount-off reward's
    #: face value, 0 for the other kinds.
    discount: int
    #: Free item's line id when the reward is a free item applied to a basket.
    line_id: str | None = None


def check_reward(reward: Reward) -> None:
    """Refuse a reward that cannot work: invalid_reward for a missing or impossible value,
    invalid_window for a validity window that is naive or empty."""

    def refuse(detail: str, **extra: object) -> DomainError:
        return DomainError(ErrorCode.INVALID_REWARD, detail, reward=reward.code, **extra)

    if not reward.code.strip():
        raise refuse("a reward needs a code")
    for name, moment in (("valid_from", reward.valid_from), ("valid_until", reward.valid_until)):
        if moment is not None and moment.utcoffset() is None:
            raise DomainError(
                ErrorCode.INVALID_WINDOW, f"{name} must be timezone-aware", reward=reward.code
            )
    if (
        reward.valid_from is not None
        and reward.valid_until is not None
        and reward.valid_until <= reward.valid_from
    ):
        raise DomainError(
            ErrorCode.INVALID_WINDOW,
            "valid_until must come after valid_from",
            reward=reward.code,
            valid_from=reward.valid_from.isoformat(),
            valid_until=reward.valid_until.isoformat(),
        )
    if reward.stock is not None and reward.stock < 0:
        raise refuse("stock cannot be negative")
    if reward.per_member_limit is not None and reward.per_member_limit < 0:
        raise refuse("per_member_limit cannot be negative")
    if reward.kind is RewardKind.POINTS_AS_MONEY:
        _check_points_as_money(reward, refuse)
        return
    if reward.points_cost <= 0:
        raise refuse("a fixed-price reward needs points_cost > 0")
    if reward.kind is RewardKind.AMOUNT_OFF and reward.amount_off <= 0:
        raise refuse("an amount-off reward needs amount_off > 0")
    if reward.kind is RewardKind.PERCENT_OFF:
        if not 1 <= reward.percent_off <= MAX_PERCENT:
            raise refuse(f"percent_off must lie between 1 and {MAX_PERCENT}")
        if reward.max_discount is not None and reward.max_discount <= 0:
            raise refuse("max_discount must be positive (or absent for no cap)")
    if reward.kind is RewardKind.FREE_ITEM and not (reward.sku and reward.sku.strip()):
        raise refuse("a free-item reward needs the item's sku")


def check_redeemable(
    reward: Reward,
    at: datetime,
    tier: str | None,
    member_redemptions: int,
    units_redeemed: int,
) -> None:
    """Refuse with reward_inactive, reward_not_yet_valid, reward_expired, reward_tier_restricted,
    reward_limit_reached, reward_out_of_stock (checked in that order, so the member hears the
    most fundamental reason first). ``tier`` is the member's effective tier code, None for a
    member without one; ``valid_until`` is exclusive."""
    code = reward.code
    if not reward.active:
        raise DomainError(ErrorCode.REWARD_INACTIVE, "the reward is switched off", reward=code)
    if reward.valid_from is not None and at < reward.valid_from:
        raise DomainError(
            ErrorCode.REWARD_NOT_YET_VALID,
            "the reward cannot be redeemed yet",
            reward=code,
            valid_from=reward.valid_from.isoformat(),
        )
    if reward.valid_until is not None and at >= reward.valid_until:
        raise DomainError(
            ErrorCode.REWARD_EXPIRED,
            "the reward can no longer be redeemed",
            reward=code,
            valid_until=reward.valid_until.isoformat(),
        )
    if reward.tiers and tier not in reward.tiers:
        raise DomainError(
            ErrorCode.REWARD_TIER_RESTRICTED,
            "the reward is reserved for other tiers",
            reward=code,
            tiers=sorted(reward.tiers),
        )
    if reward.per_member_limit is not None and member_redemptions >= reward.per_member_limit:
        raise DomainError(
            ErrorCode.REWARD_LIMIT_REACHED,
            f"a member may redeem this reward {reward.per_member_limit} times",
            reward=code,
            limit=reward.per_member_limit,
        )
    if reward.stock is not None and units_redeemed >= reward.stock:
        raise DomainError(
            ErrorCode.REWARD_OUT_OF_STOCK,
            "the reward is out of stock",
            reward=code,
            stock=reward.stock,
        )


def value(reward: Reward, basket: Basket | None, points_chosen: int | None = None) -> RewardValue:
    """Points it costs and money it takes off. Points-as-money needs ``points_chosen`` (a multiple
    of ``points_per_step`` within min/max, else invalid_points_choice) and never discounts more
    than the basket's net; a free item needs its SKU in the basket (reward_not_applicable).

    Fixed-price rewards accept ``points_chosen`` only as None or their own ``points_cost``
    (invalid_points_choice otherwise): charging a number other than the one the member picked
    would be a surprise either way."""
    if reward.kind is RewardKind.POINTS_AS_MONEY:
        return _points_as_money(reward, basket, points_chosen)
    if points_chosen is not None and points_chosen != reward.points_cost:
        raise DomainError(
            ErrorCode.INVALID_POINTS_CHOICE,
            f"this reward costs exactly {reward.points_cost} points",
            reward=reward.code,
            points_cost=reward.points_cost,
        )
    points = reward.points_cost
    if reward.kind is RewardKind.AMOUNT_OFF:
        # Without a basket the reward is a voucher for its face value.
        discount = reward.amount_off if basket is None else min(reward.amount_off, basket.net)
        return RewardValue(points, discount)
    if reward.kind is RewardKind.PERCENT_OFF:
        if basket is None:
            return RewardValue(points, 0)
        merchandise = sum(line.net for line in basket.lines if line.kind is LineKind.MERCHANDISE)
        discount = merchandise * reward.percent_off // 100
        if reward.max_discount is not None:
            discount = min(discount, reward.max_discount)
        return RewardValue(points, discount)
    return _free_item(reward, basket)


# --- Helpers ---------------------------------------------------------------------------------


def _check_points_as_money(reward: Reward, refuse: Callable[..., DomainError]) -> None:
    step = reward.points_per_step
    if step <= 0 or reward.money_per_step <= 0:
        raise refuse("points-as-money needs points_per_step > 0 and money_per_step > 0")
    if reward.points_cost != 0:
        # The member chooses the points; a fixed price as well would be ambiguous.
        raise refuse("points-as-money has no fixed points_cost")
    if reward.min_points < 0 or reward.min_points % step:
        raise refuse(f"min_points must be a multiple of {step} points, >= 0", step=step)
    if reward.max_points is not None:
        if reward.max_points <= 0 or reward.max_points % step:
            raise refuse(f"max_points must be a positive multiple of {step} points", step=step)
        if reward.min_points > reward.max_points:
            raise refuse("min_points cannot exceed max_points")


def _points_as_money(reward: Reward, basket: Basket | None, chosen: int | None) -> RewardValue:
    step = reward.points_per_step
    if step <= 0 or reward.money_per_step <= 0:
        raise DomainError(
            ErrorCode.INVALID_REWARD, "points-as-money needs a positive rate", reward=reward.code
        )
    choice = {
        "reward": reward.code,
        "step": step,
        "min_points": reward.min_points,
        "max_points": reward.max_points,
    }
    if chosen is None or isinstance(chosen, bool) or chosen <= 0:
        raise DomainError(
            ErrorCode.INVALID_POINTS_CHOICE, "choose a positive number of points", **choice
        )
    if chosen % step:
        raise DomainError(
            ErrorCode.INVALID_POINTS_CHOICE, f"points come in steps of {step}", **choice
        )
    if chosen < reward.min_points or (reward.max_points is not None and chosen > reward.max_points):
        raise DomainError(
            ErrorCode.INVALID_POINTS_CHOICE, "the points lie outside the allowed range", **choice
        )
    discount = chosen // step * reward.money_per_step
    if basket is not None and discount > basket.net:
        # The most whole steps the basket can absorb, within the reward's own maximum.
        usable = basket.net // reward.money_per_step * step
        if reward.max_points is not None:
            usable = min(usable, reward.max_points)
        raise DomainError(
            ErrorCode.INVALID_POINTS_CHOICE,
            f"at most {usable} points can be used on this basket",
            max_points_usable=usable,
            **choice,
        )
    return RewardValue(chosen, discount)


def _free_item(reward: Reward, basket: Basket | None) -> RewardValue:
    if basket is None:
        # Redeemed as a voucher: the item is handed over later, its price unknown now.
        return RewardValue(reward.points_cost, 0)
    matching = [line for line in basket.lines if line.sku == reward.sku]
    if not matching:
        raise DomainError(
            ErrorCode.REWARD_NOT_APPLICABLE,
            f"the basket has no item {reward.sku!r}",
            reward=reward.code,
            sku=reward.sku,
        )
    # The cheapest unit is free (the first such line on a tie), after the line's own discount
    # spread evenly over its units, rounded down so the free unit is never worth more than paid.
    cheapest = min(matching, key=_net_unit_price)
    return RewardValue(reward.points_cost, _net_unit_price(cheapest), cheapest.line_id)


def _net_unit_price(line: BasketLine) -> int:
    return line.net // line.quantity
