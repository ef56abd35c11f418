"""Journal kinds and the rules for undoing them (DESIGN.md invariants 5 and 6)."""

from __future__ import annotations

from enum import StrEnum

from .errors import DomainError, ErrorCode
from .points import Points


class JournalKind(StrEnum):
    EARN = "earn"
    REDEEM = "redeem"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    HOLD_EXPIRY = "hold_expiry"
    EXPIRE = "expire"
    REFUND = "refund"
    REVERSAL = "reversal"
    ADJUST = "adjust"
    TRANSFER = "transfer"


class HoldStatus(StrEnum):
    PENDING = "pending"
    CAPTURED = "captured"
    RELEASED = "released"
    EXPIRED = "expired"


#: A partial or full refund makes sense for what a customer bought or paid with.
REFUNDABLE = frozenset({JournalKind.EARN, JournalKind.REDEEM, JournalKind.CAPTURE})
#: A full reversal undoes any operation that moved points between members and the program.
REVERSIBLE = REFUNDABLE | {JournalKind.ADJUST, JournalKind.TRANSFER}


def refund_allowance(
    kind: JournalKind, original: Points, refunded: Points, reversed_: bool
) -> Points:
    """How many points of a journal may still be refunded; refuses what cannot be refunded."""
    if kind not in REFUNDABLE:
        raise DomainError(ErrorCode.NOT_REFUNDABLE, f"a {kind} cannot be refunded", kind=kind)
    if reversed_:
        raise DomainError(ErrorCode.ALREADY_REVERSED, "the operation was already reversed")
    return original - refunded


def check_refund(
    kind: JournalKind, original: Points, refunded: Points, reversed_: bool, requested: Points
) -> None:
    allowance = refund_allowance(kind, original, refunded, reversed_)
    if requested > allowance:
        raise DomainError(
            ErrorCode.REFUND_EXCEEDS_ORIGINAL,
            "refunds of an operation cannot exceed it",
            requested=requested,
            refundable=allowance,
        )


def reversal_amount(
    kind: JournalKind, original: Points, refunded: Points, reversed_: bool
) -> Points:
    """A reversal undoes whatever partial refunds have not; it happens at most once."""
    if kind not in REVERSIBLE:
        raise DomainError(ErrorCode.NOT_REVERSIBLE, f"a {kind} cannot be reversed", kind=kind)
    if reversed_:
        raise DomainError(ErrorCode.ALREADY_REVERSED, "the operation was already reversed")
    left = original - refunded
    if left <= 0:
        raise DomainError(ErrorCode.NOTHING_LEFT_TO_REVERSE, "the operation was fully refunded")
    return left
