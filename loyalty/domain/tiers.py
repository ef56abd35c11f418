"""Tiers: qualification over a window, immediate upgrades, downgrades only at period end.

Pure: time and the member's qualifying totals are parameters; the service sums the totals over
``qualification_window``/``review_window`` and stores ``TierState``. All returned times are UTC.

Semantics:

* Windows are half-open ``[start, end)``. Calendar boundaries are local midnights in
  ``policy.timezone`` (1 January 00:00 Europe/Berlin is 31 December 23:00 UTC).
* CALENDAR_YEAR: an upgrade is judged on the local calendar year containing the event; a level
  is reviewed at the start of the next year.
* ANNIVERSARY: membership years start on the local date of ``joined_at`` each year (29 February
  falls on 28 February in common years); a level is reviewed on the next anniversary.
* ROLLING_12_MONTHS: an upgrade is judged on the 12 months up to and including the event;
  a level is held for 12 months from when it was reached (or last kept), then reviewed on the
  12 months before ``review_at``. Rolling arithmetic uses the UTC clock.
* Upgrades happen at once (``after_qualifying_event``) and never lower anything. A rolling
  upgrade restarts the 12 months; a calendar or anniversary upgrade keeps ``review_at`` (the end
  of the current period), and since that review judges the period the member just qualified in,
  the level is kept then and held through the following period as well.
* Downgrades happen only in ``review``, due at ``review_at`` plus ``grace_days`` local calendar
  days. The review judges the period that ends at ``review_at`` extended by the grace period, so
  activity during the grace period counts (it also counts toward the new period, which has
  already begun). Review keeps the level when the total supports it or more (review never
  raises: upgrades come only from qualifying events); otherwise it lowers by one step
  (ONE_STEP) or to the supported level (TO_SUPPORTED), dated at the review's due time.
* The next review: calendar and anniversary, the end of the period that starts at the old
  ``review_at``; rolling, 12 months after the review's due time. The service applies due reviews
  one at a time while ``now >= review_due`` (each advances one period, so several missed periods
  catch up exactly as if reviewed on time) and does so before handling a qualifying event.
* A manual level applies until ``manual_until`` (exclusive; None means no end) and the member
  holds the higher of it and the earned level; it never changes the earned level or its review.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from zoneinfo import ZoneInfo

from .calendar import known_zone, local_midnight, require_aware
from .errors import DomainError, ErrorCode
from .points import is_whole
from .texts import NO_TEXT, Texts

MAX_GRACE_DAYS = 366
#: Every multiplier (tier, earning rule, promotion) lies in 1..10: Square caps point multipliers
#: at 10x, and higher ones are almost always a typo (20 for 2.0).
MIN_MULTIPLIER = Decimal(1)
MAX_MULTIPLIER = Decimal(10)
#: Windows are half-open; ending one microsecond (a datetime's smallest step) after an instant
#: puts that instant inside.
_JUST_AFTER = timedelta(microseconds=1)


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


# --- Policy checks and lookups ---------------------------------------------------------------


def check_tier_policy(policy: TierPolicy) -> None:
    """Refuse policies with codes: tier_thresholds_unordered (not strictly ascending, base not 0),
    duplicate_code, invalid_rate (multiplier outside 1..10, negative threshold),
    invalid_tier_policy (no levels, empty code, grace outside 0..366 days, unknown time zone)."""
    if not policy.levels:
        raise DomainError(ErrorCode.INVALID_TIER_POLICY, "a tier policy needs at least one level")
    grace = policy.grace_days
    if not is_whole(grace) or not 0 <= grace <= MAX_GRACE_DAYS:
        raise DomainError(
            ErrorCode.INVALID_TIER_POLICY,
            f"grace_days must be between 0 and {MAX_GRACE_DAYS}",
            grace_days=grace,
        )
    known_zone(policy.timezone, ErrorCode.INVALID_TIER_POLICY)
    seen: set[str] = set()
    for candidate in policy.levels:
        if not candidate.code.strip():
            raise DomainError(ErrorCode.INVALID_TIER_POLICY, "every level needs a code")
        if candidate.code in seen:
            raise DomainError(
                ErrorCode.DUPLICATE_CODE,
                f"two levels share the code {candidate.code!r}",
                tier=candidate.code,
            )
        seen.add(candidate.code)
        if not is_whole(candidate.threshold) or candidate.threshold < 0:
            raise DomainError(
                ErrorCode.INVALID_RATE,
                "a threshold must be a whole number >= 0",
                tier=candidate.code,
            )
        if not multiplier_in_range(candidate.multiplier):
            raise DomainError(
                ErrorCode.INVALID_RATE,
                f"a tier multiplier must lie between {MIN_MULTIPLIER} and {MAX_MULTIPLIER}",
                tier=candidate.code,
            )
    if policy.levels[0].threshold != 0:
        raise DomainError(
            ErrorCode.TIER_THRESHOLDS_UNORDERED,
            "the first level is the base level and needs threshold 0",
            tier=policy.levels[0].code,
        )
    for lower, higher in pairwise(policy.levels):
        if higher.threshold <= lower.threshold:
            raise DomainError(
                ErrorCode.TIER_THRESHOLDS_UNORDERED,
                "thresholds must rise strictly from one level to the next",
                tier=higher.code,
            )


def level(policy: TierPolicy, code: str) -> TierLevel:
    """The level with ``code``; unknown_tier otherwise."""
    return policy.levels[_rank(policy, code)]


# --- Windows ---------------------------------------------------------------------------------


def enrolled(policy: TierPolicy, joined_at: datetime, at: datetime) -> tuple[TierState, TierChange]:
    """A new member's state: the base level, reviewed at the end of the current period."""
    require_aware(joined_at=joined_at, at=at)
    base = policy.levels[0].code
    if policy.window is TierWindow.ROLLING_12_MONTHS:
        review_at = _plus_years(at, 1)
    else:
        review_at = _period(policy, joined_at, at)[1]
    state = TierState(earned=base, since=at, review_at=review_at)
    return state, TierChange(before=None, after=base, reason=TierChangeReason.ENROLLED, at=at)


