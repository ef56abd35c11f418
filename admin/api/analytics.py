"""The program's figures (docs/ANALYTICS.md) as JSON and CSV, for the whole back office.

Every endpoint takes the same period parameters: ``from`` and ``to`` (days in the program's
time zone, both included; default the last 30 days up to today), ``bucket`` (day, week, month;
default by the period's length), ``lapse_days`` and ``lookback_days``. A CSV is UTF-8 with a
byte-order mark (spreadsheets then read umlauts right), comma-separated, with a header row;
money is in minor units (cents) and rates are decimal strings as in the JSON.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from loyalty.app.api.params import ProgramId
from loyalty.domain import analytics as a
from loyalty.domain.analytics import BucketSize, Segment
from loyalty.services.analytics import (
    Analytics,
    AnalyticsQuery,
    AtRiskMember,
    AtRiskReport,
    ProgramAnalytics,
    RfmMember,
    RfmReport,
    SeriesPoint,
)
from loyalty.services.context import Staff

from .responses import problems

#: Litestar adds "; charset=utf-8" to text types.
CSV_MEDIA_TYPE = "text/csv"
DEFAULT_PAGE = 100
MAX_PAGE = 1000
_PROBLEMS = problems(
    400,
    401,
    403,
    404,
    503,
    s400="Bad period: from after to, longer than three years (invalid_window), or a malformed "
    "parameter (validation_failed)",
    s404="Unknown program, or one of another merchant (program_not_found)",
)
_ROLES = " Roles: owner, program_manager, support."

First = Annotated[
    date | None,
    QueryParameter(
        name="from",
        required=False,
        description="First day of the period (YYYY-MM-DD, program's time zone; default: 29 "
        "days before to)",
    ),
]
Last = Annotated[
    date | None,
    QueryParameter(
        required=False,
        description="Last day of the period, included (default: today in the program's zone)",
    ),
]
Bucket = Annotated[
    BucketSize | None,
    QueryParameter(
        required=False,
        description="Time-series points: day, week (ISO) or month (default: day up to 62 "
        "days, week up to 550, month beyond)",
    ),
]
LapseDays = Annotated[
    int,
    QueryParameter(
        ge=a.MIN_LAPSE_DAYS,
        le=a.MAX_LAPSE_DAYS,
        description="A member is a customer at a moment after a purchase within this many days",
    ),
]
LookbackDays = Annotated[
    int,
    QueryParameter(
        ge=a.MIN_LOOKBACK_DAYS,
        le=a.MAX_LOOKBACK_DAYS,
        description="RFM and the at-risk list look at the purchases of this many days before "
        "the period's end",
    ),
]


def _analytics(request: Request[Any, Any, Any]) -> Analytics:
    return Analytics(request.app.state.engine, request.app.state.ledger.clock)


SegmentFilter = Annotated[
    Segment | None, QueryParameter(required=False, description="Only this segment")
]


def _full_period(
    first: First = None,
    to: Last = None,
    bucket: Bucket = None,
    lapse_days: LapseDays = a.DEFAULT_LAPSE_DAYS,
    lookback_days: LookbackDays = a.DEFAULT_LOOKBACK_DAYS,
) -> AnalyticsQuery:
    """The period and every setting: the figures and their series."""
    return AnalyticsQuery(
        first=first, last=to, bucket=bucket, lapse_days=lapse_days, lookback_days=lookback_days
    )


def _lookback_period(
    first: First = None, to: Last = None, lookback_days: LookbackDays = a.DEFAULT_LOOKBACK_DAYS
) -> AnalyticsQuery:
    """The period and the lookback window: RFM and the at-risk list."""
    return _full_period(first, to, None, a.DEFAULT_LAPSE_DAYS, lookback_days)


def _comments_period(first: First = None, to: Last = None) -> AnalyticsQuery:
    """Only the period: the Net Promoter comments."""
    return _full_period(first, to, None, a.DEFAULT_LAPSE_DAYS, 365)


#: Each handler takes its query parameters through one of these as ``window``.
_FULL = {"window": Provide(_full_period, sync_to_thread=False)}
_LOOKBACK = {"window": Provide(_lookback_period, sync_to_thread=False)}
_COMMENTS = {"window": Provide(_comments_period, sync_to_thread=False)}


async def _report(
    request: Request[Any, Any, Any], staff: Staff, program_id: int, window: AnalyticsQuery
) -> ProgramAnalytics:
    return await _analytics(request).report(staff.merchant_id, program_id, window)


class AnalyticsController(Controller):
    """Read by the whole back office (the router admits no one else)."""

    path = "/programs/{program_id:int}"
    tags = ["Admin: analytics"]

    @get(
        "/analytics",
        responses=_PROBLEMS,
        dependencies=_FULL,
        summary="The program's figures over a period, with time series",
        description="Members, customers, retention and churn, purchases, lifetime value, "
        "points and liability, tiers, Net Promoter Score, referrals, RFM segments and the "
        "number of members at risk; definitions in docs/ANALYTICS.md." + _ROLES,
    )
    async def figures(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        program_id: ProgramId,
        window: NamedDependency[AnalyticsQuery],
    ) -> ProgramAnalytics:
        return await _report(request, staff, program_id, window)

    @get(
        "/analytics.csv",
        responses=_PROBLEMS,
        dependencies=_FULL,
        media_type=CSV_MEDIA_TYPE,
        summary="The program's figures as CSV: one figure,value row each",
        description="The JSON's figures flattened to dotted names (members.at_start, "
        "tiers.levels.gold, rfm.segments.champions, ...); the series and the comments have "
        "files of their own." + _ROLES,
    )
    async def figures_csv(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        program_id: ProgramId,
        window: NamedDependency[AnalyticsQuery],
    ) -> Response[bytes]:
        report = await _report(request, staff, program_id, window)
        period = report.period
        return download(
            csv_bytes(["figure", "value"], figure_rows(report)),
            f"analytics-{program_id}-{period.first}-{period.last}.csv",
        )

    @get(
        "/analytics/series.csv",
        responses=_PROBLEMS,
        dependencies=_FULL,
        media_type=CSV_MEDIA_TYPE,
        summary="The time series as CSV: one row per bucket",
        description="Members at each bucket's end, new and active members, points issued, "
        "redeemed and expired." + _ROLES,
    )
    async def series_csv(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        program_id: ProgramId,
        window: NamedDependency[AnalyticsQuery],
    ) -> Response[bytes]:
        report = await _report(request, staff, program_id, window)
        period = report.period
        return download(
            csv_bytes(list(SeriesPoint.__struct_fields__), _rows(report.series)),
            f"analytics-series-{program_id}-{period.first}-{period.last}-{period.bucket}.csv",
        )

    @get(
        "/analytics/comments.csv",
        responses=_PROBLEMS,
        dependencies=_COMMENTS,
        media_type=CSV_MEDIA_TYPE,
        summary="Every Net Promoter comment of the period as CSV, newest first",
        description="The JSON report carries the newest 50." + _ROLES,
    )
    async def comments_csv(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        program_id: ProgramId,
        window: NamedDependency[AnalyticsQuery],
    ) -> Response[bytes]:
        period, comments = await _analytics(request).comments(staff.merchant_id, program_id, window)
        return download(
            csv_bytes(["at", "score", "comment"], _rows(comments)),
            f"nps-comments-{program_id}-{period.first}-{period.last}.csv",
        )

    @get(
        "/analytics/rfm",
        responses=_PROBLEMS,
        dependencies=_LOOKBACK,
        summary="RFM scores and segment of each buying member, best first (pages)",
        description="Recency, frequency and monetary value scored 1-5 by quintile among the "
        "members with a purchase in the lookback window before the period's end, and the "
        "segment they make. Filter by segment; page with limit and offset." + _ROLES,
    )
    async def rfm(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        program_id: ProgramId,
        window: NamedDependency[AnalyticsQuery],
        segment: SegmentFilter = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        offset: Annotated[int, QueryParameter(ge=0, le=10_000_000)] = 0,
    ) -> RfmReport:
        return await _analytics(request).rfm(
            staff.merchant_id,
            program_id,
            window,
            segment=segment,
            limit=limit,
            offset=offset,
        )

    @get(
        "/analytics/rfm.csv",
        responses=_PROBLEMS,
        dependencies=_LOOKBACK,
        media_type=CSV_MEDIA_TYPE,
        summary="Every buying member's RFM scores and segment as CSV",
        description="All members (or those of one segment), best first." + _ROLES,
    )
    async def rfm_csv(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        program_id: ProgramId,
        window: NamedDependency[AnalyticsQuery],
        segment: SegmentFilter = None,
    ) -> Response[bytes]:
        report = await _analytics(request).rfm(
            staff.merchant_id,
            program_id,
            window,
            segment=segment,
        )
        suffix = f"-{segment}" if segment else ""
        return download(
            csv_bytes(list(RfmMember.__struct_fields__), _rows(report.members)),
            f"rfm-{program_id}-{report.last_day}{suffix}.csv",
        )

    @get(
        "/analytics/at-risk",
        responses=_PROBLEMS,
        dependencies=_LOOKBACK,
        summary="Members overdue by their own habit, most valuable first",
        description="At least 3 purchases in the lookback window, and the time since the last "
        "one more than twice the median interval between them and at least 14 days; erased "
        "and merged-away members are left out." + _ROLES,
    )
    async def at_risk(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        program_id: ProgramId,
        window: NamedDependency[AnalyticsQuery],
    ) -> AtRiskReport:
        return await _analytics(request).at_risk(
            staff.merchant_id,
            program_id,
            window,
        )

    @get(
        "/analytics/at-risk.csv",
        responses=_PROBLEMS,
        dependencies=_LOOKBACK,
        media_type=CSV_MEDIA_TYPE,
        summary="The at-risk list as CSV, for a win-back campaign",
        description="With each member's email and whether their latest marketing consent is "
        "granted (mail only those)." + _ROLES,
    )
    async def at_risk_csv(
        self,
        request: Request[Any, Any, Any],
        staff: NamedDependency[Staff],
        program_id: ProgramId,
        window: NamedDependency[AnalyticsQuery],
    ) -> Response[bytes]:
        report = await _analytics(request).at_risk(
            staff.merchant_id,
            program_id,
            window,
        )
        return download(
            csv_bytes(list(AtRiskMember.__struct_fields__), _rows(report.members)),
            f"at-risk-{program_id}-{report.last_day}.csv",
        )


# --- CSV -------------------------------------------------------------------------------------


def download(content: bytes, filename: str) -> Response[bytes]:
    return Response(
        content=content,
        media_type=CSV_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def _rows(items: Sequence[msgspec.Struct]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = msgspec.to_builtins(items)
    return rows


def csv_bytes(columns: list[str], rows: Iterable[dict[str, Any] | Sequence[Any]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        values = [row.get(column) for column in columns] if isinstance(row, dict) else row
        writer.writerow([cell(value) for value in values])
    return text.getvalue().encode("utf-8-sig")


#: A spreadsheet runs a cell starting with these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """A CSV cell: empty for None, true/false, numbers as they are, and text that a spreadsheet
    would run as a formula defused with a leading apostrophe (member names and comments are
    typed by members)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if text.startswith(_FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: Lists of the report that become one row per item: the item's name, its value.
_LIST_ROWS: dict[str, Callable[[dict[str, Any]], tuple[str, Any]]] = {
    "tiers.levels": lambda item: (item["code"], item["members"]),
    "tiers.movements": lambda item: (f"{item['before']}->{item['after']}", item["members"]),
    "rfm.segments": lambda item: (item["segment"], item["members"]),
}
#: What has a file of its own.
_OWN_FILES = {"series", "nps.comments"}


def figure_rows(report: ProgramAnalytics) -> list[tuple[str, Any]]:
    """The report's every figure as ``(dotted name, value)``."""
    rows: list[tuple[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if prefix in _OWN_FILES:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, list):
            named = _LIST_ROWS.get(prefix)
            if named is not None:
                for item in value:
                    name, figure = named(item)
                    rows.append((f"{prefix}.{name}", figure))
        else:
            rows.append((prefix, value))

    walk("", msgspec.to_builtins(report))
    return rows
