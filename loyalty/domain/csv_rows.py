"""CSV import rows: the columns of the member and transaction files, reading records with their
line numbers, and checking each row into a typed row or line-numbered problems.

Pure: the current time, the program's time zone and currency are parameters; nothing here reads
a file or a database. Emails and phone numbers are only trimmed here: the service normalises
them (``loyalty.services.contacts`` uses libraries), and matches rows against the database.

The file (docs/IMPORT.md has examples):

* UTF-8, with or without a byte order mark; a header row naming the columns (any order, any
  case); comma or semicolon as the delimiter (German Excel writes semicolons), told from the
  header row. Empty lines, and lines whose every field is empty, are skipped.
* Money: ``12.34``, ``12,34``, ``1234``, or grouped ``1.234,56`` / ``1,234.56``; at most two
  decimals. One separator followed by exactly three digits (``1.234``) is refused as ambiguous.
* Times: ISO 8601 (``2024-03-01T10:15:00+01:00``, ``2024-03-01 10:15``, ``2024-03-01``) or
  German (``01.03.2024 10:15``, ``01.03.2024``). A time without an offset is local time in the
  program's time zone (when a clock is put back, the earlier of the two instants); a date alone
  is local midnight.
* Yes/no: ``yes``/``no``, ``ja``/``nein``, ``true``/``false``, ``1``/``0``, ``y``/``n``,
  ``j``, ``x``.

Line numbers are those of the file as an editor shows them: the header is line 1, and a record
whose quoted field spans lines is reported at the line where it starts.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import chain
from typing import TypeVar
from zoneinfo import ZoneInfo

from .basket import MAX_MONEY_MINOR
from .cards import check_card_number
from .errors import DomainError
from .points import MAX_POINTS_PER_OPERATION


class ImportKind(StrEnum):
    MEMBERS = "members"
    TRANSACTIONS = "transactions"


class ProblemCode(StrEnum):
    """What is wrong with a line (stable: the admin page translates them)."""

    # The file as a whole
    EMPTY_FILE = "empty_file"
    UNKNOWN_COLUMN = "unknown_column"
    DUPLICATE_COLUMN = "duplicate_column"
    MISSING_COLUMN = "missing_column"
    # A record
    NOT_UTF8 = "not_utf8"
    CSV_SYNTAX = "csv_syntax"
    FIELD_COUNT = "field_count"
    # A field
    REQUIRED = "required"
    TOO_LONG = "too_long"
    CONTROL_CHARACTER = "control_character"
    INVALID_MONEY = "invalid_money"
    INVALID_POINTS = "invalid_points"
    INVALID_TIME = "invalid_time"
    TIME_IN_FUTURE = "time_in_future"
    INVALID_CHOICE = "invalid_choice"
    INVALID_CARD_NUMBER = "invalid_card_number"
    INVALID_EMAIL = "invalid_email"
    INVALID_PHONE = "invalid_phone"
    CURRENCY_MISMATCH = "currency_mismatch"
    DUPLICATE_IN_FILE = "duplicate_in_file"
    # Against the data already there (found by the service)
    EMAIL_TAKEN = "email_taken"
    PHONE_TAKEN = "phone_taken"
    CARD_NUMBER_TAKEN = "card_number_taken"
    EXTERNAL_ID_CONFLICT = "external_id_conflict"
    UNKNOWN_MEMBER = "unknown_member"
    MEMBER_NOT_ENROLLED = "member_not_enrolled"
    MEMBER_ERASED = "member_erased"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the file, at a line (1 is the header)."""

    line: int
    code: ProblemCode
    message: str
    column: str | None = None


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    #: The header must name it (its values may still be optional).
    required: bool
    description: str


