"""Membership cards: RFC 6238 / RFC 4226 vectors, the +-1 step window, card-number check digits
(every single substitution and adjacent transposition caught), and scan classification that
refuses with nothing but DomainError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from loyalty.domain.cards import (
    CARD_NUMBER_LENGTH,
    CARD_PREFIX,
    CARD_RANDOM_DIGITS,
    MAX_MEMBER_NUMBER,
    MAX_SCAN_LENGTH,
    ROTATING_CODE_LENGTH,
    ROTATING_PREFIX,
    TOTP_DIGITS,
    Scan,
    ScanKind,
    check_card_number,
    classify_scan,
    damm_check_digit,
    format_card_number,
    is_card_number,
    new_card_number,
    new_totp_secret,
    parse_rotating_code,
    rotating_code,
    time_step,
    totp,
    verify_totp,
)
from loyalty.domain.errors import DomainError, ErrorCode

#: The RFC 6238 Appendix B / RFC 4226 Appendix D SHA-1 secret.
RFC_SECRET = b"12345678901234567890"
OTHER_SECRET = b"abcdefghijklmnopqrst"
BERLIN = ZoneInfo("Europe/Berlin")
#: A valid card number: prefix 07, random digits 12345678901234, Damm check digit 6.
CARD = "07123456789012346"


def at_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def refused(code: ErrorCode) -> pytest.RaisesExc[DomainError]:
    return pytest.raises(DomainError, match=f"^{code}: ")


# --- RFC vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unix", "step", "expected"),
    [
        (59, 0x1, "94287082"),
        (1111111109, 0x23523EC, "07081804"),
        (1111111111, 0x23523ED, "14050471"),
        (1234567890, 0x273EF07, "89005924"),
        (2000000000, 0x3F940AA, "69279037"),
        (20000000000, 0x27BC86AA, "65353130"),
    ],
)
def test_rfc6238_appendix_b_sha1(unix: int, step: int, expected: str) -> None:
    at = at_unix(unix)
    assert time_step(at) == step
    assert totp(RFC_SECRET, step) == expected
    assert totp(RFC_SECRET, step, digits=8) == expected
    assert verify_totp(RFC_SECRET, expected, at) == step


@pytest.mark.parametrize(
    ("counter", "expected"),
    list(
        enumerate(
            [
                "755224",
                "287082",
                "359152",
                "969429",
                "338314",
                "254676",
                "287922",
                "162583",
                "399871",
                "520489",
            ]
        )
    ),
)
def test_rfc4226_appendix_d_hotp(counter: int, expected: str) -> None:
    assert totp(RFC_SECRET, counter, digits=6) == expected


@pytest.mark.parametrize(
    ("secret", "step", "digits"),
    [
        (b"too short", 1, 8),
        (RFC_SECRET, -1, 8),
        (RFC_SECRET, 2**64, 8),
        (RFC_SECRET, 1, 5),
        (RFC_SECRET, 1, 9),
    ],
)
def test_totp_refuses_programming_errors(secret: bytes, step: int, digits: int) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the message varies by argument)
        totp(secret, step, digits)


# --- Time steps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "step"),
    [
        (at_unix(0), 0),
        (datetime(1970, 1, 1, 0, 0, 29, 999_999, tzinfo=UTC), 0),
        (at_unix(30), 1),
        # The same instant in another zone is the same step.
        (datetime(2009, 2, 14, 0, 31, 30, tzinfo=BERLIN), 1234567890 // 30),
        (datetime(2009, 2, 13, 18, 31, 30, tzinfo=timezone(timedelta(hours=-5))), 1234567890 // 30),
    ],
)
def test_time_step(at: datetime, step: int) -> None:
    assert time_step(at) == step


def test_time_step_counts_the_instant_not_the_wall_clock() -> None:
    # 02:30 happens twice in Berlin on 2024-10-27: first in CEST, an hour later in CET.
    first = datetime(2024, 10, 27, 2, 30, tzinfo=BERLIN)
    second = first.replace(fold=1)
    assert time_step(first) == time_step(datetime(2024, 10, 27, 0, 30, tzinfo=UTC))
    assert time_step(second) - time_step(first) == 3600 // 30


def test_time_step_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="at must be timezone-aware"):
        time_step(datetime(2024, 1, 1))


# --- Verification window -------------------------------------------------------------------

NOW = datetime(2024, 5, 17, 12, 0, 10, tzinfo=UTC)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_verify_accepts_the_adjacent_steps_and_returns_the_codes_step(offset: int) -> None:
    step = time_step(NOW) + offset
    assert verify_totp(RFC_SECRET, totp(RFC_SECRET, step), NOW) == step


@pytest.mark.parametrize("offset", [-2, 2, -3, 3, -100])
def test_verify_refuses_steps_outside_the_window(offset: int) -> None:
    code = totp(RFC_SECRET, time_step(NOW) + offset)
    with refused(ErrorCode.ROTATING_CODE_EXPIRED):
        verify_totp(RFC_SECRET, code, NOW)


@pytest.mark.parametrize("offset", [-1, 1])
def test_window_zero_accepts_only_the_current_step(offset: int) -> None:
    assert verify_totp(RFC_SECRET, totp(RFC_SECRET, time_step(NOW)), NOW, window=0)
    with refused(ErrorCode.ROTATING_CODE_EXPIRED):
        verify_totp(RFC_SECRET, totp(RFC_SECRET, time_step(NOW) + offset), NOW, window=0)


def test_wider_window_accepts_two_steps_back() -> None:
    step = time_step(NOW) - 2
    assert verify_totp(RFC_SECRET, totp(RFC_SECRET, step), NOW, window=2) == step


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-2, True), (-11, True), (-12, False), (2, False), (0, True)],
)
def test_lookback_reaches_back_only(offset: int, accepted: bool) -> None:
    # window 1 + lookback 10: steps -11 .. +1 (a code shown earlier still names its member).
    step = time_step(NOW) + offset
    code = totp(RFC_SECRET, step)
    if accepted:
        assert verify_totp(RFC_SECRET, code, NOW, lookback=10) == step
    else:
        with refused(ErrorCode.ROTATING_CODE_EXPIRED):
            verify_totp(RFC_SECRET, code, NOW, lookback=10)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_another_members_secret_is_refused(offset: int) -> None:
    code = totp(OTHER_SECRET, time_step(NOW) + offset)
    with refused(ErrorCode.ROTATING_CODE_EXPIRED):
        verify_totp(RFC_SECRET, code, NOW)


def test_verify_at_the_epoch_skips_negative_steps() -> None:
    assert verify_totp(RFC_SECRET, totp(RFC_SECRET, 0), at_unix(0)) == 0


@pytest.mark.parametrize(
    "code",
    [
        "",
        "9428708",  # 7 digits
        "942870820",  # 9 digits
        "94287o82",
        "９４２８７０８２",  # full-width digits: isdigit() says yes, compare_digest would TypeError
        "9428708²",
        "94287 82",
    ],
)
def test_verify_refuses_malformed_codes(code: str) -> None:
    with refused(ErrorCode.INVALID_ROTATING_CODE):
        verify_totp(RFC_SECRET, code, at_unix(59))


def test_verify_refuses_a_negative_window() -> None:
    with pytest.raises(ValueError, match="window"):
        verify_totp(RFC_SECRET, "94287082", at_unix(59), window=-1)


# --- Rotating codes ------------------------------------------------------------------------


def test_rotating_code_layout() -> None:
    code = rotating_code(12345, RFC_SECRET, at_unix(59))
    assert code == "08" + "0000012345" + "94287082"
    assert len(code) == ROTATING_CODE_LENGTH == 20
    assert parse_rotating_code(code) == (12345, "94287082")
    assert classify_scan(code + "\r\n") == Scan(ScanKind.ROTATING_CODE, code)


@pytest.mark.parametrize("member_number", [0, -1, MAX_MEMBER_NUMBER + 1])
def test_rotating_code_refuses_member_numbers_that_do_not_fit(member_number: int) -> None:
    with pytest.raises(ValueError, match="member number"):
        rotating_code(member_number, RFC_SECRET, NOW)


def test_rotating_code_for_the_largest_member_number() -> None:
    member, _ = parse_rotating_code(rotating_code(MAX_MEMBER_NUMBER, RFC_SECRET, NOW))
    assert member == MAX_MEMBER_NUMBER


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0800000123459428708",  # 19 digits
        "080000012345942870821",  # 21 digits
        "07000001234594287082",  # card prefix
        "08000000000094287082",  # member 0
        "0800000x234594287082",
        "０８000001234594287082",
    ],
)
def test_parse_rotating_code_refuses(value: str) -> None:
    with refused(ErrorCode.INVALID_ROTATING_CODE):
        parse_rotating_code(value)


aware_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9999, 1, 1),
    timezones=st.sampled_from([UTC, BERLIN, timezone(timedelta(hours=-5, minutes=-30))]),
)
secrets_ = st.binary(min_size=16, max_size=64)
member_numbers = st.integers(min_value=1, max_value=MAX_MEMBER_NUMBER)


@given(member_numbers, secrets_, aware_datetimes)
def test_rotating_code_round_trips(member: int, secret: bytes, at: datetime) -> None:
    code = rotating_code(member, secret, at)
    assert len(code) == ROTATING_CODE_LENGTH
    assert code.isascii()
    assert code.isdigit()
    assert code.startswith(ROTATING_PREFIX)
    number, one_time = parse_rotating_code(code)
    assert number == member
    assert len(one_time) == TOTP_DIGITS
    assert verify_totp(secret, one_time, at) == time_step(at)
    # Shown a step later (in UTC: wall-clock arithmetic across a DST fold would be off by an hour).
    later = at.astimezone(UTC) + timedelta(seconds=30)
    assert verify_totp(secret, one_time, later) == time_step(at)
    assert classify_scan(f"  {code}\n") == Scan(ScanKind.ROTATING_CODE, code)


def test_new_totp_secret() -> None:
    assert new_totp_secret(lambda n: bytes(range(n))) == bytes(range(20))
    first, second = new_totp_secret(), new_totp_secret()
    assert len(first) == len(second) == 20
    assert first != second
    with pytest.raises(ValueError, match="random_bytes"):
        new_totp_secret(lambda n: b"short")


# --- Static card numbers -------------------------------------------------------------------


def test_damm_check_digit_known_value() -> None:
    # The worked example of Damm's algorithm: 572 -> check digit 4, and 5724 checks to 0.
    assert damm_check_digit("572") == "4"
    assert damm_check_digit("5724") == "0"


def test_new_card_number_with_a_given_source() -> None:
    assert new_card_number(lambda n: "12345678901234"[:n]) == CARD
    assert format_card_number(CARD) == "07 1234 5678 9012 346"


def test_new_card_number_default_source() -> None:
    numbers = {new_card_number() for _ in range(50)}
    assert len(numbers) == 50
    assert all(is_card_number(number) and number.startswith(CARD_PREFIX) for number in numbers)


@pytest.mark.parametrize(
    "bad", ["1234", "1234567890123x", "１２３４５６７８９０１２３４", "123456789012345"]
)
def test_new_card_number_refuses_a_bad_source(bad: str) -> None:
    with pytest.raises(ValueError, match="random_digits"):
        new_card_number(lambda n: bad)


@pytest.mark.parametrize(
    "typed",
    [
        CARD,
        f"  {CARD}\r\n",
        "07 1234 5678 9012 346",
        "0712-3456-7890-1234-6",
        "07\u00a01234\u00a05678\u00a09012\u00a0346",
        "\t07123456789012346\n",
    ],
)
def test_check_card_number_normalizes_what_cashiers_type(typed: str) -> None:
    assert check_card_number(typed) == CARD
    assert is_card_number(typed)
    assert classify_scan(typed) == Scan(ScanKind.CARD_NUMBER, CARD)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "characters"),
        ("07123456789O12346", "characters"),  # letter O for zero
        ("０7123456789012346", "characters"),
        ("0712345678901234", "length"),
        ("071234567890123466", "length"),
        ("17123456789012346", "prefix"),
        ("07123456789012345", "check_digit"),
        ("07123456789012364", "check_digit"),
    ],
)
def test_check_card_number_refuses(value: str, reason: str) -> None:
    with refused(ErrorCode.INVALID_CARD_NUMBER) as error:
        check_card_number(value)
    assert error.value.extra == {"reason": reason}
    assert not is_card_number(value)


card_bodies = st.text(
    alphabet="0123456789", min_size=CARD_RANDOM_DIGITS, max_size=CARD_RANDOM_DIGITS
)
card_numbers = card_bodies.map(lambda body: new_card_number(lambda n: body))


@given(card_numbers)
def test_generated_card_numbers_are_valid_and_format_round_trips(number: str) -> None:
    assert len(number) == CARD_NUMBER_LENGTH
    assert check_card_number(number) == number
    assert check_card_number(format_card_number(number)) == number
    assert classify_scan(format_card_number(number)) == Scan(ScanKind.CARD_NUMBER, number)


@given(card_numbers, st.integers(0, CARD_NUMBER_LENGTH - 1), st.integers(1, 9))
def test_every_single_digit_substitution_is_caught(number: str, position: int, delta: int) -> None:
    wrong = str((int(number[position]) + delta) % 10)
    typo = number[:position] + wrong + number[position + 1 :]
    assert not is_card_number(typo)


@given(card_numbers, st.integers(0, CARD_NUMBER_LENGTH - 2))
def test_every_adjacent_transposition_is_caught(number: str, position: int) -> None:
    left, right = number[position], number[position + 1]
    assume(left != right)
    typo = number[:position] + right + left + number[position + 2 :]
    assert not is_card_number(typo)


def test_check_digit_catches_all_errors_exhaustively_for_one_number() -> None:
    for position in range(CARD_NUMBER_LENGTH):
        for digit in "0123456789":
            if digit != CARD[position]:
                assert not is_card_number(CARD[:position] + digit + CARD[position + 1 :])
    for position in range(CARD_NUMBER_LENGTH - 1):
        left, right = CARD[position], CARD[position + 1]
        if left != right:
            assert not is_card_number(CARD[:position] + right + left + CARD[position + 2 :])


def digit_strings(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=size, max_size=size)


@given(st.sampled_from([8, 12, 13, 14, 16, 18, 19, 20]).flatmap(digit_strings))
def test_no_gtin_sscc_or_pan_length_is_a_card_number(value: str) -> None:
    # GTIN-8/12/13/14, GS1-128 01+GTIN-14 (16), SSCC (18), PANs (12-19).
    assert not is_card_number(value)


@given(st.sampled_from("123456789"), digit_strings(CARD_NUMBER_LENGTH - 1))
def test_a_17_digit_pan_is_never_a_card_number(issuer: str, rest: str) -> None:
    # Payment cards start with a major industry identifier 1-9; card numbers start with 0.
    assert not is_card_number(issuer + rest)


@given(card_numbers, member_numbers, secrets_, aware_datetimes)
def test_card_numbers_and_rotating_codes_never_share_a_shape(
    number: str, member: int, secret: bytes, at: datetime
) -> None:
    code = rotating_code(member, secret, at)
    assert classify_scan(number).kind is ScanKind.CARD_NUMBER
    assert classify_scan(code).kind is ScanKind.ROTATING_CODE
    assert not is_card_number(code)
    with refused(ErrorCode.INVALID_ROTATING_CODE):
        parse_rotating_code(number)
    # A code cut short to a card number's length still carries the rotating prefix.
    assert not is_card_number(code[:CARD_NUMBER_LENGTH])


# --- Scans ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{CARD}\r\n", Scan(ScanKind.CARD_NUMBER, CARD)),
        (f"{CARD}\n", Scan(ScanKind.CARD_NUMBER, CARD)),
        (f"\t{CARD}\t", Scan(ScanKind.CARD_NUMBER, CARD)),
        ("08000001234594287082\r", Scan(ScanKind.ROTATING_CODE, "08000001234594287082")),
        (" Anna.Schmidt@Example.DE \r\n", Scan(ScanKind.EMAIL, "anna.schmidt@example.de")),
        ("jörg.müller@bäckerei.de", Scan(ScanKind.EMAIL, "jörg.müller@bäckerei.de")),
        # Decomposed umlaut (macOS input) composes to the same address.
        ("jo\u0308rg@example.de", Scan(ScanKind.EMAIL, "jörg@example.de")),
        ("first+tag@sub.example.co.uk", Scan(ScanKind.EMAIL, "first+tag@sub.example.co.uk")),
        ("+49 170 1234567", Scan(ScanKind.PHONE, "+491701234567")),
        ("+49 (30) 1234-567", Scan(ScanKind.PHONE, "+49301234567")),
        ("+49/30/1234567", Scan(ScanKind.PHONE, "+49301234567")),
        ("+43.1.234.5678", Scan(ScanKind.PHONE, "+4312345678")),
        ("+1234567", Scan(ScanKind.PHONE, "+1234567")),
        ("+123456789012345", Scan(ScanKind.PHONE, "+123456789012345")),
    ],
)
def test_classify_scan(value: str, expected: Scan) -> None:
    assert classify_scan(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   \r\n",
        "4006381333931",  # GTIN-13 (a product, scanned by mistake)
        "96385074",  # GTIN-8
        "036000291452",  # GTIN-12 (UPC-A)
        "10614141000415",  # GTIN-14
        "0106141410004151",  # GS1-128: AI 01 + GTIN-14
        "4111111111111111",  # a Visa test PAN
        "00106141410000000007",  # GS1-128: AI 00 + SSCC (20 digits, like a rotating code)
        "106141410000000007",  # SSCC
        "01701234567",  # a local phone number: no country code
        "+0301234567",  # country codes do not start with 0
        "+123456",  # 6 digits
        "+1234567890123456",  # 16 digits
        "+49 170 12a4567",
        "anna@localhost",
        "anna@@example.de",
        "anna@example..de",
        "@example.de",
        "anna.@example.de",
        "an..na@example.de",
        "anna@-example.de",
        "anna@example.de-",
        "anna schmidt@example.de",
        "anna@1.2",
        "a" * 65 + "@example.de",
        "0712 3456 7890 1234",  # a card number missing digits
        "Hello",
        "07123456789Ol2346",
        "Z" * MAX_SCAN_LENGTH,
        "0" * (MAX_SCAN_LENGTH + 1),
    ],
)
def test_classify_scan_refuses_unknown_values(value: str) -> None:
    with refused(ErrorCode.UNKNOWN_SCAN) as error:
        classify_scan(value)
    assert "card number" in error.value.detail
    assert "email" in error.value.detail
    assert "phone" in error.value.detail


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("07123456789012345", ErrorCode.INVALID_CARD_NUMBER),  # a typo in a card number
        ("07123456789012364", ErrorCode.INVALID_CARD_NUMBER),
        ("08000000000094287082", ErrorCode.INVALID_ROTATING_CODE),  # member 0
    ],
)
def test_classify_scan_refuses_malformed_cards_and_codes(value: str, code: ErrorCode) -> None:
    with refused(code):
        classify_scan(value)


SCAN_REFUSALS = {
    ErrorCode.UNKNOWN_SCAN,
    ErrorCode.INVALID_CARD_NUMBER,
    ErrorCode.INVALID_ROTATING_CODE,
}


def assert_only_domain_errors(value: str) -> None:
    """Anything but a DomainError with a scan refusal code propagates and fails the test."""
    refusal: ErrorCode | None = None
    try:
        scan = classify_scan(value)
    except DomainError as error:
        refusal = error.code
    if refusal is not None:
        assert refusal in SCAN_REFUSALS
    else:
        assert scan.value
        assert len(scan.value) <= MAX_SCAN_LENGTH
        assert classify_scan(scan.value) == scan  # normalized values are fixed points


@given(st.text())
def test_classify_scan_raises_only_domain_errors_for_any_text(value: str) -> None:
    assert_only_domain_errors(value)


@given(st.text(alphabet="0123456789 -+@.()/\r\n\t\u00a0²٣９aZ", max_size=40))
def test_classify_scan_raises_only_domain_errors_for_code_like_text(value: str) -> None:
    assert_only_domain_errors(value)


@given(st.emails())
def test_classify_scan_accepts_ordinary_email_addresses(value: str) -> None:
    assume(len(value) <= 254 and len(value.split("@")[0]) <= 64)
    scan = classify_scan(value)
    assert scan == Scan(ScanKind.EMAIL, value.lower())
