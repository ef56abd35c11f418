"""The audit log page (``/admin/audit``): every recorded change of the merchant, newest first,
filtered by program, entity (and which one), action, the staff user who acted and a date range,
in keyset pages ("older" follows ``next_before_id``).

Each entry's state before and after is shown as a readable diff: nested objects are flattened to
dotted keys, and changed keys come first and are highlighted. Dates of the filter are calendar
days in the back office's display time zone, both ends included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.services.audit import DEFAULT_AUDIT_PAGE_SIZE, AuditEntry, audit_entries
from loyalty.services.context import Staff
from loyalty.services.queries import Queries
from loyalty.services.staff import StaffDirectory

from .shell import DISPLAY_TIMEZONE, page_language, render

#: The bound the admin API puts on text filters.
MAX_FILTER_LENGTH: Final = 64
#: The query parameters of the page (short names: they end up in bookmarks).
FILTER_NAMES: Final = ("program", "entity", "entity_id", "action", "staff", "from", "to")

TEXTS: Final = {
    "de": {
        "title": "Protokoll",
        "lead": "Jede Änderung in der Verwaltung: wer, wann, was, vorher und nachher.",
        "filters": "Filter",
        "program": "Programm",
        "any_program": "alle Programme",
        "entity": "Art",
        "entity_id": "Kennung",
        "action": "Aktion",
        "actor": "Wer",
        "anyone": "alle",
        "from": "Von (Tag)",
        "to": "Bis (Tag)",
        "apply": "Anwenden",
        "reset": "Zurücksetzen",
        "when": "Zeit",
        "what": "Was",
        "change": "Änderung",
        "empty": "Keine Einträge für diese Filter.",
        "older": "Ältere Einträge",
        "newest": "Neueste Einträge",
        "field": "Feld",
        "before": "Vorher",
        "after": "Nachher",
        "added": "neu",
        "removed": "entfernt",
        "changed": "geändert",
        "unchanged": "{n} unveränderte Felder",
        "unchanged_one": "1 unverändertes Feld",
        "no_details": "keine Einzelheiten",
        "bad_number": "„{value}“ ist keine gültige Nummer ({name}).",
        "bad_text": "{name}: höchstens {n} Zeichen.",
        "bad_date": "„{value}“ ist kein Datum (JJJJ-MM-TT) ({name}).",
        "bad_range": "Der Zeitraum ist leer: „Von“ liegt nach „Bis“.",
        "days_note": "Tage nach deutscher Zeit, beide Enden eingeschlossen.",
        "filter_by": "Nur diese zeigen",
    },
    "en": {
        "title": "Audit log",
        "lead": "Every change made in the back office: who, when, what, before and after.",
        "filters": "Filters",
        "program": "Program",
        "any_program": "all programs",
        "entity": "Kind",
        "entity_id": "Id",
        "action": "Action",
        "actor": "Who",
        "anyone": "anyone",
        "from": "From (day)",
        "to": "To (day)",
        "apply": "Apply",
        "reset": "Reset",
        "when": "Time",
        "what": "What",
        "change": "Change",
        "empty": "No entries for these filters.",
        "older": "Older entries",
        "newest": "Newest entries",
        "field": "Field",
        "before": "Before",
        "after": "After",
        "added": "added",
        "removed": "removed",
        "changed": "changed",
        "unchanged": "{n} unchanged fields",
        "unchanged_one": "1 unchanged field",
        "no_details": "no details",
        "bad_number": "“{value}” is not a valid number ({name}).",
        "bad_text": "{name}: at most {n} characters.",
        "bad_date": "“{value}” is not a date (YYYY-MM-DD) ({name}).",
        "bad_range": "The range is empty: “from” is after “to”.",
        "days_note": "Days in German time, both ends included.",
        "filter_by": "Show only these",
    },
}


# --- Diffs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiffRow:
    """One key of an entry's before/after: its values as text (None where it is absent)."""

    key: str
    before: str | None
    after: str | None
    #: "added", "removed", "changed" or "same".
    change: str


#: The key of a before/after that is not an object (a plain value).
VALUE_KEY: Final = "(value)"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """An object's leaves by dotted key (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``); lists and
    plain values are leaves. An empty object is a leaf of its own."""
    if not isinstance(value, Mapping) or (not value and prefix):
        return {prefix or VALUE_KEY: value}
    leaves: dict[str, Any] = {}
    for key, item in value.items():
        leaves.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return leaves


