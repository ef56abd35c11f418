"""The program's figures (docs/ANALYTICS.md): the report's calendar, rates from counts, customer
lifetime value, RFM scores and segments, the at-risk rule and the Net Promoter Score.

Pure: counts and sums come in (the services add them up in SQL), figures go out. Time is a
parameter. Money is integer minor units; a percentage is a decimal string with one place
("87.5"), rounded half away from zero from the exact fraction, and ``None`` where the figure
is undefined (a share of nothing).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from itertools import pairwise
from zoneinfo import ZoneInfo

from .calendar import local_midnight, require_aware
from .errors import DomainError, ErrorCode

#: The longest report: three years (one of them a leap year).
MAX_PERIOD_DAYS = 3 * 365 + 1
#: The default report: the last 30 days, today included.
DEFAULT_PERIOD_DAYS = 30
#: A member is a customer at a moment when they bought something in the lapse window before it.
DEFAULT_LAPSE_DAYS = 90
MIN_LAPSE_DAYS = 7
MAX_LAPSE_DAYS = 730
#: RFM and the at-risk list look at the purchases of this window before the period's end.
DEFAULT_LOOKBACK_DAYS = 365
MIN_LOOKBACK_DAYS = 30
MAX_LOOKBACK_DAYS = MAX_PERIOD_DAYS
#: The at-risk rule: enough purchases to know a habit, an absence this many times the usual
#: interval, and never for less than a fortnight's absence (a daily customer missing a weekend
#: is not at risk).
AT_RISK_MIN_PURCHASES = 3
AT_RISK_FACTOR = 2
AT_RISK_MIN_ABSENCE = timedelta(days=14)

_EPOCH_DAY = date(1970, 1, 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS_PER_DAY = 86_400


# --- Numbers --------------------------------------------------------------------------------


def rounded(value: Fraction) -> int:
    """The nearest whole number, halves away from zero (as a cashier rounds)."""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    if 2 * rest >= value.denominator:
        whole += 1
    return whole if value >= 0 else -whole


def decimal_text(value: Fraction, places: int = 1) -> str:
    """``value`` with ``places`` decimal places, halves away from zero: "-12.5", "0.0"."""
    scaled = rounded(value * 10**places)
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled)).rjust(places + 1, "0")
    if places == 0:
        return sign + digits
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def percent(part: int, whole: int) -> str | None:
    """``part`` of ``whole`` in percent, one decimal place; None when ``whole`` is 0."""
    if whole == 0:
        return None
    return decimal_text(Fraction(100 * part, whole))


def average(total: int, count: int) -> int | None:
    """The mean, rounded to whole minor units; None of nothing."""
    if count == 0:
        return None
    return rounded(Fraction(total, count))


def points_value_minor(points: int, point_value_micros: int) -> int:
    """What ``points`` are worth in minor units at ``point_value_micros`` millionths of the
    currency unit per point, for two-decimal currencies as everywhere in the platform (the
    wallet's worth, the rule-set preview's liability); rounded down."""
    return points * point_value_micros // 10_000


# --- Membership, customers and value ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberFlow:
    """Members of a program over a period: those at its start and end, and those who enrolled
    in it."""

    at_start: int
    at_end: int
    new: int

    @property
    def left(self) -> int:
        """Members who left in the period (erased, or merged into another record)."""
        return self.at_start + self.new - self.at_end

    @property
    def retention_percent(self) -> str | None:
        """(members at end - new members) / members at start x 100."""
        return percent(self.at_end - self.new, self.at_start)

    @property
    def churn_percent(self) -> str | None:
        """100 - retention: the members lost, in percent of those at the start."""
        return percent(self.at_start - (self.at_end - self.new), self.at_start)


@dataclass(frozen=True, slots=True)
class CustomerFlow:
    """Customers (members with a purchase in the lapse window before the moment) at the start
    and end of a period, and how many of those at the start were customers still at the end."""

    at_start: int
    at_end: int
    retained: int

    def __post_init__(self) -> None:
        if not 0 <= self.retained <= min(self.at_start, self.at_end):
            raise ValueError("retained customers are customers at both ends")

    @property
    def gained(self) -> int:
        """Customers at the end who were none at the start: first purchases and comebacks."""
        return self.at_end - self.retained

    @property
    def lost(self) -> int:
        """Customers at the start who were none at the end: lapsed, erased or merged."""
        return self.at_start - self.retained

    @property
    def retention_percent(self) -> str | None:
        """(customers at end - customers gained) / customers at start x 100."""
        return percent(self.at_end - self.gained, self.at_start)

    @property
    def churn_percent(self) -> str | None:
        return percent(self.lost, self.at_start)


@dataclass(frozen=True, slots=True)
class LifetimeValue:
    #: Member revenue of the period per average customer (minor units).
    revenue_per_customer: int | None
    #: Expected lifetime in periods, 1 / churn (one decimal place); None without churn.
    lifetime_periods: str | None
    lifetime_days: int | None
    #: revenue per customer x lifetime, in minor units.
    value: int | None


def lifetime_value(revenue: int, customers: CustomerFlow, period_days: int) -> LifetimeValue:
    """CLV = average revenue per customer per period x expected customer lifetime in periods.

    The average customer count is that of the start and the end; the lifetime is 1 / churn
    periods (a customer who lapses with probability c per period stays 1/c periods on average).
    Computed exactly and rounded once at the end.
    """
    customers_total = customers.at_start + customers.at_end
    per_customer = Fraction(2 * revenue, customers_total) if customers_total else None
    if customers.at_start == 0 or customers.lost == 0:
        lifetime = None
    else:
        lifetime = Fraction(customers.at_start, customers.lost)
    return LifetimeValue(
        revenue_per_customer=None if per_customer is None else rounded(per_customer),
        lifetime_periods=None if lifetime is None else decimal_text(lifetime),
        lifetime_days=None if lifetime is None else rounded(lifetime * period_days),
        value=None
        if per_customer is None or lifetime is None
        else rounded(per_customer * lifetime),
    )


def redemption_rate(redeemed: int, issued: int) -> str | None:
    """Points redeemed in percent of the points issued in the same period."""
    return percent(redeemed, issued) if issued > 0 else None


def breakage_rate(expired: int, redeemed: int) -> str | None:
    """Of the points that left members' balances for good in the period (redeemed or expired),
    the share that expired unused."""
    return percent(expired, expired + redeemed) if expired + redeemed > 0 else None


# --- Net Promoter Score -----------------------------------------------------------------------


class NpsGroup(StrEnum):
    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"


def nps_group(score: int) -> NpsGroup:
    if not 0 <= score <= 10:
        raise ValueError("a Net Promoter answer is 0 to 10")
    if score >= 9:
        return NpsGroup.PROMOTER
    return NpsGroup.PASSIVE if score >= 7 else NpsGroup.DETRACTOR


def net_promoter_score(promoters: int, passives: int, detractors: int) -> str | None:
    """Promoters (9-10) minus detractors (0-6), in percent of the answers with a score."""
    return percent(promoters - detractors, promoters + passives + detractors)


# --- The report's calendar ----------------------------------------------------------------------


class BucketSize(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Period:
    """Days ``first`` to ``last``, both included, in the program's time zone; as instants the
    half-open ``[starts_at, ends_at)`` from the local midnight starting ``first`` to the one
    ending ``last``."""

    first: date
    last: date
    timezone: str
    starts_at: datetime
    ends_at: datetime

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def report_period(first: date, last: date, timezone: str) -> Period:
    if first > last:
        raise DomainError(
            ErrorCode.INVALID_WINDOW,
            "the period's first day (from) must not lie after its last day (to)",
            first=first.isoformat(),
            last=last.isoformat(),
        )
    days = (last - first).days + 1
    if days > MAX_PERIOD_DAYS:
        raise DomainError(
            ErrorCode.INVALID_WINDOW,
            f"a period spans at most {MAX_PERIOD_DAYS} days (three years); this one {days}",
            days=days,
        )
    zone = ZoneInfo(timezone)
    return Period(
        first,
        last,
        timezone,
        local_midnight(zone, first),
        local_midnight(zone, last + timedelta(days=1)),
    )


def local_today(timezone: str, now: datetime) -> date:
    require_aware(now=now)
    return now.astimezone(ZoneInfo(timezone)).date()


def default_days(today: date) -> tuple[date, date]:
    """The default report: the last ``DEFAULT_PERIOD_DAYS`` days up to today."""
    return today - timedelta(days=DEFAULT_PERIOD_DAYS - 1), today


def default_bucket(days: int) -> BucketSize:
    """Days for up to two months, weeks up to a year and a half, months beyond."""
    if days <= 62:
        return BucketSize.DAY
    return BucketSize.WEEK if days <= 550 else BucketSize.MONTH


@dataclass(frozen=True, slots=True)
class Bucket:
    """One point of a time series: days ``first`` to ``last`` (included); the first and the
    last bucket are cut to the period."""

    first: date
    last: date
    starts_at: datetime
    ends_at: datetime


def _bucket_start(day: date, size: BucketSize) -> date:
    if size is BucketSize.DAY:
        return day
    if size is BucketSize.WEEK:
        return day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    return day.replace(day=1)


def _next_start(start: date, size: BucketSize) -> date:
    if size is BucketSize.DAY:
        return start + timedelta(days=1)
    if size is BucketSize.WEEK:
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def buckets(period: Period, size: BucketSize) -> list[Bucket]:
    """Calendar days, ISO weeks or calendar months covering the period without gap or overlap."""
    zone = ZoneInfo(period.timezone)
    found: list[Bucket] = []
    start = _bucket_start(period.first, size)
    while start <= period.last:
        following = _next_start(start, size)
        first = max(start, period.first)
        last = min(following - timedelta(days=1), period.last)
        found.append(
            Bucket(
                first,
                last,
                local_midnight(zone, first),
                local_midnight(zone, last + timedelta(days=1)),
            )
        )
        start = following
    return found


def day_number(day: date) -> int:
    """Days since 1970-01-01: what the services' SQL computes from an instant's local time."""
    return (day - _EPOCH_DAY).days


def utc_offsets(timezone: str, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """The zone's UTC offset in seconds over ``[start, end)``: ``(since, offset)`` pieces, the
    first since ``start``, one more at each change (daylight saving time), exact to the second.

    With them SQL turns an instant into its local day without time zone support (SQLite has
    none): local day = (epoch seconds + offset of its piece) // 86400.
    """
    require_aware(start=start, end=end)
    zone = ZoneInfo(timezone)

    def offset(at: datetime) -> int:
        delta = at.astimezone(zone).utcoffset()
        assert delta is not None
        return int(delta.total_seconds())

    pieces = [(start, offset(start))]
    probe = start
    while probe < end:
        step = min(probe + timedelta(hours=12), end)
        if offset(step) != pieces[-1][1]:
            # The change lies in (probe, step]; zones change on whole seconds: bisect them.
            low, high = math.floor(probe.timestamp()), math.ceil(step.timestamp())
            while high - low > 1:
                middle = (low + high) // 2
                if offset(datetime.fromtimestamp(middle, UTC)) == pieces[-1][1]:
                    low = middle
                else:
                    high = middle
            changed = datetime.fromtimestamp(high, UTC)
            pieces.append((changed, offset(changed)))
        probe = step
    return pieces


def local_seconds(at: datetime, pieces: Sequence[tuple[datetime, int]]) -> int:
    """``at`` as seconds since the epoch of local time, from ``utc_offsets`` pieces: what the
    services' SQL computes (epoch seconds + the offset of the piece the instant falls in)."""
    offset = pieces[0][1]
    for since, piece_offset in pieces:
        if at >= since:
            offset = piece_offset
    return (at - _EPOCH) // timedelta(seconds=1) + offset


