"""Manual adjustments: who may move how many points, and which need a second person.

A program sets two things (``programs.adjustment_limits`` and ``adjustment_approval_threshold``):

- **limits per role**: the most points (either sign) one adjustment of a staff role may move.
  ``None`` for the program means :data:`DEFAULT_LIMITS`; a role missing from a program's own
  table may not adjust at all; a role mapped to ``None`` has no limit. The same limit applies to
  approving: a second person can only approve what they could have asked for themselves.
- **the approval threshold**: an adjustment of at most this many points posts at once; above it,
  it waits until another staff member approves it (four eyes). 0 means every adjustment waits.

Pure rules, table-tested in ``tests/domain/test_adjustments.py``; the service applies them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from .errors import DomainError, ErrorCode

#: The staff roles a limit can be given to (cashiers work at the till, not in the back office).
ADJUSTING_ROLES = ("owner", "program_manager", "support")

#: The policy of a program that has set none: owners without limit, support staff up to 10,000
#: points (goodwill is their daily work), program managers up to 2,000 (they rarely need more).
DEFAULT_LIMITS: Mapping[str, int | None] = {
    "owner": None,
    "support": 10_000,
    "program_manager": 2_000,
}

#: What a program that never set a threshold uses (the column's default).
DEFAULT_APPROVAL_THRESHOLD = 1_000

Limits = Mapping[str, int | None]


class Route(StrEnum):
    """What happens to an adjustment a staff member asks for."""

    POST_NOW = "post_now"
    NEEDS_APPROVAL = "needs_approval"


def limits_in_force(configured: Limits | None) -> dict[str, int | None]:
    """The program's table, or the defaults when it has none."""
    return dict(DEFAULT_LIMITS if configured is None else configured)


def may_adjust(role: str, limits: Limits) -> bool:
    """Whether ``role`` may adjust at all (it is in the table, with a limit above zero)."""
    if role not in limits:
        return False
    limit = limits[role]
    return limit is None or limit > 0


def check_within_limit(role: str, points: int, limits: Limits) -> None:
    """``adjustment_limit_exceeded`` unless ``role`` may move ``|points|`` in one adjustment."""
    if not may_adjust(role, limits):
        raise DomainError(
            ErrorCode.ADJUSTMENT_LIMIT_EXCEEDED,
            f"the role {role} may not make manual adjustments in this program",
            role=role,
            limit=0,
        )
    limit = limits[role]
    if limit is not None and abs(points) > limit:
        raise DomainError(
            ErrorCode.ADJUSTMENT_LIMIT_EXCEEDED,
            f"the role {role} may adjust at most {limit} points at once in this program",
            role=role,
            limit=limit,
            requested=abs(points),
        )


def route(points: int, threshold: int) -> Route:
    """At most ``threshold`` points (either sign) post at once; more wait for approval."""
    return Route.POST_NOW if abs(points) <= threshold else Route.NEEDS_APPROVAL


def decide_request(role: str, points: int, limits: Limits, threshold: int) -> Route:
    """The route of an adjustment ``role`` asks for: refused beyond the role's limit."""
    if points == 0:
        raise DomainError(ErrorCode.INVALID_AMOUNT, "an adjustment must move at least one point")
    check_within_limit(role, points, limits)
    return route(points, threshold)


def check_decider(decider_id: int, requester_id: int) -> None:
    """Four eyes: whoever asked for an adjustment cannot decide it (they may cancel it)."""
    if decider_id == requester_id:
        raise DomainError(
            ErrorCode.FOUR_EYES_REQUIRED,
            "another staff member must decide this adjustment; you may cancel your own request",
        )


def check_approver(
    approver_id: int, approver_role: str, requester_id: int, points: int, limits: Limits
) -> None:
    """An approver is someone else whose own limit covers the amount."""
    check_decider(approver_id, requester_id)
    check_within_limit(approver_role, points, limits)


def check_rejecter(rejecter_id: int, rejecter_role: str, requester_id: int, limits: Limits) -> None:
    """Anyone else who may adjust in the program may turn a request down (no points move)."""
    check_decider(rejecter_id, requester_id)
    if not may_adjust(rejecter_role, limits):
        raise DomainError(
            ErrorCode.ADJUSTMENT_LIMIT_EXCEEDED,
            f"the role {rejecter_role} may not decide manual adjustments in this program",
            role=rejecter_role,
            limit=0,
        )