def show_value(value: Any) -> str:
    """A value as the page shows it: text as it is, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


def diff_rows(before: Any, after: Any) -> list[DiffRow]:
    """The keys of ``before`` and ``after`` (None: the entity did not exist), changed ones
    first, each group in key order."""
    old = {} if before is None else flatten(before)
    new = {} if after is None else flatten(after)
    rows = []
    for key in sorted(old.keys() | new.keys()):
        in_old, in_new = key in old, key in new
        if in_old and in_new:
            change = "same" if old[key] == new[key] else "changed"
        else:
            change = "added" if in_new else "removed"
        rows.append(
            DiffRow(
                key=key,
                before=show_value(old[key]) if in_old else None,
                after=show_value(new[key]) if in_new else None,
                change=change,
            )
        )
    return sorted(rows, key=lambda row: row.change == "same")


@dataclass(frozen=True, slots=True)
class EntryView:
    entry: AuditEntry
    changes: list[DiffRow]
    unchanged: list[DiffRow]


def entry_view(entry: AuditEntry) -> EntryView:
    rows = diff_rows(entry.before, entry.after)
    return EntryView(
        entry=entry,
        changes=[row for row in rows if row.change != "same"],
        unchanged=[row for row in rows if row.change == "same"],
    )


# --- Filters ---------------------------------------------------------------------------------


@dataclass
class AuditFilters:
    """The page's filters as given (``raw``, to fill the form again) and as the service takes
    them; ``errors`` says what could not be read (localized)."""

    raw: dict[str, str]
    program_id: int | None = None
    entity: str | None = None
    entity_id: str | None = None
    action: str | None = None
    staff_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    errors: list[str] = field(default_factory=list)


def _number(raw: str, name: str, texts: Mapping[str, str], errors: list[str]) -> int | None:
    if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63:
        return int(raw)
    errors.append(texts["bad_number"].format(value=raw[:40], name=texts.get(name, name)))
    return None


def _day(raw: str, name: str, texts: Mapping[str, str], errors: list[str]) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(texts["bad_date"].format(value=raw[:40], name=texts[name]))
        return None


def read_filters(
    params: Mapping[str, str], texts: Mapping[str, str], timezone: str = DISPLAY_TIMEZONE
) -> AuditFilters:
    """The filters of the page's query string. Days are calendar days in ``timezone``: from the
    start of ``from`` to the end of ``to``."""
    raw = {name: params.get(name, "").strip() for name in FILTER_NAMES}
    filters = AuditFilters(raw={name: value for name, value in raw.items() if value})
    errors = filters.errors
    if raw["program"]:
        filters.program_id = _number(raw["program"], "program", texts, errors)
    if raw["staff"]:
        filters.staff_id = _number(raw["staff"], "actor", texts, errors)
    before = params.get("before", "").strip()
    if before:
        filters.before_id = _number(before, "older", texts, errors)
    for name in ("entity", "entity_id", "action"):
        if not raw[name]:
            continue
        if len(raw[name]) > MAX_FILTER_LENGTH:
            errors.append(texts["bad_text"].format(name=texts[name], n=MAX_FILTER_LENGTH))
        else:
            setattr(filters, name, raw[name])
    zone = ZoneInfo(timezone)
    first = _day(raw["from"], "from", texts, errors) if raw["from"] else None
    last = _day(raw["to"], "to", texts, errors) if raw["to"] else None
    if first is not None and last is not None and first > last:
        errors.append(texts["bad_range"])
    elif not errors:
        if first is not None:
            filters.since = datetime.combine(first, time(), zone)
        if last is not None:
            filters.until = datetime.combine(last + timedelta(days=1), time(), zone)
    return filters


def filter_link(filters: Mapping[str, str], **changes: str | int | None) -> str:
    """The page with ``filters`` changed by ``changes`` (None removes one); paging restarts."""
    merged = {**filters, **{name: value for name, value in changes.items() if value is not None}}
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
    query = urlencode({name: str(value) for name, value in merged.items() if value != ""})
    return "/admin/audit" + (f"?{query}" if query else "")


# --- The page --------------------------------------------------------------------------------


@get("/admin/audit", include_in_schema=False)
async def audit_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    db_engine: NamedDependency[AsyncEngine],
    queries: NamedDependency[Queries],
    staff_directory: NamedDependency[StaffDirectory],
) -> Template:
    language = page_language(request)
    texts = TEXTS[language]
    filters = read_filters(request.query_params, texts)
    entries: list[EntryView] = []
    next_before_id = None
    if not filters.errors:
        page = await audit_entries(
            db_engine,
            staff.merchant_id,
            program_id=filters.program_id,
            entity=filters.entity,
            entity_id=filters.entity_id,
            action=filters.action,
            staff_id=filters.staff_id,
            since=filters.since,
            until=filters.until,
            before_id=filters.before_id,
            limit=DEFAULT_AUDIT_PAGE_SIZE,
        )
        entries = [entry_view(entry) for entry in page.entries]
        next_before_id = page.next_before_id
    programs = await queries.programs(staff.caller)
    seen = [view.entry for view in entries]
    return render(
        request,
        staff,
        template="admin/audit.html",
        texts=TEXTS,
        active="audit",
        title=texts["title"],
        status_code=400 if filters.errors else 200,
        filters=filters,
        entries=entries,
        programs={program.program_id: program for program in programs},
        users=await staff_directory.list_staff(staff.merchant_id),
        known_entities=sorted({entry.entity for entry in seen} | {filters.entity or ""} - {""}),
        known_actions=sorted({entry.action for entry in seen} | {filters.action or ""} - {""}),
        older_link=filter_link(filters.raw, before=next_before_id) if next_before_id else None,
        newest_link=filter_link(filters.raw) if filters.before_id else None,
        filter_link=lambda **changes: filter_link(filters.raw, **changes),
    )


AUDIT_PAGES: Final = [audit_page]
