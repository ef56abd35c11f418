"""The analytics dashboard (``/admin/analytics``): a program's figures over a chosen period, as
tiles, server-drawn SVG charts and tables, with the JSON and CSV downloads of the admin API.

The form is a plain GET (program, first and last day, bucket size, lapse and lookback days), so
a view can be bookmarked and shared. Default: the first program, the last 30 days. The figures
come from :class:`loyalty.services.analytics.Analytics`, their definitions from
docs/ANALYTICS.md (each tile says its rule in a tooltip).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlencode

from babel.dates import format_skeleton
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template
from markupsafe import Markup

from loyalty.domain import analytics as a
from loyalty.domain.analytics import BucketSize, Segment
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.analytics import (
    Analytics,
    AnalyticsQuery,
    AtRiskReport,
    ProgramAnalytics,
    ProgramChoice,
)
from loyalty.services.context import Staff

from .charts import Series, bar_chart, line_chart
from .shell import Formats, page_language, render

#: Segment bars coloured by what they ask of the merchant: keep (green, blue), look after
#: (amber), win back (orange, red), let go (grey).
SEGMENT_COLOURS: Final = {
    Segment.CHAMPIONS: "#009E73",
    Segment.LOYAL: "#009E73",
    Segment.POTENTIAL_LOYALISTS: "#0072B2",
    Segment.NEW: "#56B4E9",
    Segment.PROMISING: "#56B4E9",
    Segment.NEED_ATTENTION: "#E69F00",
    Segment.ABOUT_TO_SLEEP: "#E69F00",
    Segment.CANT_LOSE: "#D55E00",
    Segment.AT_RISK: "#D55E00",
    Segment.HIBERNATING: "#8B95A3",
    Segment.LOST: "#8B95A3",
}
#: Rows of the at-risk table on the page (the CSV has them all).
AT_RISK_ROWS: Final = 25
API_PREFIX: Final = "/api/v1/admin/programs"

TEXTS: Final = {
    "de": {
        "title": "Kennzahlen",
        "lead": "Wie das Programm wirkt: Mitglieder, Käufe, Punkte, Stufen, Zufriedenheit.",
        "program": "Programm",
        "from": "Von",
        "to": "Bis",
        "bucket": "Schritte",
        "bucket_auto": "automatisch",
        "bucket_day": "Tage",
        "bucket_week": "Wochen",
        "bucket_month": "Monate",
        "lapse_days": "Kunde bis (Tage nach Kauf)",
        "lookback_days": "RFM-Zeitraum (Tage)",
        "show": "Anzeigen",
        "presets": "Schnellwahl",
        "last_30": "30 Tage",
        "last_90": "90 Tage",
        "last_365": "12 Monate",
        "this_year": "Dieses Jahr",
        "period_note": "{first} bis {last} ({days} Tage, beide eingeschlossen, Zeitzone {zone})",
        "downloads": "Herunterladen",
        "json": "Alle Kennzahlen (JSON)",
        "csv": "Kennzahlen (CSV)",
        "series_csv": "Zeitreihen (CSV)",
        "comments_csv": "Kommentare (CSV)",
        "rfm_csv": "RFM je Mitglied (CSV)",
        "at_risk_csv": "Gefährdete Mitglieder (CSV)",
        "no_programs": "Noch kein Programm: Legen Sie zuerst ein Programm an.",
        "unknown_program": "Dieses Programm gibt es nicht.",
        "bad_date": "„{value}“ ist kein Datum (JJJJ-MM-TT).",
        "bad_number": "„{value}“ ist keine Zahl zwischen {low} und {high} ({name}).",
        "bad_range": "Der Zeitraum ist leer: „Von“ liegt nach „Bis“.",
        "too_long": "Ein Zeitraum umfasst höchstens {days} Tage (drei Jahre).",
        "members_title": "Mitglieder",
        "members_end": "Mitglieder am Ende",
        "members_change": "{new} neu, {left} ausgetreten",
        "active": "Aktive Mitglieder",
        "active_note": "mit Kauf im Zeitraum",
        "retention": "Bindungsrate",
        "retention_help": "(Mitglieder am Ende − neue) / Mitglieder am Anfang",
        "churn_note": "Abwanderung {value}",
        "customer_retention": "Kundenbindung",
        "customer_retention_help": "Kunden = Mitglieder mit Kauf in den {days} Tagen davor; "
        "(Kunden am Ende − gewonnene) / Kunden am Anfang",
        "customers_note": "{start} → {end} Kunden",
        "repeat": "Wiederkaufrate",
        "repeat_help": "Anteil der kaufenden Mitglieder mit mehr als einem Kauf",
        "aov": "Bon Mitglieder",
        "aov_help": "Umsatz (berechtigter Umsatz abzüglich Retouren) je Bestellung",
        "aov_note": "Nicht-Mitglieder: {value}",
        "unknown": "unbekannt",
        "clv": "Kundenwert (CLV)",
        "clv_help": "Umsatz je Kunde im Zeitraum × erwartete Dauer (1 / Abwanderung)",
        "clv_note": "{revenue} je Kunde × {periods} Zeiträume",
        "revenue": "Umsatz Mitglieder",
        "revenue_note": "{orders} Bestellungen",
        "points_title": "Punkte",
        "issued": "Ausgegeben",
        "redeemed": "Eingelöst",
        "expired": "Verfallen",
        "adjusted_note": "Korrekturen: {value}",
        "redeemed_of": "{redeemed} von {issued} Punkten eingelöst",
        "redemption_rate": "Einlösequote",
        "redemption_help": "Eingelöste Punkte / ausgegebene Punkte im Zeitraum",
        "breakage": "Breakage",
        "breakage_help": "Verfallene Punkte / (eingelöste + verfallene)",
        "liability": "Offene Punkte (Verbindlichkeit)",
        "liability_note": "{points} Punkte am Ende",
        "nps": "Net Promoter Score",
        "nps_help": "Promotoren (9–10) minus Kritiker (0–6), in Prozent der Antworten",
        "nps_note": "{answers} Antworten",
        "chart_members": "Mitglieder",
        "chart_activity": "Neue und aktive Mitglieder",
        "chart_points": "Punkte je Zeitschritt",
        "new_members": "Neu",
        "active_members": "Aktiv",
        "tiers_title": "Stufen",
        "tier_distribution": "Mitglieder je Stufe am Ende",
        "tier_movements": "Stufenwechsel im Zeitraum",
        "no_tiers": "Das Programm hat keine Stufen.",
        "no_movements": "Keine Stufenwechsel im Zeitraum.",
        "move_from": "Von",
        "move_to": "Nach",
        "direction": "Richtung",
        "direction_up": "aufwärts",
        "direction_down": "abwärts",
        "direction_other": "andere",
        "count": "Anzahl",
        "rfm_title": "Segmente (RFM)",
        "rfm_lead": "{customers} Mitglieder mit Kauf in den {days} Tagen bis zum Ende, nach "
        "Aktualität, Häufigkeit und Umsatz eingeteilt.",
        "nps_title": "Zufriedenheit",
        "promoters": "Promotoren",
        "passives": "Passive",
        "detractors": "Kritiker",
        "dismissed": "ohne Antwort geschlossen: {n}",
        "comments": "Kommentare (neueste zuerst)",
        "no_comments": "Keine Kommentare im Zeitraum.",
        "more_comments": "… und {n} weitere (CSV)",
        "referrals_title": "Empfehlungen",
        "referrals_joined": "Eingeladen und beigetreten",
        "referrals_converted": "Mit erstem Einkauf",
        "referrals_refused": "Ohne Bonus (gleiche Kontaktdaten)",
        "referrals_bonus": "Bonuspunkte",
        "at_risk_title": "Gefährdete Mitglieder",
        "at_risk_lead": "Mindestens 3 Käufe, und seit dem letzten mehr als doppelt so lange "
        "wie sonst zwischen zwei Käufen (mindestens 14 Tage). Für eine Rückgewinnungsaktion: "
        "nur Mitglieder mit Werbe-Einwilligung anschreiben.",
        "at_risk_none": "Niemand ist gefährdet.",
        "at_risk_more": "Die ersten {shown} von {total}; alle in der CSV-Datei.",
        "member": "Mitglied",
        "purchases": "Käufe",
        "last_purchase": "Letzter Kauf",
        "days_since": "Tage her",
        "usual": "Sonst alle (Tage)",
        "overdue": "Überfällig ×",
        "balance": "Punkte",
        "consent": "Werbung erlaubt",
        "table": "Zahlen als Tabelle",
        "period_column": "Zeitraum",
        "seg_champions": "Champions",
        "seg_loyal": "Treue Kunden",
        "seg_potential_loyalists": "Künftige Stammkunden",
        "seg_new": "Neukunden",
        "seg_promising": "Vielversprechend",
        "seg_need_attention": "Brauchen Zuwendung",
        "seg_about_to_sleep": "Schlafen ein",
        "seg_cant_lose": "Nicht verlieren!",
        "seg_at_risk": "Gefährdet",
        "seg_hibernating": "Winterschlaf",
        "seg_lost": "Verloren",
    },
    "en": {
        "title": "Analytics",
        "lead": "How the program works: members, purchases, points, tiers, satisfaction.",
        "program": "Program",
        "from": "From",
        "to": "To",
        "bucket": "Steps",
        "bucket_auto": "automatic",
        "bucket_day": "days",
        "bucket_week": "weeks",
        "bucket_month": "months",
        "lapse_days": "Customer for (days after a purchase)",
        "lookback_days": "RFM window (days)",
        "show": "Show",
        "presets": "Quick pick",
        "last_30": "30 days",
        "last_90": "90 days",
        "last_365": "12 months",
        "this_year": "This year",
        "period_note": "{first} to {last} ({days} days, both included, time zone {zone})",
        "downloads": "Download",
        "json": "All figures (JSON)",
        "csv": "Figures (CSV)",
        "series_csv": "Time series (CSV)",
        "comments_csv": "Comments (CSV)",
        "rfm_csv": "RFM per member (CSV)",
        "at_risk_csv": "Members at risk (CSV)",
        "no_programs": "No program yet: create a program first.",
        "unknown_program": "There is no such program.",
        "bad_date": "“{value}” is not a date (YYYY-MM-DD).",
        "bad_number": "“{value}” is not a number from {low} to {high} ({name}).",
        "bad_range": "The period is empty: “from” lies after “to”.",
        "too_long": "A period spans at most {days} days (three years).",
        "members_title": "Members",
        "members_end": "Members at the end",
        "members_change": "{new} new, {left} left",
        "active": "Active members",
        "active_note": "with a purchase in the period",
        "retention": "Retention rate",
        "retention_help": "(members at the end − new members) / members at the start",
        "churn_note": "churn {value}",
        "customer_retention": "Customer retention",
        "customer_retention_help": "customers = members with a purchase in the {days} days "
        "before; (customers at the end − gained) / customers at the start",
        "customers_note": "{start} → {end} customers",
        "repeat": "Repeat purchase rate",
        "repeat_help": "Share of purchasing members with more than one purchase",
        "aov": "Member order value",
        "aov_help": "Revenue (qualifying spend less returns) per order",
        "aov_note": "non-members: {value}",
        "unknown": "unknown",
        "clv": "Customer lifetime value",
        "clv_help": "Revenue per customer in the period × expected lifetime (1 / churn)",
        "clv_note": "{revenue} per customer × {periods} periods",
        "revenue": "Member revenue",
        "revenue_note": "{orders} orders",
        "points_title": "Points",
        "issued": "Issued",
        "redeemed": "Redeemed",
        "expired": "Expired",
        "adjusted_note": "adjustments: {value}",
        "redeemed_of": "{redeemed} of {issued} points redeemed",
        "redemption_rate": "Redemption rate",
        "redemption_help": "Points redeemed / points issued in the period",
        "breakage": "Breakage",
        "breakage_help": "Points expired / (redeemed + expired)",
        "liability": "Outstanding points (liability)",
        "liability_note": "{points} points at the end",
        "nps": "Net Promoter Score",
        "nps_help": "Promoters (9–10) minus detractors (0–6), in percent of the answers",
        "nps_note": "{answers} answers",
        "chart_members": "Members",
        "chart_activity": "New and active members",
        "chart_points": "Points per step",
        "new_members": "New",
        "active_members": "Active",
        "tiers_title": "Tiers",
        "tier_distribution": "Members per tier at the end",
        "tier_movements": "Tier changes in the period",
        "no_tiers": "The program has no tiers.",
        "no_movements": "No tier changes in the period.",
        "move_from": "From",
        "move_to": "To",
        "direction": "Direction",
        "direction_up": "up",
        "direction_down": "down",
        "direction_other": "other",
        "count": "Count",
        "rfm_title": "Segments (RFM)",
        "rfm_lead": "{customers} members with a purchase in the {days} days up to the end, "
        "grouped by recency, frequency and monetary value.",
        "nps_title": "Satisfaction",
        "promoters": "Promoters",
        "passives": "Passives",
        "detractors": "Detractors",
        "dismissed": "closed without an answer: {n}",
        "comments": "Comments (newest first)",
        "no_comments": "No comments in the period.",
        "more_comments": "… and {n} more (CSV)",
        "referrals_title": "Referrals",
        "referrals_joined": "Invited and joined",
        "referrals_converted": "Made a first purchase",
        "referrals_refused": "No bonus (shared contact data)",
        "referrals_bonus": "Bonus points",
        "at_risk_title": "Members at risk",
        "at_risk_lead": "At least 3 purchases, and since the last one more than twice their "
        "usual time between purchases (at least 14 days). For a win-back campaign: mail only "
        "members who consented to marketing.",
        "at_risk_none": "Nobody is at risk.",
        "at_risk_more": "The first {shown} of {total}; all of them in the CSV file.",
        "member": "Member",
        "purchases": "Purchases",
        "last_purchase": "Last purchase",
        "days_since": "Days ago",
        "usual": "Usually every (days)",
        "overdue": "Overdue ×",
        "balance": "Points",
        "consent": "Marketing allowed",
        "table": "Numbers as a table",
        "period_column": "Period",
        "seg_champions": "Champions",
        "seg_loyal": "Loyal",
        "seg_potential_loyalists": "Potential loyalists",
        "seg_new": "New customers",
        "seg_promising": "Promising",
        "seg_need_attention": "Need attention",
        "seg_about_to_sleep": "About to sleep",
        "seg_cant_lose": "Can't lose them",
        "seg_at_risk": "At risk",
        "seg_hibernating": "Hibernating",
        "seg_lost": "Lost",
    },
}


# --- The form ---------------------------------------------------------------------------------


@dataclass
class Choice:
    """The page's query string as given (``raw``, to fill the form again) and as read."""

    raw: dict[str, str]
    program_id: int | None = None
    first: date | None = None
    last: date | None = None
    bucket: BucketSize | None = None
    lapse_days: int = a.DEFAULT_LAPSE_DAYS
    lookback_days: int = a.DEFAULT_LOOKBACK_DAYS
    errors: list[str] = field(default_factory=list)

    def query(self) -> AnalyticsQuery:
        return AnalyticsQuery(
            first=self.first,
            last=self.last,
            bucket=self.bucket,
            lapse_days=self.lapse_days,
            lookback_days=self.lookback_days,
        )


