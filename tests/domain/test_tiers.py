"""Tiers: table-driven cases with dates and totals worked out by hand.

Berlin is UTC+1 in winter (CET) and UTC+2 in summer (CEST): local midnight on 1 January is
23:00 UTC the day before; local midnight in July is 22:00 UTC the day before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.texts import Texts
from loyalty.domain.tiers import (
    DowngradePolicy,
    TierChange,
    TierChangeReason,
    TierLevel,
    TierPolicy,
    TierProgress,
    TierState,
    TierWindow,
    after_qualifying_event,
    assign_manual,
    check_tier_policy,
    effective,
    enrolled,
    level,
    progress,
    qualification_window,
    review,
    review_due,
    review_window,
)


def tier(code: str, threshold: int, multiplier: str = "1") -> TierLevel:
    return TierLevel(code, Texts(code.title(), code.title()), threshold, Decimal(multiplier))


LEVELS = (
    tier("member", 0),
    tier("silver", 1_000, "1.25"),
    tier("gold", 5_000, "1.5"),
    tier("platinum", 10_000, "2"),
)

CALENDAR = TierWindow.CALENDAR_YEAR
ANNIVERSARY = TierWindow.ANNIVERSARY
ROLLING = TierWindow.ROLLING_12_MONTHS
ONE_STEP = DowngradePolicy.ONE_STEP
TO_SUPPORTED = DowngradePolicy.TO_SUPPORTED


def policy(
    window: TierWindow = CALENDAR,
    downgrade: DowngradePolicy = ONE_STEP,
    grace_days: int = 0,
    timezone: str = "Europe/Berlin",
) -> TierPolicy:
    return TierPolicy(
        LEVELS, window=window, downgrade=downgrade, grace_days=grace_days, timezone=timezone
    )


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


#: Local midnight, 1 January, in Berlin (CET, UTC+1).
BERLIN_NEW_YEAR_2026 = utc(2025, 12, 31, 23)
BERLIN_NEW_YEAR_2027 = utc(2026, 12, 31, 23)
BERLIN_NEW_YEAR_2028 = utc(2027, 12, 31, 23)
JOINED = utc(2024, 3, 10, 14)  # 15:00 in Berlin; anniversaries fall on 10 March


# --- check_tier_policy and level -------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "code"),
    [
        pytest.param(TierPolicy(()), ErrorCode.INVALID_TIER_POLICY, id="no-levels"),
        pytest.param(policy(grace_days=-1), ErrorCode.INVALID_TIER_POLICY, id="negative-grace"),
        pytest.param(policy(grace_days=367), ErrorCode.INVALID_TIER_POLICY, id="grace-over-year"),
        pytest.param(policy(timezone="Mars/Olympus"), ErrorCode.INVALID_TIER_POLICY, id="zone"),
        pytest.param(policy(timezone=""), ErrorCode.INVALID_TIER_POLICY, id="empty-zone"),
        pytest.param(
            TierPolicy((tier("member", 0), tier(" ", 10))),
            ErrorCode.INVALID_TIER_POLICY,
            id="empty-code",
        ),
        pytest.param(
            TierPolicy((tier("member", 0), tier("gold", 10), tier("gold", 20))),
            ErrorCode.DUPLICATE_CODE,
            id="duplicate-code",
        ),
        pytest.param(
            TierPolicy((tier("member", -5), tier("gold", 10))),
            ErrorCode.INVALID_RATE,
            id="negative-threshold",
        ),
        pytest.param(
            TierPolicy((tier("member", 0, "0.5"),)), ErrorCode.INVALID_RATE, id="multiplier-below-1"
        ),
        pytest.param(
            TierPolicy((tier("member", 0), tier("gold", 10, "10.01"))),
            ErrorCode.INVALID_RATE,
            id="multiplier-above-10",
        ),
        pytest.param(
            TierPolicy((tier("member", 0, "NaN"),)), ErrorCode.INVALID_RATE, id="multiplier-nan"
        ),
        pytest.param(
            TierPolicy((tier("member", 100), tier("gold", 500))),
            ErrorCode.TIER_THRESHOLDS_UNORDERED,
            id="base-not-zero",
        ),
        pytest.param(
            TierPolicy((tier("member", 0), tier("silver", 500), tier("gold", 500))),
            ErrorCode.TIER_THRESHOLDS_UNORDERED,
            id="equal-thresholds",
        ),
        pytest.param(
            TierPolicy((tier("member", 0), tier("gold", 500), tier("silver", 100))),
            ErrorCode.TIER_THRESHOLDS_UNORDERED,
            id="descending",
        ),
    ],
)
def test_check_tier_policy_refuses(candidate: TierPolicy, code: ErrorCode) -> None:
    with pytest.raises(DomainError) as refused:
        check_tier_policy(candidate)
    assert refused.value.code is code


@pytest.mark.parametrize(
    "candidate",
    [
        pytest.param(policy(), id="four-levels"),
        pytest.param(TierPolicy((tier("member", 0),)), id="base-only"),
        pytest.param(policy(grace_days=366, timezone="UTC"), id="longest-grace"),
        pytest.param(TierPolicy((tier("member", 0), tier("vip", 1, "10"))), id="multiplier-10"),
    ],
)
def test_check_tier_policy_accepts(candidate: TierPolicy) -> None:
    check_tier_policy(candidate)


def test_level_by_code() -> None:
    assert level(policy(), "gold") is LEVELS[2]
    with pytest.raises(DomainError) as refused:
        level(policy(), "diamond")
    assert refused.value.code is ErrorCode.UNKNOWN_TIER


# --- Windows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "joined_at", "at", "expected"),
    [
        pytest.param(
            policy(CALENDAR),
            JOINED,
            utc(2026, 6, 15, 10),
            (BERLIN_NEW_YEAR_2026, BERLIN_NEW_YEAR_2027),
            id="calendar-berlin",
        ),
        pytest.param(
            policy(CALENDAR),
            JOINED,
            utc(2026, 12, 31, 22, 59, 59),  # 23:59:59 on New Year's Eve in Berlin
            (BERLIN_NEW_YEAR_2026, BERLIN_NEW_YEAR_2027),
            id="calendar-berlin-last-second",
        ),
        pytest.param(
            policy(CALENDAR),
            JOINED,
            utc(2026, 12, 31, 23, 30),  # already 00:30 on 1 January 2027 in Berlin
            (BERLIN_NEW_YEAR_2027, BERLIN_NEW_YEAR_2028),
            id="calendar-berlin-new-year-before-utc",
        ),
        pytest.param(
            policy(CALENDAR, timezone="UTC"),
            JOINED,
            utc(2026, 12, 31, 23, 30),
            (utc(2026, 1, 1), utc(2027, 1, 1)),
            id="calendar-utc",
        ),
        pytest.param(
            policy(CALENDAR, timezone="Pacific/Auckland"),
            JOINED,
            utc(2026, 12, 31, 12),  # 01:00 on 1 January 2027 in Auckland (NZDT, UTC+13)
            (utc(2026, 12, 31, 11), utc(2027, 12, 31, 11)),
            id="calendar-auckland",
        ),
        pytest.param(
            policy(ANNIVERSARY),
            JOINED,
            utc(2026, 1, 20),
            # 10 March 00:00 CET (DST starts late in March) = 9 March 23:00 UTC.
            (utc(2025, 3, 9, 23), utc(2026, 3, 9, 23)),
            id="anniversary",
        ),
        pytest.param(
            policy(ANNIVERSARY),
            utc(2024, 7, 1, 8),
            utc(2026, 7, 1, 6),  # 08:00 CEST on the anniversary itself
            # 1 July 00:00 CEST = 30 June 22:00 UTC.
            (utc(2026, 6, 30, 22), utc(2027, 6, 30, 22)),
            id="anniversary-summer-on-the-day",
        ),
        pytest.param(
            policy(ANNIVERSARY),
            utc(2024, 2, 29, 12),
            utc(2025, 6, 1),
            # 2025 and 2026 are common years: the anniversary falls on 28 February.
            (utc(2025, 2, 27, 23), utc(2026, 2, 27, 23)),
            id="anniversary-leap-day-common-year",
        ),
        pytest.param(
            policy(ANNIVERSARY),
            utc(2024, 2, 29, 12),
            utc(2028, 2, 28, 12),  # 2028 is a leap year: its anniversary is still ahead
            (utc(2027, 2, 27, 23), utc(2028, 2, 28, 23)),
            id="anniversary-leap-day-leap-year",
        ),
        pytest.param(
            policy(ROLLING),
            JOINED,
            utc(2026, 6, 15, 10),
            (utc(2025, 6, 15, 10), utc(2026, 6, 15, 10, 0, 0, 1)),
            id="rolling-includes-at",
        ),
        pytest.param(
            policy(ROLLING),
            JOINED,
            utc(2028, 2, 29, 12),
            (utc(2027, 2, 28, 12), utc(2028, 2, 29, 12, 0, 0, 1)),
            id="rolling-from-leap-day",
        ),
    ],
)
def test_qualification_window(
    candidate: TierPolicy, joined_at: datetime, at: datetime, expected: tuple[datetime, datetime]
) -> None:
    assert qualification_window(candidate, joined_at, at) == expected


@pytest.mark.parametrize(
    ("candidate", "joined_at", "at", "review_at"),
    [
        pytest.param(
            policy(CALENDAR),
            utc(2026, 3, 5, 10),
            utc(2026, 3, 5, 10),
            BERLIN_NEW_YEAR_2027,
            id="cy",
        ),
        pytest.param(
            policy(CALENDAR),
            utc(2026, 12, 31, 23, 30),
            utc(2026, 12, 31, 23, 30),  # New Year in Berlin already: a whole year ahead
            BERLIN_NEW_YEAR_2028,
            id="calendar-joined-on-berlin-new-year",
        ),
        pytest.param(
            policy(ANNIVERSARY),
            utc(2026, 3, 5, 10),
            utc(2026, 3, 5, 10),
            utc(2027, 3, 4, 23),  # 5 March 2027 00:00 CET
            id="anniversary",
        ),
        pytest.param(
            policy(ANNIVERSARY),
            utc(2020, 8, 20, 9),
            utc(2026, 3, 5, 10),  # the tier programme started long after the member joined
            utc(2026, 8, 19, 22),  # 20 August 2026 00:00 CEST
            id="anniversary-enrolled-later",
        ),
        pytest.param(
            policy(ROLLING), utc(2026, 3, 5, 10), utc(2026, 3, 5, 10), utc(2027, 3, 5, 10), id="r12"
        ),
    ],
)
def test_enrolled(
    candidate: TierPolicy, joined_at: datetime, at: datetime, review_at: datetime
) -> None:
    state, change = enrolled(candidate, joined_at, at)
    assert state == TierState(earned="member", since=at, review_at=review_at)
    assert change == TierChange(None, "member", TierChangeReason.ENROLLED, at)


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        enrolled(policy(), JOINED, datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("grace_days", "expected"),
    [
        pytest.param(0, BERLIN_NEW_YEAR_2027, id="no-grace"),
        # 1 January + 31 days = 1 February 00:00 CET.
        pytest.param(31, utc(2027, 1, 31, 23), id="31-days"),
        # 1 January + 90 days (31 + 28 + 31) = 1 April 2027 00:00, after the switch to CEST.
        pytest.param(90, utc(2027, 3, 31, 22), id="90-days-across-dst"),
    ],
)
def test_review_due_counts_local_days(grace_days: int, expected: datetime) -> None:
    state = TierState("gold", utc(2026, 5, 1), BERLIN_NEW_YEAR_2027)
    assert review_due(policy(grace_days=grace_days), state) == expected


@pytest.mark.parametrize(
    ("candidate", "state", "expected"),
    [
        pytest.param(
            policy(CALENDAR, grace_days=31),
            TierState("gold", utc(2026, 5, 1), BERLIN_NEW_YEAR_2027),
            # All of 2026 and the January 2027 grace period.
            (BERLIN_NEW_YEAR_2026, utc(2027, 1, 31, 23)),
            id="calendar-with-grace",
        ),
        pytest.param(
            policy(ANNIVERSARY),
            TierState("gold", utc(2025, 5, 1), utc(2026, 3, 9, 23)),
            (utc(2025, 3, 9, 23), utc(2026, 3, 9, 23)),
            id="anniversary",
        ),
        pytest.param(
            policy(ROLLING, grace_days=10),
            TierState("gold", utc(2026, 6, 1, 12), utc(2027, 6, 1, 12)),
            # 14:00 CEST + 10 local days is still 14:00 CEST = 12:00 UTC.
            (utc(2026, 6, 1, 12), utc(2027, 6, 11, 12)),
            id="rolling-with-grace",
        ),
    ],
)
def test_review_window(
    candidate: TierPolicy, state: TierState, expected: tuple[datetime, datetime]
) -> None:
    assert review_window(candidate, state, JOINED) == expected


# --- Upgrades --------------------------------------------------------------------------------

MEMBER_2026 = TierState("member", utc(2026, 1, 10), BERLIN_NEW_YEAR_2027)
GOLD_2026 = TierState("gold", utc(2026, 2, 1), BERLIN_NEW_YEAR_2027)


@pytest.mark.parametrize(
    ("candidate", "state", "total", "at", "expected"),
    [
        pytest.param(
            policy(CALENDAR),
            MEMBER_2026,
            5_200,
            utc(2026, 6, 1),
            # At once, held to the end of the current year (the review will then keep it).
            TierState("gold", utc(2026, 6, 1), BERLIN_NEW_YEAR_2027),
            id="calendar-upgrade-keeps-review-at",
        ),
        pytest.param(
            policy(CALENDAR),
            MEMBER_2026,
            10_000,
            utc(2026, 6, 1),
            TierState("platinum", utc(2026, 6, 1), BERLIN_NEW_YEAR_2027),
            id="several-levels-at-once",
        ),
        pytest.param(
            policy(ROLLING),
            TierState("member", utc(2026, 1, 10), utc(2027, 1, 10)),
            1_000,
            utc(2026, 6, 1, 12),
            TierState("silver", utc(2026, 6, 1, 12), utc(2027, 6, 1, 12)),
            id="rolling-upgrade-restarts-12-months",
        ),
    ],
)
def test_upgrade_at_once(
    candidate: TierPolicy, state: TierState, total: int, at: datetime, expected: TierState
) -> None:
    upgraded, change = after_qualifying_event(candidate, state, total, at)
    assert upgraded == expected
    assert change == TierChange(state.earned, expected.earned, TierChangeReason.UPGRADE, at)


@pytest.mark.parametrize(
    ("state", "total"),
    [
        pytest.param(MEMBER_2026, 999, id="one-short-of-silver"),
        pytest.param(GOLD_2026, 5_000, id="exactly-current"),
        pytest.param(GOLD_2026, 0, id="nothing-never-lowers"),
        pytest.param(GOLD_2026, -300, id="returns-never-lower"),
    ],
)
def test_no_change_between_reviews(state: TierState, total: int) -> None:
    assert after_qualifying_event(policy(), state, total, utc(2026, 11, 30)) == (state, None)


# --- Reviews ---------------------------------------------------------------------------------

PLATINUM_2026 = TierState("platinum", utc(2026, 4, 1), BERLIN_NEW_YEAR_2027)


@pytest.mark.parametrize(
    ("downgrade", "state", "total", "after", "reason"),
    [
        pytest.param(ONE_STEP, PLATINUM_2026, 1_500, "gold", TierChangeReason.DOWNGRADE, id="1"),
        pytest.param(TO_SUPPORTED, PLATINUM_2026, 1_500, "silver", TierChangeReason.DOWNGRADE),
        pytest.param(TO_SUPPORTED, PLATINUM_2026, 0, "member", TierChangeReason.DOWNGRADE),
        pytest.param(ONE_STEP, PLATINUM_2026, 10_000, "platinum", TierChangeReason.KEPT),
        pytest.param(TO_SUPPORTED, GOLD_2026, 4_999, "silver", TierChangeReason.DOWNGRADE),
        # The total supports more than the earned level: kept, not raised (upgrades come from
        # qualifying events only).
        pytest.param(ONE_STEP, GOLD_2026, 12_000, "gold", TierChangeReason.KEPT, id="no-raise"),
        pytest.param(ONE_STEP, MEMBER_2026, 0, "member", TierChangeReason.KEPT, id="base-kept"),
    ],
)
def test_review_one_step_or_to_supported(
    downgrade: DowngradePolicy, state: TierState, total: int, after: str, reason: TierChangeReason
) -> None:
    reviewed, change = review(policy(downgrade=downgrade), state, total, JOINED)
    assert change == TierChange(state.earned, after, reason, BERLIN_NEW_YEAR_2027)
    assert reviewed.earned == after
    # The level changed at the review; a kept level keeps its original date.
    assert reviewed.since == (BERLIN_NEW_YEAR_2027 if after != state.earned else state.since)
    assert reviewed.review_at == BERLIN_NEW_YEAR_2028


@pytest.mark.parametrize(
    ("candidate", "joined_at", "state", "total", "expected", "change_at"),
    [
        pytest.param(
            policy(ANNIVERSARY),
            JOINED,
            TierState("gold", utc(2025, 5, 1), utc(2026, 3, 9, 23)),
            4_000,
            # One step down on the anniversary; the next on 10 March 2027 00:00 CET.
            TierState("silver", utc(2026, 3, 9, 23), utc(2027, 3, 9, 23)),
            utc(2026, 3, 9, 23),
            id="anniversary",
        ),
        pytest.param(
            policy(ANNIVERSARY),
            utc(2024, 2, 29, 12),
            TierState("gold", utc(2025, 5, 1), utc(2026, 2, 27, 23)),
            5_000,
            # Joined on 29 February: in common years the anniversary is 28 February, so the
            # next review is 28 February 2027 00:00 CET.
            TierState("gold", utc(2025, 5, 1), utc(2027, 2, 27, 23)),
            utc(2026, 2, 27, 23),
            id="anniversary-leap-day",
        ),
        pytest.param(
            policy(ROLLING, grace_days=10),
            JOINED,
            TierState("gold", utc(2026, 6, 1, 12), utc(2027, 6, 1, 12)),
            6_000,
            # Due 10 days after review_at; kept for 12 months from then.
            TierState("gold", utc(2026, 6, 1, 12), utc(2028, 6, 11, 12)),
            utc(2027, 6, 11, 12),
            id="rolling-kept-with-grace",
        ),
        pytest.param(
            policy(ROLLING, TO_SUPPORTED),
            JOINED,
            TierState("platinum", utc(2026, 6, 1, 12), utc(2027, 6, 1, 12)),
            1_200,
            TierState("silver", utc(2027, 6, 1, 12), utc(2028, 6, 1, 12)),
            utc(2027, 6, 1, 12),
            id="rolling-to-supported",
        ),
    ],
)
def test_review_per_window(
    candidate: TierPolicy,
    joined_at: datetime,
    state: TierState,
    total: int,
    expected: TierState,
    change_at: datetime,
) -> None:
    reviewed, change = review(candidate, state, total, joined_at)
    assert reviewed == expected
    assert change.at == change_at


def test_grace_period_activity_counts() -> None:
    """Gold for 2026 with 31 days' grace: 4,200 points in 2026 fall short of 5,000, but 900 more
    on 15 January 2027 (inside the grace period) make 5,100 over the review window."""
    candidate = policy(grace_days=31)
    start, end = review_window(candidate, GOLD_2026, JOINED)
    assert start <= utc(2026, 12, 31, 22) < utc(2027, 1, 15) < end
    # Not due on New Year: the member still has the grace period to keep gold.
    assert review_due(candidate, GOLD_2026) == utc(2027, 1, 31, 23) > BERLIN_NEW_YEAR_2027

    reviewed, change = review(candidate, GOLD_2026, 4_200 + 900, JOINED)
    assert change == TierChange("gold", "gold", TierChangeReason.KEPT, utc(2027, 1, 31, 23))
    assert reviewed.review_at == BERLIN_NEW_YEAR_2028
    # The next review is due a year later, again after a grace period.
    assert review_due(candidate, reviewed) == utc(2028, 1, 31, 23)

    lowered, _ = review(candidate, GOLD_2026, 4_200, JOINED)
    assert lowered.earned == "silver"


def catch_up(
    candidate: TierPolicy,
    state: TierState,
    now: datetime,
    total_for: Callable[[tuple[datetime, datetime]], int],
) -> tuple[TierState, list[TierChange]]:
    """What the service does: apply reviews one at a time while one is due."""
    changes: list[TierChange] = []
    while review_due(candidate, state) <= now:
        state, change = review(
            candidate, state, total_for(review_window(candidate, state, JOINED)), JOINED
        )
        changes.append(change)
    return state, changes


def test_several_missed_calendar_reviews_catch_up_year_by_year() -> None:
    candidate = policy(CALENDAR, ONE_STEP)
    platinum = TierState("platinum", utc(2023, 2, 1), utc(2023, 12, 31, 23))
    totals_by_year_start = {
        utc(2022, 12, 31, 23): 6_000,  # 2023 supports gold: one step down from platinum
        utc(2023, 12, 31, 23): 5_500,  # 2024 supports gold: kept
        utc(2024, 12, 31, 23): 0,  # 2025: one step to silver
        BERLIN_NEW_YEAR_2026: 0,  # 2026: one step to member
    }
    state, changes = catch_up(
        candidate, platinum, utc(2027, 3, 1), lambda window: totals_by_year_start[window[0]]
    )
    assert [(c.before, c.after, c.reason, c.at) for c in changes] == [
        ("platinum", "gold", TierChangeReason.DOWNGRADE, utc(2023, 12, 31, 23)),
        ("gold", "gold", TierChangeReason.KEPT, utc(2024, 12, 31, 23)),
        ("gold", "silver", TierChangeReason.DOWNGRADE, BERLIN_NEW_YEAR_2026),
        ("silver", "member", TierChangeReason.DOWNGRADE, BERLIN_NEW_YEAR_2027),
    ]
    assert state == TierState("member", BERLIN_NEW_YEAR_2027, BERLIN_NEW_YEAR_2028)


def test_several_missed_rolling_reviews() -> None:
    candidate = policy(ROLLING, TO_SUPPORTED, timezone="UTC")
    gold = TierState("gold", utc(2024, 5, 1), utc(2025, 5, 1))
    state, changes = catch_up(candidate, gold, utc(2027, 6, 1), lambda window: 0)
    assert [(c.after, c.reason, c.at) for c in changes] == [
        ("member", TierChangeReason.DOWNGRADE, utc(2025, 5, 1)),
        ("member", TierChangeReason.KEPT, utc(2026, 5, 1)),
        ("member", TierChangeReason.KEPT, utc(2027, 5, 1)),
    ]
    assert state == TierState("member", utc(2025, 5, 1), utc(2028, 5, 1))


def test_no_downgrade_before_the_period_ends() -> None:
    """Gold reached in June 2026 with nothing more earned: still gold on New Year's Eve, one step
    lower from Berlin's New Year on."""
    candidate = policy()
    gold, _ = after_qualifying_event(candidate, MEMBER_2026, 5_000, utc(2026, 6, 1))
    state, changes = catch_up(candidate, gold, utc(2026, 12, 31, 22, 59), lambda window: 0)
    assert (state, changes) == (gold, [])
    state, changes = catch_up(candidate, gold, BERLIN_NEW_YEAR_2027, lambda window: 0)
    assert [change.after for change in changes] == ["silver"]


