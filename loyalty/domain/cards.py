"""Membership card values: static card numbers, rotating (TOTP) codes, and what a scan means.

Every code a cashier scans or types is **digits only**. A keyboard-wedge scanner "types" the code
through the terminal's keyboard layout; digits come out the same on every layout, while letters do
not (German layouts swap Y and Z, others move punctuation). No code contains personal data.

Static card number (printed cards, Apple Wallet; earns points, redeeming needs a second factor)
    17 digits: the prefix ``07``, 14 random digits, one Damm check digit, e.g.
    ``07 1234 5678 9012 345`` as displayed. Why this shape:

    * 17 is no GTIN length (8, 12, 13, 14), not SSCC (18) and not a GS1-128 ``01``/``02`` + GTIN-14
      element string (16), so a product barcode scanned by mistake is never taken for a card.
    * Payment card numbers (PANs) start with their major industry identifier 1-9; ``0`` is not
      issued to payment cards, so no PAN is ever taken for a card number either.
    * Damm instead of Luhn or GS1 mod 10: Damm detects every single-digit substitution *and* every
      adjacent transposition. Luhn misses 09 <-> 90 and GS1 mod 10 misses transpositions of
      digits five apart (16 <-> 61); a Luhn-valid 17-digit number would also be flagged as a PAN
      by the PCI data-loss scanners merchants run over their exports.
    * 10**14 random numbers: guessing a valid card among a million members takes ~10**8 tries.

    Handle card numbers as strings, never as integers: the leading zero matters.

Rotating code (the wallet's QR code; computed offline on the phone, good for redemptions)
    20 digits: the prefix ``08``, the member's public number zero-padded to 10 digits, and an
    8-digit RFC 6238 TOTP (HMAC-SHA1, 30-second steps from the Unix epoch, RFC 4226 dynamic
    truncation), e.g. ``08`` ``0000012345`` ``94287082``. Google Wallet's rotating barcode
    produces it with the value pattern ``08<member number>{totp_value_0}`` and TOTP_SHA1,
    30 000 ms, value length 8. Why this shape:

    * 8 TOTP digits, not 6: with a +-1 step window three codes are valid at any moment, so a guess
      succeeds with probability 3e-8 instead of 3e-6; the two extra digits cost nothing (20 digits
      fit the smallest QR version in numeric mode at error correction M).
    * 20 digits is longer than any PAN (at most 19) and differs from the card number's length,
      and ``08`` differs from ``07`` and from the GS1-128 ``00`` + SSCC element string (also 20).

    ``verify_totp`` accepts the step of ``at`` and ``window`` steps either side and returns the
    step the code belongs to. It does **not** stop replays: the caller must record
    (member, returned step) for every redemption, uniquely in the database, and refuse a second
    use. A code scanned again while still in the window yields the same step, so that record
    catches it.

Scans (``classify_scan``)
    Whitespace around the value (the CR/LF or tab a scanner sends after the code) is dropped;
    spaces and hyphens a cashier types inside digits are dropped. Then: a rotating code or a
    card number by prefix and length, an email address (lowercased, NFC), or a phone number in
    international form (``+`` and 7-15 digits, E.164 shape; separators dropped). Anything else is
    refused with ``unknown_scan``; nothing but ``DomainError`` is raised for any text.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from .calendar import require_aware
from .errors import DomainError, ErrorCode

# --- Static card numbers -------------------------------------------------------------------

CARD_PREFIX = "07"
CARD_NUMBER_LENGTH = 17
#: Random digits between the prefix and the check digit.
CARD_RANDOM_DIGITS = CARD_NUMBER_LENGTH - len(CARD_PREFIX) - 1

#: Damm's weakly totally anti-symmetric quasigroup of order 10 (H. M. Damm, 2004).
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)
_ASCII_DIGITS = frozenset("0123456789")
#: Characters a cashier may type between the digits of a card number.
_TYPED_SEPARATORS = str.maketrans("", "", " -\t\u00a0\u202f")


def _is_digits(value: str) -> bool:
    """Whether ``value`` is non-empty and only ASCII digits (``str.isdigit`` also takes "²")."""
    return bool(value) and all(ch in _ASCII_DIGITS for ch in value)


def damm_check_digit(digits: str) -> str:
    """The Damm check digit of the ASCII digits ``digits`` (ValueError on anything else)."""
    if not _is_digits(digits):
        raise ValueError(f"not a string of digits: {digits!r}")
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][ord(ch) - 48]
    return str(interim)


def _secret_digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


def new_card_number(random_digits: Callable[[int], str] = _secret_digits) -> str:
    """A new static card number in canonical form (17 digits, no separators).

    ``random_digits(n)`` returns ``n`` ASCII digits; the default draws them from ``secrets``.
    Uniqueness is the database's job: on a collision the caller draws again.
    """
    body = random_digits(CARD_RANDOM_DIGITS)
    if len(body) != CARD_RANDOM_DIGITS or not _is_digits(body):
        raise ValueError(f"random_digits({CARD_RANDOM_DIGITS}) returned {body!r}")
    payload = CARD_PREFIX + body
    return payload + damm_check_digit(payload)


def _invalid_card(detail: str, reason: str) -> DomainError:
    return DomainError(
        ErrorCode.INVALID_CARD_NUMBER,
        f"{detail}; a card number has {CARD_NUMBER_LENGTH} digits and starts with {CARD_PREFIX}",
        reason=reason,
    )


def check_card_number(value: str) -> str:
    """``value`` as a canonical card number: surrounding whitespace and the spaces or hyphens a
    cashier types inside dropped. ``invalid_card_number`` (with ``reason`` one of ``characters``,
    ``length``, ``prefix``, ``check_digit``) when it is not one."""
    compact = value.strip().translate(_TYPED_SEPARATORS)
    if not _is_digits(compact):
        raise _invalid_card("a card number has only digits", "characters")
    if len(compact) != CARD_NUMBER_LENGTH:
        raise _invalid_card(f"got {len(compact)} digits", "length")
    if not compact.startswith(CARD_PREFIX):
        raise _invalid_card("wrong prefix", "prefix")
    if damm_check_digit(compact) != "0":
        raise _invalid_card(
            "the check digit does not match, probably a typing error", "check_digit"
        )
    return compact


def is_card_number(value: str) -> bool:
    """Whether ``check_card_number`` accepts ``value``."""
    try:
        check_card_number(value)
    except DomainError:
        return False
    return True


def format_card_number(value: str) -> str:
    """A card number for people: the prefix, then groups of four (``07 1234 5678 9012 345``).
    Accepts whatever ``check_card_number`` accepts; ``check_card_number`` reads the result back."""
    number = check_card_number(value)
    rest = number[len(CARD_PREFIX) :]
    groups = [CARD_PREFIX, *(rest[i : i + 4] for i in range(0, len(rest), 4))]
    return " ".join(groups)


# --- Rotating codes (RFC 6238 TOTP) --------------------------------------------------------

ROTATING_PREFIX = "08"
MEMBER_NUMBER_WIDTH = 10
MAX_MEMBER_NUMBER = 10**MEMBER_NUMBER_WIDTH - 1
TOTP_DIGITS = 8
TOTP_STEP = timedelta(seconds=30)
TOTP_SECRET_BYTES = 20
#: RFC 4226 R6: a shared secret has at least 128 bits.
MIN_SECRET_BYTES = 16
ROTATING_CODE_LENGTH = len(ROTATING_PREFIX) + MEMBER_NUMBER_WIDTH + TOTP_DIGITS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_COUNTER = 2**64 - 1


def new_totp_secret(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> bytes:
    """A new member's TOTP secret: 20 random bytes (160 bits, the size RFC 4226 recommends and
    the HMAC-SHA1 block it keys). Store it like a password hash: never in logs or codes."""
    secret = random_bytes(TOTP_SECRET_BYTES)
    if len(secret) != TOTP_SECRET_BYTES:
        raise ValueError(f"random_bytes({TOTP_SECRET_BYTES}) returned {len(secret)} bytes")
    return secret


def time_step(at: datetime) -> int:
    """The RFC 6238 time step of ``at``: whole 30-second periods since the Unix epoch (T0 = 0),
    rounded down. ``at`` must be timezone-aware."""
    require_aware(at=at)
    return (at - _EPOCH) // TOTP_STEP


def totp(secret: bytes, step: int, digits: int = TOTP_DIGITS) -> str:
    """The HOTP value (RFC 4226) of ``secret`` at counter ``step``: HMAC-SHA1 of the 8-byte
    big-endian counter, dynamic truncation to 31 bits, the last ``digits`` (6-8) decimal digits
    zero-padded. With ``step = time_step(at)`` this is the RFC 6238 TOTP."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"a TOTP secret needs at least {MIN_SECRET_BYTES} bytes")
    if not 0 <= step <= _MAX_COUNTER:
        raise ValueError(f"step {step} is outside the 64-bit counter range")
    if not 6 <= digits <= 8:
        raise ValueError(f"digits must be 6, 7 or 8, not {digits}")
    mac = hmac.new(secret, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    truncated = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFF_FFFF
    return str(truncated % 10**digits).zfill(digits)


def _check_member_number(member_number: int) -> None:
    if not 1 <= member_number <= MAX_MEMBER_NUMBER:
        raise ValueError(f"member number must be 1..{MAX_MEMBER_NUMBER}, not {member_number}")


def rotating_code(member_number: int, secret: bytes, at: datetime) -> str:
    """The 20-digit code the wallet shows at ``at``: ``08``, the member's public number
    zero-padded to 10 digits, the 8-digit TOTP of ``secret`` at ``time_step(at)``."""
    _check_member_number(member_number)
    member = str(member_number).zfill(MEMBER_NUMBER_WIDTH)
    return ROTATING_PREFIX + member + totp(secret, time_step(at))


def _invalid_rotating(detail: str) -> DomainError:
    return DomainError(
        ErrorCode.INVALID_ROTATING_CODE,
        f"{detail}; a rotating code has {ROTATING_CODE_LENGTH} digits and starts with "
        f"{ROTATING_PREFIX}",
    )


def parse_rotating_code(value: str) -> tuple[int, str]:
    """(member number, TOTP digits) of a rotating code; surrounding whitespace is dropped.
    ``invalid_rotating_code`` when ``value`` is not shaped like one (the TOTP is not checked:
    look the member up by number, then ``verify_totp`` with their secret)."""
    code = value.strip()
    if not _is_digits(code):
        raise _invalid_rotating("a rotating code has only digits")
    if len(code) != ROTATING_CODE_LENGTH:
        raise _invalid_rotating(f"got {len(code)} digits")
    if not code.startswith(ROTATING_PREFIX):
        raise _invalid_rotating("wrong prefix")
    member_end = len(ROTATING_PREFIX) + MEMBER_NUMBER_WIDTH
    member_number = int(code[len(ROTATING_PREFIX) : member_end])
    if member_number == 0:
        raise _invalid_rotating("member number 0 does not exist")
    return member_number, code[member_end:]


def verify_totp(secret: bytes, code: str, at: datetime, window: int = 1, lookback: int = 0) -> int:
    """The time step whose TOTP of ``secret`` is ``code``, looking at the step of ``at`` and
    ``window`` steps either side (the phone's clock may be off, the code was shown a while ago),
    then ``lookback`` steps further back (newest first): a code shown at the start of a sale
    that completes minutes later still names its member when earning.

    ``rotating_code_expired`` when no step in the window matches: a stale code, a screenshot, or
    another member's code; the refusal does not say which. Comparisons are constant-time.

    Not a replay guard: the caller must record (member, returned step) for each redemption,
    uniquely, and refuse a step already used.
    """
    if window < 0 or lookback < 0:
        raise ValueError(f"window and lookback must be >= 0, not {window}, {lookback}")
    # compare_digest refuses non-ASCII str with TypeError: check the shape first.
    if len(code) != TOTP_DIGITS or not _is_digits(code):
        raise _invalid_rotating(f"the one-time part must be {TOTP_DIGITS} digits")
    now = time_step(at)
    matched: int | None = None
    for step in range(now - window, now + window + 1):
        if step < 0:
            continue
        if hmac.compare_digest(totp(secret, step, TOTP_DIGITS), code) and matched is None:
            matched = step
    oldest = max(now - window - lookback, 0)
    for step in range(now - window - 1, oldest - 1, -1):
        if matched is not None:
            break
        if hmac.compare_digest(totp(secret, step, TOTP_DIGITS), code):
            matched = step
    if matched is None:
        raise DomainError(
            ErrorCode.ROTATING_CODE_EXPIRED,
            "the rotating code is not valid now (expired, or not this member's); "
            "ask the member to show the current code",
        )
    return matched


# --- Scans ---------------------------------------------------------------------------------

#: Longest value ``classify_scan`` looks at (an email address is at most 254 characters).
MAX_SCAN_LENGTH = 320
MIN_PHONE_DIGITS = 7
MAX_PHONE_DIGITS = 15
_PHONE_SEPARATORS = str.maketrans("", "", " -./()\u00a0\u202f")
#: RFC 5322 atext, plus the dot between atoms.
_LOCAL_ASCII = frozenset("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-.")


class ScanKind(StrEnum):
    ROTATING_CODE = "rotating_code"
    CARD_NUMBER = "card_number"
    EMAIL = "email"
    PHONE = "phone"


@dataclass(frozen=True, slots=True)
class Scan:
    """What a scanned or typed value is, and its normalized form: the 20-digit code, the
    canonical 17-digit card number, the lowercased email address, or ``+`` and digits."""

    kind: ScanKind
    value: str


_ACCEPTED = (
    f"a wallet code ({ROTATING_CODE_LENGTH} digits starting {ROTATING_PREFIX}), "
    f"a card number ({CARD_NUMBER_LENGTH} digits starting {CARD_PREFIX}), an email address, "
    "or a phone number in international form (+49 ...)"
)


def _unknown(detail: str) -> DomainError:
    return DomainError(ErrorCode.UNKNOWN_SCAN, f"{detail}; expected {_ACCEPTED}")


def _email(value: str) -> str | None:
    """The normalized address when ``value`` looks like one: one ``@``, a dot-atom local part
    (non-ASCII letters allowed, RFC 6531), a domain of two or more labels of letters, digits
    and inner hyphens (IDN labels as typed)."""
    address = unicodedata.normalize("NFC", value).lower()
    if len(address) > 254 or address.count("@") != 1:
        return None
    local, domain = address.split("@")
    if not 1 <= len(local) <= 64 or local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    if not all(ch in _LOCAL_ASCII or (not ch.isascii() and ch.isalnum()) for ch in local):
        return None
    labels = domain.split(".")
    if len(labels) < 2:
        return None
    for label in labels:
        if not 1 <= len(label) <= 63 or label.startswith("-") or label.endswith("-"):
            return None
        if not all(ch == "-" or ch.isalnum() for ch in label):
            return None
    if labels[-1].isdigit():
        return None
    return address


def _phone(value: str) -> str | None:
    """``+`` and the digits when ``value`` is ``+`` and 7-15 digits (the first not 0) with
    spaces, hyphens, dots, slashes or parentheses between them."""
    digits = value[1:].translate(_PHONE_SEPARATORS)
    if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS or not _is_digits(digits):
        return None
    if digits[0] == "0":
        return None
    return "+" + digits


def classify_scan(value: str) -> Scan:
    """What ``value`` (a scan or what a cashier typed) identifies, normalized.

    ``unknown_scan`` for anything that is none of the accepted kinds (and for more than 320
    characters); ``invalid_card_number`` / ``invalid_rotating_code`` when it has the prefix and
    length of one but is not one (a wrong check digit: a typing error). Raises nothing else.
    """
    if len(value) > MAX_SCAN_LENGTH:
        raise _unknown(f"the value is longer than {MAX_SCAN_LENGTH} characters")
    text = value.strip()
    if not text:
        raise _unknown("the value is empty")
    if "@" in text:
        address = _email(text)
        if address is None:
            raise _unknown("not a valid email address")
        return Scan(ScanKind.EMAIL, address)
    if text.startswith("+"):
        phone = _phone(text)
        if phone is None:
            raise _unknown(
                f"a phone number is + and {MIN_PHONE_DIGITS}-{MAX_PHONE_DIGITS} digits, "
                "the country code first"
            )
        return Scan(ScanKind.PHONE, phone)
    compact = text.translate(_TYPED_SEPARATORS)
    if _is_digits(compact):
        if len(compact) == ROTATING_CODE_LENGTH and compact.startswith(ROTATING_PREFIX):
            parse_rotating_code(compact)
            return Scan(ScanKind.ROTATING_CODE, compact)
        if len(compact) == CARD_NUMBER_LENGTH and compact.startswith(CARD_PREFIX):
            return Scan(ScanKind.CARD_NUMBER, check_card_number(compact))
        raise _unknown(f"{len(compact)} digits are neither a wallet code nor a card number")
    raise _unknown("not a code, card number, email address or phone number")
