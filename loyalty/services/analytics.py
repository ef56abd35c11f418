"""The program's figures over a period (docs/ANALYTICS.md), added up in SQL.

Every figure is a GROUP BY over the tables, on SQLite and PostgreSQL alike, so that a program
with 100,000 members and millions of journals answers without loading rows it only counts. The
few figures that need each member (RFM, the at-risk list) fetch one aggregated row per buying
member, and the purchase times only of at-risk candidates. Time series group by bucket in SQL:
an instant's local day is ``(epoch seconds + UTC offset) // 86400``, with the program zone's
offsets over the period as a CASE (``loyalty.domain.analytics.utc_offsets``): SQLite has no time
zones, and this way both engines share one query.

One report reads in one read-only transaction: its figures agree with each other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from msgspec import Struct
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    distinct,
    extract,
    func,
    literal,
    null,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction, is_postgres
from loyalty.db.tables import (
    accounts,
    entries,
    feedback_answers,
    journals,
    member_consents,
    member_merges,
    members,
    non_member_sales,
    order_returns,
    orders,
    programs,
    referrals,
    tier_changes,
    tier_states,
)
from loyalty.domain import analytics as a
from loyalty.domain.analytics import BucketSize, Period, Segment
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.journals import JournalKind
from loyalty.domain.tiers import TierChangeReason, TierPolicy

from .context import utc_now
from .rules_in_force import find_rules_in_force

#: The Net Promoter comments a report carries (newest first).
MAX_COMMENTS = 50
#: Rows per IN (...) list.
_CHUNK = 500
#: Rows fetched at a time when a query's answer is walked through (orders of a window).
_STREAM_ROWS = 10_000
_REFERRAL_REFERENCE = "referral:"
_MARKETING = "marketing"


# --- What a report is asked for ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnalyticsQuery:
    """A report's parameters; ``None`` days and bucket take the defaults (the last 30 days up
    to today in the program's time zone; a bucket size that suits the period's length)."""

    first: date | None = None
    last: date | None = None
    bucket: BucketSize | None = None
    lapse_days: int = a.DEFAULT_LAPSE_DAYS
    lookback_days: int = a.DEFAULT_LOOKBACK_DAYS


# --- What a report answers -----------------------------------------------------------------


class PeriodView(Struct, frozen=True, kw_only=True):
    #: The first and the last day (both included), in the program's time zone.
    first: date
    last: date
    timezone: str
    #: The same as instants: ``[starts_at, ends_at)``.
    starts_at: datetime
    ends_at: datetime
    days: int
    bucket: BucketSize
    lapse_days: int
    lookback_days: int


class MemberFigures(Struct, frozen=True, kw_only=True):
    at_start: int
    at_end: int
    new: int
    #: Left in the period: erased or merged into another member record.
    left: int
    erased: int
    merged: int
    #: Members with a purchase in the period.
    active: int
    retention_percent: str | None
    churn_percent: str | None
    #: Mean time since enrollment of the members at the end, in whole days.
    average_tenure_days: int | None


class CustomerFigures(Struct, frozen=True, kw_only=True):
    lapse_days: int
    at_start: int
    at_end: int
    retained: int
    gained: int
    lost: int
    retention_percent: str | None
    churn_percent: str | None


class PurchaseFigures(Struct, frozen=True, kw_only=True):
    orders: int
    purchasing_members: int
    repeat_purchasers: int
    repeat_purchase_rate_percent: str | None
    #: Qualifying spend of the period's member orders, net of their returns (minor units).
    member_revenue: int
    returned: int
    member_average_order_value: int | None
    #: Sales without a member (None: none are known for the period).
    non_member_sales: int | None
    non_member_revenue: int | None
    non_member_average_order_value: int | None


class ValueFigures(Struct, frozen=True, kw_only=True):
    revenue_per_customer: int | None
    lifetime_periods: str | None
    lifetime_days: int | None
    customer_lifetime_value: int | None


class PointFigures(Struct, frozen=True, kw_only=True):
    #: Earned (orders, referral bonuses), net of what refunds and returns clawed back.
    issued: int
    #: Manual adjustments, net (negative: more taken than given).
    adjusted: int
    #: Spent on rewards and at tills, net of refunds.
    redeemed: int
    #: Expired, and forfeited at erasure.
    expired: int
    redemption_rate_percent: str | None
    breakage_rate_percent: str | None
    expired_value: int
    liability_points_start: int
    liability_points_end: int
    liability_start: int
    liability_end: int


class TierCount(Struct, frozen=True, kw_only=True):
    code: str
    name_de: str
    name_en: str
    members: int


class TierMovement(Struct, frozen=True, kw_only=True):
    before: str
    after: str
    #: up, down, or other (a level the rules no longer know).
    direction: str
    members: int


class TierFigures(Struct, frozen=True, kw_only=True):
    levels: list[TierCount]
    movements: list[TierMovement]
    upgrades: int
    downgrades: int


class FeedbackComment(Struct, frozen=True, kw_only=True):
    score: int
    comment: str
    at: datetime


class NpsFigures(Struct, frozen=True, kw_only=True):
    answers: int
    dismissed: int
    promoters: int
    passives: int
    detractors: int
    score: str | None
    comments_total: int
    comments: list[FeedbackComment]


class ReferralFigures(Struct, frozen=True, kw_only=True):
    #: Invitations that brought an enrolled member in the period.
    joined: int
    #: Invited members' first purchases in the period that earned the bonus.
    converted: int
    #: First purchases that earned nothing (inviter and invited share a contact, ...).
    refused: int
    bonus_points: int


class SegmentCount(Struct, frozen=True, kw_only=True):
    segment: Segment
    members: int
    share_percent: str | None


class RfmFigures(Struct, frozen=True, kw_only=True):
    lookback_days: int
    customers: int
    segments: list[SegmentCount]


class SeriesPoint(Struct, frozen=True, kw_only=True):
    first: date
    last: date
    #: Members at the bucket's end.
    members: int
    new_members: int
    active_members: int
    points_issued: int
    points_redeemed: int
    points_expired: int


class ProgramAnalytics(Struct, frozen=True, kw_only=True):
    program_id: int
    program_name: str
    currency: str
    point_value_micros: int
    generated_at: datetime
    period: PeriodView
    members: MemberFigures
    customers: CustomerFigures
    purchases: PurchaseFigures
    value: ValueFigures
    points: PointFigures
    #: None: the program has no tiers.
    tiers: TierFigures | None
    nps: NpsFigures
    referrals: ReferralFigures
    rfm: RfmFigures
    at_risk_members: int
    series: list[SeriesPoint]


class RfmMember(Struct, frozen=True, kw_only=True):
    member_id: int
    display_name: str
    email: str | None
    last_purchase_on: date
    recency_days: int
    frequency: int
    monetary: int
    r: int
    f: int
    m: int
    segment: Segment


class RfmReport(Struct, frozen=True, kw_only=True):
    program_id: int
    #: The period's last day and its end: the scores' moment.
    last_day: date
    as_of: datetime
    lookback_days: int
    customers: int
    segments: list[SegmentCount]
    #: Members of the chosen segment (all: every one), best customers first.
    total: int
    members: list[RfmMember]


class AtRiskMember(Struct, frozen=True, kw_only=True):
    member_id: int
    display_name: str
    email: str | None
    #: Whether the member's latest marketing consent in the program is granted.
    marketing_consent: bool
    purchases: int
    #: Revenue of the lookback window (minor units).
    revenue: int
    points_balance: int
    last_purchase_at: datetime
    last_purchase_on: date
    days_since_last_purchase: int
    usual_interval_days: str
    overdue_factor: str | None


class AtRiskReport(Struct, frozen=True, kw_only=True):
    program_id: int
    last_day: date
    as_of: datetime
    lookback_days: int
    currency: str
    members: list[AtRiskMember]


class ProgramChoice(Struct, frozen=True, kw_only=True):
    program_id: int
    name: str
    currency: str
    timezone: str


# --- The service ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Program:
    id: int
    name: str
    currency: str
    timezone: str
    point_value_micros: int


@dataclass(frozen=True, slots=True)
class _Report:
    """The resolved question: program, period and the SQL helpers of its time zone."""

    program: _Program
    period: Period
    bucket: BucketSize
    lapse: timedelta
    lookback: timedelta
    pieces: list[tuple[datetime, int]]
    buckets: list[a.Bucket]


class Analytics:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    async def programs(self, merchant_id: int) -> list[ProgramChoice]:
        """The merchant's programs, oldest first (the dashboard's choice)."""

        async def work(conn: AsyncConnection) -> list[ProgramChoice]:
            rows = await conn.execute(
                select(programs.c.id, programs.c.name, programs.c.currency, programs.c.timezone)
                .where(programs.c.merchant_id == merchant_id)
                .order_by(programs.c.id)
            )
            return [
                ProgramChoice(
                    program_id=row.id, name=row.name, currency=row.currency, timezone=row.timezone
                )
                for row in rows
            ]

        return await in_transaction(self._engine, work, read_only=True)

    async def report(
        self, merchant_id: int, program_id: int, query: AnalyticsQuery
    ) -> ProgramAnalytics:
        async def work(conn: AsyncConnection) -> ProgramAnalytics:
            report = await self._resolve(conn, merchant_id, program_id, query)
            figures, _ = await _program_analytics(conn, report, self._clock(), details=False)
            return figures

        return await in_transaction(self._engine, work, read_only=True)

    async def dashboard(
        self, merchant_id: int, program_id: int, query: AnalyticsQuery
    ) -> tuple[ProgramAnalytics, AtRiskReport]:
        """The report and the at-risk list together (the dashboard shows both), worked out
        once, in one transaction."""

        async def work(conn: AsyncConnection) -> tuple[ProgramAnalytics, AtRiskReport]:
            report = await self._resolve(conn, merchant_id, program_id, query)
            figures, at_risk = await _program_analytics(conn, report, self._clock(), details=True)
            return figures, _at_risk_report(report, at_risk)

        return await in_transaction(self._engine, work, read_only=True)

    async def rfm(
        self,
        merchant_id: int,
        program_id: int,
        query: AnalyticsQuery,
        *,
        segment: Segment | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> RfmReport:
        """Every buying member's RFM scores and segment (``limit``: one page of them)."""

        async def work(conn: AsyncConnection) -> RfmReport:
            report = await self._resolve(conn, merchant_id, program_id, query)
            customers = await _customers(conn, report)
            scored = a.score_rfm([c.purchases for c in customers], report.period.ends_at)
            chosen = [
                (customer, score)
                for customer, score in zip(customers, scored, strict=True)
                if segment is None or score.segment is segment
            ]
            chosen.sort(key=lambda pair: (-(pair[1].r + pair[1].f + pair[1].m), pair[1].member_id))
            page = chosen[offset:] if limit is None else chosen[offset : offset + limit]
            zone = ZoneInfo(report.program.timezone)
            contacts = await _contacts(
                conn,
                report.program.id,
                None if limit is None else [score.member_id for _, score in page],
            )
            return RfmReport(
                program_id=report.program.id,
                last_day=report.period.last,
                as_of=report.period.ends_at,
                lookback_days=report.lookback.days,
                customers=len(scored),
                segments=_segment_counts(scored),
                total=len(chosen),
                members=[
                    RfmMember(
                        member_id=score.member_id,
                        display_name=contacts[score.member_id].display_name,
                        email=contacts[score.member_id].email,
                        last_purchase_on=customer.purchases.last_at.astimezone(zone).date(),
                        recency_days=score.recency_days,
                        frequency=score.frequency,
                        monetary=score.monetary,
                        r=score.r,
                        f=score.f,
                        m=score.m,
                        segment=score.segment,
                    )
                    for customer, score in page
                ],
            )

        return await in_transaction(self._engine, work, read_only=True)

    async def at_risk(
        self, merchant_id: int, program_id: int, query: AnalyticsQuery
    ) -> AtRiskReport:
        """Members overdue by their own habit, most valuable first (docs/ANALYTICS.md)."""

        async def work(conn: AsyncConnection) -> AtRiskReport:
            report = await self._resolve(conn, merchant_id, program_id, query)
            customers = await _customers(conn, report)
            return _at_risk_report(report, await _at_risk(conn, report, customers))

        return await in_transaction(self._engine, work, read_only=True)

    async def comments(
        self, merchant_id: int, program_id: int, query: AnalyticsQuery
    ) -> tuple[PeriodView, list[FeedbackComment]]:
        """Every Net Promoter comment of the period, newest first."""

        async def work(conn: AsyncConnection) -> tuple[PeriodView, list[FeedbackComment]]:
            report = await self._resolve(conn, merchant_id, program_id, query)
            return _period_view(report), await _comments(conn, report, limit=None)

        return await in_transaction(self._engine, work, read_only=True)

    async def _resolve(
        self, conn: AsyncConnection, merchant_id: int, program_id: int, query: AnalyticsQuery
    ) -> _Report:
        row = (
            await conn.execute(
                select(
                    programs.c.id,
                    programs.c.name,
                    programs.c.currency,
                    programs.c.timezone,
                    programs.c.point_value_micros,
                ).where(programs.c.id == program_id, programs.c.merchant_id == merchant_id)
            )
        ).first()
        if row is None:
            raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program", program_id=program_id)
        program = _Program(row.id, row.name, row.currency, row.timezone, row.point_value_micros)
        first, last = query.first, query.last
        if first is None or last is None:
            default_first, default_last = a.default_days(
                a.local_today(program.timezone, self._clock())
            )
            if last is None:
                last = default_last if first is None else max(first, default_last)
            if first is None:
                first = last - (default_last - default_first)
        period = a.report_period(first, last, program.timezone)
        bucket = query.bucket or a.default_bucket(period.days)
        lookback = timedelta(days=query.lookback_days)
        lapse = timedelta(days=query.lapse_days)
        # The offsets cover every instant a query groups or compares by local day.
        pieces = a.utc_offsets(
            program.timezone, period.starts_at - lookback - lapse, period.ends_at
        )
        return _Report(
            program=program,
            period=period,
            bucket=bucket,
            lapse=lapse,
            lookback=lookback,
            pieces=pieces,
            buckets=a.buckets(period, bucket),
        )


