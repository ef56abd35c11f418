"""Members' email addresses and phone numbers, checked and brought to one form, so that the
same person typed twice (``Anna@Example.DE``, ``0151 2345678``) is found as one member.

Email: syntax and IDNA by email-validator (no DNS lookup: enrollment must not wait for the
network), then lower-cased whole (mail systems treat the local part case-insensitively in
practice, and members type it any way). Phone: libphonenumber's rules, stored as E.164; a
national number is read in the program's country (Germany by default).
"""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from loyalty.domain.errors import DomainError, ErrorCode

DEFAULT_REGION = "DE"
MAX_EMAIL_LENGTH = 254


def normalize_email(raw: str) -> str:
    """``raw`` as the one form members are stored and found by; ``invalid_email`` otherwise."""
    text = raw.strip()
    if not text or len(text) > MAX_EMAIL_LENGTH:
        raise DomainError(ErrorCode.INVALID_EMAIL, "this is not an email address", field="email")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise DomainError(ErrorCode.INVALID_EMAIL, str(error), field="email") from None
    return checked.normalized.lower()


def normalize_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """``raw`` in E.164 (``+491512345678``); ``invalid_phone`` for anything that is not a
    number that can exist."""
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise DomainError(
            ErrorCode.INVALID_PHONE, "this is not a phone number that can be called", field="phone"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
