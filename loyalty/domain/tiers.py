"""Tiers: qualification over a window, immediate upgrades, downgrades only at period end.

Pure: time and the member's qualifying totals are parameters; the service sums the totals over
``qualification_window``/``review_window`` and stores ``TierState``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from .texts import NO_TEXT, Texts


class TierBasis(StrEnum):
    POINTS = "points"
    #: Net qualifying spend in minor units.
    SPEND = "spend"


class TierWindow(StrEnum):
    ROLLING_12_MONTHS = "rolling_12_months"
    CALENDAR_YEAR = "calendar_year"
    ANNIVERSARY = "anniversary"


class DowngradePolicy(StrEnum):
    ONE_STEP = "one_step"
    TO_SUPPORTED = "to_supported"


class TierChangeReason(StrEnum):
    ENROLLED = "enrolled"
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    KEPT = "kept"
    MANUAL = "manual"
    MANUAL_ENDED = "manual_ended"


@dataclass(frozen=True, slots=True)
class TierLevel:
    code: str
    name: Texts
    #: Qualifying points or spend (by the policy's basis) needed within the window.
    threshold: int
    multiplier: Decimal = Decimal(1)
    perks: Texts = NO_TEXT


@dataclass(frozen=True, slots=True)
class TierPolicy:
    #: Ascending by threshold; the first is the base level with threshold 0.
    levels: tuple[TierLevel, ...]
    basis: TierBasis = TierBasis.POINTS
    window: TierWindow = TierWindow.CALENDAR_YEAR
    downgrade: DowngradePolicy = DowngradePolicy.ONE_STEP
    grace_days: int = 0
    timezone: str = "Europe/Berlin"


@dataclass(frozen=True, slots=True)
class TierState:
    #: The level the member earned by qualification.
    earned: str
    since: datetime
    #: The end of the current period: no downgrade happens before ``review_at`` + grace.
    review_at: datetime
    manual: str | None = None
    manual_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class TierChange:
    before: str | None
    after: str
    reason: TierChangeReason
    at: datetime


@dataclass(frozen=True, slots=True)
class TierProgress:
    current: str
    next: str | None
    #: Qualifying points/spend still missing for the next level (None at the top).
    to_next: int | None
    #: What is still missing to keep the current level at the next review, and by when.
    to_keep: int
    keep_by: datetime
    qualifying_total: int


def check_tier_policy(policy: TierPolicy) -> None:
    """Refuse policies with codes: tier_thresholds_unordered (not strictly ascending, base not 0),
    duplicate_code, invalid_rate (multiplier < 1 or negative), invalid_tier_policy (no levels,
    negative grace, unknown time zone)."""
    raise NotImplementedError


def level(policy: TierPolicy, code: str) -> TierLevel:
    """The level with ``code``; unknown_tier otherwise."""
    raise NotImplementedError


def enrolled(policy: TierPolicy, joined_at: datetime, at: datetime) -> tuple[TierState, TierChange]:
    """A new member's state: the base level, reviewed at the end of the current period."""
    raise NotImplementedError


def qualification_window(
    policy: TierPolicy, joined_at: datetime, at: datetime
) -> tuple[datetime, datetime]:
    """[start, end) of the window whose total decides an upgrade at ``at``."""
    raise NotImplementedError


def after_qualifying_event(
    policy: TierPolicy, state: TierState, qualifying_total: int, at: datetime
) -> tuple[TierState, TierChange | None]:
    """Upgrade at once when ``qualifying_total`` (over ``qualification_window``) reaches a higher
    level; never lower anything here."""
    raise NotImplementedError


def review_due(policy: TierPolicy, state: TierState) -> datetime:
    """When the next period-end review may run: ``review_at`` plus the grace period."""
    raise NotImplementedError


def review_window(
    policy: TierPolicy, state: TierState, joined_at: datetime
) -> tuple[datetime, datetime]:
    """[start, end) of the window whose total decides the review due at ``review_due``."""
    raise NotImplementedError


def review(
    policy: TierPolicy, state: TierState, qualifying_total: int, joined_at: datetime
) -> tuple[TierState, TierChange]:
    """The period-end review (call only when ``at >= review_due``): keep, or downgrade by the
    policy; the next period begins. Applying it advances ``review_at``, so a second call with the
    new state is not due and changes nothing."""
    raise NotImplementedError


def effective(policy: TierPolicy, state: TierState, at: datetime) -> TierLevel:
    """The level at ``at``: the higher of the earned level and an unexpired manual one."""
    raise NotImplementedError


def assign_manual(
    policy: TierPolicy, state: TierState, code: str, until: datetime, at: datetime
) -> tuple[TierState, TierChange]:
    raise NotImplementedError


def progress(
    policy: TierPolicy, state: TierState, qualifying_total: int, joined_at: datetime, at: datetime
) -> TierProgress:
    """ "N to reach the next level" and "N to keep this level by <date>"."""
    raise NotImplementedError
