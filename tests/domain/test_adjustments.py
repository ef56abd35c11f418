"""Manual adjustment rules: per-role limits, the approval threshold, four eyes (table-driven)."""

from __future__ import annotations

import pytest

from loyalty.domain.adjustments import (
    DEFAULT_LIMITS,
    Route,
    check_approver,
    check_rejecter,
    decide_request,
    limits_in_force,
    may_adjust,
)
from loyalty.domain.errors import DomainError, ErrorCode

EXPLICIT = {"support": 500, "owner": None}


def test_a_program_without_limits_uses_the_defaults() -> None:
    assert limits_in_force(None) == dict(DEFAULT_LIMITS)
    assert limits_in_force(None) == {"owner": None, "support": 10_000, "program_manager": 2_000}
    assert limits_in_force(EXPLICIT) == EXPLICIT


@pytest.mark.parametrize(
    ("role", "limits", "expected"),
    [
        ("owner", DEFAULT_LIMITS, True),
        ("support", DEFAULT_LIMITS, True),
        ("program_manager", DEFAULT_LIMITS, True),
        ("cashier", DEFAULT_LIMITS, False),
        ("program_manager", EXPLICIT, False),  # missing from an explicit table
        ("support", {"support": 0}, False),  # a zero limit
        ("owner", EXPLICIT, True),  # None: no limit
    ],
)
def test_who_may_adjust(role: str, limits: dict[str, int | None], expected: bool) -> None:
    assert may_adjust(role, limits) is expected


@pytest.mark.parametrize(
    ("role", "points", "limits", "threshold", "expected"),
    [
        # At or below the threshold: at once, either sign.
        ("support", 1_000, DEFAULT_LIMITS, 1_000, Route.POST_NOW),
        ("support", -1_000, DEFAULT_LIMITS, 1_000, Route.POST_NOW),
        ("support", 1, DEFAULT_LIMITS, 1_000, Route.POST_NOW),
        # Above it: waits.
        ("support", 1_001, DEFAULT_LIMITS, 1_000, Route.NEEDS_APPROVAL),
        ("support", -1_001, DEFAULT_LIMITS, 1_000, Route.NEEDS_APPROVAL),
        ("support", 10_000, DEFAULT_LIMITS, 1_000, Route.NEEDS_APPROVAL),
        # Threshold 0: every adjustment waits.
        ("owner", 1, DEFAULT_LIMITS, 0, Route.NEEDS_APPROVAL),
        # Unlimited owners still need a second person above the threshold.
        ("owner", 10**9, DEFAULT_LIMITS, 1_000, Route.NEEDS_APPROVAL),
        ("program_manager", 2_000, DEFAULT_LIMITS, 5_000, Route.POST_NOW),
        ("support", 500, EXPLICIT, 1_000, Route.POST_NOW),
    ],
)
def test_the_route_of_an_adjustment(
    role: str, points: int, limits: dict[str, int | None], threshold: int, expected: Route
) -> None:
    assert decide_request(role, points, limits, threshold) is expected


@pytest.mark.parametrize(
    ("role", "points", "limits", "limit"),
    [
        ("support", 10_001, DEFAULT_LIMITS, 10_000),
        ("support", -10_001, DEFAULT_LIMITS, 10_000),
        ("program_manager", 2_001, DEFAULT_LIMITS, 2_000),
        ("support", 501, EXPLICIT, 500),
        ("program_manager", 1, EXPLICIT, 0),
        ("cashier", 1, DEFAULT_LIMITS, 0),
    ],
)
def test_beyond_the_role_limit_is_refused(
    role: str, points: int, limits: dict[str, int | None], limit: int
) -> None:
    with pytest.raises(DomainError) as refused:
        decide_request(role, points, limits, 1_000)
    assert refused.value.code is ErrorCode.ADJUSTMENT_LIMIT_EXCEEDED
    assert refused.value.extra["limit"] == limit
    assert refused.value.extra["role"] == role


def test_zero_points_is_no_adjustment() -> None:
    with pytest.raises(DomainError) as refused:
        decide_request("owner", 0, DEFAULT_LIMITS, 1_000)
    assert refused.value.code is ErrorCode.INVALID_AMOUNT


@pytest.mark.parametrize(
    ("approver_id", "approver_role", "points", "limits", "code"),
    [
        (2, "owner", 50_000, DEFAULT_LIMITS, None),
        (2, "support", 10_000, DEFAULT_LIMITS, None),
        (2, "support", -10_000, DEFAULT_LIMITS, None),
        (1, "owner", 5_000, DEFAULT_LIMITS, ErrorCode.FOUR_EYES_REQUIRED),  # the requester
        (2, "support", 10_001, DEFAULT_LIMITS, ErrorCode.ADJUSTMENT_LIMIT_EXCEEDED),
        (2, "program_manager", 5_000, DEFAULT_LIMITS, ErrorCode.ADJUSTMENT_LIMIT_EXCEEDED),
        (2, "program_manager", 5_000, EXPLICIT, ErrorCode.ADJUSTMENT_LIMIT_EXCEEDED),
    ],
)
def test_who_may_approve(
    approver_id: int,
    approver_role: str,
    points: int,
    limits: dict[str, int | None],
    code: ErrorCode | None,
) -> None:
    requester_id = 1
    if code is None:
        check_approver(approver_id, approver_role, requester_id, points, limits)
        return
    with pytest.raises(DomainError) as refused:
        check_approver(approver_id, approver_role, requester_id, points, limits)
    assert refused.value.code is code


@pytest.mark.parametrize(
    ("rejecter_id", "role", "limits", "code"),
    [
        (2, "support", DEFAULT_LIMITS, None),
        (2, "program_manager", DEFAULT_LIMITS, None),  # a smaller limit may still say no
        (1, "owner", DEFAULT_LIMITS, ErrorCode.FOUR_EYES_REQUIRED),
        (2, "program_manager", EXPLICIT, ErrorCode.ADJUSTMENT_LIMIT_EXCEEDED),
    ],
)
def test_who_may_reject(
    rejecter_id: int, role: str, limits: dict[str, int | None], code: ErrorCode | None
) -> None:
    if code is None:
        check_rejecter(rejecter_id, role, 1, limits)
        return
    with pytest.raises(DomainError) as refused:
        check_rejecter(rejecter_id, role, 1, limits)
    assert refused.value.code is code
