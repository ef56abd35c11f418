"""Choosing lots: which earned points a spend, hold, clawback or return touches.

A lot is one credit to a member (an earn, a transfer in, a positive adjustment). Spends draw
first on the points that expire soonest (FIFO by expiry, never-expiring last), so the member
loses as little as possible to expiry. Every function here is pure and total over its inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .errors import DomainError, ErrorCode
from .points import Points


@dataclass(frozen=True, slots=True)
class Lot:
    id: int
    remaining: Points
    held: Points
    expires_at: datetime | None

    @property
    def free(self) -> Points:
        """Points that can be spent, held or clawed back now."""
        return self.remaining - self.held


@dataclass(frozen=True, slots=True)
class Draw:
    """``points`` taken from (or given back to) the lot ``lot_id``."""

    lot_id: int
    points: Points


def spending_order(lots: Iterable[Lot]) -> list[Lot]:
    """Soonest expiry first; never-expiring lots last; ties by age (lot id)."""
    return sorted(lots, key=lambda lot: (lot.expires_at is None, lot.expires_at or 0, lot.id))


def _take(sources: Iterable[Draw], points: Points) -> tuple[list[Draw], Points]:
    """Walk ``sources`` (lot, points it can give) in order, taking until ``points`` are covered.
    Returns what was taken and what is still missing."""
    taken: list[Draw] = []
    left = points
    for source in sources:
        if left == 0:
            break
        take = min(source.points, left)
        if take > 0:
            taken.append(Draw(source.lot_id, take))
            left -= take
    return taken, left


def _free(lots: Iterable[Lot]) -> list[Draw]:
    return [Draw(lot.id, lot.free) for lot in spending_order(lots) if lot.free > 0]


def draw_fifo(lots: Sequence[Lot], points: Points) -> list[Draw]:
    """Take exactly ``points`` free points, soonest expiry first, or refuse.

    Points stay spendable until the expiry sweep takes them (DESIGN.md invariant 7 makes the
    sweep the one place where points expire), so a lot past its date still counts here.
    """
    draws, left = _take(_free(lots), points)
    if left:
        raise DomainError(
            ErrorCode.INSUFFICIENT_POINTS,
            "the member does not have enough available points",
            requested=points,
            available=points - left,
        )
    return draws


def draw_clawback(lots: Sequence[Lot], points: Points, prefer: frozenset[int]) -> list[Draw]:
    """Take back up to ``points`` of a credit: first from the lots that credit made, then FIFO.

    Clawback never takes held points and never goes below zero; it may take fewer than asked
    (Square's rule: earned points are removed "never below zero").
    """
    preferred = _free(lot for lot in lots if lot.id in prefer)
    others = _free(lot for lot in lots if lot.id not in prefer)
    draws, _ = _take(preferred + others, points)
    return draws


def split_capture(hold_draws: Sequence[Draw], points: Points) -> list[Draw]:
    """Which held points a capture of ``points`` spends: the hold's draws in their order."""
    held = sum(draw.points for draw in hold_draws)
    if points > held:
        raise DomainError(
            ErrorCode.CAPTURE_EXCEEDS_HOLD,
            "cannot capture more than is held",
            requested=points,
            held=held,
        )
    captured, _ = _take(hold_draws, points)
    return captured


def draw_returns(outstanding: Sequence[Draw], points: Points) -> list[Draw]:
    """Give ``points`` back to the lots a spend drew from, last-drawn first.

    ``outstanding`` lists, in the spend's draw order, what each lot still has to get back (what
    was drawn less what earlier refunds returned). Returning to the last-drawn (latest-expiring)
    lot first keeps the refunded points valid as long as possible.
    """
    total = sum(draw.points for draw in outstanding)
    if points > total:
        raise DomainError(
            ErrorCode.REFUND_EXCEEDS_ORIGINAL,
            "cannot return more points than the operation spent and has not yet returned",
            requested=points,
            refundable=total,
        )
    returns, _ = _take(reversed(outstanding), points)
    return returns


def expirable(lots: Iterable[Lot], at: datetime) -> list[Draw]:
    """What an expiry sweep at ``at`` takes: the free points of every lot whose time has come."""
    return _free(lot for lot in lots if lot.expires_at is not None and lot.expires_at <= at)
