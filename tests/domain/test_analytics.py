"""The figures' arithmetic: rounding, rates, lifetime value, NPS, the report's calendar, RFM
scores and segments, the at-risk rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.analytics import (
    MAX_PERIOD_DAYS,
    BucketSize,
    CustomerFlow,
    MemberFlow,
    Period,
    Purchases,
    Segment,
    breakage_rate,
    bucket_number,
    buckets,
    day_number,
    decimal_text,
    default_bucket,
    default_days,
    lifetime_value,
    local_seconds,
    local_today,
    median_interval,
    net_promoter_score,
    nps_group,
    overdue,
    percent,
    points_value_minor,
    quintile_scores,
    redemption_rate,
    report_period,
    rounded,
    score_rfm,
    segment,
    utc_offsets,
)
from loyalty.domain.errors import DomainError, ErrorCode

BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(5, 2), 3),
        (Fraction(-5, 2), -3),
        (Fraction(7, 3), 2),
        (Fraction(-7, 3), -2),
        (Fraction(0), 0),
        (Fraction(1, 2), 1),
    ],
)
def test_rounding_halves_away_from_zero(value: Fraction, expected: int) -> None:
    assert rounded(value) == expected


@pytest.mark.parametrize(
    ("part", "whole", "expected"),
    [
        (1, 3, "33.3"),
        (2, 3, "66.7"),
        (1, 8, "12.5"),
        (-1, 8, "-12.5"),
        (1, 2000, "0.1"),  # 0.05 rounds up
        (1, 2001, "0.0"),
        (5, 5, "100.0"),
        (0, 7, "0.0"),
        (3, 0, None),
    ],
)
def test_percent(part: int, whole: int, expected: str | None) -> None:
    assert percent(part, whole) == expected


def test_decimal_text_places() -> None:
    assert decimal_text(Fraction(-1, 20)) == "-0.1"
    assert decimal_text(Fraction(1234, 1000), places=2) == "1.23"
    assert decimal_text(Fraction(7, 2), places=0) == "4"


@pytest.mark.parametrize(
    ("flow", "retention", "churn", "left"),
    [
        (MemberFlow(at_start=6, at_end=6, new=2), "66.7", "33.3", 2),
        (MemberFlow(at_start=100, at_end=120, new=20), "100.0", "0.0", 0),
        (MemberFlow(at_start=0, at_end=5, new=5), None, None, 0),
    ],
)
def test_member_retention(
    flow: MemberFlow, retention: str | None, churn: str | None, left: int
) -> None:
    assert (flow.retention_percent, flow.churn_percent, flow.left) == (retention, churn, left)


def test_customer_retention_counts_comebacks_as_gained() -> None:
    flow = CustomerFlow(at_start=3, at_end=4, retained=1)
    assert (flow.gained, flow.lost) == (3, 2)
    assert (flow.retention_percent, flow.churn_percent) == ("33.3", "66.7")
    with pytest.raises(ValueError, match="retained"):
        CustomerFlow(at_start=1, at_end=4, retained=2)


def test_lifetime_value_by_hand() -> None:
    # 32000 revenue, customers 3 -> 4, 2 of 3 lost, 30-day periods:
    # per customer 32000 / 3.5 = 9142.86; lifetime 3/2 periods = 45 days; CLV 96000/7.
    value = lifetime_value(32_000, CustomerFlow(at_start=3, at_end=4, retained=1), 30)
    assert (value.revenue_per_customer, value.lifetime_periods, value.lifetime_days) == (
        9_143,
        "1.5",
        45,
    )
    assert value.value == 13_714


def test_lifetime_value_needs_churn_and_customers() -> None:
    no_loss = lifetime_value(1_000, CustomerFlow(at_start=2, at_end=2, retained=2), 30)
    assert (no_loss.revenue_per_customer, no_loss.lifetime_periods, no_loss.value) == (
        500,
        None,
        None,
    )
    nobody = lifetime_value(0, CustomerFlow(at_start=0, at_end=0, retained=0), 30)
    assert (nobody.revenue_per_customer, nobody.value) == (None, None)


def test_point_rates_and_value() -> None:
    assert redemption_rate(50, 420) == "11.9"
    assert redemption_rate(5, 0) is None
    assert breakage_rate(292, 50) == "85.4"
    assert breakage_rate(0, 0) is None
    assert points_value_minor(420, 5_000) == 210
    assert points_value_minor(321, 5_000) == 160  # rounded down
    assert points_value_minor(3, 10_000) == 3


@pytest.mark.parametrize(
    ("score", "group"),
    [(0, "detractor"), (6, "detractor"), (7, "passive"), (8, "passive"), (9, "promoter")],
)
def test_nps_groups(score: int, group: str) -> None:
    assert nps_group(score) == group


def test_net_promoter_score() -> None:
    assert net_promoter_score(2, 0, 1) == "33.3"
    assert net_promoter_score(0, 1, 3) == "-75.0"
    assert net_promoter_score(0, 0, 0) is None
    with pytest.raises(ValueError, match="0 to 10"):
        nps_group(11)


# --- Calendar ----------------------------------------------------------------------------


def test_a_period_is_local_days_both_included() -> None:
    period = report_period(date(2025, 3, 1), date(2025, 3, 31), BERLIN)
    assert period.days == 31
    assert period.starts_at == datetime(2025, 2, 28, 23, 0, tzinfo=UTC)  # CET
    assert period.ends_at == datetime(2025, 3, 31, 22, 0, tzinfo=UTC)  # CEST


def test_period_refusals() -> None:
    with pytest.raises(DomainError) as reversed_:
        report_period(date(2025, 3, 2), date(2025, 3, 1), BERLIN)
    assert reversed_.value.code is ErrorCode.INVALID_WINDOW
    first = date(2023, 1, 1)
    report_period(first, first + timedelta(days=MAX_PERIOD_DAYS - 1), BERLIN)
    with pytest.raises(DomainError) as too_long:
        report_period(first, first + timedelta(days=MAX_PERIOD_DAYS), BERLIN)
    assert too_long.value.code is ErrorCode.INVALID_WINDOW


def test_defaults() -> None:
    assert default_days(date(2025, 4, 30)) == (date(2025, 4, 1), date(2025, 4, 30))
    assert local_today(BERLIN, datetime(2025, 4, 30, 22, 30, tzinfo=UTC)) == date(2025, 5, 1)
    assert [default_bucket(days) for days in (1, 62, 63, 550, 551)] == [
        BucketSize.DAY,
        BucketSize.DAY,
        BucketSize.WEEK,
        BucketSize.WEEK,
        BucketSize.MONTH,
    ]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (
            BucketSize.WEEK,
            [
                ("2025-04-01", "2025-04-06"),
                ("2025-04-07", "2025-04-13"),
                ("2025-04-14", "2025-04-20"),
                ("2025-04-21", "2025-04-27"),
                ("2025-04-28", "2025-05-04"),
                ("2025-05-05", "2025-05-07"),
            ],
        ),
        (
            BucketSize.MONTH,
            [("2025-04-01", "2025-04-30"), ("2025-05-01", "2025-05-07")],
        ),
    ],
)
def test_buckets_are_cut_to_the_period(size: BucketSize, expected: list[tuple[str, str]]) -> None:
    period = report_period(date(2025, 4, 1), date(2025, 5, 7), BERLIN)
    found = buckets(period, size)
    assert [(b.first.isoformat(), b.last.isoformat()) for b in found] == expected
    assert found[0].starts_at == period.starts_at
    assert found[-1].ends_at == period.ends_at


def test_utc_offsets_find_both_changes_of_a_year() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    pieces = utc_offsets(BERLIN, start, datetime(2026, 1, 1, tzinfo=UTC))
    assert pieces == [
        (start, 3600),
        (datetime(2025, 3, 30, 1, 0, tzinfo=UTC), 7200),
        (datetime(2025, 10, 26, 1, 0, tzinfo=UTC), 3600),
    ]
    assert utc_offsets("UTC", start, start + timedelta(days=400)) == [(start, 0)]


periods = st.builds(
    lambda first, days, zone: report_period(first, first + timedelta(days=days), zone),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2035, 12, 31)),
    st.integers(min_value=0, max_value=MAX_PERIOD_DAYS - 1),
    st.sampled_from([BERLIN, "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "UTC"]),
)


@given(period=periods, size=st.sampled_from(list(BucketSize)), data=st.data())
def test_local_days_and_buckets_agree_with_the_calendar(
    period: Period, size: BucketSize, data: st.DataObject
) -> None:
    """What the SQL computes (epoch + offset piece) is the local calendar day, and the bucket
    its arithmetic picks is the one whose days contain it; buckets tile the period."""
    found = buckets(period, size)
    assert found[0].first == period.first
    assert found[-1].last == period.last
    for earlier, later in pairwise(found):
        assert later.first == earlier.last + timedelta(days=1)
        assert later.starts_at == earlier.ends_at
    pieces = utc_offsets(period.timezone, period.starts_at, period.ends_at)
    seconds = int((period.ends_at - period.starts_at).total_seconds())
    at = period.starts_at + timedelta(
        seconds=data.draw(st.integers(min_value=0, max_value=seconds - 1))
    )
    local = at.astimezone(ZoneInfo(period.timezone)).date()
    seconds_local = local_seconds(at, pieces)
    assert seconds_local // 86_400 == day_number(local)
    chosen = found[bucket_number(seconds_local, period, size)]
    assert chosen.first <= local <= chosen.last
    assert chosen.starts_at <= at < chosen.ends_at


# --- RFM ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "higher_is_better", "expected"),
    [
        ([1, 2, 3, 4, 5], True, [1, 2, 3, 4, 5]),
        ([1, 2, 3, 4, 5], False, [5, 4, 3, 2, 1]),
        ([7], True, [3]),
        ([4, 4, 4], True, [3, 3, 3]),
        ([3, 4, 1, 4, 4], True, [2, 4, 1, 4, 4]),
        ([46, 4, 15, 0, 16], False, [1, 4, 3, 5, 2]),
        ([], True, []),
    ],
)
def test_quintile_scores(values: list[int], higher_is_better: bool, expected: list[int]) -> None:
    assert quintile_scores(values, higher_is_better=higher_is_better) == expected


@given(st.lists(st.integers(min_value=0, max_value=50), max_size=60))
def test_quintile_scores_are_monotone_and_fair_to_ties(values: list[int]) -> None:
    scores = quintile_scores(values)
    assert all(1 <= score <= 5 for score in scores)
    for (value, score), (other, other_score) in pairwise(zip(values, scores, strict=True)):
        if value == other:
            assert score == other_score
        elif value < other:
            assert score <= other_score
        else:
            assert score >= other_score
    # Reversing "better" mirrors the scores.
    mirrored = quintile_scores(values, higher_is_better=False)
    assert quintile_scores([-value for value in values]) == mirrored


@pytest.mark.parametrize(
    ("r", "f", "m", "expected"),
    [
        (5, 5, 5, Segment.CHAMPIONS),
        (5, 4, 5, Segment.CHAMPIONS),
        (5, 1, 1, Segment.NEW),
        (4, 1, 1, Segment.PROMISING),
        (4, 4, 4, Segment.LOYAL),
        (3, 5, 4, Segment.LOYAL),
        (5, 2, 3, Segment.POTENTIAL_LOYALISTS),
        (3, 3, 3, Segment.NEED_ATTENTION),
        (3, 1, 2, Segment.ABOUT_TO_SLEEP),
        (2, 3, 4, Segment.AT_RISK),
        (1, 2, 3, Segment.AT_RISK),
        (1, 5, 5, Segment.CANT_LOSE),
        (2, 1, 2, Segment.HIBERNATING),
        (1, 2, 2, Segment.HIBERNATING),
        (1, 1, 1, Segment.LOST),
    ],
)
def test_segment_grid(r: int, f: int, m: int, expected: Segment) -> None:
    assert segment(r, f, m) is expected


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5))
def test_every_score_has_a_segment(r: int, f: int, m: int) -> None:
    assert segment(r, f, m) in Segment


def test_segment_refuses_scores_outside_1_to_5() -> None:
    with pytest.raises(ValueError, match="1 to 5"):
        segment(0, 3, 3)


def test_score_rfm() -> None:
    at = datetime(2025, 4, 30, 22, 0, tzinfo=UTC)
    scored = score_rfm(
        [
            Purchases(1, at - timedelta(minutes=30), 4, 40_000),
            Purchases(2, at - timedelta(days=46, hours=10), 3, 6_000),
        ],
        at,
    )
    assert [(s.member_id, s.recency_days, s.r, s.f, s.m, s.segment) for s in scored] == [
        (1, 0, 4, 4, 4, Segment.LOYAL),
        (2, 46, 2, 2, 2, Segment.HIBERNATING),
    ]


# --- At risk -----------------------------------------------------------------------------

T = datetime(2025, 4, 30, 22, 0, tzinfo=UTC)


def days_ago(*days: float) -> list[datetime]:
    return [T - timedelta(days=d) for d in days]


def test_median_interval() -> None:
    assert median_interval(days_ago(30, 23, 16)) == timedelta(days=7)
    assert median_interval(days_ago(40, 30, 25, 5)) == timedelta(days=10)  # gaps 10, 5, 20
    assert median_interval(days_ago(10, 9, 1, 0)) == timedelta(days=1)  # gaps 1, 8, 1
    assert median_interval(days_ago(6, 0)) == timedelta(days=6)
    with pytest.raises(ValueError, match="two purchases"):
        median_interval(days_ago(1))


@pytest.mark.parametrize(
    ("times", "at_risk", "factor"),
    [
        (days_ago(60, 53, 46), True, "6.6"),  # weekly, 46 days away
        (days_ago(88, 81, 74, 16.4), True, "2.3"),  # gaps 7, 7, 57.6: median 7
        (days_ago(60, 53), False, None),  # two purchases: no habit known
        (days_ago(30, 20, 10), False, None),  # 10 days = 1 x the interval
        (days_ago(42, 31, 21), False, None),  # 21 days <= 2 x 10.5
        (days_ago(15, 14, 13), False, None),  # 13 days > 2 x 1, but under 14 days
        (days_ago(16, 15, 14), True, "14.0"),
    ],
)
def test_overdue(times: list[datetime], at_risk: bool, factor: str | None) -> None:
    found = overdue(times, T)
    assert (found is not None) is at_risk
    if found is not None:
        assert found.overdue_factor == factor
        assert found.last_at == max(times)


def test_overdue_with_one_moment_has_no_factor() -> None:
    found = overdue(days_ago(20, 20, 20), T)
    assert found is not None
    assert found.overdue_factor is None


@given(
    st.lists(st.integers(min_value=0, max_value=400 * 24), min_size=3, max_size=20),
    st.integers(min_value=0, max_value=400 * 24),
)
def test_overdue_follows_its_rule(hours_ago: list[int], shift: int) -> None:
    times = [T - timedelta(hours=h) for h in hours_ago]
    found = overdue(times, T)
    absence = T - max(times)
    usual = median_interval(times)
    assert (found is not None) == (absence >= timedelta(days=14) and absence > 2 * usual)
    # Moving every purchase and the moment together changes nothing.
    later = [time + timedelta(hours=shift) for time in times]
    assert (overdue(later, T + timedelta(hours=shift)) is not None) == (found is not None)
