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
    # Program rules (issue 3): baskets, earning rules, promotions, tiers, rewards
    INVALID_BASKET = "invalid_basket"
    CURRENCY_MISMATCH = "currency_mismatch"
    INVALID_RULE = "invalid_rule"
    INVALID_RATE = "invalid_rate"
    INVALID_WINDOW = "invalid_window"
    DUPLICATE_CODE = "duplicate_code"
    TIER_THRESHOLDS_UNORDERED = "tier_thresholds_unordered"
    INVALID_TIER_POLICY = "invalid_tier_policy"
    UNKNOWN_TIER = "unknown_tier"
    INVALID_REWARD = "invalid_reward"
    # Rule-set versions
    RULE_SET_NOT_FOUND = "rule_set_not_found"
    RULE_SET_NOT_DRAFT = "rule_set_not_draft"
    RULE_SET_INVALID = "rule_set_invalid"
    EFFECTIVE_FROM_IN_PAST = "effective_from_in_past"
    NO_RULES_IN_FORCE = "no_rules_in_force"
    # Orders
    ORDER_NOT_FOUND = "order_not_found"
    ORDER_REFERENCE_TAKEN = "order_reference_taken"
    RETURN_EXCEEDS_ORDER = "return_exceeds_order"
    UNKNOWN_ORDER_LINE = "unknown_order_line"
    # Rewards
    REWARD_NOT_FOUND = "reward_not_found"
    REWARD_CODE_TAKEN = "reward_code_taken"
    REWARD_INACTIVE = "reward_inactive"
    REWARD_NOT_YET_VALID = "reward_not_yet_valid"
    REWARD_EXPIRED = "reward_expired"
    REWARD_TIER_RESTRICTED = "reward_tier_restricted"
    REWARD_LIMIT_REACHED = "reward_limit_reached"
    REWARD_OUT_OF_STOCK = "reward_out_of_stock"
    REWARD_NOT_APPLICABLE = "reward_not_applicable"
    INVALID_POINTS_CHOICE = "invalid_points_choice"
    REDEMPTION_NOT_FOUND = "redemption_not_found"
    REDEMPTION_NOT_PENDING = "redemption_not_pending"
    # Staff
    INVALID_CREDENTIALS = "invalid_credentials"
    STAFF_EMAIL_TAKEN = "staff_email_taken"
    STAFF_NOT_FOUND = "staff_not_found"
    WEAK_PASSWORD = "weak_password"  # noqa: S105 (an error code, not a secret)
    LAST_OWNER = "last_owner"
    # Access
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    RATE_LIMITED = "rate_limited"
    SERVICE_UNAVAILABLE = "service_unavailable"
    INTERNAL_ERROR = "internal_error"
    # Membership cards and scans (DESIGN.md section 6)
    UNKNOWN_SCAN = "unknown_scan"
    INVALID_CARD_NUMBER = "invalid_card_number"
    INVALID_ROTATING_CODE = "invalid_rotating_code"
    ROTATING_CODE_EXPIRED = "rotating_code_expired"
    CARD_NOT_FOUND = "card_not_found"
    SCAN_AMBIGUOUS = "scan_ambiguous"
    ROTATING_CODE_REPLAYED = "rotating_code_replayed"
    # Point of sale
    SECOND_FACTOR_REQUIRED = "second_factor_required"
    OFFLINE_REDEMPTION_REFUSED = "offline_redemption_refused"
    TERMINAL_NOT_FOUND = "terminal_not_found"
    TERMINAL_CODE_TAKEN = "terminal_code_taken"
    TRANSACTION_NOT_FOUND = "transaction_not_found"
    TRANSACTION_NOT_OPEN = "transaction_not_open"
    TRANSACTION_MEMBER_MISMATCH = "transaction_member_mismatch"
    ORDER_TOTALS_MISMATCH = "order_totals_mismatch"
    SIGNATURE_INVALID = "signature_invalid"
    UNSUPPORTED_VENDOR_REQUEST = "unsupported_vendor_request"
    UNKNOWN_VENDOR = "unknown_vendor"
    VENDOR_CONNECTION_NOT_FOUND = "vendor_connection_not_found"
    VENDOR_ACCOUNT_TAKEN = "vendor_account_taken"
    # Wallet
    INVALID_EMAIL = "invalid_email"
    INVALID_PHONE = "invalid_phone"
    CONSENT_REQUIRED = "consent_required"
    SIGN_IN_CODE_INVALID = "sign_in_code_invalid"
    FEEDBACK_NOT_DUE = "feedback_not_due"
    CARD_SECRET_ALREADY_DELIVERED = "card_secret_already_delivered"  # noqa: S105 (an error code)
    ERASURE_NOT_CONFIRMED = "erasure_not_confirmed"
    # Wallet passes (a feature an installation may leave off: no keys configured)
    APPLE_WALLET_NOT_CONFIGURED = "apple_wallet_not_configured"
    GOOGLE_WALLET_NOT_CONFIGURED = "google_wallet_not_configured"
    # Member support (issue 6): merges and manual adjustments with four-eyes approval
    MEMBER_MERGED = "member_merged"
    MEMBER_ERASED = "member_erased"
    MERGE_INTO_ITSELF = "merge_into_itself"
    MEMBER_HAS_PENDING_HOLDS = "member_has_pending_holds"
    ADJUSTMENT_LIMIT_EXCEEDED = "adjustment_limit_exceeded"
    FOUR_EYES_REQUIRED = "four_eyes_required"
    ADJUSTMENT_REQUEST_NOT_FOUND = "adjustment_request_not_found"
    ADJUSTMENT_NOT_PENDING = "adjustment_not_pending"
    # Outgoing webhooks (issue 6)
    INVALID_WEBHOOK_URL = "invalid_webhook_url"
    UNKNOWN_WEBHOOK_EVENT = "unknown_webhook_event"
    WEBHOOK_ENDPOINT_NOT_FOUND = "webhook_endpoint_not_found"
    WEBHOOK_DELIVERY_NOT_FOUND = "webhook_delivery_not_found"
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint_disabled"
    # CSV imports (issue 6)
    IMPORT_TOO_LARGE = "import_too_large"
    IMPORT_RUN_NOT_FOUND = "import_run_not_found"


class DomainError(Exception):
    """A refusal the caller can act on. ``detail`` is human text; ``extra`` is machine data."""

    def __init__(self, code: ErrorCode, detail: str, **extra: Any) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.extra = extra
        #: True when this refusal is the stored answer to an earlier request with the same key.
        self.replayed = False