def bucket_number(local: int, period: Period, size: BucketSize) -> int:
    """Which of the period's buckets (0 = the first) local time ``local`` (seconds since the
    epoch) falls in, by the integer arithmetic the services' SQL does: days since the epoch,
    weeks since the Monday of the first day, months as year x 12 + month."""
    day = local // _SECONDS_PER_DAY
    first = period.first
    if size is BucketSize.DAY:
        return day - day_number(first)
    if size is BucketSize.WEEK:
        return (day - (day_number(first) - first.weekday())) // 7
    month = _EPOCH_DAY + timedelta(days=day)
    return (month.year * 12 + month.month) - (first.year * 12 + first.month)


# --- RFM -------------------------------------------------------------------------------------


class Segment(StrEnum):
    CHAMPIONS = "champions"
    LOYAL = "loyal"
    POTENTIAL_LOYALISTS = "potential_loyalists"
    NEW = "new"
    PROMISING = "promising"
    NEED_ATTENTION = "need_attention"
    ABOUT_TO_SLEEP = "about_to_sleep"
    CANT_LOSE = "cant_lose"
    AT_RISK = "at_risk"
    HIBERNATING = "hibernating"
    LOST = "lost"


#: Best first: the order of tables and charts.
SEGMENTS: tuple[Segment, ...] = tuple(Segment)