def qualification_window(
    policy: TierPolicy, joined_at: datetime, at: datetime
) -> tuple[datetime, datetime]:
    """[start, end) of the window whose total decides an upgrade at ``at``.

    Rolling: the 12 months up to and including ``at`` (the end is one microsecond after ``at``,
    the smallest step a datetime has). Calendar and anniversary: the whole period containing
    ``at``; activity after ``at`` cannot exist yet, so its total is the total so far."""
    require_aware(joined_at=joined_at, at=at)
    if policy.window is TierWindow.ROLLING_12_MONTHS:
        return _plus_years(at, -1), at.astimezone(UTC) + _JUST_AFTER
    return _period(policy, joined_at, at)


def review_due(policy: TierPolicy, state: TierState) -> datetime:
    """When the next period-end review may run: ``review_at`` plus the grace period."""
    return _plus_local_days(policy, state.review_at, policy.grace_days)


def review_window(
    policy: TierPolicy, state: TierState, joined_at: datetime
) -> tuple[datetime, datetime]:
    """[start, end) of the window whose total decides the review due at ``review_due``.

    It runs from the start of the period that ends at ``review_at`` (rolling: 12 months before
    ``review_at``) to the end of the grace period, so activity during the grace period counts."""
    require_aware(joined_at=joined_at)
    end = review_due(policy, state)
    if policy.window is TierWindow.ROLLING_12_MONTHS:
        return _plus_years(state.review_at, -1), end
    # The period that *ends* at review_at is the one containing the instant just before it.
    return _period(policy, joined_at, state.review_at - _JUST_AFTER)[0], end


# --- Changes ---------------------------------------------------------------------------------