MEMBER_COLUMNS = (
    Column("external_id", True, "your id of the member (unique in the file; re-runs match it)"),
    Column("display_name", True, "the member's name"),
    Column("email", False, "email address"),
    Column("phone", False, "phone number (national numbers are read as German)"),
    Column("card_number", False, "an existing card number of this platform; empty: one is issued"),
    Column("locale", False, "de or en"),
    Column("joined_at", False, "when the member joined; empty: the time of the import"),
    Column("marketing_consent", False, "yes or no; empty: no consent recorded"),
    Column("marketing_consent_at", False, "when it was given; empty: joined_at"),
    Column("opening_points", False, "an opening balance credited now"),
)
TRANSACTION_COLUMNS = (
    Column("reference", True, "the sale's id (unique per program; re-runs match it)"),
    Column("occurred_at", True, "when the sale happened"),
    Column("member", False, "the member's external_id; empty: a sale without a member"),
    Column("total", True, "what the customer paid"),
    Column("currency", False, "the program's currency; empty: the program's"),
    Column("points", False, "points that sale earned; empty: 0"),
)
COLUMNS: dict[ImportKind, tuple[Column, ...]] = {
    ImportKind.MEMBERS: MEMBER_COLUMNS,
    ImportKind.TRANSACTIONS: TRANSACTION_COLUMNS,
}

MAX_EXTERNAL_ID = 64
MAX_DISPLAY_NAME = 200
MAX_EMAIL = 254
MAX_PHONE = 32
#: An imported order's ledger journal is referenced ``order:<reference>`` in 200 characters.
ORDER_REFERENCE_PREFIX = "order:"
MAX_REFERENCE = 200 - len(ORDER_REFERENCE_PREFIX)
LOCALES = ("de", "en")
#: Times before this are typing errors, not history.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
#: A clock a few minutes fast is not a time in the future.
CLOCK_SKEW = timedelta(minutes=5)

