"""CSV import rows: reading records with line numbers, headers, fields and typed rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.csv_rows import (
    FieldError,
    FirstLines,
    Header,
    ImportKind,
    MemberRow,
    Problem,
    ProblemCode,
    Record,
    RowSettings,
    TransactionRow,
    detect_delimiter,
    member_row,
    parse_money,
    parse_points,
    parse_time,
    parse_yes_no,
    read_header,
    read_records,
    transaction_row,
)

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
SETTINGS = RowSettings("Europe/Berlin", "EUR", NOW)
VALID_CARD = "07123456789012346"  # prefix 07, Damm check digit 6


def records(text: str) -> list[Record | Problem]:
    return list(read_records(io.StringIO(text, newline="")))


def header(kind: ImportKind, line: str) -> Header:
    first = records(line + "\n")[0]
    assert isinstance(first, Record)
    parsed = read_header(kind, first)
    assert isinstance(parsed, Header), parsed
    return parsed


# --- Money -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("12.34", 1234),
        ("12,34", 1234),
        ("12,3", 1230),
        ("12", 1200),
        ("0", 0),
        (" 7,50 ", 750),
        ("1.234,56", 123456),
        ("1,234.56", 123456),
        ("1.234.567", 123456700),
        ("1,234,567.8", 123456780),
        ("10000000", 10**9),
    ],
)
def test_money_in_cents(text: str, cents: int) -> None:
    assert parse_money(text) == cents


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("1.234", "ambiguous"),
        ("12,345", "ambiguous"),
        ("-5", "negative"),
        ("12.345.6", "not an amount"),
        ("1e3", "not an amount"),
        ("12,34 €", "not an amount"),
        ("١٢", "not an amount"),  # Arabic-Indic digits are digits to Python, not to us
        ("1.23,45", "not an amount"),
        ("10000000,01", "more than"),
        ("", "not an amount"),
    ],
)
def test_money_refusals_say_why(text: str, says: str) -> None:
    with pytest.raises(FieldError) as refused:
        parse_money(text)
    assert refused.value.code is ProblemCode.INVALID_MONEY
    assert says in refused.value.message


# --- Times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T10:15:00+01:00", datetime(2024, 3, 1, 9, 15, tzinfo=UTC)),
        ("2024-03-01T10:15:00Z", datetime(2024, 3, 1, 10, 15, tzinfo=UTC)),
        # Naive: local time in the program's zone (CET in winter, CEST in summer).
        ("2024-03-01 10:15", datetime(2024, 3, 1, 9, 15, tzinfo=UTC)),
        ("2024-07-01 10:15", datetime(2024, 7, 1, 8, 15, tzinfo=UTC)),
        ("2024-03-01", datetime(2024, 2, 29, 23, 0, tzinfo=UTC)),
        ("01.03.2024 10:15", datetime(2024, 3, 1, 9, 15, tzinfo=UTC)),
        ("1.3.2024 10:15:30", datetime(2024, 3, 1, 9, 15, 30, tzinfo=UTC)),
        ("01.03.2024", datetime(2024, 2, 29, 23, 0, tzinfo=UTC)),
        # The hour that happens twice in October: the earlier instant (CEST).
        ("2024-10-27 02:30", datetime(2024, 10, 27, 0, 30, tzinfo=UTC)),
    ],
)
def test_times_with_and_without_offsets(text: str, expected: datetime) -> None:
    assert parse_time(text, SETTINGS) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("2024-13-01", ProblemCode.INVALID_TIME),
        ("31.02.2024", ProblemCode.INVALID_TIME),
        ("yesterday", ProblemCode.INVALID_TIME),
        ("1969-12-31T23:59:59Z", ProblemCode.INVALID_TIME),
        ("0001-01-01T00:00:00+01:00", ProblemCode.INVALID_TIME),
        ("2025-01-15T12:06:00Z", ProblemCode.TIME_IN_FUTURE),
        ("２０２４-03-01", ProblemCode.INVALID_TIME),
    ],
)
def test_time_refusals(text: str, code: ProblemCode) -> None:
    with pytest.raises(FieldError) as refused:
        parse_time(text, SETTINGS)
    assert refused.value.code is code


def test_a_few_minutes_of_clock_skew_are_not_the_future() -> None:
    assert parse_time("2025-01-15T12:04:00Z", SETTINGS) == datetime(2025, 1, 15, 12, 4, tzinfo=UTC)


# --- Small fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("ja", True), ("Yes", True), ("x", True), ("1", True), ("nein", False), ("FALSE", False)],
)
def test_yes_and_no(text: str, value: bool) -> None:
    assert parse_yes_no(text) is value


@pytest.mark.parametrize("text", ["vielleicht", "2", "-"])
def test_neither_yes_nor_no(text: str) -> None:
    with pytest.raises(FieldError):
        parse_yes_no(text)


@pytest.mark.parametrize(("text", "points"), [("0", 0), ("150", 150), (" 7 ", 7)])
def test_points(text: str, points: int) -> None:
    assert parse_points(text) == points


@pytest.mark.parametrize("text", ["-1", "1.5", "1.000", "ten", "1" * 14])
def test_points_refused(text: str) -> None:
    with pytest.raises(FieldError) as refused:
        parse_points(text)
    assert refused.value.code is ProblemCode.INVALID_POINTS


# --- Records and headers -----------------------------------------------------------------------


def test_delimiter_is_told_from_the_header() -> None:
    assert detect_delimiter("external_id;display_name;email\r\n") == ";"
    assert detect_delimiter("external_id,display_name\n") == ","
    # A comma inside a semicolon header does not fool it.
    assert detect_delimiter("a;b;c,d\n") == ";"


def test_records_carry_the_line_they_start_on() -> None:
    text = (
        "\ufeffexternal_id;display_name\r\n"
        'M1;"Anna\r\nBerger"\r\n'  # a quoted line break: one record over lines 2-3
        "\r\n"  # an empty line: skipped
        ";\r\n"  # only empty fields: skipped
        "M2;Bernd\r\n"
    )
    found = records(text)
    assert [(r.line, r.fields) for r in found if isinstance(r, Record)] == [
        (1, ["external_id", "display_name"]),
        (2, ["M1", "Anna\r\nBerger"]),
        (6, ["M2", "Bernd"]),
    ]


def test_bytes_that_were_not_utf8_are_a_problem_at_their_line() -> None:
    broken = b"external_id,display_name\nM1,J\xf6rg\nM2,Anna\n".decode("utf-8", "replace")
    found = records(broken)
    assert isinstance(found[1], Problem)
    assert (found[1].line, found[1].code) == (2, ProblemCode.NOT_UTF8)
    assert isinstance(found[2], Record)
    assert found[2].line == 3


def test_an_oversized_field_is_a_problem_and_reading_goes_on() -> None:
    text = f'reference,total\nT1,"{"x" * 200_000}"\nT2,5\n'
    found = records(text)
    assert isinstance(found[1], Problem)
    assert (found[1].line, found[1].code) == (2, ProblemCode.CSV_SYNTAX)
    assert isinstance(found[2], Record)
    assert (found[2].line, found[2].fields) == (3, ["T2", "5"])


def test_header_names_any_order_and_case() -> None:
    parsed = header(ImportKind.MEMBERS, " Display_Name ,EXTERNAL_ID,email")
    assert parsed.positions == {"display_name": 0, "external_id": 1, "email": 2}


@pytest.mark.parametrize(
    ("kind", "line", "codes"),
    [
        (ImportKind.MEMBERS, "external_id,name", [ProblemCode.UNKNOWN_COLUMN, "missing"]),
        (
            ImportKind.MEMBERS,
            "external_id,display_name,email,email",
            [ProblemCode.DUPLICATE_COLUMN],
        ),
        (
            ImportKind.TRANSACTIONS,
            "reference,occurred_at",
            [ProblemCode.MISSING_COLUMN],
        ),
    ],
)
def test_header_problems(kind: ImportKind, line: str, codes: list[object]) -> None:
    first = records(line + "\n")[0]
    assert isinstance(first, Record)
    problems = read_header(kind, first)
    assert isinstance(problems, list)
    assert all(problem.line == 1 for problem in problems)
    found = {problem.code for problem in problems}
    for code in codes:
        if code == "missing":
            assert ProblemCode.MISSING_COLUMN in found
        else:
            assert code in found


# --- Rows --------------------------------------------------------------------------------------

MEMBER_HEADER = (
    "external_id;display_name;email;phone;card_number;locale;joined_at;marketing_consent;"
    "marketing_consent_at;opening_points"
)


def member(line: str) -> MemberRow | list[Problem]:
    parsed = header(ImportKind.MEMBERS, MEMBER_HEADER)
    record = records(MEMBER_HEADER + "\n" + line + "\n")[1]
    assert isinstance(record, Record)
    return member_row(parsed, record, SETTINGS)


def test_a_full_member_row() -> None:
    row = member(
        f" M-1 ;Jörg Müller; Jörg@Example.de ;0151 2345678;{VALID_CARD};de-AT;01.03.2024;ja;"
        "02.03.2024 09:00;250"
    )
    assert row == MemberRow(
        line=2,
        external_id="M-1",
        display_name="Jörg Müller",
        email="Jörg@Example.de",
        phone="0151 2345678",
        card_number=VALID_CARD,
        locale="de",
        joined_at=datetime(2024, 2, 29, 23, 0, tzinfo=UTC),
        marketing_consent=True,
        marketing_consent_at=datetime(2024, 3, 2, 8, 0, tzinfo=UTC),
        opening_points=250,
    )


def test_a_minimal_member_row() -> None:
    row = member("M-2;Anna;;;;;;;;")
    assert isinstance(row, MemberRow)
    assert (row.email, row.card_number, row.joined_at, row.opening_points) == (None, None, None, 0)
    assert row.marketing_consent is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (";Anna;;;;;;;;", [("external_id", ProblemCode.REQUIRED)]),
        ("M1;;;;;;;;;", [("display_name", ProblemCode.REQUIRED)]),
        (f"{'x' * 65};Anna;;;;;;;;", [("external_id", ProblemCode.TOO_LONG)]),
        ("M1;Anna;;;12345;;;;;", [("card_number", ProblemCode.INVALID_CARD_NUMBER)]),
        ("M1;Anna;;;07123456789012344;;;;;", [("card_number", ProblemCode.INVALID_CARD_NUMBER)]),
        ("M1;Anna;;;;fr;;;;", [("locale", ProblemCode.INVALID_CHOICE)]),
        ("M1;Anna;;;;;2030-01-01;;;", [("joined_at", ProblemCode.TIME_IN_FUTURE)]),
        ("M1;Anna;;;;;;vielleicht;;", [("marketing_consent", ProblemCode.INVALID_CHOICE)]),
        ("M1;Anna;;;;;;;2024-01-01;", [("marketing_consent_at", ProblemCode.REQUIRED)]),
        ("M1;Anna;;;;;;;;-5", [("opening_points", ProblemCode.INVALID_POINTS)]),
        ("M1;An\x00na;;;;;;;;", [("display_name", ProblemCode.CONTROL_CHARACTER)]),
        (
            ";;;;;de;gestern;;;zehn",
            [
                ("external_id", ProblemCode.REQUIRED),
                ("display_name", ProblemCode.REQUIRED),
                ("joined_at", ProblemCode.INVALID_TIME),
                ("opening_points", ProblemCode.INVALID_POINTS),
            ],
        ),
        ("M1;Anna", [(None, ProblemCode.FIELD_COUNT)]),
        ("M1;Anna;;;;;;;;;surplus", [(None, ProblemCode.FIELD_COUNT)]),
    ],
)
def test_member_row_problems(line: str, expected: list[tuple[str | None, ProblemCode]]) -> None:
    problems = member(line)
    assert isinstance(problems, list)
    assert [(p.column, p.code) for p in problems] == expected
    assert all(p.line == 2 for p in problems)
    assert all(p.message for p in problems)


def test_trailing_empty_fields_beyond_the_header_are_tolerated() -> None:
    assert isinstance(member("M1;Anna;;;;;;;;;;"), MemberRow)


TRANSACTION_HEADER = "reference,occurred_at,member,total,currency,points"


def transaction(line: str) -> TransactionRow | list[Problem]:
    parsed = header(ImportKind.TRANSACTIONS, TRANSACTION_HEADER)
    record = records(TRANSACTION_HEADER + "\n" + line + "\n")[1]
    assert isinstance(record, Record)
    return transaction_row(parsed, record, SETTINGS)


def test_transaction_rows() -> None:
    assert transaction('T1,2024-03-01 10:15,M-1,"12,34",eur,12') == TransactionRow(
        line=2,
        reference="T1",
        occurred_at=datetime(2024, 3, 1, 9, 15, tzinfo=UTC),
        member="M-1",
        total=1234,
        currency="EUR",
        points=12,
    )
    sale = transaction("T2,2024-03-01,,7.50,,")
    assert isinstance(sale, TransactionRow)
    assert (sale.member, sale.total, sale.currency, sale.points) == (None, 750, "EUR", 0)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (",2024-03-01,,1,,", [("reference", ProblemCode.REQUIRED)]),
        ("T1,,,1,,", [("occurred_at", ProblemCode.REQUIRED)]),
        ("T1,2024-03-01,,,,", [("total", ProblemCode.REQUIRED)]),
        ("T1,2024-03-01,,1.234,,", [("total", ProblemCode.INVALID_MONEY)]),
        ("T1,2024-03-01,,1,CHF,", [("currency", ProblemCode.CURRENCY_MISMATCH)]),
        ("T1,2024-03-01,,1,,1.5", [("points", ProblemCode.INVALID_POINTS)]),
        (f"{'T' * 195},2024-03-01,,1,,", [("reference", ProblemCode.TOO_LONG)]),
    ],
)
def test_transaction_row_problems(
    line: str, expected: list[tuple[str | None, ProblemCode]]
) -> None:
    problems = transaction(line)
    assert isinstance(problems, list)
    assert [(p.column, p.code) for p in problems] == expected


def test_values_unique_in_a_file_name_the_first_line() -> None:
    seen = FirstLines()
    assert seen.duplicate("email", "a@example.org", 2) is None
    assert seen.duplicate("email", None, 3) is None
    assert seen.duplicate("email", None, 4) is None
    assert seen.duplicate("phone", "a@example.org", 5) is None
    again = seen.duplicate("email", "a@example.org", 9)
    assert again is not None
    assert (again.line, again.code, again.column) == (9, ProblemCode.DUPLICATE_IN_FILE, "email")
    assert "line 2" in again.message


# --- Whatever the text, a clean answer ---------------------------------------------------------

_CELL = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["", "M1", "12,34", "1.234", "2024-03-01", "01.03.2024 10:15", "ja", "de", VALID_CARD]
    ),
)


def _parse_all(kind: ImportKind, text: str) -> list[object]:
    """Everything a file yields: problems, or typed rows."""
    out: list[object] = []
    found = read_records(io.StringIO(text, newline=""))
    first = next(found, None)
    if first is None or isinstance(first, Problem):
        return [first]
    parsed = read_header(kind, first)
    if isinstance(parsed, list):
        return list(parsed)
    row = member_row if kind is ImportKind.MEMBERS else transaction_row
    for item in found:
        out.append(item if isinstance(item, Problem) else row(parsed, item, SETTINGS))
    return out


def _clean(result: object) -> bool:
    if isinstance(result, list):
        return all(isinstance(p, Problem) and p.line >= 1 and p.message for p in result)
    return isinstance(result, (Problem, MemberRow, TransactionRow)) or result is None


@given(st.text(max_size=400), st.sampled_from(list(ImportKind)))
def test_any_text_gives_rows_or_problems(text: str, kind: ImportKind) -> None:
    assert all(_clean(result) for result in _parse_all(kind, text))


@given(
    st.lists(st.lists(_CELL, min_size=1, max_size=12), max_size=8),
    st.sampled_from([",", ";"]),
    st.sampled_from(list(ImportKind)),
)
def test_any_cells_under_a_valid_header_give_rows_or_problems(
    cells: list[list[str]], delimiter: str, kind: ImportKind
) -> None:
    head = MEMBER_HEADER if kind is ImportKind.MEMBERS else TRANSACTION_HEADER
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(head.replace(";", delimiter).split(delimiter))
    writer.writerows(cells)
    results = _parse_all(kind, out.getvalue())
    assert all(_clean(result) for result in results)
    for result in results:
        if isinstance(result, list):
            assert all(p.line >= 2 for p in result)


@given(st.text(max_size=40))
def test_field_parsers_raise_only_field_errors(text: str) -> None:
    messages = []
    for parse in (parse_money, parse_points, parse_yes_no, lambda v: parse_time(v, SETTINGS)):
        try:
            parse(text)
        except FieldError as error:
            messages.append(error.message)
    assert all(messages)


def test_contacts_are_checked_by_the_given_function_with_the_other_fields() -> None:
    def contact(column: str, value: str) -> str:
        if "@" in value and not value.endswith(".org"):
            raise FieldError(ProblemCode.INVALID_EMAIL, f"{value!r} is no address")
        return value.lower() if column == "email" else value.replace(" ", "")

    parsed = header(ImportKind.MEMBERS, MEMBER_HEADER)
    text = MEMBER_HEADER + "\nM1;Anna;Anna@X.org;0151 23;;;;;;\nM2;Bo;bo@x;;;;;;;zehn\n"
    good, bad = records(text)[1:]
    assert isinstance(good, Record)
    assert isinstance(bad, Record)
    row = member_row(parsed, good, SETTINGS, contact)
    assert isinstance(row, MemberRow)
    assert (row.email, row.phone) == ("anna@x.org", "015123")
    problems = member_row(parsed, bad, SETTINGS, contact)
    assert isinstance(problems, list)
    assert [(p.column, p.code) for p in problems] == [
        ("email", ProblemCode.INVALID_EMAIL),
        ("opening_points", ProblemCode.INVALID_POINTS),
    ]
