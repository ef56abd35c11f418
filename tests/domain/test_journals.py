"""Refund and reversal rules (DESIGN.md invariant 6) and point bounds."""

from __future__ import annotations

import pytest

from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.journals import JournalKind, check_refund, reversal_amount
from loyalty.domain.points import MAX_BALANCE, MAX_POINTS_PER_OPERATION, credited, require_positive


@pytest.mark.parametrize(
    ("kind", "original", "refunded", "reversed_", "requested", "code"),
    [
        (JournalKind.EARN, 100, 0, False, 100, None),
        (JournalKind.REDEEM, 100, 60, False, 40, None),
        (JournalKind.CAPTURE, 100, 60, False, 41, ErrorCode.REFUND_EXCEEDS_ORIGINAL),
        (JournalKind.EARN, 100, 0, True, 1, ErrorCode.ALREADY_REVERSED),
        (JournalKind.HOLD, 100, 0, False, 1, ErrorCode.NOT_REFUNDABLE),
        (JournalKind.TRANSFER, 100, 0, False, 1, ErrorCode.NOT_REFUNDABLE),
        (JournalKind.ADJUST, 100, 0, False, 1, ErrorCode.NOT_REFUNDABLE),
        (JournalKind.EXPIRE, 100, 0, False, 1, ErrorCode.NOT_REFUNDABLE),
    ],
)
def test_check_refund(
    kind: JournalKind,
    original: int,
    refunded: int,
    reversed_: bool,
    requested: int,
    code: ErrorCode | None,
) -> None:
    if code is None:
        check_refund(kind, original, refunded, reversed_, requested)
        return
    with pytest.raises(DomainError) as caught:
        check_refund(kind, original, refunded, reversed_, requested)
    assert caught.value.code is code


@pytest.mark.parametrize(
    ("kind", "original", "refunded", "reversed_", "expected"),
    [
        (JournalKind.EARN, 100, 0, False, 100),
        (JournalKind.REDEEM, 100, 30, False, 70),
        (JournalKind.TRANSFER, 10, 0, False, 10),
        (JournalKind.ADJUST, 10, 0, False, 10),
        (JournalKind.EARN, 100, 100, False, ErrorCode.NOTHING_LEFT_TO_REVERSE),
        (JournalKind.EARN, 100, 0, True, ErrorCode.ALREADY_REVERSED),
        (JournalKind.HOLD, 100, 0, False, ErrorCode.NOT_REVERSIBLE),
        (JournalKind.REFUND, 100, 0, False, ErrorCode.NOT_REVERSIBLE),
        (JournalKind.REVERSAL, 100, 0, False, ErrorCode.NOT_REVERSIBLE),
        (JournalKind.EXPIRE, 100, 0, False, ErrorCode.NOT_REVERSIBLE),
    ],
)
def test_reversal_amount(
    kind: JournalKind, original: int, refunded: int, reversed_: bool, expected: int | ErrorCode
) -> None:
    if isinstance(expected, int):
        assert reversal_amount(kind, original, refunded, reversed_) == expected
        return
    with pytest.raises(DomainError) as caught:
        reversal_amount(kind, original, refunded, reversed_)
    assert caught.value.code is expected


@pytest.mark.parametrize("points", [0, -1, MAX_POINTS_PER_OPERATION + 1, 2**63, 1.5, True, "10"])
def test_require_positive_refuses(points: object) -> None:
    with pytest.raises(DomainError) as caught:
        require_positive(points)  # type: ignore[arg-type]
    assert caught.value.code is ErrorCode.INVALID_AMOUNT


def test_require_positive_accepts_bounds() -> None:
    assert require_positive(1) == 1
    assert require_positive(MAX_POINTS_PER_OPERATION) == MAX_POINTS_PER_OPERATION


def test_credited_refuses_overflow() -> None:
    assert credited(MAX_BALANCE - 5, 5) == MAX_BALANCE
    with pytest.raises(DomainError) as caught:
        credited(MAX_BALANCE - 5, 6)
    assert caught.value.code is ErrorCode.BALANCE_OVERFLOW