_YES = frozenset({"yes", "y", "ja", "j", "true", "1", "x"})
_NO = frozenset({"no", "n", "nein", "false", "0"})
_DIGITS = re.compile(r"[0-9]+")
_PLAIN_MONEY = re.compile(r"([0-9]+)(?:[.,]([0-9]{1,2}))?")
_GERMAN_GROUPED = re.compile(r"([0-9]{1,3}(?:\.[0-9]{3})+)(?:,([0-9]{1,2}))?")
_ENGLISH_GROUPED = re.compile(r"([0-9]{1,3}(?:,[0-9]{3})+)(?:\.([0-9]{1,2}))?")
_AMBIGUOUS_MONEY = re.compile(r"[0-9]{1,3}[.,][0-9]{3}")
_GERMAN_TIME = re.compile(
    r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})(?:[ T]([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?)?"
)
#: Control characters (a NUL also breaks PostgreSQL text) and lone surrogates.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_REPLACEMENT = "\ufffd"

T = TypeVar("T")


class FieldError(ValueError):
    """A field that is not what its column needs."""

    def __init__(self, code: ProblemCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class RowSettings:
    """What checking a row needs to know: the program's zone and currency, and the time now."""

    timezone: str
    currency: str
    now: datetime
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", ZoneInfo(self.timezone))


@dataclass(frozen=True, slots=True)
class MemberRow:
    line: int
    external_id: str
    display_name: str
    #: As ``contact`` made them (the service: normalised as enrollment stores them).
    email: str | None
    phone: str | None
    #: Canonical (17 digits); None: the import issues one.
    card_number: str | None
    locale: str | None
    joined_at: datetime | None
    marketing_consent: bool | None
    marketing_consent_at: datetime | None
    opening_points: int


@dataclass(frozen=True, slots=True)
class TransactionRow:
    line: int
    reference: str
    occurred_at: datetime
    #: The member's external id; None for a sale without a member.
    member: str | None
    #: Minor units (cents).
    total: int
    currency: str
    points: int


# --- Reading records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """The fields of one CSV record and the line it starts on."""

    line: int
    fields: list[str]


def detect_delimiter(header_line: str) -> str:
    """``;`` when the header row has more semicolons than commas (German Excel), else ``,``."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def read_records(lines: Iterable[str]) -> Iterator[Record | Problem]:
    """The records of a CSV text given line by line (with their line endings, as a file opened
    with ``newline=""`` yields them). The first is the header. A record that cannot be read is
    a problem at its line; reading goes on with the next one. Raises nothing."""
    source = iter(lines)
    first = next(source, None)
    if first is None:
        return
    first = first.removeprefix("\ufeff")
    reader = csv.reader(chain([first], source), delimiter=detect_delimiter(first), strict=False)
    previous = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            line = previous + 1
            if reader.line_num <= previous:  # no progress: the reader cannot go on
                yield Problem(line, ProblemCode.CSV_SYNTAX, f"unreadable from here on: {error}")
                return
            previous = reader.line_num
            yield Problem(line, ProblemCode.CSV_SYNTAX, f"not readable as CSV: {error}")
            continue
        line, previous = previous + 1, reader.line_num
        if not any(field.strip() for field in fields):
            continue
        if any(_REPLACEMENT in field for field in fields):
            yield Problem(
                line,
                ProblemCode.NOT_UTF8,
                "the line is not valid UTF-8; save the file as 'CSV UTF-8'",
            )
            continue
        yield Record(line, fields)


# --- The header --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    kind: ImportKind
    #: Column name -> position in a record.
    positions: dict[str, int]
    width: int


def read_header(kind: ImportKind, record: Record) -> Header | list[Problem]:
    """The header row: every required column named, no unknown or repeated column."""
    known = {column.name for column in COLUMNS[kind]}
    names = [field.strip().lower() for field in record.fields]
    problems: list[Problem] = []
    positions: dict[str, int] = {}
    for position, name in enumerate(names):
        if not name and position == len(names) - 1 and position > 0:
            continue  # a trailing delimiter
        if name not in known:
            problems.append(
                Problem(
                    record.line,
                    ProblemCode.UNKNOWN_COLUMN,
                    f"unknown column {_shown(name)}; the columns are: {', '.join(sorted(known))}",
                    column=name[:64],
                )
            )
        elif name in positions:
            problems.append(
                Problem(
                    record.line,
                    ProblemCode.DUPLICATE_COLUMN,
                    f"the column {name} appears twice",
                    column=name,
                )
            )
        else:
            positions[name] = position
    for column in COLUMNS[kind]:
        if column.required and column.name not in positions:
            problems.append(
                Problem(
                    record.line,
                    ProblemCode.MISSING_COLUMN,
                    f"the header has no column {column.name} ({column.description})",
                    column=column.name,
                )
            )
    if problems:
        return problems
    return Header(kind, positions, len(names))


def empty_file_problem() -> Problem:
    return Problem(1, ProblemCode.EMPTY_FILE, "the file is empty; it needs a header row")


# --- Rows --------------------------------------------------------------------------------------


class _Fields:
    """A record's fields by column name, collecting the problems of the ones read."""

    def __init__(self, header: Header, record: Record) -> None:
        self.header = header
        self.record = record
        self.problems: list[Problem] = []

    def text(self, name: str) -> str | None:
        """The trimmed value, None when empty or when the header has no such column."""
        position = self.header.positions.get(name)
        if position is None or position >= len(self.record.fields):
            return None
        value = self.record.fields[position].strip()
        if not value:
            return None
        if _CONTROL.search(value):
            self.fail(name, ProblemCode.CONTROL_CHARACTER, "contains a control character")
            return None
        return value

    def required(self, name: str, limit: int) -> str:
        value = self.limited(name, limit)
        if value is None and not self.has_problem(name):
            self.fail(name, ProblemCode.REQUIRED, "is required")
        return value or ""

    def limited(self, name: str, limit: int) -> str | None:
        value = self.text(name)
        if value is not None and len(value) > limit:
            self.fail(name, ProblemCode.TOO_LONG, f"is longer than {limit} characters")
            return None
        return value

    def parsed(self, name: str, parse: Callable[[str], T], default: T) -> T:
        value = self.text(name)
        if value is None:
            return default
        try:
            return parse(value)
        except FieldError as error:
            self.fail(name, error.code, error.message)
            return default

    def fail(self, name: str, code: ProblemCode, message: str) -> None:
        self.problems.append(Problem(self.record.line, code, f"{name} {message}", column=name))

    def has_problem(self, name: str) -> bool:
        return any(problem.column == name for problem in self.problems)

    def width_problem(self) -> Problem | None:
        fields = self.record.fields
        width = self.header.width
        if len(fields) < width or any(field.strip() for field in fields[width:]):
            return Problem(
                self.record.line,
                ProblemCode.FIELD_COUNT,
                f"the line has {len(fields)} fields, the header {width} "
                "(a delimiter inside a value needs quotes)",
            )
        return None


#: Brings an email address or a phone number (``column``, value) to the form members are stored
#: in, or raises ``FieldError``: the service's normaliser (it uses libraries).
ContactCheck = Callable[[str, str], str]


def _as_written(column: str, value: str) -> str:
    return value


def member_row(
    header: Header, record: Record, settings: RowSettings, contact: ContactCheck = _as_written
) -> MemberRow | list[Problem]:
    """A record of a member file as a typed row, or every problem it has. ``contact`` checks
    and normalises emails and phone numbers (by default they stay as written, trimmed)."""
    fields = _Fields(header, record)
    width = fields.width_problem()
    if width is not None:
        return [width]

    def time(value: str) -> datetime | None:
        return parse_time(value, settings)

    external_id = fields.required("external_id", MAX_EXTERNAL_ID)
    name = fields.required("display_name", MAX_DISPLAY_NAME)
    email = fields.limited("email", MAX_EMAIL)
    if email is not None:
        email = fields.parsed("email", lambda value: contact("email", value), None)
    phone = fields.limited("phone", MAX_PHONE)
    if phone is not None:
        phone = fields.parsed("phone", lambda value: contact("phone", value), None)
    card = fields.parsed("card_number", _optional(parse_card_number), None)
    locale = fields.parsed("locale", _optional(parse_locale), None)
    joined_at = fields.parsed("joined_at", time, None)
    consent = fields.parsed("marketing_consent", _optional(parse_yes_no), None)
    consent_at = fields.parsed("marketing_consent_at", time, None)
    if consent is None and consent_at is not None:
        fields.fail(
            "marketing_consent_at",
            ProblemCode.REQUIRED,
            "is given without marketing_consent (yes or no)",
        )
    opening = fields.parsed("opening_points", parse_points, 0)
    if fields.problems:
        return fields.problems
    return MemberRow(
        line=record.line,
        external_id=external_id,
        display_name=unicodedata.normalize("NFC", name),
        email=email,
        phone=phone,
        card_number=card,
        locale=locale,
        joined_at=joined_at,
        marketing_consent=consent,
        marketing_consent_at=consent_at,
        opening_points=opening,
    )


def transaction_row(
    header: Header, record: Record, settings: RowSettings
) -> TransactionRow | list[Problem]:
    """A record of a transaction file as a typed row, or every problem it has."""
    fields = _Fields(header, record)
    width = fields.width_problem()
    if width is not None:
        return [width]

    def time(value: str) -> datetime | None:
        return parse_time(value, settings)

    reference = fields.required("reference", MAX_REFERENCE)
    occurred_at = fields.parsed("occurred_at", time, None)
    if occurred_at is None and not fields.has_problem("occurred_at"):
        fields.fail("occurred_at", ProblemCode.REQUIRED, "is required")
    member = fields.limited("member", MAX_EXTERNAL_ID)
    total = fields.parsed("total", _optional(parse_money), None)
    if total is None and not fields.has_problem("total"):
        fields.fail("total", ProblemCode.REQUIRED, "is required")
    currency = fields.text("currency")
    if currency is not None and currency.upper() != settings.currency:
        fields.fail(
            "currency",
            ProblemCode.CURRENCY_MISMATCH,
            f"is {_shown(currency, 8)}; the program's currency is {settings.currency}",
        )
    points = fields.parsed("points", parse_points, 0)
    if fields.problems or occurred_at is None or total is None:
        return fields.problems
    return TransactionRow(
        line=record.line,
        reference=reference,
        occurred_at=occurred_at,
        member=member,
        total=total,
        currency=settings.currency,
        points=points,
    )


def _optional(parse: Callable[[str], T]) -> Callable[[str], T | None]:
    """``parse`` typed as possibly giving None (the default of an empty field)."""
    return parse


# --- Fields ------------------------------------------------------------------------------------


def parse_money(text: str) -> int:
    """Decimal money text (``12.34``, ``12,34``, ``1.234,56``, ``1,234.56``, ``12``) in minor
    units (cents)."""
    value = text.strip().replace("\u00a0", "").replace("\u202f", "")
    if value.startswith("-"):
        raise FieldError(ProblemCode.INVALID_MONEY, "must not be negative")
    if _AMBIGUOUS_MONEY.fullmatch(value):
        raise FieldError(
            ProblemCode.INVALID_MONEY,
            f"{_shown(value)} is ambiguous (three decimals, or a thousands separator?); "
            "write 1234 or 1234,00",
        )
    for pattern, group in ((_PLAIN_MONEY, ""), (_GERMAN_GROUPED, "."), (_ENGLISH_GROUPED, ",")):
        found = pattern.fullmatch(value)
        if found is None:
            continue
        units = found.group(1).replace(group, "") if group else found.group(1)
        cents = (found.group(2) or "").ljust(2, "0")
        amount = int(units) * 100 + int(cents)
        if amount > MAX_MONEY_MINOR:
            raise FieldError(
                ProblemCode.INVALID_MONEY, f"is more than {MAX_MONEY_MINOR // 100} in one sale"
            )
        return amount
    raise FieldError(
        ProblemCode.INVALID_MONEY,
        f"{_shown(value)} is not an amount like 12.34 or 12,34 (at most two decimals)",
    )


def parse_points(text: str) -> int:
    """A whole number of points, 0 or more."""
    value = text.strip()
    if not _DIGITS.fullmatch(value):
        raise FieldError(ProblemCode.INVALID_POINTS, f"{_shown(value)} is not a whole number >= 0")
    if len(value) > 13 or int(value) > MAX_POINTS_PER_OPERATION:
        raise FieldError(
            ProblemCode.INVALID_POINTS, f"is more than {MAX_POINTS_PER_OPERATION} points"
        )
    return int(value)


def parse_time(text: str, settings: RowSettings) -> datetime:
    """An instant (UTC) from ISO 8601 or German date text; without an offset, local time in
    the program's time zone. Not before 1970, not in the future."""
    value = text.strip()
    moment = _moment(value, settings.zone)
    if moment < EARLIEST_TIME:
        raise FieldError(ProblemCode.INVALID_TIME, f"{_shown(value)} lies before 1970")
    if moment > settings.now + CLOCK_SKEW:
        raise FieldError(ProblemCode.TIME_IN_FUTURE, f"{_shown(value)} lies in the future")
    return moment


def _moment(value: str, zone: ZoneInfo) -> datetime:
    try:
        if not value.isascii() or len(value) > 40:
            raise ValueError(value)
        german = _GERMAN_TIME.fullmatch(value)
        if german is not None:
            day, month, year, hour, minute, second = german.groups()
            parsed = datetime(  # noqa: DTZ001 (local time of the program, given below)
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
            )
        else:
            parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise FieldError(
            ProblemCode.INVALID_TIME,
            f"{_shown(value)} is not a time like 2024-03-01T10:15:00+01:00 or 01.03.2024 10:15",
        ) from None


def parse_yes_no(text: str) -> bool:
    value = text.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise FieldError(ProblemCode.INVALID_CHOICE, f"{_shown(value)} is neither yes nor no")


def parse_locale(text: str) -> str:
    """``de`` or ``en`` (a region is dropped: ``de-AT`` is ``de``)."""
    value = text.strip().lower().replace("_", "-").split("-")[0]
    if value not in LOCALES:
        raise FieldError(ProblemCode.INVALID_CHOICE, f"{_shown(text.strip())} is neither de nor en")
    return value


def parse_card_number(text: str) -> str:
    """A card number of this platform (``07`` and 15 digits), canonical."""
    try:
        return check_card_number(text)
    except DomainError as error:
        raise FieldError(
            ProblemCode.INVALID_CARD_NUMBER,
            f"{_shown(text.strip())} is not a card number of this platform ({error.detail})",
        ) from None


def _shown(value: str, limit: int = 40) -> str:
    """A value quoted for a message, cut short."""
    cut = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(cut)


# --- Uniqueness within a file ------------------------------------------------------------------


class FirstLines:
    """Where each value of a column that must be unique in the file was first seen."""

    def __init__(self) -> None:
        self._seen: dict[str, dict[str, int]] = {}

    def duplicate(self, column: str, value: str | None, line: int) -> Problem | None:
        """A problem when ``value`` was seen before in ``column`` (None values never clash)."""
        if value is None:
            return None
        seen = self._seen.setdefault(column, {})
        first = seen.setdefault(value, line)
        if first == line:
            return None
        return Problem(
            line,
            ProblemCode.DUPLICATE_IN_FILE,
            f"{column} {_shown(value)} is already on line {first}",
            column=column,
        )