def test_upgrade_reviewed_on_the_year_it_was_reached() -> None:
    """Calendar: gold reached in 2026 is kept at the 2027 review (2026 supports it), so it is
    held through 2027 even with no activity that year."""
    candidate = policy()
    gold, _ = after_qualifying_event(candidate, MEMBER_2026, 5_000, utc(2026, 6, 1))
    totals = {BERLIN_NEW_YEAR_2026: 5_000, BERLIN_NEW_YEAR_2027: 0}
    state, changes = catch_up(candidate, gold, BERLIN_NEW_YEAR_2028, lambda w: totals[w[0]])
    assert [(change.after, change.at) for change in changes] == [
        ("gold", BERLIN_NEW_YEAR_2027),
        ("silver", BERLIN_NEW_YEAR_2028),
    ]
    assert state == TierState("silver", BERLIN_NEW_YEAR_2028, utc(2028, 12, 31, 23))


# --- Manual assignment -----------------------------------------------------------------------

SILVER = TierState("silver", utc(2026, 2, 1), BERLIN_NEW_YEAR_2027)
GRANTED_AT = utc(2026, 5, 1, 9)
GRANT_ENDS = utc(2026, 8, 31, 22)  # 1 September 00:00 CEST


def test_manual_assignment_until_its_end_date() -> None:
    candidate = policy()
    granted, change = assign_manual(candidate, SILVER, "platinum", GRANT_ENDS, GRANTED_AT)
    assert granted == replace(SILVER, manual="platinum", manual_until=GRANT_ENDS)
    assert change == TierChange("silver", "platinum", TierChangeReason.MANUAL, GRANTED_AT)
    assert effective(candidate, granted, GRANT_ENDS - timedelta(microseconds=1)).code == "platinum"
    assert effective(candidate, granted, GRANT_ENDS).code == "silver"