def after_qualifying_event(
    policy: TierPolicy, state: TierState, qualifying_total: int, at: datetime
) -> tuple[TierState, TierChange | None]:
    """Upgrade at once when ``qualifying_total`` (over ``qualification_window``) reaches a higher
    level; never lower anything here."""
    require_aware(at=at)
    earned = _rank(policy, state.earned)
    supported = _supported_rank(policy, qualifying_total)
    if supported <= earned:
        return state, None
    after = policy.levels[supported].code
    review_at = state.review_at
    if policy.window is TierWindow.ROLLING_12_MONTHS:
        # A rolling level is held for 12 months from the moment it was reached; max() only
        # guards against ever shortening a hold the member already has.
        review_at = max(review_at, _plus_years(at, 1))
    upgraded = replace(state, earned=after, since=at, review_at=review_at)
    return upgraded, TierChange(state.earned, after, TierChangeReason.UPGRADE, at)


def review(
    policy: TierPolicy, state: TierState, qualifying_total: int, joined_at: datetime
) -> tuple[TierState, TierChange]:
    """The period-end review (call only when ``at >= review_due``): keep, or downgrade by the
    policy; the next period begins. Applying it advances ``review_at``, so a second call with the
    new state is not due and changes nothing.

    ``qualifying_total`` is the total over ``review_window(policy, state, joined_at)``. The change
    is dated ``review_due(state)``, not the time the service got round to it, so that catching
    up on several missed periods (one call per period, while due) gives the same history as
    reviewing each on time."""
    require_aware(joined_at=joined_at)
    reviewed_at = review_due(policy, state)
    if policy.window is TierWindow.ROLLING_12_MONTHS:
        next_review_at = _plus_years(reviewed_at, 1)
    else:
        # The period that starts at review_at ends at the next calendar year / anniversary.
        next_review_at = _period(policy, joined_at, state.review_at)[1]
    earned = _rank(policy, state.earned)
    supported = _supported_rank(policy, qualifying_total)
    if supported >= earned:
        kept = replace(state, review_at=next_review_at)
        return kept, TierChange(state.earned, state.earned, TierChangeReason.KEPT, reviewed_at)
    lowered = earned - 1 if policy.downgrade is DowngradePolicy.ONE_STEP else supported
    after = policy.levels[lowered].code
    downgraded = replace(state, earned=after, since=reviewed_at, review_at=next_review_at)
    return downgraded, TierChange(state.earned, after, TierChangeReason.DOWNGRADE, reviewed_at)


def effective(policy: TierPolicy, state: TierState, at: datetime) -> TierLevel:
    """The level at ``at``: the higher of the earned level and an unexpired manual one."""
    require_aware(at=at)
    earned = _rank(policy, state.earned)
    if state.manual is not None and (state.manual_until is None or at < state.manual_until):
        return policy.levels[max(earned, _rank(policy, state.manual))]
    return policy.levels[earned]


def assign_manual(
    policy: TierPolicy, state: TierState, code: str, until: datetime, at: datetime
) -> tuple[TierState, TierChange]:
    """Grant ``code`` from ``at`` until ``until`` (exclusive), replacing any earlier grant.

    The earned level and its review are untouched. The change's before/after are the effective
    levels, so a grant below the earned level shows no change: it only matters as a floor if the
    earned level drops beneath it before ``until``."""
    require_aware(at=at)
    _rank(policy, code)
    if until.utcoffset() is None or until <= at:
        raise DomainError(
            ErrorCode.INVALID_WINDOW,
            "a manual tier needs a timezone-aware end after its start",
            until=until.isoformat(),
        )
    before = effective(policy, state, at).code
    assigned = replace(state, manual=code, manual_until=until)
    after = effective(policy, assigned, at).code
    return assigned, TierChange(before, after, TierChangeReason.MANUAL, at)


