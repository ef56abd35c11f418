"""The JSON API end to end through Litestar's test client: every endpoint, with the balances
asserted exactly after each step, replays, and tenancy (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.app.conftest import START, Api, Stack
from tests.support.problems import assert_problem

PROBLEM_JSON = "application/problem+json"
DAY = timedelta(days=1)


def at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def money(posted: int, held: int = 0) -> dict[str, int]:
    """A Balance as the API answers it."""
    return {"posted": posted, "held": held, "available": posted - held}


def balance(api: Api, program_id: int, member_id: int) -> dict[str, Any]:
    view: dict[str, Any] = api.read(f"/programs/{program_id}/members/{member_id}/balance")
    return view


def expiring(view: dict[str, Any]) -> list[tuple[datetime | None, int]]:
    return [(at(item["expires_at"]), item["points"]) for item in view["expiring"]]


def assert_balance(
    api: Api,
    program_id: int,
    member_id: int,
    *,
    posted: int,
    held: int = 0,
    version: int,
    soon: list[tuple[datetime, int]],
) -> None:
    view = balance(api, program_id, member_id)
    assert view["program_id"] == program_id
    assert view["member_id"] == member_id
    assert (view["posted"], view["held"], view["available"]) == (posted, held, posted - held)
    assert view["version"] == version
    assert expiring(view) == soon


def history_ids(api: Api, program_id: int, member_id: int, limit: int) -> list[dict[str, Any]]:
    """Walk every history page; the items in the order the pages gave them."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page = api.read(f"/programs/{program_id}/members/{member_id}/history", params)
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["items"]) == limit
    raise AssertionError("history did not end")


# --- programs and members --------------------------------------------------------------------


def test_programs_and_enrollment(any_stack: Stack) -> None:
    stack, shop = any_stack, any_stack.shop
    created = stack.create_program()
    program_id = created["program_id"]
    assert created == {
        "program_id": program_id,
        "code": "bonus",
        "name": "Bonuspunkte",
        "currency": "EUR",
        "timezone": "Europe/Berlin",
        "expiry_kind": "after_days",
        "expiry_value": 30,
        "hold_timeout_seconds": 900,
        "created_at": "2025-01-15T12:00:00Z",
        "point_value_micros": 10_000,
        "rounding": "down",
        "name_de": "Bonuspunkte",
        "name_en": "Bonuspunkte",
        "description_de": "",
        "description_en": "",
        "static_redeem_cap": 500,
        "redeemed_on_refund": "return",
        "referral_bonus_points": 0,
        "feedback_interval_days": 90,
        "card_background": None,
        "card_foreground": None,
        "card_accent": None,
    }
    gold = stack.create_program(
        code="gold", name="Gold", expiry_kind="never", expiry_value=0, hold_timeout_seconds=60
    )
    assert (gold["expiry_kind"], gold["expiry_value"], gold["hold_timeout_seconds"]) == (
        "never",
        0,
        60,
    )
    assert shop.read("/programs") == [created, gold]
    assert shop.read(f"/programs/{program_id}") == created
    assert shop.read(f"/programs/{gold['program_id']}") == gold

    # A new member, enrolled by name.
    anna = shop.ok(
        f"/programs/{program_id}/members",
        {"display_name": "Anna Berger", "email": "anna@example.org"},
    )
    member_id = anna["member_id"]
    assert anna == {
        "member_id": member_id,
        "program_id": program_id,
        "account_id": anna["account_id"],
        "balance": money(0),
    }
    # The same member enrolled in a second program by id.
    again = shop.ok(f"/programs/{gold['program_id']}/members", {"member_id": member_id})
    assert again["member_id"] == member_id
    assert again["program_id"] == gold["program_id"]
    assert again["account_id"] != anna["account_id"]
    assert again["balance"] == money(0)
    # ... and not a second time.
    before = stack.snapshot()
    refused = shop.post(f"/programs/{gold['program_id']}/members", {"member_id": member_id})
    assert_problem(refused, 409, "member_already_enrolled")
    assert stack.snapshot() == before

    assert shop.read(f"/members/{member_id}") == {
        "member_id": member_id,
        "display_name": "Anna Berger",
        "email": "anna@example.org",
        "created_at": "2025-01-15T12:00:00Z",
        "program_ids": sorted([program_id, gold["program_id"]]),
    }
    # Each program has its own account: earning in one leaves the other at zero.
    shop.ok(f"/programs/{program_id}/members/{member_id}/earn", {"points": 7})
    assert balance(shop, gold["program_id"], member_id)["posted"] == 0
    assert balance(shop, program_id, member_id)["posted"] == 7
    # The other merchant sees none of it.
    assert stack.rival.read("/programs") == []
    assert stack.verify() == []