def test_manual_level_below_earned_is_a_floor() -> None:
    candidate = policy()
    granted, change = assign_manual(candidate, GOLD_2026, "silver", GRANT_ENDS, GRANTED_AT)
    # Higher of the two: no visible change now ...
    assert change == TierChange("gold", "gold", TierChangeReason.MANUAL, GRANTED_AT)
    assert effective(candidate, granted, GRANTED_AT).code == "gold"
    # ... but it holds the member up if a review lowers the earned level meanwhile.
    lowered = replace(granted, earned="member")
    assert effective(candidate, lowered, GRANTED_AT).code == "silver"


def test_manual_without_end_lasts() -> None:
    state = replace(SILVER, manual="gold", manual_until=None)
    assert effective(policy(), state, utc(2099, 1, 1)).code == "gold"


def test_manual_survives_reviews_and_upgrades() -> None:
    candidate = policy()
    granted, _ = assign_manual(candidate, SILVER, "gold", GRANT_ENDS, GRANTED_AT)
    upgraded, _ = after_qualifying_event(candidate, granted, 10_000, utc(2026, 6, 1))
    assert (upgraded.manual, upgraded.manual_until) == ("gold", GRANT_ENDS)
    reviewed, _ = review(candidate, granted, 0, JOINED)
    assert (reviewed.manual, reviewed.manual_until) == ("gold", GRANT_ENDS)


