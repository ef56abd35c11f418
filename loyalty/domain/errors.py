"""Domain errors: every refusal carries a stable, machine-readable code.

The HTTP layer maps codes to status codes in one place (``loyalty.app.problems``); nothing below
the app knows about HTTP.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    # Input
    VALIDATION_FAILED = "validation_failed"
    MALFORMED_JSON = "malformed_json"
    INVALID_AMOUNT = "invalid_amount"
    REASON_REQUIRED = "reason_required"
    SAME_ACCOUNT_TRANSFER = "same_account_transfer"
    INVALID_CURSOR = "invalid_cursor"
    EFFECTIVE_AT_IN_FUTURE = "effective_at_in_future"
    # Idempotency (DESIGN.md invariant 4)
    IDEMPOTENCY_KEY_MISSING = "idempotency_key_missing"
    IDEMPOTENCY_KEY_INVALID = "idempotency_key_invalid"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IDEMPOTENCY_KEY_IN_FLIGHT = "idempotency_key_in_flight"
    # Lookups
    PROGRAM_NOT_FOUND = "program_not_found"
    MEMBER_NOT_FOUND = "member_not_found"
    NOT_ENROLLED = "member_not_enrolled"
    ALREADY_ENROLLED = "member_already_enrolled"
    JOURNAL_NOT_FOUND = "journal_not_found"
    HOLD_NOT_FOUND = "hold_not_found"
    PROGRAM_CODE_TAKEN = "program_code_taken"
    # Business rules
    INSUFFICIENT_POINTS = "insufficient_points"
    BALANCE_OVERFLOW = "balance_overflow"
    CAPTURE_EXCEEDS_HOLD = "capture_exceeds_hold"
    HOLD_ALREADY_CAPTURED = "hold_already_captured"
    HOLD_ALREADY_RELEASED = "hold_already_released"
    HOLD_EXPIRED = "hold_expired"
    NOT_REFUNDABLE = "journal_not_refundable"
    NOT_REVERSIBLE = "journal_not_reversible"
    REFUND_EXCEEDS_ORIGINAL = "refund_exceeds_original"
    ALREADY_REVERSED = "journal_already_reversed"
    NOTHING_LEFT_TO_REVERSE = "nothing_left_to_reverse"
    # Access
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    SERVICE_UNAVAILABLE = "service_unavailable"
    INTERNAL_ERROR = "internal_error"


class DomainError(Exception):
    """A refusal the caller can act on. ``detail`` is human text; ``extra`` is machine data."""

    def __init__(self, code: ErrorCode, detail: str, **extra: Any) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.extra = extra
        #: True when this refusal is the stored answer to an earlier request with the same key.
        self.replayed = False
