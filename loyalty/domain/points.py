"""Points: whole numbers, bounded so that no sum can overflow a 64-bit column."""

from __future__ import annotations

from .errors import DomainError, ErrorCode

Points = int

#: The most one operation may move. Far above any real basket, far below int64, so that even
#: millions of maximal operations cannot overflow a balance column.
MAX_POINTS_PER_OPERATION: Points = 10**12
#: PostgreSQL BIGINT and SQLite INTEGER both stop here.
MAX_BALANCE: Points = 2**63 - 1


def is_whole(value: object) -> bool:
    """An ``int`` that is not a ``bool`` (``True`` is an ``int`` to Python, not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def require_positive(points: Points) -> Points:
    if not is_whole(points):
        raise DomainError(ErrorCode.INVALID_AMOUNT, "points must be a whole number")
    if not 0 < points <= MAX_POINTS_PER_OPERATION:
        raise DomainError(
            ErrorCode.INVALID_AMOUNT,
            f"points must be between 1 and {MAX_POINTS_PER_OPERATION}",
            points=points,
        )
    return points


def credited(balance: Points, points: Points) -> Points:
    """The balance after a credit, refusing what a 64-bit column could not hold."""
    if balance + points > MAX_BALANCE:
        raise DomainError(ErrorCode.BALANCE_OVERFLOW, "the balance would exceed its upper bound")
    return balance + points
