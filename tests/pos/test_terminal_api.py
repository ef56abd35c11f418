"""The canonical terminal API end to end: identify -> preview -> redeem -> complete -> partial
refund -> void, balances asserted at every step, replays changing nothing, and bad input
refused with stable codes and nothing written."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from sqlalchemy import select

from loyalty.db.tables import members
from loyalty.domain.cards import damm_check_digit, rotating_code
from loyalty.services.member_cards import card_secret
from loyalty.services.quotes import BasketDocument
from tests.app.conftest import Stack
from tests.app.staff_session import Manager
from tests.support.baskets import orders_and_returns
from tests.support.problems import assert_problem

POS = "/api/v1/pos"


class Till:
    def __init__(self, stack: Stack, api_key: str) -> None:
        self.stack = stack
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def post(self, path: str, body: Any, **headers: str) -> Any:
        return self.stack.client.post(
            f"{POS}{path}", json=body, headers={**self.headers, **headers}
        )

    def ok(self, path: str, body: Any, status: int = 200, **headers: str) -> dict[str, Any]:
        response = self.post(path, body, **headers)
        assert response.status_code == status, response.text
        result: dict[str, Any] = response.json()
        return result


def line(line_id: str, cents: int, quantity: int = 1, sku: str = "WARE") -> dict[str, Any]:
    return {"line_id": line_id, "sku": sku, "quantity": quantity, "unit_price": cents}


def order(*lines: dict[str, Any]) -> dict[str, Any]:
    return {"currency": "EUR", "lines": list(lines)}


def setup(stack: Stack) -> tuple[Manager, Till, int, int, str]:
    manager = Manager(stack)
    program = manager.call(
        "POST", "/programs", {"code": "kasse", "name": "Kassenpunkte", "currency": "EUR"}, 201
    )
    pid = program["program_id"]
    for code, cost in (("kaffee", 100), ("gross", 600)):
        manager.call(
            "POST",
            f"/programs/{pid}/rewards",
            {
                "code": code,
                "kind": "amount_off",
                "name": {"de": code, "en": code},
                "points_cost": cost,
                "amount_off": 250,
            },
            201,
        )
    issued = manager.call(
        "POST",
        "/terminals",
        {"program_id": pid, "code": "kasse-1", "location": "berlin", "name": "Kasse 1"},
        201,
    )
    assert issued["api_key"].startswith("lk_")
    member = stack.shop.ok(f"/programs/{pid}/members", {"display_name": "Mia"})["member_id"]
    card = stack.read_db(
        lambda conn: conn.scalar(select(members.c.card_number).where(members.c.id == member))
    )
    return manager, Till(stack, issued["api_key"]), pid, member, str(card)


def wallet_code(stack: Stack, member: int, at: datetime | None = None) -> str:
    secret = card_secret(stack.app.state.settings.secret_key.encode(), member, 0)
    return rotating_code(member, secret, at or stack.clock.now)


def test_a_sale_from_scan_to_void(any_stack: Stack) -> None:
    stack = any_stack
    _, till, _, member, card = setup(stack)
    now = stack.clock.now

    # A first sale of 1000.00 EUR, identified by card number: 1000 points.
    first = till.ok(
        "/transactions/T-1/complete",
        {
            "occurred_at": now.isoformat(),
            "member": {"value": card},
            "order": order(line("1", 100_000)),
        },
    )
    assert (first["points_earned"], first["balance"]["available"]) == (1000, 1000)

    # identify: the display name, the balance, the rewards; by code and by card alike.
    scanned = till.ok("/identify", {"member": {"value": wallet_code(stack, member)}})
    assert scanned["display_name"] == "Mia"
    assert scanned["identified_by"] == "rotating_code"
    assert scanned["balance"] == {"posted": 1000, "held": 0, "available": 1000}
    assert {r["reward"]["code"]: r["redeemable"] for r in scanned["rewards"]} == {
        "kaffee": True,
        "gross": True,
    }
    assert till.ok("/identify", {"member": {"value": card}})["identified_by"] == "card_number"

    # preview: 30.00 + 20.00 EUR earns 50 points, the coffee takes 2.50 off.
    basket = order(line("1", 3_000), line("2", 2_000))
    preview = till.ok("/preview", {"member": {"value": card}, "order": basket})
    assert preview["quote"]["points"] == 50
    assert {r["reward_code"]: r["discount"] for r in preview["rewards"]}["kaffee"] == 250

    # redeem with the wallet code: 100 points held.
    code = wallet_code(stack, member)
    held = till.ok(
        "/transactions/T-2/redemptions",
        {"member": {"value": code}, "redemption": {"reward_code": "kaffee"}, "order": basket},
        201,
        **{"Idempotency-Key": "r-1"},
    )
    assert held["balance"] == {"posted": 1000, "held": 100, "available": 900}
    # The same code cannot redeem on another sale (a screenshot shown at another till).
    replay = till.post(
        "/transactions/T-3/redemptions",
        {"member": {"value": code}, "redemption": {"reward_code": "kaffee"}},
        **{"Idempotency-Key": "r-2"},
    )
    assert_problem(replay, 409, "rotating_code_replayed")
    # By card number only up to the cap (500 points per sale).
    capped = till.post(
        "/transactions/T-2/redemptions",
        {"member": {"value": card}, "redemption": {"reward_code": "gross"}},
        **{"Idempotency-Key": "r-3"},
    )
    assert_problem(capped, 403, "second_factor_required")

    # complete: earn 50, capture the held 100.
    body = {"occurred_at": now.isoformat(), "member": {"value": card}, "order": basket}
    done = till.ok("/transactions/T-2/complete", body)
    assert (done["points_earned"], done["redeemed"]) == (
        50,
        [{"reward_code": "kaffee", "points": 100, "discount": 250}],
    )
    assert done["balance"] == {"posted": 950, "held": 0, "available": 950}
    again = till.post("/transactions/T-2/complete", body)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == done

    # refund line 2 (20.00 of 50.00): 20 earned points out, 40 of the 100 redeemed back.
    refund = {"refund_id": "RF-1", "lines": [{"line_id": "2", "quantity": 1}]}
    refunded = till.ok("/transactions/T-2/refunds", refund, 201)
    assert (refunded["points_reversed"], refunded["points_returned"]) == (20, 40)
    assert refunded["balance"]["available"] == 970
    assert till.ok("/transactions/T-2/refunds", refund, 201) == refunded

    # void: the rest of the sale is undone: 30 earned out, 60 redeemed back.
    voided = till.ok("/transactions/T-2/void", {})
    assert (voided["points_reversed"], voided["points_returned"]) == (30, 60)
    assert voided["balance"] == {"posted": 1000, "held": 0, "available": 1000}
    assert till.ok("/transactions/T-2/void", {}) == voided
    assert_problem(
        till.post("/transactions/T-2/refunds", {"refund_id": "RF-2"}), 409, "transaction_not_open"
    )

    listed = stack.client.get(f"{POS}/transactions", headers=till.headers).json()
    assert [(t["transaction_id"], t["status"]) for t in listed["transactions"]] == [
        ("T-2", "voided"),
        ("T-1", "completed"),
    ]


def test_an_open_sale_voided_gives_its_holds_back(stack: Stack) -> None:
    _, till, _, _member, card = setup(stack)
    now = stack.clock.now.isoformat()
    till.ok(
        "/transactions/T-1/complete",
        {"occurred_at": now, "member": {"value": card}, "order": order(line("1", 20_000))},
    )
    till.ok(
        "/transactions/T-2/redemptions",
        {"member": {"value": card}, "redemption": {"reward_code": "kaffee"}},
        201,
        **{"Idempotency-Key": "r-1"},
    )
    voided = till.ok("/transactions/T-2/void", {})
    assert (voided["holds_released"], voided["balance"]["available"]) == (1, 200)


def test_offline_orders_earn_at_their_time_but_cannot_redeem(stack: Stack) -> None:
    _, till, _, member, card = setup(stack)
    shown = stack.clock.now
    stack.clock.now = shown + timedelta(hours=2)
    late = till.ok(
        "/transactions/OFF-1/complete",
        {
            "occurred_at": shown.isoformat(),
            "captured_offline": True,
            "member": {"value": wallet_code(stack, member, shown)},
            "order": order(line("1", 1_000)),
        },
    )
    assert late["points_earned"] == 10
    refused = till.post(
        "/transactions/OFF-2/redemptions",
        {
            "member": {"value": card},
            "redemption": {"reward_code": "kaffee"},
            "captured_offline": True,
        },
        **{"Idempotency-Key": "r-1"},
    )
    assert_problem(refused, 422, "offline_redemption_refused")


def test_bad_input_is_refused_and_changes_nothing(stack: Stack) -> None:
    _, till, pid, member, card = setup(stack)
    now = stack.clock.now.isoformat()

    def complete(tx: str, member_value: str, body: dict[str, Any]) -> Any:
        return till.post(
            f"/transactions/{tx}/complete",
            {"occurred_at": now, "member": {"value": member_value}, "order": body},
        )

    assert_problem(till.post("/identify", {"member": {"value": "hello"}}), 422, "unknown_scan")
    unknown_card = "07" + "0" * 14 + damm_check_digit("07" + "0" * 14)
    assert_problem(
        till.post("/identify", {"member": {"value": unknown_card}}), 404, "card_not_found"
    )
    stale = wallet_code(stack, member, stack.clock.now - timedelta(minutes=5))
    assert_problem(
        till.post("/identify", {"member": {"value": stale}}), 422, "rotating_code_expired"
    )
    negative = complete("T-9", card, order({**line("1", 100), "quantity": -1}))
    assert negative.status_code == 400
    assert_problem(
        complete("T-9", card, {**order(line("1", 100)), "total": 5}), 422, "order_totals_mismatch"
    )
    assert_problem(
        complete("T-9", card, {"currency": "USD", "lines": [line("1", 100)]}),
        422,
        "currency_mismatch",
    )
    till.ok(
        "/transactions/T-1/complete",
        {"occurred_at": now, "member": {"value": card}, "order": order(line("1", 1_000))},
    )
    never_sold = till.post(
        "/transactions/T-1/refunds", {"refund_id": "RF", "lines": [{"line_id": "7", "quantity": 1}]}
    )
    assert_problem(never_sold, 422, "unknown_order_line")
    too_many = till.post(
        "/transactions/T-1/refunds",
        {"refund_id": "RF-2", "lines": [{"line_id": "1", "quantity": 2}]},
    )
    assert_problem(too_many, 422, "return_exceeds_order")
    assert_problem(till.post("/transactions/NOPE/void", {}), 404, "transaction_not_found")
    wrong_key = till.stack.client.post(
        f"{POS}/identify",
        json={"member": {"value": card}},
        headers={"Authorization": "Bearer lk_0000_nope"},
    )
    assert_problem(wrong_key, 401, "unauthorized")
    balance = stack.shop.read(f"/programs/{pid}/members/{member}/balance")
    assert balance["available"] == 10


def test_a_key_of_another_merchant_finds_nothing(stack: Stack) -> None:
    _, till, _, _, card = setup(stack)
    till.ok(
        "/transactions/T-1/complete",
        {
            "occurred_at": stack.clock.now.isoformat(),
            "member": {"value": card},
            "order": order(line("1", 1_000)),
        },
    )
    rival_staff = Manager.__new__(Manager)
    rival_staff.client = stack.client
    # The rival merchant's owner sets up a program and a till of their own.
    directory = stack.app.state.staff_directory
    from functools import partial

    stack.run(
        partial(
            directory.provision_staff,
            stack.rival.merchant_id,
            email="owner@rival.example",
            password="Sonnenblumen-Kasse-77",
            role="owner",
            display_name="Rival",
        )
    )
    rival_staff.email = "owner@rival.example"
    login = stack.client.post(
        "/api/v1/admin/login",
        json={"email": "owner@rival.example", "password": "Sonnenblumen-Kasse-77"},
    )
    rival_staff.headers = {"Authorization": f"Bearer {login.json()['token']}"}
    rival_program = rival_staff.call(
        "POST", "/programs", {"code": "r", "name": "R", "currency": "EUR"}, 201
    )
    rival_key = rival_staff.call(
        "POST",
        "/terminals",
        {"program_id": rival_program["program_id"], "code": "k", "location": "x", "name": "K"},
        201,
    )["api_key"]
    rival = Till(stack, rival_key)
    assert_problem(rival.post("/identify", {"member": {"value": card}}), 404, "card_not_found")
    assert_problem(rival.post("/transactions/T-1/void", {}), 404, "transaction_not_found")
    assert_problem(
        rival.post("/transactions/T-1/refunds", {"refund_id": "x"}), 404, "transaction_not_found"
    )
    assert till.ok("/identify", {"member": {"value": card}})["balance"]["available"] == 10
    assert datetime.now(UTC)  # the clock of the app is the test's, not the wall's


def test_the_till_knows_where_it_is_by_key_or_by_staff_login(stack: Stack) -> None:
    manager, till, pid, _, _ = setup(stack)
    expected = {
        "terminal_code": "kasse-1",
        "location": "berlin",
        "name": "Kasse 1",
        "program_id": pid,
        "currency": "EUR",
    }
    by_key = stack.client.get(f"{POS}/terminal", headers=till.headers)
    assert by_key.status_code == 200, by_key.text
    assert by_key.json().items() >= expected.items()
    staff = {**manager.headers, "X-Terminal": "kasse-1"}
    assert stack.client.get(f"{POS}/terminal", headers=staff).json().items() >= expected.items()
    no_till = stack.client.get(f"{POS}/terminal", headers=manager.headers)
    assert_problem(no_till, 401, "unauthorized")
    unknown_till = stack.client.get(f"{POS}/terminal", headers={**staff, "X-Terminal": "nope"})
    assert_problem(unknown_till, 404, "terminal_not_found")


def test_a_sale_is_completed_once_and_for_its_own_member(stack: Stack) -> None:
    _, till, pid, member, card = setup(stack)
    other = stack.shop.ok(f"/programs/{pid}/members", {"display_name": "Ole"})["member_id"]
    other_card = stack.read_db(
        lambda conn: conn.scalar(select(members.c.card_number).where(members.c.id == other))
    )
    now = stack.clock.now.isoformat()
    till.ok(
        "/transactions/T-0/complete",
        {"occurred_at": now, "member": {"value": card}, "order": order(line("1", 20_000))},
    )
    till.ok(
        "/transactions/T-1/redemptions",
        {"member": {"value": card}, "redemption": {"reward_code": "kaffee"}},
        201,
        **{"Idempotency-Key": "r-1"},
    )
    body = {"occurred_at": now, "order": order(line("1", 1_000))}
    wrong = till.post("/transactions/T-1/complete", {**body, "member": {"value": other_card}})
    assert_problem(wrong, 409, "transaction_member_mismatch")
    till.ok("/transactions/T-1/void", {})
    again = till.post("/transactions/T-1/complete", {**body, "member": {"value": card}})
    assert_problem(again, 409, "transaction_not_open")
    for who, available in ((member, 200), (other, 0)):
        balance = stack.shop.read(f"/programs/{pid}/members/{who}/balance")
        assert balance["available"] == available


def test_refunds_in_any_steps_give_back_exactly_what_the_sale_moved(stack: Stack) -> None:
    """Refunding every unit, in any number of partial refunds, takes back exactly the points the
    sale earned and gives back exactly the points it redeemed, never more on the way."""
    _, till, pid, member, card = setup(stack)
    now = stack.clock.now.isoformat()
    till.ok(
        "/transactions/START/complete",
        {"occurred_at": now, "member": {"value": card}, "order": order(line("1", 500_000))},
    )
    sales = itertools.count()

    def available() -> int:
        balance: int = stack.shop.read(f"/programs/{pid}/members/{member}/balance")["available"]
        return balance

    @settings(max_examples=20)
    @given(case=orders_and_returns())
    def refund_in_steps(case: tuple[BasketDocument, list[dict[str, int]]]) -> None:
        basket, steps = case
        tx = f"S-{next(sales)}"
        before = available()
        pos_order = order(
            *(
                {
                    "line_id": item.line_id,
                    "sku": item.sku,
                    "quantity": item.quantity,
                    "unit_price": item.unit_price,
                    "discount": item.line_discount,
                    "kind": str(item.kind),
                    **({"category": item.category} if item.category else {}),
                }
                for item in basket.lines
            )
        )
        till.ok(
            f"/transactions/{tx}/redemptions",
            {"member": {"value": card}, "redemption": {"reward_code": "kaffee"}},
            201,
            **{"Idempotency-Key": tx},
        )
        done = till.ok(
            f"/transactions/{tx}/complete",
            {"occurred_at": now, "member": {"value": card}, "order": pos_order},
        )
        reversed_points = returned = 0
        refunds = [
            {"lines": [{"line_id": k, "quantity": v} for k, v in step.items()]} for step in steps
        ]
        left = {
            item.line_id: item.quantity - sum(s.get(item.line_id, 0) for s in steps)
            for item in basket.lines
        }
        if any(left.values()):
            refunds.append({"lines": []})
        for index, refund in enumerate(refunds):
            result = till.ok(
                f"/transactions/{tx}/refunds", {"refund_id": f"{tx}-{index}", **refund}, 201
            )
            reversed_points += result["points_reversed"]
            returned += result["points_returned"]
            assert reversed_points <= done["points_earned"]
            assert returned <= 100
        assert (reversed_points, returned) == (done["points_earned"], 100)
        assert available() == before

    refund_in_steps()


def test_identify_shows_the_tier_badge_and_its_change(stack: Stack) -> None:
    manager, till, pid, _, card = setup(stack)
    draft = manager.call("POST", f"/programs/{pid}/rule-sets", {}, 201)
    levels = [
        {"code": "bronze", "name": {"de": "Bronze", "en": "Bronze"}, "threshold": 0},
        {"code": "silber", "name": {"de": "Silber", "en": "Silver"}, "threshold": 300},
    ]
    manager.call(
        "PUT",
        f"/programs/{pid}/rule-sets/{draft['version']}/tiers",
        {"levels": levels, "basis": "points", "window": "calendar_year"},
    )
    manager.call("POST", f"/programs/{pid}/rule-sets/{draft['version']}/publish", {})

    scanned = till.ok("/identify", {"member": {"value": card}})
    assert scanned["tier"] == {"code": "bronze", "name": {"de": "Bronze", "en": "Bronze"}}

    # 400.00 EUR: 400 points, past the silver threshold; the next scan shows the new badge.
    sale = {
        "occurred_at": stack.clock.now.isoformat(),
        "member": {"value": card},
        "order": order(line("1", 40_000)),
    }
    done = till.ok("/transactions/T-TIER/complete", sale)
    assert done["tier"] == "silber"
    scanned = till.ok("/identify", {"member": {"value": card}})
    assert scanned["tier"] == {"code": "silber", "name": {"de": "Silber", "en": "Silver"}}