_NAMES: Final = ("program", "from", "to", "bucket", "lapse_days", "lookback_days")


def read_choice(params: Mapping[str, str], texts: Mapping[str, str]) -> Choice:
    raw = {name: params.get(name, "").strip()[:40] for name in _NAMES}
    choice = Choice(raw={name: value for name, value in raw.items() if value})
    if raw["program"]:
        if raw["program"].isascii() and raw["program"].isdigit():
            choice.program_id = int(raw["program"])
        else:
            choice.errors.append(texts["unknown_program"])
    for name in ("from", "to"):
        if raw[name]:
            try:
                setattr(
                    choice, "first" if name == "from" else "last", date.fromisoformat(raw[name])
                )
            except ValueError:
                choice.errors.append(texts["bad_date"].format(value=raw[name]))
    if raw["bucket"] in {str(size) for size in BucketSize}:
        choice.bucket = BucketSize(raw["bucket"])
    bounds = {
        "lapse_days": (a.MIN_LAPSE_DAYS, a.MAX_LAPSE_DAYS),
        "lookback_days": (a.MIN_LOOKBACK_DAYS, a.MAX_LOOKBACK_DAYS),
    }
    for name, (low, high) in bounds.items():
        if not raw[name]:
            continue
        value = raw[name]
        if value.isascii() and value.isdigit() and low <= int(value) <= high:
            setattr(choice, name, int(value))
        else:
            choice.errors.append(
                texts["bad_number"].format(value=value, low=low, high=high, name=texts[name])
            )
    if choice.first and choice.last and choice.first > choice.last:
        choice.errors.append(texts["bad_range"])
    return choice


