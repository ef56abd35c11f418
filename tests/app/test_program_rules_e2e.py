"""End to end through the HTTP API: a manager sets up a program with three tiers and a weekend
promotion, a member earns across a tier boundary, returns an item, the year ends, the member
is moved down by the policy, earns at the lower tier, and redeems a reward.

Every figure is computed by hand in the comments; every balance is asserted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from loyalty.services.tier_status import recalc_tiers

from .conftest import Stack
from .staff_session import Manager


def _eur(cents: int, line_id: str, sku: str = "WARE", **extra: Any) -> dict[str, Any]:
    return {"line_id": line_id, "sku": sku, "quantity": 1, "unit_price": cents, **extra}


def test_a_program_from_setup_to_period_end(any_stack: Stack) -> None:
    stack = any_stack
    shop, clock = stack.shop, stack.clock
    manager = Manager(stack)

    # -- the manager sets the program up -----------------------------------------------------
    program = manager.call(
        "POST",
        "/programs",
        {"code": "sonne", "name": "Sonnenpunkte", "currency": "EUR", "name_en": "Sun points"},
        201,
    )
    pid = program["program_id"]
    assert program["name_en"] == "Sun points"
    draft = manager.call("POST", f"/programs/{pid}/rule-sets", {}, 201)
    assert (draft["version"], draft["based_on"], draft["status"]) == (2, 1, "draft")
    version = draft["version"]
    tiers = {
        "levels": [
            {"code": "bronze", "name": {"de": "Bronze", "en": "Bronze"}, "threshold": 0},
            {
                "code": "silver",
                "name": {"de": "Silber", "en": "Silver"},
                "threshold": 300,
                "multiplier": "1.5",
            },
            {
                "code": "gold",
                "name": {"de": "Gold", "en": "Gold"},
                "threshold": 600,
                "multiplier": "2",
                "perks": {"de": "Kaffee gratis", "en": "Free coffee"},
            },
        ],
        "basis": "points",
        "window": "calendar_year",
        "downgrade": "one_step",
    }
    manager.call("PUT", f"/programs/{pid}/rule-sets/{version}/tiers", tiers)
    weekend = {
        "code": "weekend-double",
        "kind": "multiplier",
        "name": {"de": "Wochenende doppelt", "en": "Weekend double points"},
        "starts_at": "2025-01-01T00:00:00+01:00",
        "ends_at": "2026-01-01T00:00:00+01:00",
        "multiplier": "2",
        "weekdays": [6, 7],
    }
    view = manager.call(
        "PUT", f"/programs/{pid}/rule-sets/{version}/promotions/weekend-double", weekend
    )
    assert view["problems"] == []
    published = manager.call("POST", f"/programs/{pid}/rule-sets/{version}/publish", {})
    assert published["status"] == "published"
    reward = {
        "code": "kaffee",
        "kind": "amount_off",
        "name": {"de": "Kaffee aufs Haus", "en": "Coffee on us"},
        "points_cost": 200,
        "amount_off": 300,
    }
    manager.call("POST", f"/programs/{pid}/rewards", reward, 201)

    # -- a member earns across the silver and gold boundaries ----------------------------------
    member = shop.ok(f"/programs/{pid}/members", {"display_name": "Mia"})["member_id"]

    def order(reference: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
        return shop.ok(
            f"/programs/{pid}/orders",
            {
                "member_id": member,
                "reference": reference,
                "basket": {"currency": "EUR", "lines": lines},
            },
        )

    def balance() -> int:
        available: int = shop.read(f"/programs/{pid}/members/{member}/balance")["available"]
        return available

    # Wednesday 15 Jan 2025: 250.00 EUR at bronze -> 250 points.
    first = order("A-1", [_eur(25_000, "1")])
    assert (first["points"], first["tier"], balance()) == (250, "bronze", 250)
    # Thursday: 100.00 EUR, still priced at bronze -> 100; the total 350 reaches silver (300)
    # at once, effective from the next order.
    clock.now = datetime(2025, 1, 16, 12, tzinfo=UTC)
    second = order("A-2", [_eur(10_000, "1")])
    assert (second["points"], second["quote"]["tier"], second["tier"]) == (100, "bronze", "silver")
    assert second["tier_changes"] == [{"before": "bronze", "after": "silver", "reason": "upgrade"}]
    assert balance() == 350
    # Saturday: 60.00 + 40.00 EUR at silver on a weekend: base 100, silver x1.5 -> +50,
    # weekend x2 -> +150 (on 150): 300 points. The total 650 reaches gold (600).
    clock.now = datetime(2025, 1, 18, 10, tzinfo=UTC)
    response = shop.post(
        f"/programs/{pid}/members/{member}/quote",
        {"basket": {"currency": "EUR", "lines": [_eur(6_000, "1"), _eur(4_000, "2")]}},
    )
    assert response.status_code == 200, response.text
    quote = response.json()
    assert [(line["code"], line["points"]) for line in quote["lines"]] == [
        ("points-per-unit", 100),
        ("silver", 50),
        ("weekend-double", 150),
    ]
    third = order("A-3", [_eur(6_000, "1"), _eur(4_000, "2")])
    assert (third["points"], third["tier"], balance()) == (300, "gold", 650)

    # -- a return re-prices the order without the returned item --------------------------------
    # Without line 2: base 60, silver +30, weekend +90 = 180, so 300 - 180 = 120 come back.
    returned = shop.ok(
        f"/programs/{pid}/orders/A-3/returns", {"lines": [{"line_id": "2", "quantity": 1}]}
    )
    assert (returned["points"], returned["order_points_now"], balance()) == (120, 180, 530)
    status = shop.read(f"/programs/{pid}/members/{member}/tier")
    # Qualifying points are now 250 + 100 + 180 = 530: below gold, but gold stays until the
    # period ends (the end of 2025 in Berlin).
    assert (status["current"]["code"], status["qualifying_total"]) == ("gold", 530)
    assert (status["to_keep"], status["keep_by"]) == (70, "2025-12-31T23:00:00Z")
    assert status["to_next"] is None

    # -- the year ends: one step down, because 530 supports silver, not gold -------------------
    clock.now = datetime(2026, 1, 2, 9, tzinfo=UTC)
    first_run = stack.run(recalc_tiers, stack.engine, clock.now)
    assert (first_run.accounts, first_run.downgraded) == (1, 1)
    again = stack.run(recalc_tiers, stack.engine, clock.now)
    assert again.accounts == 0
    status = shop.read(f"/programs/{pid}/members/{member}/tier")
    assert (status["current"]["code"], status["qualifying_total"]) == ("silver", 0)
    assert status["history"][0] == {
        "at": "2025-12-31T23:00:00Z",
        "before": "gold",
        "after": "silver",
        "reason": "downgrade",
        "qualifying_total": 530,
        "actor": "tiers recalc",
    }
    # Friday 2 Jan 2026, 100.00 EUR at silver (the promotion has ended): 100 + 50 = 150.
    fourth = order("B-1", [_eur(10_000, "1")])
    assert (fourth["points"], fourth["quote"]["tier"], balance()) == (150, "silver", 680)

    # -- a reward is redeemed --------------------------------------------------------------------
    redeemed = shop.ok(
        f"/programs/{pid}/members/{member}/rewards/kaffee/redeem", {"mode": "voucher"}
    )
    assert (redeemed["points"], redeemed["discount"]) == (200, 300)
    assert balance() == 480
    assert stack.verify() == []

    # -- the manager sees it all in the audit log and the member list ----------------------------
    manager.login()
    actions = [entry["action"] for entry in manager.call("GET", "/audit-log")["entries"]]
    assert {"program.create", "rule_set.put_tiers", "rule_set.publish", "reward.create"} <= set(
        actions
    )
    members = manager.call("GET", f"/programs/{pid}/members")["items"]
    assert [(m["member_id"], m["tier"], m["available"]) for m in members] == [
        (member, "silver", 480)
    ]
