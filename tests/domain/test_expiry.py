"""Expiry policies: table-driven dates computed by hand, including daylight-saving edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.expiry import ExpiryKind, ExpiryPolicy

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("policy", "earned", "expected"),
    [
        pytest.param(ExpiryPolicy(), datetime(2026, 5, 1, tzinfo=UTC), None, id="never"),
        pytest.param(
            ExpiryPolicy(ExpiryKind.AFTER_DAYS, 30),
            datetime(2026, 1, 15, 10, 0, tzinfo=UTC),
            datetime(2026, 2, 14, 10, 0, tzinfo=UTC),
            id="after-30-days",
        ),
        pytest.param(
            ExpiryPolicy(ExpiryKind.END_OF_MONTH_AFTER_MONTHS, 12),
            datetime(2026, 1, 15, 10, 0, tzinfo=UTC),
            # Valid through January 2027 in Berlin; lapses at 2027-02-01 00:00 CET = 23:00 UTC.
            datetime(2027, 1, 31, 23, 0, tzinfo=UTC),
            id="end-of-month-12-months-winter",
        ),
        pytest.param(
            ExpiryPolicy(ExpiryKind.END_OF_MONTH_AFTER_MONTHS, 3),
            datetime(2026, 3, 31, 22, 30, tzinfo=UTC),  # already 1 April 00:30 in Berlin
            datetime(2026, 7, 31, 22, 0, tzinfo=UTC),  # 1 August 00:00 CEST
            id="local-month-decides",
        ),
        pytest.param(
            ExpiryPolicy(ExpiryKind.END_OF_MONTH_AFTER_MONTHS, 1),
            datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
            datetime(2026, 12, 31, 23, 0, tzinfo=UTC),  # 1 January 2027 00:00 CET
            id="year-rollover",
        ),
    ],
)
def test_expires_at(policy: ExpiryPolicy, earned: datetime, expected: datetime | None) -> None:
    assert policy.expires_at(earned) == expected


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ExpiryPolicy(ExpiryKind.AFTER_DAYS, 1).expires_at(datetime(2026, 1, 1))


def test_expiring_policy_needs_positive_value() -> None:
    with pytest.raises(ValueError, match="positive"):
        ExpiryPolicy(ExpiryKind.AFTER_DAYS, 0)


@pytest.mark.property
@given(
    earned=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    months=st.integers(1, 60),
)
def test_end_of_month_lapses_at_a_local_month_start_after_earning(
    earned: datetime, months: int
) -> None:
    lapse = ExpiryPolicy(ExpiryKind.END_OF_MONTH_AFTER_MONTHS, months).expires_at(earned)
    assert lapse is not None
    local = lapse.astimezone(BERLIN)
    assert (local.day, local.hour, local.minute) == (1, 0, 0)
    assert lapse > earned + timedelta(days=28 * months)
    assert lapse <= earned + timedelta(days=31 * (months + 1) + 1)
