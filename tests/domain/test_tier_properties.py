"""Tier properties: random histories driven the way the service drives them.

Totals are random rather than summed from real activity: the tier functions are pure in the
totals they are given, so the guarantees must hold for any totals whatsoever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.texts import Texts
from loyalty.domain.tiers import (
    DowngradePolicy,
    TierChangeReason,
    TierLevel,
    TierPolicy,
    TierWindow,
    after_qualifying_event,
    assign_manual,
    effective,
    enrolled,
    qualification_window,
    review,
    review_due,
    review_window,
)

LEVELS = tuple(
    TierLevel(code, Texts(code, code), threshold)
    for code, threshold in (("member", 0), ("silver", 100), ("gold", 500), ("platinum", 2_000))
)
RANK = {candidate.code: index for index, candidate in enumerate(LEVELS)}
ZONES = ("Europe/Berlin", "UTC", "America/New_York", "Pacific/Auckland")

policies = st.builds(
    TierPolicy,
    levels=st.just(LEVELS),
    window=st.sampled_from(TierWindow),
    downgrade=st.sampled_from(DowngradePolicy),
    grace_days=st.sampled_from([0, 1, 30, 90]) | st.integers(0, 366),
    timezone=st.sampled_from(ZONES),
)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2080, 1, 1), timezones=st.just(UTC)
)
#: Joining on a leap day exercises the 28 February anniversaries.
joined_moments = moments | st.builds(
    lambda year, hour: datetime(year, 2, 29, hour, tzinfo=UTC),
    st.sampled_from([2000, 2004, 2024, 2044]),
    st.integers(0, 23),
)


@dataclass(frozen=True)
class Step:
    #: How far time moves before this step.
    advance: timedelta
    #: The qualifying total the service would have summed (for the review and the event alike).
    total: int
    #: A manager grants (level, for how long) at this step.
    grant: tuple[str, timedelta] | None


steps = st.lists(
    st.builds(
        Step,
        advance=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=800)),
        total=st.integers(-100, 2_500),
        grant=st.none()
        | st.tuples(
            st.sampled_from(list(RANK)),
            st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=400)),
        ),
    ),
    max_size=25,
)


@pytest.mark.property
@given(policy=policies, joined_at=joined_moments, history=steps)
def test_earned_level_only_drops_at_a_due_review(
    policy: TierPolicy, joined_at: datetime, history: list[Step]
) -> None:
    state, _ = enrolled(policy, joined_at, joined_at)
    now = joined_at
    for step in history:
        now += step.advance
        # The service first applies every review that has come due, one period at a time.
        while review_due(policy, state) <= now:
            due = review_due(policy, state)
            reviewed, change = review(policy, state, step.total, joined_at)
            # Dated when it fell due, never later than now.
            assert change.at == due <= now
            # Idempotent once applied: the new state is not due again at that moment, and a
            # further review waits for a later period.
            assert review_due(policy, reviewed) > due
            assert reviewed.review_at > state.review_at
            assert RANK[reviewed.earned] <= RANK[state.earned]
            if reviewed.earned != state.earned:
                assert change.reason is TierChangeReason.DOWNGRADE
                assert reviewed.since == due
            state = reviewed
        # Between reviews nothing ever lowers the earned level or shortens its hold.
        upgraded, upgrade = after_qualifying_event(policy, state, step.total, now)
        assert RANK[upgraded.earned] >= RANK[state.earned]
        assert review_due(policy, upgraded) >= review_due(policy, state)
        if upgrade is not None:
            assert upgrade.reason is TierChangeReason.UPGRADE
            assert upgrade.before == state.earned
            assert RANK[upgrade.after] > RANK[state.earned]
        state = upgraded
        if step.grant is not None:
            code, duration = step.grant
            granted, _ = assign_manual(policy, state, code, now + duration, now)
            assert (granted.earned, granted.review_at) == (state.earned, state.review_at)
            state = granted
        # The effective level is never below the earned one.
        assert RANK[effective(policy, state, now).code] >= RANK[state.earned]


@pytest.mark.property
@given(
    policy=policies,
    joined_at=joined_moments,
    offset=st.timedeltas(timedelta(0), timedelta(days=9_000)),
)
def test_windows_hold_the_moment_they_judge(
    policy: TierPolicy, joined_at: datetime, offset: timedelta
) -> None:
    at = joined_at + offset
    start, end = qualification_window(policy, joined_at, at)
    assert start <= at < end
    state, _ = enrolled(policy, joined_at, at)
    review_start, review_end = review_window(policy, state, joined_at)
    # The review judges the period the member is in now, through the end of the grace period.
    assert review_start <= at < state.review_at <= review_end == review_due(policy, state)


@pytest.mark.property
@given(
    policy=policies.filter(lambda policy: policy.window is not TierWindow.ROLLING_12_MONTHS),
    joined_at=joined_moments,
    offset=st.timedeltas(timedelta(0), timedelta(days=9_000)),
)
def test_calendar_periods_end_on_local_midnights(
    policy: TierPolicy, joined_at: datetime, offset: timedelta
) -> None:
    state, _ = enrolled(policy, joined_at, joined_at + offset)
    zone = ZoneInfo(policy.timezone)
    local = state.review_at.astimezone(zone)
    assert (local.hour, local.minute, local.second) == (0, 0, 0)
    if policy.window is TierWindow.CALENDAR_YEAR:
        assert (local.month, local.day) == (1, 1)
    else:
        joined_local = joined_at.astimezone(zone)
        assert local.month == joined_local.month
        # 29 February falls on the 28th in common years.
        assert local.day == joined_local.day or (joined_local.day, local.day) == (29, 28)