# --- SQL helpers ---------------------------------------------------------------------------


def _int(value: Any) -> int:
    """SUM answers None over no rows, and a Decimal on PostgreSQL."""
    return 0 if value is None else int(value)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _epoch_seconds(conn: AsyncConnection, column: ColumnElement[Any]) -> ColumnElement[int]:
    if is_postgres(conn):
        return cast(func.floor(extract("epoch", column)), BigInteger)
    return cast(func.strftime("%s", column), Integer)


def _local_seconds(
    conn: AsyncConnection, column: ColumnElement[Any], pieces: Sequence[tuple[datetime, int]]
) -> ColumnElement[int]:
    """The instant as seconds since the epoch of the program's local time (its local day is
    this // 86400)."""
    offset: ColumnElement[int]
    if len(pieces) == 1:
        offset = literal(pieces[0][1], Integer)
    else:
        offset = case(
            *[(column < since, previous[1]) for previous, (since, _) in pairwise(pieces)],
            else_=pieces[-1][1],
        )
    return _epoch_seconds(conn, column) + offset


def _bucket_of(
    conn: AsyncConnection, report: _Report, column: ColumnElement[Any]
) -> ColumnElement[int]:
    """Which of the report's buckets the instant falls in (0 = the first): the arithmetic of
    ``loyalty.domain.analytics.bucket_number`` on its local time, once per row."""
    local = _local_seconds(conn, column, report.pieces)
    first = report.period.first
    if report.bucket is BucketSize.DAY:
        return local // 86_400 - a.day_number(first)
    if report.bucket is BucketSize.WEEK:
        return (local // 86_400 - (a.day_number(first) - first.weekday())) // 7
    return _month_number(conn, local) - (first.year * 12 + first.month - 1)


def _month_number(conn: AsyncConnection, local: ColumnElement[int]) -> ColumnElement[int]:
    """year x 12 + month - 1 of local seconds since the epoch."""
    if is_postgres(conn):
        moment = func.timezone("UTC", func.to_timestamp(local))
        year = cast(extract("year", moment), Integer)
        month = cast(extract("month", moment), Integer)
    else:
        year = cast(func.strftime("%Y", local, "unixepoch"), Integer)
        month = cast(func.strftime("%m", local, "unixepoch"), Integer)
    return year * 12 + month - 1


async def _per_bucket(
    conn: AsyncConnection, report: _Report, query: Select[*tuple[Any, ...]]
) -> dict[int, list[int]]:
    """Run ``query`` (columns: bucket, then figures) summed by bucket: index -> figures.

    The query is wrapped, so that GROUP BY names a column: PostgreSQL cannot tell that two
    expressions with bound parameters are the same one.
    """
    inner = query.subquery()
    bucket, *figures = list(inner.c)
    grouped = select(bucket, *[func.sum(column) for column in figures]).group_by(bucket)
    found: dict[int, list[int]] = {}
    for row in await conn.execute(grouped):
        if row[0] is not None and 0 <= int(row[0]) < len(report.buckets):
            found[int(row[0])] = [_int(value) for value in row[1:]]
    return found


def _roster(report: _Report) -> Any:
    """The program's members: enrollment, and when they left (erased, or merged away)."""
    merged_at = case(
        (
            members.c.merged_into_id.is_not(None),
            func.coalesce(member_merges.c.at, accounts.c.created_at),
        ),
        else_=null(),
    )
    left_at = case(
        (
            and_(
                members.c.deleted_at.is_not(None),
                or_(merged_at.is_(None), members.c.deleted_at < merged_at),
            ),
            members.c.deleted_at,
        ),
        else_=merged_at,
    )
    return (
        select(
            accounts.c.id.label("account_id"),
            accounts.c.member_id,
            accounts.c.created_at.label("joined_at"),
            left_at.label("left_at"),
            members.c.deleted_at,
            merged_at.label("merged_at"),
        )
        .join(members, members.c.id == accounts.c.member_id)
        .outerjoin(member_merges, member_merges.c.source_member_id == members.c.id)
        .where(accounts.c.program_id == report.program.id, accounts.c.member_id.is_not(None))
        .subquery("roster")
    )


def _member_at(roster: Any, at: datetime) -> ColumnElement[bool]:
    return and_(roster.c.joined_at < at, or_(roster.c.left_at.is_(None), roster.c.left_at >= at))


def _within(column: Any, since: datetime, until: datetime) -> ColumnElement[bool]:
    return and_(column >= since, column < until)


# --- The report ------------------------------------------------------------------------------


async def _program_analytics(
    conn: AsyncConnection, report: _Report, now: datetime, *, details: bool
) -> tuple[ProgramAnalytics, list[AtRiskMember]]:
    period = report.period
    member_figures, flow = await _members(conn, report)
    customer_figures, customer_flow = await _customer_flow(conn, report)
    purchases = await _purchases(conn, report)
    points = await _points(conn, report)
    value = a.lifetime_value(purchases.member_revenue, customer_flow, period.days)
    customers = await _customers(conn, report)
    scored = a.score_rfm([c.purchases for c in customers], period.ends_at)
    at_risk = await _at_risk(conn, report, customers, with_details=details)
    figures = ProgramAnalytics(
        program_id=report.program.id,
        program_name=report.program.name,
        currency=report.program.currency,
        point_value_micros=report.program.point_value_micros,
        generated_at=now,
        period=_period_view(report),
        members=MemberFigures(
            at_start=flow.at_start,
            at_end=flow.at_end,
            new=flow.new,
            left=flow.left,
            erased=member_figures["erased"],
            merged=member_figures["merged"],
            active=purchases.purchasing_members,
            retention_percent=flow.retention_percent,
            churn_percent=flow.churn_percent,
            average_tenure_days=member_figures["tenure"],
        ),
        customers=customer_figures,
        purchases=purchases,
        value=ValueFigures(
            revenue_per_customer=value.revenue_per_customer,
            lifetime_periods=value.lifetime_periods,
            lifetime_days=value.lifetime_days,
            customer_lifetime_value=value.value,
        ),
        points=points,
        tiers=await _tiers(conn, report),
        nps=await _nps(conn, report),
        referrals=await _referrals(conn, report),
        rfm=RfmFigures(
            lookback_days=report.lookback.days,
            customers=len(scored),
            segments=_segment_counts(scored),
        ),
        at_risk_members=len(at_risk),
        series=await _series(conn, report, flow.at_start),
    )
    return figures, at_risk


def _at_risk_report(report: _Report, members: list[AtRiskMember]) -> AtRiskReport:
    return AtRiskReport(
        program_id=report.program.id,
        last_day=report.period.last,
        as_of=report.period.ends_at,
        lookback_days=report.lookback.days,
        currency=report.program.currency,
        members=members,
    )


def _period_view(report: _Report) -> PeriodView:
    period = report.period
    return PeriodView(
        first=period.first,
        last=period.last,
        timezone=period.timezone,
        starts_at=period.starts_at,
        ends_at=period.ends_at,
        days=period.days,
        bucket=report.bucket,
        lapse_days=report.lapse.days,
        lookback_days=report.lookback.days,
    )


async def _members(conn: AsyncConnection, report: _Report) -> tuple[dict[str, Any], a.MemberFlow]:
    roster = _roster(report)
    start, end = report.period.starts_at, report.period.ends_at
    at_end = _member_at(roster, end)
    row = (
        await conn.execute(
            select(
                _count_if(_member_at(roster, start)),
                _count_if(at_end),
                _count_if(_within(roster.c.joined_at, start, end)),
                _count_if(_within(roster.c.deleted_at, start, end)),
                _count_if(
                    and_(
                        _within(roster.c.merged_at, start, end),
                        or_(
                            roster.c.deleted_at.is_(None), roster.c.deleted_at >= roster.c.merged_at
                        ),
                    )
                ),
                func.sum(case((at_end, _epoch_seconds(conn, roster.c.joined_at)), else_=0)),
            )
        )
    ).one()
    at_start, at_end_count, new, erased, merged, joined_epochs = (_int(value) for value in row)
    flow = a.MemberFlow(at_start=at_start, at_end=at_end_count, new=new)
    tenure = None
    if at_end_count:
        end_epoch = int(end.timestamp())
        tenure = a.rounded(
            Fraction(end_epoch * at_end_count - joined_epochs, at_end_count * 86_400)
        )
    return {"erased": erased, "merged": merged, "tenure": tenure}, flow


async def _customer_flow(
    conn: AsyncConnection, report: _Report
) -> tuple[CustomerFigures, a.CustomerFlow]:
    """Customers: members with a purchase in the lapse window before the moment."""
    start, end, lapse = report.period.starts_at, report.period.ends_at, report.lapse
    bought = (
        select(
            orders.c.account_id,
            func.max(case((_within(orders.c.occurred_at, start - lapse, start), 1), else_=0)).label(
                "before_start"
            ),
            func.max(case((_within(orders.c.occurred_at, end - lapse, end), 1), else_=0)).label(
                "before_end"
            ),
        )
        .where(
            orders.c.program_id == report.program.id,
            or_(
                _within(orders.c.occurred_at, start - lapse, start),
                _within(orders.c.occurred_at, end - lapse, end),
            ),
        )
        .group_by(orders.c.account_id)
        .subquery("bought")
    )
    roster = _roster(report)
    customer_at_start = and_(bought.c.before_start == 1, _member_at(roster, start))
    customer_at_end = and_(bought.c.before_end == 1, _member_at(roster, end))
    row = (
        await conn.execute(
            select(
                _count_if(customer_at_start),
                _count_if(customer_at_end),
                _count_if(and_(customer_at_start, customer_at_end)),
            ).select_from(bought.join(roster, roster.c.account_id == bought.c.account_id))
        )
    ).one()
    flow = a.CustomerFlow(at_start=_int(row[0]), at_end=_int(row[1]), retained=_int(row[2]))
    return (
        CustomerFigures(
            lapse_days=report.lapse.days,
            at_start=flow.at_start,
            at_end=flow.at_end,
            retained=flow.retained,
            gained=flow.gained,
            lost=flow.lost,
            retention_percent=flow.retention_percent,
            churn_percent=flow.churn_percent,
        ),
        flow,
    )


async def _purchases(conn: AsyncConnection, report: _Report) -> PurchaseFigures:
    start, end = report.period.starts_at, report.period.ends_at
    in_period = and_(
        orders.c.program_id == report.program.id, _within(orders.c.occurred_at, start, end)
    )
    row = (
        await conn.execute(
            select(
                func.count(),
                func.count(distinct(orders.c.account_id)),
                func.coalesce(func.sum(orders.c.qualifying_spend), 0),
            ).where(in_period)
        )
    ).one()
    order_count, purchasers, spend = (_int(value) for value in row)
    repeaters = _int(
        await conn.scalar(
            select(func.count()).select_from(
                select(orders.c.account_id)
                .where(in_period)
                .group_by(orders.c.account_id)
                .having(func.count() > 1)
                .subquery()
            )
        )
    )
    returned = sum((await _returned(conn, report, start, end)).values())
    sales = (
        await conn.execute(
            select(func.count(), func.coalesce(func.sum(non_member_sales.c.total), 0)).where(
                non_member_sales.c.program_id == report.program.id,
                non_member_sales.c.currency == report.program.currency,
                _within(non_member_sales.c.occurred_at, start, end),
            )
        )
    ).one()
    sale_count, sale_total = _int(sales[0]), _int(sales[1])
    revenue = spend - returned
    return PurchaseFigures(
        orders=order_count,
        purchasing_members=purchasers,
        repeat_purchasers=repeaters,
        repeat_purchase_rate_percent=a.percent(repeaters, purchasers),
        member_revenue=revenue,
        returned=returned,
        member_average_order_value=a.average(revenue, order_count),
        non_member_sales=sale_count or None,
        non_member_revenue=sale_total if sale_count else None,
        non_member_average_order_value=a.average(sale_total, sale_count),
    )


async def _system_accounts(conn: AsyncConnection, program_id: int) -> dict[int, str]:
    rows = await conn.execute(
        select(accounts.c.id, accounts.c.kind).where(
            accounts.c.program_id == program_id, accounts.c.member_id.is_(None)
        )
    )
    return {row.id: row.kind for row in rows}


#: The sign that turns a system account's entries into the figure: the issued account gives
#: (its entries are negative), redeemed and expired take.
_POINT_SIGNS = {"issued": -1, "adjustments": -1, "redeemed": 1, "expired": 1}


async def _points(conn: AsyncConnection, report: _Report) -> PointFigures:
    """Point flows from the entries of the program's system accounts (a member's every point
    came from one and goes to one), dated by when the ledger booked them."""
    start, end = report.period.starts_at, report.period.ends_at
    system = await _system_accounts(conn, report.program.id)
    rows = await conn.execute(
        select(
            entries.c.account_id,
            func.sum(case((journals.c.created_at < start, entries.c.amount), else_=0)),
            func.sum(case((journals.c.created_at >= start, entries.c.amount), else_=0)),
        )
        .join(journals, journals.c.id == entries.c.journal_id)
        .where(entries.c.account_id.in_(list(system)), journals.c.created_at < end)
        .group_by(entries.c.account_id)
    )
    before: dict[str, int] = defaultdict(int)
    during: dict[str, int] = defaultdict(int)
    for row in rows:
        kind = system[row[0]]
        before[kind] += _int(row[1])
        during[kind] += _int(row[2])
    flows = {kind: sign * during[kind] for kind, sign in _POINT_SIGNS.items()}
    # Every journal sums to zero: what the system accounts hold, the members owe back.
    liability_start = -sum(before.values())
    liability_end = -sum(before.values()) - sum(during.values())
    value = report.program.point_value_micros
    return PointFigures(
        issued=flows["issued"],
        adjusted=flows["adjustments"],
        redeemed=flows["redeemed"],
        expired=flows["expired"],
        redemption_rate_percent=a.redemption_rate(flows["redeemed"], flows["issued"]),
        breakage_rate_percent=a.breakage_rate(flows["expired"], flows["redeemed"]),
        expired_value=a.points_value_minor(flows["expired"], value),
        liability_points_start=liability_start,
        liability_points_end=liability_end,
        liability_start=a.points_value_minor(liability_start, value),
        liability_end=a.points_value_minor(liability_end, value),
    )


def _rank(policy: TierPolicy, code: str | None) -> int | None:
    for index, level in enumerate(policy.levels):
        if level.code == code:
            return index
    return None


async def _tiers(conn: AsyncConnection, report: _Report) -> TierFigures | None:
    """Members per tier at the end (as ``tier_status.level_at`` tells a past level: the first
    change after a moment names the level before it) and the tier changes of the period."""
    start, end = report.period.starts_at, report.period.ends_at
    found = await find_rules_in_force(conn, report.program.id, end - timedelta(microseconds=1))
    if found is None or found.rules.tiers is None:
        return None
    policy = found.rules.tiers
    program_accounts = select(accounts.c.id).where(accounts.c.program_id == report.program.id)
    later = (
        select(
            tier_changes.c.account_id,
            tier_changes.c.before,
            func.row_number()
            .over(
                partition_by=tier_changes.c.account_id,
                order_by=(tier_changes.c.at, tier_changes.c.id),
            )
            .label("position"),
        )
        .where(tier_changes.c.at >= end, tier_changes.c.account_id.in_(program_accounts))
        .subquery("later")
    )
    roster = _roster(report)
    states = (
        select(
            later.c.account_id.is_not(None).label("changed_later"),
            later.c.before,
            tier_states.c.earned,
            tier_states.c.manual,
            and_(
                tier_states.c.manual.is_not(None),
                or_(tier_states.c.manual_until.is_(None), tier_states.c.manual_until >= end),
            ).label("manual_valid"),
        )
        .select_from(
            roster.outerjoin(
                tier_states, tier_states.c.account_id == roster.c.account_id
            ).outerjoin(
                later, and_(later.c.account_id == roster.c.account_id, later.c.position == 1)
            )
        )
        .where(_member_at(roster, end))
        .subquery("states")
    )
    grouped = select(
        states.c.changed_later,
        states.c.before,
        states.c.earned,
        states.c.manual,
        states.c.manual_valid,
        func.count(),
    ).group_by(
        states.c.changed_later,
        states.c.before,
        states.c.earned,
        states.c.manual,
        states.c.manual_valid,
    )
    counts = [0] * len(policy.levels)
    for changed_later, before, earned, manual, manual_valid, count in await conn.execute(grouped):
        if changed_later:
            rank = _rank(policy, before) or 0
        elif earned is None:
            rank = 0
        else:
            rank = _rank(policy, earned) or 0
            if manual_valid:
                rank = max(rank, _rank(policy, manual) or 0)
        counts[rank] += int(count)
    movements: list[TierMovement] = []
    upgrades = downgrades = 0
    rows = await conn.execute(
        select(tier_changes.c.before, tier_changes.c.after, func.count())
        .where(
            tier_changes.c.account_id.in_(program_accounts),
            _within(tier_changes.c.at, start, end),
            tier_changes.c.before.is_not(None),
            tier_changes.c.before != tier_changes.c.after,
            tier_changes.c.reason != str(TierChangeReason.ENROLLED),
        )
        .group_by(tier_changes.c.before, tier_changes.c.after)
    )
    for before, after, count in rows:
        low, high = _rank(policy, before), _rank(policy, after)
        direction = "other" if low is None or high is None else "up" if high > low else "down"
        upgrades += int(count) if direction == "up" else 0
        downgrades += int(count) if direction == "down" else 0
        movements.append(
            TierMovement(before=before, after=after, direction=direction, members=int(count))
        )
    movements.sort(key=lambda move: (-move.members, move.before, move.after))
    return TierFigures(
        levels=[
            TierCount(code=level.code, name_de=level.name.de, name_en=level.name.en, members=count)
            for level, count in zip(policy.levels, counts, strict=True)
        ],
        movements=movements,
        upgrades=upgrades,
        downgrades=downgrades,
    )


async def _nps(conn: AsyncConnection, report: _Report) -> NpsFigures:
    score = feedback_answers.c.score
    where = (
        feedback_answers.c.program_id == report.program.id,
        _within(feedback_answers.c.created_at, report.period.starts_at, report.period.ends_at),
    )
    row = (
        await conn.execute(
            select(
                _count_if(score >= 9),
                _count_if(and_(score >= 7, score <= 8)),
                _count_if(score <= 6),
                _count_if(score.is_(None)),
                _count_if(and_(score.is_not(None), feedback_answers.c.comment.is_not(None))),
            ).where(*where)
        )
    ).one()
    promoters, passives, detractors, dismissed, comments_total = (_int(value) for value in row)
    return NpsFigures(
        answers=promoters + passives + detractors,
        dismissed=dismissed,
        promoters=promoters,
        passives=passives,
        detractors=detractors,
        score=a.net_promoter_score(promoters, passives, detractors),
        comments_total=comments_total,
        comments=await _comments(conn, report, limit=MAX_COMMENTS),
    )


async def _comments(
    conn: AsyncConnection, report: _Report, *, limit: int | None
) -> list[FeedbackComment]:
    query = (
        select(feedback_answers.c.score, feedback_answers.c.comment, feedback_answers.c.created_at)
        .where(
            feedback_answers.c.program_id == report.program.id,
            _within(feedback_answers.c.created_at, report.period.starts_at, report.period.ends_at),
            feedback_answers.c.score.is_not(None),
            feedback_answers.c.comment.is_not(None),
        )
        .order_by(feedback_answers.c.created_at.desc(), feedback_answers.c.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        FeedbackComment(score=row.score, comment=row.comment, at=row.created_at)
        for row in await conn.execute(query)
    ]


async def _referrals(conn: AsyncConnection, report: _Report) -> ReferralFigures:
    start, end = report.period.starts_at, report.period.ends_at
    converted = _within(referrals.c.converted_at, start, end)
    row = (
        await conn.execute(
            select(
                _count_if(_within(referrals.c.created_at, start, end)),
                _count_if(and_(converted, referrals.c.refused.is_(None))),
                _count_if(and_(converted, referrals.c.refused.is_not(None))),
            ).where(referrals.c.program_id == report.program.id)
        )
    ).one()
    # The bonus is an earn of each of the two members, referenced "referral:<id>", booked in
    # the invited member's first order, when the referral converted.
    bonus = await conn.scalar(
        select(func.coalesce(func.sum(journals.c.points), 0))
        .select_from(
            referrals.join(
                accounts,
                and_(
                    accounts.c.program_id == referrals.c.program_id,
                    or_(
                        accounts.c.member_id == referrals.c.inviter_member_id,
                        accounts.c.member_id == referrals.c.invitee_member_id,
                    ),
                ),
            ).join(
                journals,
                and_(
                    journals.c.account_id == accounts.c.id,
                    journals.c.kind == str(JournalKind.EARN),
                    journals.c.reference
                    == literal(_REFERRAL_REFERENCE, String) + cast(referrals.c.id, String),
                ),
            )
        )
        .where(referrals.c.program_id == report.program.id, converted)
    )
    return ReferralFigures(
        joined=_int(row[0]), converted=_int(row[1]), refused=_int(row[2]), bonus_points=_int(bonus)
    )


async def _series(
    conn: AsyncConnection, report: _Report, members_at_start: int
) -> list[SeriesPoint]:
    start, end = report.period.starts_at, report.period.ends_at
    roster = _roster(report)
    joined = await _per_bucket(
        conn,
        report,
        select(_bucket_of(conn, report, roster.c.joined_at), literal(1, Integer)).where(
            _within(roster.c.joined_at, start, end)
        ),
    )
    left = await _per_bucket(
        conn,
        report,
        select(_bucket_of(conn, report, roster.c.left_at), literal(1, Integer)).where(
            _within(roster.c.left_at, start, end), roster.c.joined_at < roster.c.left_at
        ),
    )
    bought = (
        select(_bucket_of(conn, report, orders.c.occurred_at).label("bucket"), orders.c.account_id)
        .where(orders.c.program_id == report.program.id, _within(orders.c.occurred_at, start, end))
        .subquery("bought")
    )
    active = {
        int(row[0]): int(row[1])
        for row in await conn.execute(
            select(bought.c.bucket, func.count(distinct(bought.c.account_id))).group_by(
                bought.c.bucket
            )
        )
    }
    system = await _system_accounts(conn, report.program.id)
    kinds = list(_POINT_SIGNS)
    flows = await _per_bucket(
        conn,
        report,
        select(
            _bucket_of(conn, report, journals.c.created_at),
            *[
                case(
                    (
                        entries.c.account_id.in_([i for i, k in system.items() if k == kind]),
                        entries.c.amount * _POINT_SIGNS[kind],
                    ),
                    else_=0,
                )
                for kind in kinds
            ],
        )
        .join(journals, journals.c.id == entries.c.journal_id)
        .where(entries.c.account_id.in_(list(system)), _within(journals.c.created_at, start, end)),
    )
    points: list[SeriesPoint] = []
    members_now = members_at_start
    for index, bucket in enumerate(report.buckets):
        new = joined.get(index, [0])[0]
        members_now += new - left.get(index, [0])[0]
        flow = dict(zip(kinds, flows.get(index, [0] * len(kinds)), strict=True))
        points.append(
            SeriesPoint(
                first=bucket.first,
                last=bucket.last,
                members=members_now,
                new_members=new,
                active_members=active.get(index, 0),
                points_issued=flow["issued"],
                points_redeemed=flow["redeemed"],
                points_expired=flow["expired"],
            )
        )
    return points


# --- Customers: RFM and at risk -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Customer:
    account_id: int
    purchases: a.Purchases


@dataclass(frozen=True, slots=True)
class _Contact:
    display_name: str
    email: str | None
    balance: int


def _lookback(report: _Report) -> ColumnElement[bool]:
    end = report.period.ends_at
    return and_(
        orders.c.program_id == report.program.id,
        _within(orders.c.occurred_at, end - report.lookback, end),
    )


async def _returned(
    conn: AsyncConnection, report: _Report, since: datetime, until: datetime
) -> dict[int, int]:
    """Qualifying spend returned per account, of the orders made in ``[since, until)``.

    Returns are few and summed here: a GROUP BY account in SQL would lead SQLite to walk every
    order of the program in account order to save itself a sort.
    """
    rows = await conn.execute(
        select(orders.c.account_id, order_returns.c.qualifying_spend)
        .select_from(order_returns.join(orders, orders.c.id == order_returns.c.order_id))
        .where(
            orders.c.program_id == report.program.id,
            _within(orders.c.occurred_at, since, until),
        )
    )
    found: dict[int, int] = defaultdict(int)
    for account_id, spend in rows:
        found[account_id] += int(spend)
    return found


def _from_epoch(seconds: Any) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


async def _customers(conn: AsyncConnection, report: _Report) -> list[_Customer]:
    """Members (neither erased nor merged away) with a purchase in the lookback window before
    the period's end: one aggregated row each (times as epoch seconds: cheap to fetch), revenue
    net of returns."""
    window = _lookback(report)
    returned = await _returned(
        conn, report, report.period.ends_at - report.lookback, report.period.ends_at
    )
    bought = (
        select(
            orders.c.account_id,
            func.max(orders.c.occurred_at).label("last_at"),
            func.count().label("purchases"),
            func.sum(orders.c.qualifying_spend).label("spend"),
        )
        .where(window)
        .group_by(orders.c.account_id)
        .subquery("bought")
    )
    rows = await conn.execute(
        select(
            bought.c.account_id,
            accounts.c.member_id,
            _epoch_seconds(conn, bought.c.last_at),
            bought.c.purchases,
            bought.c.spend,
        )
        .join(accounts, accounts.c.id == bought.c.account_id)
        .join(members, members.c.id == accounts.c.member_id)
        .where(members.c.deleted_at.is_(None), members.c.merged_into_id.is_(None))
        .order_by(accounts.c.member_id)
    )
    return [
        _Customer(
            account_id=account_id,
            purchases=a.Purchases(
                member_id=member_id,
                last_at=_from_epoch(last_at),
                count=int(count),
                revenue=_int(spend) - returned.get(account_id, 0),
            ),
        )
        for account_id, member_id, last_at, count, spend in rows
    ]


async def _contacts(
    conn: AsyncConnection, program_id: int, member_ids: Sequence[int] | None
) -> dict[int, _Contact]:
    """Name, email and balance of the program's members: of ``member_ids``, or (None) of all."""
    query = (
        select(members.c.id, members.c.display_name, members.c.email, accounts.c.posted)
        .join(accounts, accounts.c.member_id == members.c.id)
        .where(accounts.c.program_id == program_id)
    )
    if member_ids is None:
        batches: list[Select[Any]] = [query]
    else:
        ids = sorted(set(member_ids))
        batches = [
            query.where(members.c.id.in_(ids[start : start + _CHUNK]))
            for start in range(0, len(ids), _CHUNK)
        ]
    found: dict[int, _Contact] = {}
    for batch in batches:
        for member_id, display_name, email, posted in await conn.execute(batch):
            found[member_id] = _Contact(display_name, email, posted)
    return found


def _segment_counts(scored: Sequence[a.RfmScore]) -> list[SegmentCount]:
    counts = {segment: 0 for segment in a.SEGMENTS}
    for score in scored:
        counts[score.segment] += 1
    return [
        SegmentCount(segment=segment, members=count, share_percent=a.percent(count, len(scored)))
        for segment, count in counts.items()
    ]


async def _at_risk(
    conn: AsyncConnection,
    report: _Report,
    customers: Sequence[_Customer],
    *,
    with_details: bool = True,
) -> list[AtRiskMember]:
    """The at-risk rule over the customers with enough purchases and a long enough absence,
    with each one's median interval between purchases (``_median_intervals``)."""
    end = report.period.ends_at
    by_account = {
        customer.account_id: customer
        for customer in customers
        if customer.purchases.count >= a.AT_RISK_MIN_PURCHASES
        and end - customer.purchases.last_at >= a.AT_RISK_MIN_ABSENCE
    }
    overdue: dict[int, a.Overdue] = {}
    if by_account:
        for account_id, usual in (await _median_intervals(conn, report, by_account)).items():
            purchases = by_account[account_id].purchases
            found = a.overdue_by_habit(purchases.count, purchases.last_at, usual, end)
            if found is not None:
                overdue[account_id] = found
    if not with_details:
        return [
            _at_risk_member(by_account[i], late, None, False, report) for i, late in overdue.items()
        ]
    member_ids = [by_account[i].purchases.member_id for i in overdue]
    contacts = await _contacts(conn, report.program.id, member_ids)
    consents = await _marketing_consents(conn, report.program.id, member_ids)
    found_members = [
        _at_risk_member(
            by_account[i],
            late,
            contacts.get(by_account[i].purchases.member_id),
            consents.get(by_account[i].purchases.member_id, False),
            report,
        )
        for i, late in overdue.items()
    ]
    found_members.sort(key=lambda member: (-member.revenue, member.member_id))
    return found_members


async def _median_intervals(
    conn: AsyncConnection, report: _Report, candidates: Collection[int]
) -> dict[int, timedelta]:
    """The median time between consecutive purchases in the lookback window (whole seconds) of
    each of the ``candidates`` (account ids with at least two purchases in it).

    One pass over the window's orders, in account and time order (times as whole epoch
    seconds, as the database gives them); the gaps of each candidate sorted here: the median is
    the middle gap, or the mean of the two middle ones. Window functions in SQL need several
    sorts of every order of the window (LAG, count and maximum per account, gaps ranked), which
    cost SQLite more than the one sort here and the candidates' gaps in Python. PostgreSQL
    does the window functions faster than it sends every order of the window: it works the
    medians out itself (``_median_intervals_in_sql``).
    """
    if is_postgres(conn):
        found_in_sql = await _median_intervals_in_sql(conn, report)
        return {i: usual for i, usual in found_in_sql.items() if i in candidates}
    at = _epoch_seconds(conn, orders.c.occurred_at)
    result = await conn.stream(
        select(orders.c.account_id, at)
        .where(_lookback(report))
        .order_by(orders.c.account_id, orders.c.occurred_at)
    )
    found: dict[int, timedelta] = {}

    def settle(account_id: int, times: list[int]) -> None:
        gaps = sorted(later - earlier for earlier, later in pairwise(times))
        if not gaps:
            return
        middle = len(gaps) // 2
        # One middle gap (odd count) or two (even): twice the median either way, in seconds.
        twice = 2 * gaps[middle] if len(gaps) % 2 else gaps[middle - 1] + gaps[middle]
        found[account_id] = timedelta(microseconds=twice * 500_000)

    current: int | None = None
    times: list[int] = []
    async for rows in result.partitions(_STREAM_ROWS):
        for account_id, second in rows:
            if account_id != current:
                if current is not None and times:
                    settle(current, times)
                current, times = account_id, []
            if account_id in candidates:
                times.append(int(second))
    if current is not None and times:
        settle(current, times)
    return found


async def _median_intervals_in_sql(conn: AsyncConnection, report: _Report) -> dict[int, timedelta]:
    """PostgreSQL: the median time between consecutive purchases in the lookback window (whole
    seconds) of every account with enough purchases and a long enough absence to be at risk.

    One statement of window functions over the window's orders, sorted once by account and
    time: each purchase with the one before (LAG) and its account's count and last purchase
    (which pick the candidates); then the candidates' gaps, ranked; the median is the middle
    gap, or the mean of the two middle ones.
    """
    latest = int((report.period.ends_at - a.AT_RISK_MIN_ABSENCE).timestamp())
    at = _epoch_seconds(conn, orders.c.occurred_at)
    account = orders.c.account_id
    timeline = (
        select(
            orders.c.account_id,
            at.label("at"),
            func.lag(at).over(partition_by=account, order_by=orders.c.occurred_at).label("before"),
            func.count().over(partition_by=account).label("purchases"),
            func.max(at).over(partition_by=account).label("last"),
        )
        .where(_lookback(report))
        .subquery("timeline")
    )
    gaps = (
        select(timeline.c.account_id, (timeline.c.at - timeline.c.before).label("gap"))
        .where(
            timeline.c.before.is_not(None),
            timeline.c.purchases >= a.AT_RISK_MIN_PURCHASES,
            timeline.c.last <= latest,
        )
        .subquery("gaps")
    )
    ranked = select(
        gaps.c.account_id,
        gaps.c.gap,
        func.row_number()
        .over(partition_by=gaps.c.account_id, order_by=gaps.c.gap)
        .label("position"),
        func.count().over(partition_by=gaps.c.account_id).label("gaps"),
    ).subquery("ranked")
    middle = or_(
        ranked.c.position == (ranked.c.gaps + 1) // 2,
        ranked.c.position == (ranked.c.gaps + 2) // 2,
    )
    rows = await conn.execute(
        select(ranked.c.account_id, func.sum(ranked.c.gap), func.count())
        .where(middle)
        .group_by(ranked.c.account_id)
    )
    found = {}
    for account_id, middles, count in rows:
        # One middle gap (odd count) or two (even): twice the median either way, in seconds.
        twice = 2 * int(middles) if int(count) == 1 else int(middles)
        found[account_id] = timedelta(microseconds=twice * 500_000)
    return found


def _at_risk_member(
    customer: _Customer,
    late: a.Overdue,
    contact: _Contact | None,
    consent: bool,
    report: _Report,
) -> AtRiskMember:
    end = report.period.ends_at
    return AtRiskMember(
        member_id=customer.purchases.member_id,
        display_name=contact.display_name if contact else "",
        email=contact.email if contact else None,
        marketing_consent=consent,
        purchases=late.purchases,
        revenue=customer.purchases.revenue,
        points_balance=contact.balance if contact else 0,
        last_purchase_at=late.last_at,
        last_purchase_on=late.last_at.astimezone(ZoneInfo(report.program.timezone)).date(),
        days_since_last_purchase=a.days_between(late.last_at, end),
        usual_interval_days=a.decimal_text(
            Fraction(late.usual_interval // timedelta(microseconds=1), 86_400_000_000)
        ),
        overdue_factor=late.overdue_factor,
    )


async def _marketing_consents(
    conn: AsyncConnection, program_id: int, member_ids: Sequence[int]
) -> dict[int, bool]:
    """Each member's latest marketing consent in the program (granted or withdrawn)."""
    found: dict[int, bool] = {}
    ids = sorted(set(member_ids))
    for chunk in range(0, len(ids), _CHUNK):
        rows = await conn.execute(
            select(member_consents.c.member_id, member_consents.c.granted)
            .where(
                member_consents.c.program_id == program_id,
                member_consents.c.kind == _MARKETING,
                member_consents.c.member_id.in_(ids[chunk : chunk + _CHUNK]),
            )
            .order_by(member_consents.c.at, member_consents.c.id)
        )
        for member_id, granted in rows:
            found[member_id] = bool(granted)
    return found