@pytest.mark.parametrize(
    ("kind", "value", "effective_at", "expected"),
    [
        # 30 days after the earn (its effective_at: an offline till reporting late)
        ("after_days", 30, None, START + 30 * DAY),
        ("after_days", 30, START - 3 * DAY, START + 27 * DAY),
        # the end of the month 2 months after January, Berlin time (CEST from 30 March)
        ("end_of_month_after_months", 2, None, datetime(2025, 3, 31, 22, 0, tzinfo=UTC)),
        # 23:30 UTC on 31 January is already February in Berlin
        (
            "end_of_month_after_months",
            1,
            datetime(2025, 1, 31, 23, 30, tzinfo=UTC),
            datetime(2025, 3, 31, 22, 0, tzinfo=UTC),
        ),
        ("never", 0, None, None),
    ],
    ids=["after-days", "after-days-late-till", "month-end", "month-end-local-zone", "never"],
)
def test_earn_lot_expires_by_the_programs_policy(
    stack: Stack, kind: str, value: int, effective_at: datetime | None, expected: datetime | None
) -> None:
    if effective_at is not None and effective_at > START:
        stack.clock.now = effective_at + timedelta(minutes=1)
    program = stack.create_program(expiry_kind=kind, expiry_value=value)
    member_id = stack.enroll(program["program_id"], "Anna")
    body: dict[str, Any] = {"points": 40}
    if effective_at is not None:
        body["effective_at"] = effective_at.isoformat()
    earned = stack.shop.ok(f"/programs/{program['program_id']}/members/{member_id}/earn", body)
    assert at(earned["lot_expires_at"]) == expected
    assert at(earned["effective_at"]) == (effective_at or stack.clock.now)
    assert at(earned["created_at"]) == stack.clock.now
    view = balance(stack.shop, program["program_id"], member_id)
    assert expiring(view) == ([] if expected is None else [(expected, 40)])
    assert (view["posted"], view["available"]) == (40, 40)


# --- the core flow -------------------------------------------------------------------------