def page_link(choice: Mapping[str, str], **changes: str | None) -> str:
    merged = {**choice, **{k: v for k, v in changes.items() if v is not None}}
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
    return "/admin/analytics?" + urlencode(merged)


def api_link(program_id: int, path: str, report: ProgramAnalytics, **extra: str | int) -> str:
    period = report.period
    query: dict[str, str | int] = {
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "bucket": str(period.bucket),
        "lapse_days": period.lapse_days,
        "lookback_days": period.lookback_days,
        **extra,
    }
    return f"{API_PREFIX}/{program_id}{path}?{urlencode(query)}"


# --- What the template shows ----------------------------------------------------------------


def ratio(percent_text: str | None) -> Decimal | None:
    """A figure's percent string as the ratio ``fmt.percent`` takes."""
    return None if percent_text is None else Decimal(percent_text) / 100


def bucket_label(first: date, bucket: BucketSize, language: str) -> str:
    locale = {"de": "de_DE", "en": "en_GB"}[language]
    skeleton = "yMMM" if bucket is BucketSize.MONTH else "MMMd"
    return format_skeleton(skeleton, first, locale=locale)


def charts(
    report: ProgramAnalytics, texts: Mapping[str, str], fmt: Formats, language: str
) -> dict[str, Markup]:
    labels = [bucket_label(p.first, report.period.bucket, language) for p in report.series]
    series = report.series
    drawn = {
        "members": line_chart(
            "chart-members",
            texts["chart_members"],
            labels,
            [Series(texts["chart_members"], [p.members for p in series])],
            number=fmt.number,
            area=True,
            width=560,
        ),
        "activity": line_chart(
            "chart-activity",
            texts["chart_activity"],
            labels,
            [
                Series(texts["active_members"], [p.active_members for p in series]),
                Series(texts["new_members"], [p.new_members for p in series]),
            ],
            number=fmt.number,
            width=560,
        ),
        "points": line_chart(
            "chart-points",
            texts["chart_points"],
            labels,
            [
                Series(texts["issued"], [p.points_issued for p in series]),
                Series(texts["redeemed"], [p.points_redeemed for p in series]),
                Series(texts["expired"], [p.points_expired for p in series]),
            ],
            number=fmt.number,
            width=1000,
        ),
        "segments": bar_chart(
            "chart-segments",
            texts["rfm_title"],
            [(texts[f"seg_{s.segment}"], s.members) for s in report.rfm.segments],
            number=fmt.number,
            colours=[SEGMENT_COLOURS[s.segment] for s in report.rfm.segments],
            width=520,
        ),
    }
    if report.tiers is not None:
        name = "name_de" if language == "de" else "name_en"
        drawn["tiers"] = bar_chart(
            "chart-tiers",
            texts["tier_distribution"],
            [(getattr(level, name) or level.code, level.members) for level in report.tiers.levels],
            number=fmt.number,
            width=520,
        )
    return drawn


