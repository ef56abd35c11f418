"""The one place where errors become HTTP: problem+json (RFC 9457) with a stable ``code``.

Body: ``{"type": "urn:loyalty:problem:<code>", "title", "status", "detail", "code",
"instance", ...machine data}``. Clients branch on ``code``; ``detail`` is for people.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from loyalty.domain.errors import DomainError, ErrorCode

log = logging.getLogger("loyalty.app")

PROBLEM_JSON = "application/problem+json"
REPLAYED_HEADER = "Idempotent-Replayed"

STATUS_BY_CODE: dict[ErrorCode, int] = {
    ErrorCode.VALIDATION_FAILED: 400,
    ErrorCode.MALFORMED_JSON: 400,
    ErrorCode.INVALID_AMOUNT: 400,
    ErrorCode.REASON_REQUIRED: 400,
    ErrorCode.SAME_ACCOUNT_TRANSFER: 400,
    ErrorCode.INVALID_CURSOR: 400,
    ErrorCode.EFFECTIVE_AT_IN_FUTURE: 400,
    ErrorCode.IDEMPOTENCY_KEY_MISSING: 400,
    ErrorCode.IDEMPOTENCY_KEY_INVALID: 400,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 422,
    ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT: 409,
    ErrorCode.PROGRAM_NOT_FOUND: 404,
    ErrorCode.MEMBER_NOT_FOUND: 404,
    ErrorCode.NOT_ENROLLED: 404,
    ErrorCode.JOURNAL_NOT_FOUND: 404,
    ErrorCode.HOLD_NOT_FOUND: 404,
    ErrorCode.ALREADY_ENROLLED: 409,
    ErrorCode.PROGRAM_CODE_TAKEN: 409,
    ErrorCode.INSUFFICIENT_POINTS: 422,
    ErrorCode.BALANCE_OVERFLOW: 422,
    ErrorCode.CAPTURE_EXCEEDS_HOLD: 422,
    ErrorCode.HOLD_ALREADY_CAPTURED: 409,
    ErrorCode.HOLD_ALREADY_RELEASED: 409,
    ErrorCode.HOLD_EXPIRED: 409,
    ErrorCode.NOT_REFUNDABLE: 422,
    ErrorCode.NOT_REVERSIBLE: 422,
    ErrorCode.REFUND_EXCEEDS_ORIGINAL: 422,
    ErrorCode.ALREADY_REVERSED: 409,
    ErrorCode.NOTHING_LEFT_TO_REVERSE: 409,
    ErrorCode.INVALID_BASKET: 400,
    ErrorCode.CURRENCY_MISMATCH: 422,
    ErrorCode.INVALID_RULE: 400,
    ErrorCode.INVALID_RATE: 400,
    ErrorCode.INVALID_WINDOW: 400,
    ErrorCode.DUPLICATE_CODE: 400,
    ErrorCode.TIER_THRESHOLDS_UNORDERED: 400,
    ErrorCode.INVALID_TIER_POLICY: 400,
    ErrorCode.UNKNOWN_TIER: 400,
    ErrorCode.INVALID_REWARD: 400,
    ErrorCode.RULE_SET_NOT_FOUND: 404,
    ErrorCode.RULE_SET_NOT_DRAFT: 409,
    ErrorCode.RULE_SET_INVALID: 422,
    ErrorCode.EFFECTIVE_FROM_IN_PAST: 400,
    ErrorCode.NO_RULES_IN_FORCE: 422,
    ErrorCode.ORDER_NOT_FOUND: 404,
    ErrorCode.ORDER_REFERENCE_TAKEN: 409,
    ErrorCode.RETURN_EXCEEDS_ORDER: 422,
    ErrorCode.UNKNOWN_ORDER_LINE: 422,
    ErrorCode.REWARD_NOT_FOUND: 404,
    ErrorCode.REWARD_CODE_TAKEN: 409,
    ErrorCode.REWARD_INACTIVE: 422,
    ErrorCode.REWARD_NOT_YET_VALID: 422,
    ErrorCode.REWARD_EXPIRED: 422,
    ErrorCode.REWARD_TIER_RESTRICTED: 403,
    ErrorCode.REWARD_LIMIT_REACHED: 422,
    ErrorCode.REWARD_OUT_OF_STOCK: 422,
    ErrorCode.REWARD_NOT_APPLICABLE: 422,
    ErrorCode.INVALID_POINTS_CHOICE: 400,
    ErrorCode.REDEMPTION_NOT_FOUND: 404,
    ErrorCode.REDEMPTION_NOT_PENDING: 409,
    ErrorCode.INVALID_CREDENTIALS: 401,
    ErrorCode.STAFF_EMAIL_TAKEN: 409,
    ErrorCode.STAFF_NOT_FOUND: 404,
    ErrorCode.WEAK_PASSWORD: 400,
    ErrorCode.LAST_OWNER: 409,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.UNKNOWN_SCAN: 422,
    ErrorCode.INVALID_CARD_NUMBER: 422,
    ErrorCode.INVALID_ROTATING_CODE: 422,
    ErrorCode.ROTATING_CODE_EXPIRED: 422,
    ErrorCode.CARD_NOT_FOUND: 404,
    ErrorCode.SCAN_AMBIGUOUS: 409,
    ErrorCode.ROTATING_CODE_REPLAYED: 409,
    ErrorCode.SECOND_FACTOR_REQUIRED: 403,
    ErrorCode.OFFLINE_REDEMPTION_REFUSED: 422,
    ErrorCode.TERMINAL_NOT_FOUND: 404,
    ErrorCode.TERMINAL_CODE_TAKEN: 409,
    ErrorCode.TRANSACTION_NOT_FOUND: 404,
    ErrorCode.TRANSACTION_NOT_OPEN: 409,
    ErrorCode.TRANSACTION_MEMBER_MISMATCH: 409,
    ErrorCode.ORDER_TOTALS_MISMATCH: 422,
    ErrorCode.SIGNATURE_INVALID: 401,
    ErrorCode.UNSUPPORTED_VENDOR_REQUEST: 400,
    ErrorCode.UNKNOWN_VENDOR: 404,
    ErrorCode.VENDOR_CONNECTION_NOT_FOUND: 404,
    ErrorCode.VENDOR_ACCOUNT_TAKEN: 409,
    ErrorCode.INVALID_EMAIL: 400,
    ErrorCode.INVALID_PHONE: 400,
    ErrorCode.CONSENT_REQUIRED: 400,
    ErrorCode.SIGN_IN_CODE_INVALID: 401,
    ErrorCode.FEEDBACK_NOT_DUE: 409,
    ErrorCode.CARD_SECRET_ALREADY_DELIVERED: 409,
    ErrorCode.ERASURE_NOT_CONFIRMED: 400,
    # 404, not 501: the pass is a resource this installation does not have (no keys), not a
    # server fault; a client must not retry, and monitoring must not page anyone for it.
    ErrorCode.APPLE_WALLET_NOT_CONFIGURED: 404,
    ErrorCode.GOOGLE_WALLET_NOT_CONFIGURED: 404,
    ErrorCode.MEMBER_MERGED: 409,
    ErrorCode.MEMBER_ERASED: 409,
    ErrorCode.MERGE_INTO_ITSELF: 400,
    ErrorCode.MEMBER_HAS_PENDING_HOLDS: 409,
    ErrorCode.ADJUSTMENT_LIMIT_EXCEEDED: 403,
    ErrorCode.FOUR_EYES_REQUIRED: 403,
    ErrorCode.ADJUSTMENT_REQUEST_NOT_FOUND: 404,
    ErrorCode.ADJUSTMENT_NOT_PENDING: 409,
    ErrorCode.INVALID_WEBHOOK_URL: 400,
    ErrorCode.UNKNOWN_WEBHOOK_EVENT: 400,
    ErrorCode.WEBHOOK_ENDPOINT_NOT_FOUND: 404,
    ErrorCode.WEBHOOK_DELIVERY_NOT_FOUND: 404,
    ErrorCode.WEBHOOK_ENDPOINT_DISABLED: 409,
    ErrorCode.IMPORT_TOO_LARGE: 413,
    ErrorCode.IMPORT_RUN_NOT_FOUND: 404,
}

TITLES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document, as every error of this API is answered."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem(
    request: Request[Any, Any, Any] | None,
    code: ErrorCode,
    detail: str,
    *,
    status: int | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    status = status or STATUS_BY_CODE[code]
    body: dict[str, Any] = {
        "type": f"urn:loyalty:problem:{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": str(code),
    }
    if request is not None:
        body["instance"] = request.url.path
    for name, value in (extra or {}).items():
        body.setdefault(name, value)
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _domain_error(request: Request[Any, Any, Any], error: DomainError) -> Response[Any]:
    headers = {REPLAYED_HEADER: "true"} if error.replayed else None
    if error.code is ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT:
        headers = {**(headers or {}), "Retry-After": "1"}
    return problem(request, error.code, error.detail, extra=error.extra, headers=headers)


def _validation_error(request: Request[Any, Any, Any], error: ValidationException) -> Response[Any]:
    details = error.extra if isinstance(error.extra, list) else None
    extra = {"errors": details} if details else None
    return problem(request, _client_code(400), str(error.detail), status=400, extra=extra)


def _client_code(status: int) -> ErrorCode:
    code = {
        401: ErrorCode.UNAUTHORIZED,
        403: ErrorCode.FORBIDDEN,
        404: ErrorCode.NOT_FOUND,
        405: ErrorCode.METHOD_NOT_ALLOWED,
        429: ErrorCode.RATE_LIMITED,
        503: ErrorCode.SERVICE_UNAVAILABLE,
    }.get(status)
    if code is None:
        code = ErrorCode.INTERNAL_ERROR if status >= 500 else ErrorCode.VALIDATION_FAILED
    return code


def _http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    detail = str(error.detail)
    headers = dict(error.headers or {})
    return problem(
        request,
        _client_code(error.status_code),
        detail,
        status=error.status_code,
        headers=headers,
    )


def _database_unavailable(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    if (
        isinstance(error, DBAPIError)
        and not error.connection_invalidated
        and not isinstance(error, (OperationalError, InterfaceError))
    ):
        return _internal(request, error)
    log.warning("database unavailable: %s", error)
    return problem(
        request,
        ErrorCode.SERVICE_UNAVAILABLE,
        "the database is not reachable; retry with the same Idempotency-Key",
        headers={"Retry-After": "2"},
    )


def _internal(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(request, ErrorCode.INTERNAL_ERROR, "an unexpected error occurred")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    DomainError: _domain_error,
    ValidationException: _validation_error,
    NotAuthorizedException: _http_error,
    PermissionDeniedException: _http_error,
    NotFoundException: _http_error,
    MethodNotAllowedException: _http_error,
    HTTPException: _http_error,
    DBAPIError: _database_unavailable,
    ConnectionError: _database_unavailable,
    Exception: _internal,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "Problem", "problem"]