def test_core_flow(any_stack: Stack) -> None:
    """Earn, redeem, hold, capture, release, refunds, reversals, adjustments and a transfer,
    with the balance (and points by expiry date) checked exactly after every step."""
    stack, shop, clock = any_stack, any_stack.shop, any_stack.clock
    t0 = START
    program_id = stack.create_program()["program_id"]
    anna = shop.ok(
        f"/programs/{program_id}/members", {"display_name": "Anna", "email": "anna@example.org"}
    )["member_id"]
    ben = stack.enroll(program_id, "Ben")
    member = f"/programs/{program_id}/members/{anna}"
    ben_path = f"/programs/{program_id}/members/{ben}"
    assert_balance(shop, program_id, anna, posted=0, version=0, soon=[])

    # -- earn: three lots (A1 100 @t0+30d, A2 50 @t0+31d, A3 20 @t0+29d: a late till)
    e1 = shop.ok(f"{member}/earn", {"points": 100, "reference": "POS-1"})
    assert e1 == {
        "journal_id": e1["journal_id"],
        "kind": "earn",
        "program_id": program_id,
        "member_id": anna,
        "points": 100,
        "delta": 100,
        "balance": money(100),
        "effective_at": "2025-01-15T12:00:00Z",
        "created_at": "2025-01-15T12:00:00Z",
        "lot_expires_at": "2025-02-14T12:00:00Z",
        "hold": None,
        "reverses_journal_id": None,
        "counter_member_id": None,
        "counter_balance": None,
        "reference": "POS-1",
    }
    t1 = clock.advance(days=1)
    e2 = shop.ok(f"{member}/earn", {"points": 50})
    assert (e2["delta"], e2["balance"], at(e2["lot_expires_at"])) == (50, money(150), t1 + 30 * DAY)
    e3 = shop.ok(f"{member}/earn", {"points": 20, "effective_at": (t0 - DAY).isoformat()})
    assert at(e3["effective_at"]) == t0 - DAY
    assert at(e3["created_at"]) == t1
    assert at(e3["lot_expires_at"]) == t0 + 29 * DAY
    assert e3["balance"] == money(170)
    assert_balance(
        shop,
        program_id,
        anna,
        posted=170,
        version=3,
        soon=[(t0 + 29 * DAY, 20), (t0 + 30 * DAY, 100), (t1 + 30 * DAY, 50)],
    )

    # -- redeem 30: soonest expiry first (A3 20, then A1 10)
    redeem = shop.ok(f"{member}/redeem", {"points": 30, "reference": "POS-2"})
    assert (redeem["kind"], redeem["points"], redeem["delta"]) == ("redeem", 30, -30)
    assert redeem["balance"] == money(140)
    assert_balance(
        shop,
        program_id,
        anna,
        posted=140,
        version=4,
        soon=[(t0 + 30 * DAY, 90), (t1 + 30 * DAY, 50)],
    )

    # -- hold 40 (from A1), read it back, capture 25: the other 15 are released
    held = shop.ok(f"{member}/holds", {"points": 40, "reference": "ORDER-7"})
    hold = held["hold"]
    hold_id = hold["hold_id"]
    assert hold == {
        "hold_id": hold_id,
        "program_id": program_id,
        "member_id": anna,
        "points": 40,
        "captured": 0,
        "status": "pending",
        "expires_at": hold["expires_at"],
        "reference": "ORDER-7",
    }
    assert at(hold["expires_at"]) == t1 + timedelta(seconds=900)
    assert (held["kind"], held["points"], held["delta"]) == ("hold", 40, 0)
    assert held["balance"] == money(140, 40)
    assert shop.read(f"/programs/{program_id}/holds/{hold_id}") == hold
    assert_balance(
        shop,
        program_id,
        anna,
        posted=140,
        held=40,
        version=5,
        soon=[(t0 + 30 * DAY, 50), (t1 + 30 * DAY, 50)],
    )
    captured = shop.ok(f"/programs/{program_id}/holds/{hold_id}/capture", {"points": 25})
    assert (captured["kind"], captured["points"], captured["delta"]) == ("capture", 25, -25)
    assert captured["balance"] == money(115)
    assert captured["hold"] == {**hold, "captured": 25, "status": "captured"}
    assert captured["reference"] == "ORDER-7"
    assert shop.read(f"/programs/{program_id}/holds/{hold_id}") == captured["hold"]
    assert_balance(
        shop,
        program_id,
        anna,
        posted=115,
        version=6,
        soon=[(t0 + 30 * DAY, 65), (t1 + 30 * DAY, 50)],
    )

    # -- hold 10 with its own timeout, then release it
    second = shop.ok(f"{member}/holds", {"points": 10, "timeout_seconds": 60})
    assert at(second["hold"]["expires_at"]) == t1 + timedelta(seconds=60)
    assert second["balance"] == money(115, 10)
    released = shop.ok(f"/programs/{program_id}/holds/{second['hold']['hold_id']}/release")
    assert (released["kind"], released["points"], released["delta"]) == ("release", 10, 0)
    assert released["balance"] == money(115)
    assert (released["hold"]["status"], released["hold"]["captured"]) == ("released", 0)
    assert_balance(
        shop,
        program_id,
        anna,
        posted=115,
        version=8,
        soon=[(t0 + 30 * DAY, 65), (t1 + 30 * DAY, 50)],
    )

    # -- refunds of the redeem (5, back to A1: the last lot it drew) and of the capture (10)
    journal = f"/programs/{program_id}/journals"
    r1 = shop.ok(f"{journal}/{redeem['journal_id']}/refund", {"points": 5, "reason": "returned"})
    assert (r1["kind"], r1["points"], r1["delta"]) == ("refund", 5, 5)
    assert r1["reverses_journal_id"] == redeem["journal_id"]
    assert r1["reference"] == "POS-2"
    assert r1["balance"] == money(120)
    r2 = shop.ok(f"{journal}/{captured['journal_id']}/refund", {"points": 10})
    assert (r2["kind"], r2["points"], r2["delta"], r2["balance"]) == ("refund", 10, 10, money(130))
    assert_balance(
        shop,
        program_id,
        anna,
        posted=130,
        version=10,
        soon=[(t0 + 30 * DAY, 80), (t1 + 30 * DAY, 50)],
    )
    viewed = shop.read(f"{journal}/{redeem['journal_id']}")
    assert (viewed["kind"], viewed["points"], viewed["delta"]) == ("redeem", 30, -30)
    assert (viewed["refunded"], viewed["reversed"]) == (5, False)
    assert shop.read(f"{journal}/{captured['journal_id']}")["refunded"] == 10

    # -- reverse the redeem: the 25 not yet refunded return to A1 (5) and A3 (20)
    reversal = shop.ok(f"{journal}/{redeem['journal_id']}/reverse", {"reason": "order void"})
    assert (reversal["kind"], reversal["points"], reversal["delta"]) == ("reversal", 25, 25)
    assert reversal["reverses_journal_id"] == redeem["journal_id"]
    assert reversal["balance"] == money(155)
    viewed = shop.read(f"{journal}/{redeem['journal_id']}")
    assert (viewed["refunded"], viewed["reversed"]) == (5, True)
    before = stack.snapshot()
    assert_problem(
        shop.post(f"{journal}/{redeem['journal_id']}/reverse", {}), 409, "journal_already_reversed"
    )
    assert stack.snapshot() == before
    assert_balance(
        shop,
        program_id,
        anna,
        posted=155,
        version=11,
        soon=[(t0 + 29 * DAY, 20), (t0 + 30 * DAY, 85), (t1 + 30 * DAY, 50)],
    )

    # -- an earn refund claws back at most what the member still has (never below zero)
    ben_earn = shop.ok(f"{ben_path}/earn", {"points": 60})
    shop.ok(f"{ben_path}/redeem", {"points": 50})
    clawed = shop.ok(f"{journal}/{ben_earn['journal_id']}/refund", {"points": 30})
    assert (clawed["kind"], clawed["points"], clawed["delta"]) == ("refund", 30, -10)
    assert clawed["balance"] == money(0)
    shop.ok(f"{ben_path}/earn", {"points": 40})
    # ... and a reversal undoes what refunds have not (60 - 30), from any lot when its own is gone
    undone = shop.ok(f"{journal}/{ben_earn['journal_id']}/reverse", {})
    assert (undone["kind"], undone["points"], undone["delta"]) == ("reversal", 30, -30)
    assert undone["balance"] == money(10)
    viewed = shop.read(f"{journal}/{ben_earn['journal_id']}")
    assert (viewed["refunded"], viewed["reversed"]) == (30, True)
    assert_balance(shop, program_id, ben, posted=10, version=5, soon=[(t1 + 30 * DAY, 10)])

    # -- adjustments: +15 is a new lot expiring by policy; -5 draws the soonest (A3)
    plus = shop.ok(
        f"{member}/adjustments", {"points": 15, "reason": "goodwill", "actor": "support:jana"}
    )
    assert (plus["kind"], plus["points"], plus["delta"]) == ("adjust", 15, 15)
    assert at(plus["lot_expires_at"]) == t1 + 30 * DAY
    assert plus["balance"] == money(170)
    minus = shop.ok(
        f"{member}/adjustments", {"points": -5, "reason": "typo", "actor": "support:jana"}
    )
    assert (minus["kind"], minus["points"], minus["delta"]) == ("adjust", 5, -5)
    assert minus["lot_expires_at"] is None
    assert minus["balance"] == money(165)
    viewed = shop.read(f"{journal}/{plus['journal_id']}")
    assert (viewed["actor"], viewed["reason"], viewed["delta"]) == ("support:jana", "goodwill", 15)
    assert_balance(
        shop,
        program_id,
        anna,
        posted=165,
        version=13,
        soon=[(t0 + 29 * DAY, 15), (t0 + 30 * DAY, 85), (t1 + 30 * DAY, 65)],
    )

    # -- transfer 20 to Ben: drawn from A3 (15) and A1 (5); Ben's lots keep those dates
    transfer = shop.ok(
        f"/programs/{program_id}/transfers",
        {"from_member_id": anna, "to_member_id": ben, "points": 20, "reason": "gift"},
    )
    assert (transfer["kind"], transfer["points"], transfer["delta"]) == ("transfer", 20, -20)
    assert transfer["member_id"] == anna
    assert transfer["counter_member_id"] == ben
    assert transfer["balance"] == money(145)
    assert transfer["counter_balance"] == money(30)
    assert_balance(
        shop,
        program_id,
        anna,
        posted=145,
        version=14,
        soon=[(t0 + 30 * DAY, 80), (t1 + 30 * DAY, 65)],
    )
    assert_balance(
        shop,
        program_id,
        ben,
        posted=30,
        version=6,
        soon=[(t0 + 29 * DAY, 15), (t0 + 30 * DAY, 5), (t1 + 30 * DAY, 10)],
    )
    # ... and its reversal takes the points back from Ben's transferred lots
    back = shop.ok(f"{journal}/{transfer['journal_id']}/reverse", {"reason": "wrong member"})
    assert (back["kind"], back["points"], back["delta"]) == ("reversal", 20, 20)
    assert back["member_id"] == anna
    assert back["counter_member_id"] == ben
    assert back["balance"] == money(165)
    assert back["counter_balance"] == money(10)
    viewed = shop.read(f"{journal}/{transfer['journal_id']}")
    assert (viewed["kind"], viewed["counter_member_id"], viewed["reversed"]) == (
        "transfer",
        ben,
        True,
    )
    assert_balance(
        shop,
        program_id,
        anna,
        posted=165,
        version=15,
        soon=[(t0 + 29 * DAY, 15), (t0 + 30 * DAY, 85), (t1 + 30 * DAY, 65)],
    )
    assert_balance(shop, program_id, ben, posted=10, version=7, soon=[(t1 + 30 * DAY, 10)])

    # -- history: every operation once, newest first, across pages of 2
    anna_journals = [
        e1,
        e2,
        e3,
        redeem,
        held,
        captured,
        second,
        released,
        r1,
        r2,
        reversal,
        plus,
        minus,
        transfer,
        back,
    ]
    expected_ids = sorted((j["journal_id"] for j in anna_journals), reverse=True)
    for limit in (2, 1, 200):
        page_items = history_ids(shop, program_id, anna, limit)
        assert [item["journal_id"] for item in page_items] == expected_ids
    items = {item["journal_id"]: item for item in history_ids(shop, program_id, anna, 2)}
    assert sum(item["delta"] for item in items.values()) == 165
    assert sum(item["held_delta"] for item in items.values()) == 0
    hold_item = items[held["journal_id"]]
    assert (hold_item["kind"], hold_item["delta"], hold_item["held_delta"]) == ("hold", 0, 40)
    assert hold_item["hold_id"] == hold_id
    capture_item = items[captured["journal_id"]]
    assert (capture_item["delta"], capture_item["held_delta"]) == (-25, -40)
    assert (items[transfer["journal_id"]]["delta"], items[back["journal_id"]]["delta"]) == (-20, 20)
    assert items[transfer["journal_id"]]["counter_member_id"] == ben
    assert items[transfer["journal_id"]]["reason"] == "gift"
    assert items[r1["journal_id"]]["reverses_journal_id"] == redeem["journal_id"]

    ben_items = history_ids(shop, program_id, ben, 2)
    assert len(ben_items) == 7
    ben_by_id = {item["journal_id"]: item for item in ben_items}
    assert [item["journal_id"] for item in ben_items] == sorted(ben_by_id, reverse=True)
    assert (
        ben_by_id[transfer["journal_id"]]["kind"],
        ben_by_id[transfer["journal_id"]]["delta"],
    ) == (
        "transfer",
        20,
    )
    assert ben_by_id[transfer["journal_id"]]["counter_member_id"] == anna
    assert ben_by_id[transfer["journal_id"]]["held_delta"] == 0
    assert (ben_by_id[back["journal_id"]]["kind"], ben_by_id[back["journal_id"]]["delta"]) == (
        "reversal",
        -20,
    )
    assert sum(item["delta"] for item in ben_items) == 10

    assert stack.verify() == []