def _period_error(error: DomainError, texts: Mapping[str, str]) -> str:
    if error.code is ErrorCode.INVALID_WINDOW:
        if "days" in error.extra:
            return texts["too_long"].format(days=a.MAX_PERIOD_DAYS)
        return texts["bad_range"]
    return texts["unknown_program"]


def presets(today: date, choice: Choice) -> list[tuple[str, str]]:
    keep = {k: v for k, v in choice.raw.items() if k in {"program", "lapse_days", "lookback_days"}}
    ranges = {
        "last_30": (today - timedelta(days=29), today),
        "last_90": (today - timedelta(days=89), today),
        "last_365": (today - timedelta(days=364), today),
        "this_year": (today.replace(month=1, day=1), today),
    }
    return [
        (key, page_link(keep, **{"from": first.isoformat(), "to": last.isoformat()}))
        for key, (first, last) in ranges.items()
    ]


# --- The page --------------------------------------------------------------------------------


@get("/admin/analytics", include_in_schema=False)
async def analytics_page(
    request: Request[Any, Any, Any], staff: NamedDependency[Staff]
) -> Template:
    language = page_language(request)
    texts = {**TEXTS[language]}
    choice = read_choice(request.query_params, texts)
    service = Analytics(request.app.state.engine, request.app.state.ledger.clock)
    programs = await service.programs(staff.merchant_id)
    chosen: ProgramChoice | None = None
    if choice.program_id is not None:
        chosen = next((p for p in programs if p.program_id == choice.program_id), None)
        if chosen is None and texts["unknown_program"] not in choice.errors:
            choice.errors.append(texts["unknown_program"])
    elif programs:
        chosen = programs[0]
    report: ProgramAnalytics | None = None
    at_risk: AtRiskReport | None = None
    status = 200
    if chosen is not None and not choice.errors:
        try:
            report, at_risk = await service.dashboard(
                staff.merchant_id, chosen.program_id, choice.query()
            )
        except DomainError as error:
            choice.errors.append(_period_error(error, texts))
    if choice.errors:
        status = 404 if texts["unknown_program"] in choice.errors else 400
    fmt = Formats(language)
    today = a.local_today(chosen.timezone if chosen else "UTC", request.app.state.ledger.clock())
    context: dict[str, Any] = {
        "choice": choice,
        "programs": programs,
        "chosen": chosen,
        "report": report,
        "at_risk": at_risk,
        "at_risk_rows": at_risk.members[:AT_RISK_ROWS] if at_risk else [],
        "presets": presets(today, choice),
        "buckets": [str(size) for size in BucketSize],
        "segments": [str(s) for s in Segment],
        "ratio": ratio,
        "dec": Decimal,
    }
    if report is not None and chosen is not None:
        program_id = chosen.program_id
        name = "name_de" if language == "de" else "name_en"
        levels = report.tiers.levels if report.tiers is not None else []
        context.update(
            charts=charts(report, texts, fmt, language),
            tier_names={level.code: getattr(level, name) or level.code for level in levels},
            labels=[bucket_label(p.first, report.period.bucket, language) for p in report.series],
            links={
                "json": api_link(program_id, "/analytics", report),
                "csv": api_link(program_id, "/analytics.csv", report),
                "series_csv": api_link(program_id, "/analytics/series.csv", report),
                "comments_csv": api_link(program_id, "/analytics/comments.csv", report),
                "rfm_csv": api_link(program_id, "/analytics/rfm.csv", report),
                "at_risk_csv": api_link(program_id, "/analytics/at-risk.csv", report),
            },
        )
    return render(
        request,
        staff,
        template="admin/analytics.html",
        texts=TEXTS,
        active="analytics",
        title=texts["title"],
        status_code=status,
        **context,
    )


ANALYTICS_PAGES: Final = [analytics_page]