@pytest.mark.parametrize(
    ("code", "until", "error"),
    [
        pytest.param("diamond", GRANT_ENDS, ErrorCode.UNKNOWN_TIER, id="unknown-tier"),
        pytest.param("gold", GRANTED_AT, ErrorCode.INVALID_WINDOW, id="ends-when-it-starts"),
        pytest.param("gold", utc(2026, 4, 1), ErrorCode.INVALID_WINDOW, id="ends-before"),
        pytest.param("gold", datetime(2026, 9, 1), ErrorCode.INVALID_WINDOW, id="naive-end"),
    ],
)
def test_manual_assignment_refused(code: str, until: datetime, error: ErrorCode) -> None:
    with pytest.raises(DomainError) as refused:
        assign_manual(policy(), SILVER, code, until, GRANTED_AT)
    assert refused.value.code is error


# --- Progress --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "state", "total", "expected"),
    [
        pytest.param(
            policy(),
            GOLD_2026,
            3_200,
            # 10,000 - 3,200 to platinum; 5,000 - 3,200 to keep gold by Berlin's New Year.
            TierProgress("gold", "platinum", 6_800, 1_800, BERLIN_NEW_YEAR_2027, 3_200),
            id="gold-mid-year",
        ),
        pytest.param(
            policy(grace_days=31),
            GOLD_2026,
            3_200,
            TierProgress("gold", "platinum", 6_800, 1_800, utc(2027, 1, 31, 23), 3_200),
            id="keep-by-includes-grace",
        ),
        pytest.param(
            policy(),
            MEMBER_2026,
            250,
            # 1,000 - 250 to silver; nothing to keep at the base level.
            TierProgress("member", "silver", 750, 0, BERLIN_NEW_YEAR_2027, 250),
            id="base",
        ),
        pytest.param(
            policy(),
            PLATINUM_2026,
            12_000,
            TierProgress("platinum", None, None, 0, BERLIN_NEW_YEAR_2027, 12_000),
            id="top",
        ),
        pytest.param(
            policy(),
            replace(SILVER, manual="gold", manual_until=GRANT_ENDS),
            400,
            # Shows the granted gold and what platinum needs (10,000 - 400); keeping the earned
            # silver needs 1,000 - 400.
            TierProgress("gold", "platinum", 9_600, 600, BERLIN_NEW_YEAR_2027, 400),
            id="manual-grant",
        ),
    ],
)
def test_progress(
    candidate: TierPolicy, state: TierState, total: int, expected: TierProgress
) -> None:
    assert progress(candidate, state, total, JOINED, utc(2026, 6, 1)) == expected