def test_capture_without_points_spends_the_whole_hold(any_stack: Stack) -> None:
    stack, shop = any_stack, any_stack.shop
    program_id = stack.create_program()["program_id"]
    anna = stack.enroll(program_id, "Anna")
    shop.ok(f"/programs/{program_id}/members/{anna}/earn", {"points": 80})
    hold = shop.ok(f"/programs/{program_id}/members/{anna}/holds", {"points": 30})["hold"]
    for body in ({}, {"points": None}):
        path = f"/programs/{program_id}/holds/{hold['hold_id']}/capture"
        captured = shop.post(path, body, key=f"capture-{len(body)}")
        if body:  # the second one finds the hold captured already
            assert_problem(captured, 409, "hold_already_captured")
            continue
        assert captured.status_code == 201, captured.text
        data = captured.json()
        assert (data["points"], data["delta"], data["balance"]) == (30, -30, money(50))
        assert (data["hold"]["status"], data["hold"]["captured"]) == ("captured", 30)
    assert stack.verify() == []


def test_an_expired_hold_is_released_by_the_next_write(stack: Stack) -> None:
    """A hold past its time blocks nothing: the member's next write releases it first."""
    shop, clock = stack.shop, stack.clock
    program_id = stack.create_program()["program_id"]
    anna = stack.enroll(program_id, "Anna")
    member = f"/programs/{program_id}/members/{anna}"
    shop.ok(f"{member}/earn", {"points": 50})
    hold = shop.ok(f"{member}/holds", {"points": 50, "timeout_seconds": 30})["hold"]
    assert_problem(shop.post(f"{member}/redeem", {"points": 1}), 422, "insufficient_points")
    clock.advance(seconds=30)
    redeemed = shop.ok(f"{member}/redeem", {"points": 50})
    assert redeemed["balance"] == money(0)
    assert shop.read(f"/programs/{program_id}/holds/{hold['hold_id']}")["status"] == "expired"
    kinds = [item["kind"] for item in history_ids(shop, program_id, anna, 10)]
    assert kinds == ["redeem", "hold_expiry", "hold", "earn"]
    assert stack.verify() == []


