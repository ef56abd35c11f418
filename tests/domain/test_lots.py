"""Choosing lots: table-driven cases with hand-computed answers, plus properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.lots import (
    Draw,
    Lot,
    draw_clawback,
    draw_fifo,
    draw_returns,
    expirable,
    spending_order,
    split_capture,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
JAN = T0 + timedelta(days=30)
MAR = T0 + timedelta(days=90)


def lot(lot_id: int, remaining: int, held: int = 0, expires: datetime | None = None) -> Lot:
    return Lot(lot_id, remaining, held, expires)


@pytest.mark.parametrize(
    ("lots", "points", "expected"),
    [
        pytest.param(
            [lot(1, 50, expires=MAR), lot(2, 50, expires=JAN)],
            60,
            [Draw(2, 50), Draw(1, 10)],
            id="soonest-expiry-first",
        ),
        pytest.param(
            [lot(1, 50), lot(2, 50, expires=MAR)],
            70,
            [Draw(2, 50), Draw(1, 20)],
            id="never-expiring-last",
        ),
        pytest.param(
            [lot(3, 10, expires=JAN), lot(1, 10, expires=JAN)],
            15,
            [Draw(1, 10), Draw(3, 5)],
            id="ties-by-age",
        ),
        pytest.param(
            [lot(1, 50, held=45, expires=JAN), lot(2, 20)],
            10,
            [Draw(1, 5), Draw(2, 5)],
            id="held-points-not-spendable",
        ),
        pytest.param([lot(1, 50, held=50), lot(2, 20)], 20, [Draw(2, 20)], id="fully-held-skipped"),
        pytest.param([lot(1, 30)], 30, [Draw(1, 30)], id="exact"),
    ],
)
def test_draw_fifo(lots: list[Lot], points: int, expected: list[Draw]) -> None:
    assert draw_fifo(lots, points) == expected


def test_draw_fifo_refuses_more_than_free() -> None:
    with pytest.raises(DomainError) as caught:
        draw_fifo([lot(1, 50, held=20), lot(2, 5)], 36)
    assert caught.value.code is ErrorCode.INSUFFICIENT_POINTS
    assert caught.value.extra == {"requested": 36, "available": 35}


@pytest.mark.parametrize(
    ("lots", "points", "prefer", "expected"),
    [
        pytest.param(
            [lot(1, 40, expires=JAN), lot(2, 100, expires=MAR)],
            60,
            {2},
            [Draw(2, 60)],
            id="own-lot-first",
        ),
        pytest.param(
            [lot(1, 40, expires=JAN), lot(2, 10, expires=MAR)],
            30,
            {2},
            [Draw(2, 10), Draw(1, 20)],
            id="then-fifo",
        ),
        pytest.param(
            [lot(1, 40, held=30)], 100, frozenset(), [Draw(1, 10)], id="floored-at-free-points"
        ),
        pytest.param([], 5, frozenset(), [], id="nothing-left"),
    ],
)
def test_draw_clawback(
    lots: list[Lot], points: int, prefer: set[int], expected: list[Draw]
) -> None:
    assert draw_clawback(lots, points, frozenset(prefer)) == expected


@pytest.mark.parametrize(
    ("hold", "points", "expected"),
    [
        pytest.param([Draw(1, 30), Draw(2, 20)], 50, [Draw(1, 30), Draw(2, 20)], id="full"),
        pytest.param([Draw(1, 30), Draw(2, 20)], 35, [Draw(1, 30), Draw(2, 5)], id="partial"),
        pytest.param([Draw(1, 30), Draw(2, 20)], 10, [Draw(1, 10)], id="first-lot-only"),
    ],
)
def test_split_capture(hold: list[Draw], points: int, expected: list[Draw]) -> None:
    assert split_capture(hold, points) == expected


def test_split_capture_refuses_more_than_held() -> None:
    with pytest.raises(DomainError) as caught:
        split_capture([Draw(1, 30)], 31)
    assert caught.value.code is ErrorCode.CAPTURE_EXCEEDS_HOLD


@pytest.mark.parametrize(
    ("outstanding", "points", "expected"),
    [
        pytest.param(
            [Draw(1, 30), Draw(2, 20)], 25, [Draw(2, 20), Draw(1, 5)], id="last-drawn-first"
        ),
        pytest.param([Draw(1, 30), Draw(2, 0)], 10, [Draw(1, 10)], id="skips-fully-returned"),
        pytest.param([Draw(1, 30), Draw(2, 20)], 50, [Draw(2, 20), Draw(1, 30)], id="all"),
    ],
)
def test_draw_returns(outstanding: list[Draw], points: int, expected: list[Draw]) -> None:
    assert draw_returns(outstanding, points) == expected


def test_draw_returns_refuses_more_than_outstanding() -> None:
    with pytest.raises(DomainError) as caught:
        draw_returns([Draw(1, 30), Draw(2, 5)], 36)
    assert caught.value.code is ErrorCode.REFUND_EXCEEDS_ORIGINAL


def test_expirable_takes_only_free_points_of_due_lots() -> None:
    lots = [
        lot(1, 50, held=20, expires=JAN),
        lot(2, 10, expires=MAR),
        lot(3, 5),
        lot(4, 7, expires=JAN),
    ]
    assert expirable(lots, JAN) == [Draw(1, 30), Draw(4, 7)]
    assert expirable(lots, JAN - timedelta(microseconds=1)) == []


# -- properties ----------------------------------------------------------------------------

expiries = st.one_of(st.none(), st.integers(0, 400).map(lambda d: T0 + timedelta(days=d)))


@st.composite
def lot_lists(draw: st.DrawFn) -> list[Lot]:
    count = draw(st.integers(0, 8))
    result = []
    for lot_id in range(1, count + 1):
        remaining = draw(st.integers(1, 500))
        held = draw(st.integers(0, remaining))
        result.append(Lot(lot_id, remaining, held, draw(expiries)))
    return result


@pytest.mark.property
@given(lots=lot_lists(), points=st.integers(1, 3000))
def test_fifo_takes_exactly_the_points_or_refuses(lots: list[Lot], points: int) -> None:
    free = sum(x.free for x in lots)
    by_id = {x.id: x for x in lots}
    if points > free:
        with pytest.raises(DomainError) as caught:
            draw_fifo(lots, points)
        assert caught.value.code is ErrorCode.INSUFFICIENT_POINTS
        return
    draws = draw_fifo(lots, points)
    assert sum(d.points for d in draws) == points
    assert all(0 < d.points <= by_id[d.lot_id].free for d in draws)
    assert len({d.lot_id for d in draws}) == len(draws)
    # Every lot drawn before the last one was emptied of its free points: FIFO, no skipping.
    order = [x.id for x in spending_order(x for x in lots if x.free > 0)]
    assert [d.lot_id for d in draws] == order[: len(draws)]
    assert all(d.points == by_id[d.lot_id].free for d in draws[:-1])


@pytest.mark.property
@given(lots=lot_lists(), points=st.integers(1, 3000), data=st.data())
def test_clawback_never_exceeds_what_is_free_or_asked(
    lots: list[Lot], points: int, data: st.DataObject
) -> None:
    prefer = frozenset(data.draw(st.sets(st.sampled_from([x.id for x in lots]))) if lots else ())
    draws = draw_clawback(lots, points, prefer)
    taken = sum(d.points for d in draws)
    assert taken == min(points, sum(x.free for x in lots))
    by_id = {x.id: x for x in lots}
    assert all(0 < d.points <= by_id[d.lot_id].free for d in draws)


@pytest.mark.property
@given(
    spent=st.lists(st.integers(0, 100), min_size=1, max_size=6),
    refunds=st.lists(st.integers(1, 120), max_size=8),
)
def test_returns_never_give_a_lot_more_than_was_drawn(spent: list[int], refunds: list[int]) -> None:
    outstanding = [Draw(i, p) for i, p in enumerate(spent, start=1)]
    for points in refunds:
        left = sum(d.points for d in outstanding)
        if points > left:
            with pytest.raises(DomainError):
                draw_returns(outstanding, points)
            continue
        back = {d.lot_id: d.points for d in draw_returns(outstanding, points)}
        assert sum(back.values()) == points
        outstanding = [Draw(d.lot_id, d.points - back.get(d.lot_id, 0)) for d in outstanding]
        assert all(d.points >= 0 for d in outstanding)