def progress(
    policy: TierPolicy, state: TierState, qualifying_total: int, joined_at: datetime, at: datetime
) -> TierProgress:
    """ "N to reach the next level" and "N to keep this level by <date>".

    ``qualifying_total`` is the total over ``review_window`` (what the next review will judge).
    ``current``/``next`` follow the effective level; ``to_keep`` is about the earned level, the
    only one a review can lower. For calendar and anniversary windows outside the grace period,
    the review window's total so far is also the upgrade total; for rolling windows it counts
    only activity since the period began, so ``to_next`` may ask for more than an upgrade needs
    (never less, outside the grace period)."""
    require_aware(joined_at=joined_at, at=at)
    current = _rank(policy, effective(policy, state, at).code)
    above = policy.levels[current + 1] if current + 1 < len(policy.levels) else None
    keep_threshold = level(policy, state.earned).threshold
    return TierProgress(
        current=policy.levels[current].code,
        next=above.code if above is not None else None,
        to_next=max(0, above.threshold - qualifying_total) if above is not None else None,
        to_keep=max(0, keep_threshold - qualifying_total),
        keep_by=review_due(policy, state),
        qualifying_total=qualifying_total,
    )


# --- Checks and calendar arithmetic shared with earning and expiry ----------------------------


def multiplier_in_range(multiplier: Decimal) -> bool:
    """Whether ``multiplier`` lies in ``MIN_MULTIPLIER..MAX_MULTIPLIER`` (NaN and infinities do
    not; they are tested first because comparing a signalling NaN raises)."""
    return multiplier.is_finite() and MIN_MULTIPLIER <= multiplier <= MAX_MULTIPLIER


# --- Helpers ---------------------------------------------------------------------------------


def _rank(policy: TierPolicy, code: str) -> int:
    for index, candidate in enumerate(policy.levels):
        if candidate.code == code:
            return index
    raise DomainError(ErrorCode.UNKNOWN_TIER, f"the program has no tier {code!r}", tier=code)


def _supported_rank(policy: TierPolicy, qualifying_total: int) -> int:
    """Index of the highest level ``qualifying_total`` reaches; the base level always counts,
    even for a negative total (returns can exceed a window's purchases)."""
    supported = 0
    for index, candidate in enumerate(policy.levels):
        if candidate.threshold <= qualifying_total:
            supported = index
    return supported


def _period(policy: TierPolicy, joined_at: datetime, at: datetime) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local calendar year or membership year containing ``at``."""
    zone = ZoneInfo(policy.timezone)
    year = at.astimezone(zone).year
    if policy.window is TierWindow.CALENDAR_YEAR:
        return local_midnight(zone, date(year, 1, 1)), local_midnight(zone, date(year + 1, 1, 1))
    joined_day = joined_at.astimezone(zone).date()

    def anniversary(of_year: int) -> datetime:
        return local_midnight(zone, _same_day_in(joined_day, of_year))

    # ``at``'s local year holds exactly one anniversary: the period began either on it or on
    # the one a year before.
    start_year = year if anniversary(year) <= at else year - 1
    return anniversary(start_year), anniversary(start_year + 1)


def _same_day_in(day: date, year: int) -> date:
    """``day``'s month and day in ``year``; 29 February falls on the 28th in common years."""
    if (day.month, day.day) == (2, 29) and not calendar.isleap(year):
        return date(year, 2, 28)
    return date(year, day.month, day.day)


def _plus_years(moment: datetime, years: int) -> datetime:
    """The same UTC date and time ``years`` later (earlier if negative).

    Rolling windows count on the UTC clock: every instant exists exactly once there, whereas a
    local wall time can be skipped or repeated at a daylight-saving switch."""
    utc = moment.astimezone(UTC)
    shifted = _same_day_in(utc.date(), utc.year + years)
    return utc.replace(year=shifted.year, month=shifted.month, day=shifted.day)


def _plus_local_days(policy: TierPolicy, moment: datetime, days: int) -> datetime:
    """``days`` local calendar days after ``moment``, so that a grace period after a local
    midnight ends at a local midnight even across a daylight-saving switch."""
    if days == 0:
        # No wall-clock round trip: it would move the second of two repeated local hours.
        return moment.astimezone(UTC)
    local = moment.astimezone(ZoneInfo(policy.timezone))
    return (local + timedelta(days=days)).astimezone(UTC)