# --- replays -------------------------------------------------------------------------------


@dataclass
class World:
    """A program with two funded members, a pending hold and a few journals to act on."""

    stack: Stack
    program_id: int
    anna: int
    ben: int
    earn_id: int
    redeem_id: int
    hold_id: int
    other_hold_id: int

    @property
    def member(self) -> str:
        return f"/programs/{self.program_id}/members/{self.anna}"


def make_world(stack: Stack) -> World:
    shop = stack.shop
    program_id = stack.create_program()["program_id"]
    anna = stack.enroll(program_id, "Anna")
    ben = stack.enroll(program_id, "Ben")
    member = f"/programs/{program_id}/members/{anna}"
    earn_id = shop.ok(f"{member}/earn", {"points": 100})["journal_id"]
    shop.ok(f"/programs/{program_id}/members/{ben}/earn", {"points": 100})
    redeem_id = shop.ok(f"{member}/redeem", {"points": 10})["journal_id"]
    hold_id = shop.ok(f"{member}/holds", {"points": 20})["hold"]["hold_id"]
    other_hold_id = shop.ok(f"{member}/holds", {"points": 5})["hold"]["hold_id"]
    return World(stack, program_id, anna, ben, earn_id, redeem_id, hold_id, other_hold_id)


#: write -> (path, body, a different body for the same path) built from a World.
Request = tuple[str, Any, Any]
WRITES: dict[str, Callable[[World], Request]] = {
    "create-program": lambda w: (
        "/programs",
        {"code": "extra", "name": "Extra", "currency": "EUR"},
        {"code": "extra", "name": "Extra", "currency": "CHF"},
    ),
    "enroll-new": lambda w: (
        f"/programs/{w.program_id}/members",
        {"display_name": "Carla"},
        {"display_name": "Carla", "email": "carla@example.org"},
    ),
    "earn": lambda w: (f"{w.member}/earn", {"points": 25}, {"points": 26}),
    "redeem": lambda w: (f"{w.member}/redeem", {"points": 25}, {"points": 25, "reference": "x"}),
    "hold": lambda w: (f"{w.member}/holds", {"points": 25}, {"points": 25, "timeout_seconds": 60}),
    "capture": lambda w: (
        f"/programs/{w.program_id}/holds/{w.hold_id}/capture",
        {"points": 15},
        {"points": 14},
    ),
    "release": lambda w: (f"/programs/{w.program_id}/holds/{w.hold_id}/release", None, None),
    "refund": lambda w: (
        f"/programs/{w.program_id}/journals/{w.redeem_id}/refund",
        {"points": 4},
        {"points": 4, "reason": "other"},
    ),
    "reverse": lambda w: (
        f"/programs/{w.program_id}/journals/{w.earn_id}/reverse",
        {"reason": "void"},
        {"reason": "another"},
    ),
    "adjust": lambda w: (
        f"{w.member}/adjustments",
        {"points": -7, "reason": "fix", "actor": "support:jana"},
        {"points": 7, "reason": "fix", "actor": "support:jana"},
    ),
    "transfer": lambda w: (
        f"/programs/{w.program_id}/transfers",
        {"from_member_id": w.anna, "to_member_id": w.ben, "points": 9},
        {"from_member_id": w.ben, "to_member_id": w.anna, "points": 9},
    ),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_replay_answers_the_same_and_changes_nothing(any_stack: Stack, write: str) -> None:
    world = make_world(any_stack)
    shop = any_stack.shop
    path, body, other = WRITES[write](world)
    key = "replay-" + "k" * 121  # 128 characters: the longest key allowed
    first = shop.post(path, body, key=key)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    after_first = any_stack.snapshot()

    again = shop.post(path, body, key=key)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == "application/json"
    assert again.json() == first.json()
    assert any_stack.snapshot() == after_first

    if other is None:  # release has no body: the same key on another hold is another request
        other_path = f"/programs/{world.program_id}/holds/{world.other_hold_id}/release"
        reused = shop.post(other_path, None, key=key)
    else:
        reused = shop.post(path, other, key=key)
    assert_problem(reused, 422, "idempotency_key_reused")
    assert "idempotent-replayed" not in reused.headers
    assert any_stack.snapshot() == after_first
    # The key belongs to the client: the other merchant's client may use the same string.
    assert any_stack.idempotency_rows()[("shop", key)] == "ok"
    assert ("rival", key) not in any_stack.idempotency_rows()
    assert any_stack.verify() == []


def test_a_replay_is_the_stored_answer_not_a_new_one(any_stack: Stack) -> None:
    world = make_world(any_stack)
    shop = any_stack.shop
    first = shop.post(f"{world.member}/earn", {"points": 5}, key="earn-once")
    assert first.status_code == 201
    shop.ok(f"{world.member}/earn", {"points": 1000})  # the balance moves on
    again = shop.post(f"{world.member}/earn", {"points": 5}, key="earn-once")
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.json()["balance"] == money(95, 25)
    # A business refusal is an answer too: it is replayed even once it would succeed.
    refused = shop.post(f"{world.member}/redeem", {"points": 5000}, key="too-much")
    body = assert_problem(refused, 422, "insufficient_points")
    assert "idempotent-replayed" not in refused.headers
    shop.ok(f"{world.member}/earn", {"points": 10_000})
    before = any_stack.snapshot()
    replayed = shop.post(f"{world.member}/redeem", {"points": 5000}, key="too-much")
    assert assert_problem(replayed, 422, "insufficient_points") == body
    assert replayed.headers["idempotent-replayed"] == "true"
    assert any_stack.snapshot() == before
    assert any_stack.verify() == []


# --- tenancy -------------------------------------------------------------------------------


def test_another_merchant_sees_and_changes_nothing(any_stack: Stack) -> None:
    world = make_world(any_stack)
    rival, p, anna = any_stack.rival, world.program_id, world.anna
    # The rival's own program and member, to aim at the shop's ids from a valid position.
    own_program = any_stack.create_program(api=rival, code="rival")["program_id"]
    own_member = any_stack.enroll(own_program, "Rita", api=rival)
    before = any_stack.snapshot()
    keys_before = any_stack.idempotency_rows()

    reads = {
        f"/programs/{p}": "program_not_found",
        f"/members/{anna}": "member_not_found",
        f"/programs/{p}/members/{anna}/balance": "program_not_found",
        f"/programs/{p}/members/{anna}/history": "program_not_found",
        f"/programs/{own_program}/members/{anna}/balance": "member_not_found",
        f"/programs/{p}/journals/{world.earn_id}": "journal_not_found",
        f"/programs/{own_program}/journals/{world.earn_id}": "journal_not_found",
        f"/programs/{p}/holds/{world.hold_id}": "hold_not_found",
        f"/programs/{own_program}/holds/{world.hold_id}": "hold_not_found",
    }
    for path, code in reads.items():
        body = assert_problem(rival.get(path), 404, code)
        assert body["instance"] == f"/api/v1{path}"
    assert rival.read("/programs") == [any_stack.rival.read(f"/programs/{own_program}")]

    writes: list[tuple[str, Any, str]] = [
        (f"/programs/{p}/members", {"display_name": "Mallory"}, "program_not_found"),
        (f"/programs/{own_program}/members", {"member_id": anna}, "member_not_found"),
        (f"/programs/{p}/members/{anna}/earn", {"points": 5}, "program_not_found"),
        (f"/programs/{own_program}/members/{anna}/earn", {"points": 5}, "member_not_found"),
        (f"/programs/{p}/members/{anna}/redeem", {"points": 5}, "program_not_found"),
        (f"/programs/{p}/members/{anna}/holds", {"points": 5}, "program_not_found"),
        (
            f"/programs/{p}/members/{anna}/adjustments",
            {"points": -5, "reason": "x", "actor": "y"},
            "program_not_found",
        ),
        (f"/programs/{p}/holds/{world.hold_id}/capture", {}, "hold_not_found"),
        (f"/programs/{own_program}/holds/{world.hold_id}/capture", {}, "hold_not_found"),
        (f"/programs/{p}/holds/{world.hold_id}/release", None, "hold_not_found"),
        (f"/programs/{p}/journals/{world.redeem_id}/refund", {"points": 1}, "journal_not_found"),
        (f"/programs/{p}/journals/{world.earn_id}/reverse", {}, "journal_not_found"),
        (
            f"/programs/{own_program}/journals/{world.earn_id}/reverse",
            {},
            "journal_not_found",
        ),
        (
            f"/programs/{p}/transfers",
            {"from_member_id": anna, "to_member_id": world.ben, "points": 5},
            "program_not_found",
        ),
        (
            f"/programs/{own_program}/transfers",
            {"from_member_id": anna, "to_member_id": own_member, "points": 5},
            "member_not_found",
        ),
        (
            f"/programs/{own_program}/transfers",
            {"from_member_id": own_member, "to_member_id": anna, "points": 5},
            "member_not_found",
        ),
    ]
    for path, body, code in writes:
        assert_problem(rival.post(path, body), 404, code)
        assert any_stack.snapshot() == before, path
    # The refusals were stored under the rival's keys only; the shop's keys are untouched.
    keys_after = any_stack.idempotency_rows()
    new_keys = {k: v for k, v in keys_after.items() if k not in keys_before}
    assert {client for client, _ in new_keys} == {"rival"}
    assert sorted(new_keys.values()) == sorted(code for _, _, code in writes)
    assert any_stack.verify() == []