#: Segment by recency score (rows, 1-5) and frequency-monetary score (columns, 1-5).
_S = Segment
_SEGMENT_GRID: dict[int, tuple[Segment, Segment, Segment, Segment, Segment]] = {
    5: (_S.NEW, _S.POTENTIAL_LOYALISTS, _S.POTENTIAL_LOYALISTS, _S.CHAMPIONS, _S.CHAMPIONS),
    4: (_S.PROMISING, _S.POTENTIAL_LOYALISTS, _S.POTENTIAL_LOYALISTS, _S.LOYAL, _S.LOYAL),
    3: (_S.ABOUT_TO_SLEEP, _S.ABOUT_TO_SLEEP, _S.NEED_ATTENTION, _S.LOYAL, _S.LOYAL),
    2: (_S.HIBERNATING, _S.HIBERNATING, _S.AT_RISK, _S.AT_RISK, _S.CANT_LOSE),
    1: (_S.LOST, _S.HIBERNATING, _S.AT_RISK, _S.AT_RISK, _S.CANT_LOSE),
}


def quintile_scores(values: Sequence[int], *, higher_is_better: bool = True) -> list[int]:
    """A score 1-5 per value: the quintile of its mid-rank among all values.

    A value's mid-rank share is (values worse than it + half the values equal to it) / all, so
    equal values always score the same, a lone value scores 3 and the best of many scores 5.
    """
    n = len(values)
    ordered = sorted(values)
    scores: dict[int, int] = {}
    for value in set(values):
        below = bisect_left(ordered, value)
        equal = bisect_right(ordered, value) - below
        worse = below if higher_is_better else n - below - equal
        scores[value] = min(5, 1 + (5 * (2 * worse + equal)) // (2 * n))
    return [scores[value] for value in values]


def frequency_monetary(frequency: int, monetary: int) -> int:
    """The mean of the two scores, halves up."""
    return (frequency + monetary + 1) // 2


def segment(recency: int, frequency: int, monetary: int) -> Segment:
    for score in (recency, frequency, monetary):
        if not 1 <= score <= 5:
            raise ValueError("RFM scores are 1 to 5")
    return _SEGMENT_GRID[recency][frequency_monetary(frequency, monetary) - 1]


@dataclass(frozen=True, slots=True)
class Purchases:
    """A member's purchases in the lookback window: count, revenue, the last one's time."""

    member_id: int
    last_at: datetime
    count: int
    revenue: int


@dataclass(frozen=True, slots=True)
class RfmScore:
    member_id: int
    recency_days: int
    frequency: int
    monetary: int
    r: int
    f: int
    m: int
    segment: Segment


def score_rfm(customers: Sequence[Purchases], at: datetime) -> list[RfmScore]:
    """Recency (whole days since the last purchase, fewer is better), frequency (purchases) and
    monetary value (revenue) scored by quintile among ``customers``, and named."""
    recency = [days_between(customer.last_at, at) for customer in customers]
    r = quintile_scores(recency, higher_is_better=False)
    f = quintile_scores([customer.count for customer in customers])
    m = quintile_scores([customer.revenue for customer in customers])
    return [
        RfmScore(
            member_id=customer.member_id,
            recency_days=recency[index],
            frequency=customer.count,
            monetary=customer.revenue,
            r=r[index],
            f=f[index],
            m=m[index],
            segment=segment(r[index], f[index], m[index]),
        )
        for index, customer in enumerate(customers)
    ]


def days_between(earlier: datetime, later: datetime) -> int:
    """Whole days from ``earlier`` to ``later`` (rounded down)."""
    return (later - earlier) // timedelta(days=1)


# --- At risk ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overdue:
    """A member whose absence is well beyond their own habit."""

    purchases: int
    last_at: datetime
    #: The median time between consecutive purchases.
    usual_interval: timedelta
    absence: timedelta

    @property
    def overdue_factor(self) -> str | None:
        """The absence in multiples of the usual interval (one decimal place); None when all
        purchases fell on one moment."""
        usual = self.usual_interval // timedelta(microseconds=1)
        if usual == 0:
            return None
        return decimal_text(Fraction(self.absence // timedelta(microseconds=1), usual))


def median_interval(times: Sequence[datetime]) -> timedelta:
    """The median gap between consecutive purchases (``times`` in any order, at least two)."""
    ordered = sorted(times)
    if len(ordered) < 2:
        raise ValueError("an interval needs two purchases")
    gaps = sorted(later - earlier for earlier, later in pairwise(ordered))
    middle = len(gaps) // 2
    if len(gaps) % 2:
        return gaps[middle]
    return (gaps[middle - 1] + gaps[middle]) / 2


def overdue(times: Sequence[datetime], at: datetime) -> Overdue | None:
    """The at-risk rule: at least ``AT_RISK_MIN_PURCHASES`` purchases, and the time since the
    last one longer than ``AT_RISK_FACTOR`` times the median interval between them and at least
    ``AT_RISK_MIN_ABSENCE``. None for a member who is not at risk."""
    require_aware(at=at)
    if len(times) < AT_RISK_MIN_PURCHASES:
        return None
    return overdue_by_habit(len(times), max(times), median_interval(times), at)


def overdue_by_habit(
    purchases: int, last_at: datetime, usual_interval: timedelta, at: datetime
) -> Overdue | None:
    """The at-risk rule when the median interval is known already (the services have the
    database work it out)."""
    require_aware(at=at, last_at=last_at)
    if purchases < AT_RISK_MIN_PURCHASES:
        return None
    absence = at - last_at
    if absence < AT_RISK_MIN_ABSENCE or absence <= AT_RISK_FACTOR * usual_interval:
        return None
    return Overdue(
        purchases=purchases, last_at=last_at, usual_interval=usual_interval, absence=absence
    )
