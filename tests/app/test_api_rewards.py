"""Rewards through the HTTP API: the catalogue managed in the admin API, redemption by API
clients (hold then complete or release, vouchers, points as money), every refusal, replays."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, audit_log, rule_sets, tier_states
from loyalty.services.rule_documents import STARTER_RULES
from tests.app.conftest import START, Stack
from tests.support.problems import assert_problem

ADMIN = "/api/v1/admin"
PASSWORD = "correct-horse-battery"
PROBLEM_JSON = "application/problem+json"
#: The program fixture's holds last 900 seconds.
HOLD_SECONDS = 900


@dataclass
class Admin:
    """A signed-in staff user of the shop, talking to the admin API."""

    stack: Stack
    headers: dict[str, str]

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        return self.stack.client.get(ADMIN + path, params=params, headers=self.headers)

    def post(self, path: str, body: Any = None) -> httpx.Response:
        if body is None:
            return self.stack.client.post(ADMIN + path, headers=self.headers)
        return self.stack.client.post(ADMIN + path, json=body, headers=self.headers)

    def put(self, path: str, body: Any) -> httpx.Response:
        return self.stack.client.put(ADMIN + path, json=body, headers=self.headers)


def sign_in(stack: Stack, role: str) -> Admin:
    email = f"{role}@example.com"

    async def provision() -> None:
        await stack.app.state.staff_directory.provision_staff(
            stack.shop.merchant_id,
            email=email,
            password=PASSWORD,
            role=role,
            display_name=f"Test {role}",
        )

    stack.run(provision)
    response = stack.client.post(f"{ADMIN}/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return Admin(stack, {"Authorization": f"Bearer {response.json()['token']}"})


@pytest.fixture
def manager(stack: Stack) -> Admin:
    return sign_in(stack, "program_manager")


def reward(code: str = "coffee", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "kind": "amount_off",
        "name": {"de": "2,50 € Rabatt", "en": "2.50 off"},
        "points_cost": 300,
        "amount_off": 250,
    }
    body.update(fields)
    return body


def basket(*lines: tuple[str, int, int], currency: str = "EUR") -> dict[str, Any]:
    """Lines of (sku, quantity, unit price in cents)."""
    return {
        "currency": currency,
        "lines": [
            {"line_id": str(n), "sku": sku, "quantity": quantity, "unit_price": price}
            for n, (sku, quantity, price) in enumerate(lines, 1)
        ],
    }


@dataclass
class Shop:
    """The shop's program with a catalogue, its members and a manager."""

    stack: Stack
    admin: Admin
    program_id: int

    def create(self, **fields: Any) -> dict[str, Any]:
        response = self.admin.post(f"/programs/{self.program_id}/rewards", reward(**fields))
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def member(self, name: str, points: int = 0) -> int:
        member_id = self.stack.enroll(self.program_id, name)
        if points:
            self.stack.shop.ok(
                f"/programs/{self.program_id}/members/{member_id}/earn", {"points": points}
            )
        return member_id

    def redeem_path(self, member_id: int, code: str = "coffee") -> str:
        return f"/programs/{self.program_id}/members/{member_id}/rewards/{code}/redeem"

    def redeem(self, member_id: int, body: dict[str, Any], code: str = "coffee") -> dict[str, Any]:
        return self.stack.shop.ok(self.redeem_path(member_id, code), body)

    def refused(
        self, member_id: int, body: dict[str, Any], status: int, error: str, code: str = "coffee"
    ) -> dict[str, Any]:
        return assert_problem(
            self.stack.shop.post(self.redeem_path(member_id, code), body), status, error
        )

    def balance(self, member_id: int) -> tuple[int, int, int]:
        data = self.stack.shop.read(f"/programs/{self.program_id}/members/{member_id}/balance")
        return data["posted"], data["held"], data["available"]

    def redemption(self, redemption_id: int) -> dict[str, Any]:
        data: dict[str, Any] = self.stack.shop.read(
            f"/programs/{self.program_id}/redemptions/{redemption_id}"
        )
        return data

    def finish(self, redemption_id: int, action: str) -> httpx.Response:
        return self.stack.shop.post(
            f"/programs/{self.program_id}/redemptions/{redemption_id}/{action}"
        )

    def catalogue(self) -> dict[str, dict[str, Any]]:
        listed = self.stack.shop.read(f"/programs/{self.program_id}/rewards")
        return {item["code"]: item for item in listed}

    def offers(self, member_id: int) -> dict[str, Any]:
        data: dict[str, Any] = self.stack.shop.read(
            f"/programs/{self.program_id}/members/{member_id}/rewards"
        )
        return data

    def offer(self, member_id: int, code: str = "coffee") -> dict[str, Any]:
        found = [o for o in self.offers(member_id)["rewards"] if o["reward"]["code"] == code]
        assert len(found) == 1
        return found[0]


@pytest.fixture
def shop(stack: Stack, program: dict[str, Any], manager: Admin) -> Shop:
    return Shop(stack, manager, program["program_id"])


# -- hold, then complete or release -------------------------------------------------------------


def test_hold_then_complete(shop: Shop) -> None:
    shop.create(stock=5)
    anna = shop.member("Anna", 1000)
    held = shop.redeem(
        anna, {"mode": "hold", "basket": basket(("CAKE", 2, 350)), "reference": "POS-1"}
    )
    assert held["status"] == "pending"
    assert (held["points"], held["discount"], held["reward_code"]) == (300, 250, "coffee")
    assert held["hold_id"] is not None
    assert held["voucher_code"] is None
    assert held["balance"] == {"posted": 1000, "held": 300, "available": 700}
    assert shop.balance(anna) == (1000, 300, 700)
    assert shop.redemption(held["redemption_id"])["status"] == "pending"
    assert shop.catalogue()["coffee"]["stock_left"] == 4

    done = shop.finish(held["redemption_id"], "complete")
    assert done.status_code == 201, done.text
    completed = done.json()
    assert completed["status"] == "completed"
    assert completed["balance"] == {"posted": 700, "held": 0, "available": 700}
    assert shop.balance(anna) == (700, 0, 700)
    view = shop.redemption(held["redemption_id"])
    assert (view["status"], view["journal_id"], view["reference"]) == (
        "completed",
        completed["journal_id"],
        "POS-1",
    )
    journal = shop.stack.shop.read(f"/programs/{shop.program_id}/journals/{view['journal_id']}")
    assert (journal["kind"], journal["delta"]) == ("capture", -300)
    entry = shop.catalogue()["coffee"]
    assert (entry["units_redeemed"], entry["stock_left"]) == (1, 4)
    assert_problem(shop.finish(held["redemption_id"], "release"), 409, "redemption_not_pending")
    assert shop.balance(anna) == (700, 0, 700)
    assert shop.stack.verify() == []


def test_hold_then_release_gives_points_and_stock_back(shop: Shop) -> None:
    shop.create(stock=1)
    anna = shop.member("Anna", 500)
    ben = shop.member("Ben", 500)
    held = shop.redeem(anna, {"mode": "hold"})
    assert held["balance"] == {"posted": 500, "held": 300, "available": 200}
    shop.refused(ben, {"mode": "hold"}, 422, "reward_out_of_stock")
    assert shop.balance(ben) == (500, 0, 500)

    released = shop.finish(held["redemption_id"], "release")
    assert released.status_code == 201, released.text
    assert released.json()["status"] == "released"
    assert released.json()["balance"] == {"posted": 500, "held": 0, "available": 500}
    assert shop.balance(anna) == (500, 0, 500)
    assert shop.redemption(held["redemption_id"])["status"] == "released"
    entry = shop.catalogue()["coffee"]
    assert (entry["units_redeemed"], entry["stock_left"]) == (0, 1)
    # The unit is Ben's now.
    taken = shop.redeem(ben, {"mode": "hold"})
    assert taken["balance"] == {"posted": 500, "held": 300, "available": 200}
    assert_problem(shop.finish(held["redemption_id"], "complete"), 409, "redemption_not_pending")
    assert shop.balance(anna) == (500, 0, 500)
    assert shop.stack.verify() == []


def test_a_lapsed_hold_releases_the_redemption(shop: Shop) -> None:
    shop.create(stock=1)
    anna = shop.member("Anna", 400)
    held = shop.redeem(anna, {"mode": "hold"})
    assert shop.balance(anna) == (400, 300, 100)
    shop.stack.clock.advance(seconds=HOLD_SECONDS)
    # Read: released, and the unit counts as back in stock.
    view = shop.redemption(held["redemption_id"])
    assert (view["status"], view["resolved_at"]) == ("released", held["hold_expires_at"])
    assert shop.catalogue()["coffee"]["stock_left"] == 1
    assert shop.offer(anna)["redeemable"] is True
    # Write: completing is refused, and the release is made durable.
    refusal = assert_problem(
        shop.finish(held["redemption_id"], "complete"), 409, "redemption_not_pending"
    )
    assert refusal["redemption_status"] == "released"
    assert shop.balance(anna) == (400, 0, 400)
    hold = shop.stack.shop.read(f"/programs/{shop.program_id}/holds/{held['hold_id']}")
    assert hold["status"] == "expired"
    assert shop.stack.verify() == []


# -- vouchers and points as money ---------------------------------------------------------------


def test_voucher_mode_spends_now_and_issues_a_code(shop: Shop) -> None:
    shop.create(kind="free_item", sku="COFFEE", amount_off=0, points_cost=200)
    anna = shop.member("Anna", 450)
    voucher = shop.redeem(anna, {"mode": "voucher", "reference": "wallet"})
    assert voucher["status"] == "completed"
    assert re.fullmatch(r"[0-9]{12}", voucher["voucher_code"])
    assert (voucher["points"], voucher["discount"], voucher["hold_id"]) == (200, 0, None)
    assert voucher["balance"] == {"posted": 250, "held": 0, "available": 250}
    assert shop.balance(anna) == (250, 0, 250)
    journal = shop.stack.shop.read(f"/programs/{shop.program_id}/journals/{voucher['journal_id']}")
    assert (journal["kind"], journal["delta"], journal["reference"]) == ("redeem", -200, "wallet")
    view = shop.redemption(voucher["redemption_id"])
    assert (view["voucher_code"], view["status"]) == (voucher["voucher_code"], "completed")
    # A second voucher gets its own code.
    other = shop.redeem(anna, {"mode": "voucher"})
    assert other["voucher_code"] != voucher["voucher_code"]
    assert other["balance"] == {"posted": 50, "held": 0, "available": 50}
    listed = shop.stack.shop.read(f"/programs/{shop.program_id}/members/{anna}/redemptions")
    assert [r["redemption_id"] for r in listed] == [
        other["redemption_id"],
        voucher["redemption_id"],
    ]
    assert shop.stack.verify() == []


def test_free_item_on_a_basket_names_the_free_line(shop: Shop) -> None:
    shop.create(kind="free_item", sku="COFFEE", amount_off=0, points_cost=200)
    anna = shop.member("Anna", 200)
    held = shop.redeem(
        anna, {"mode": "hold", "basket": basket(("CAKE", 1, 400), ("COFFEE", 2, 290))}
    )
    assert (held["discount"], held["line_id"]) == (290, "2")
    assert held["balance"] == {"posted": 200, "held": 200, "available": 0}
    shop.refused(
        anna, {"mode": "hold", "basket": basket(("CAKE", 1, 400))}, 422, "reward_not_applicable"
    )
    assert shop.balance(anna) == (200, 200, 0)


def test_points_as_money_with_a_chosen_amount(shop: Shop) -> None:
    shop.create(
        code="pay-with-points",
        kind="points_as_money",
        points_cost=0,
        amount_off=0,
        points_per_step=100,
        money_per_step=100,
        min_points=200,
        max_points=1000,
    )
    anna = shop.member("Anna", 2000)
    used = shop.redeem(
        anna,
        {"mode": "hold", "points": 500, "basket": basket(("CAKE", 4, 500))},
        code="pay-with-points",
    )
    assert (used["points"], used["discount"]) == (500, 500)
    assert used["balance"] == {"posted": 2000, "held": 500, "available": 1500}
    completed = shop.finish(used["redemption_id"], "complete").json()
    assert completed["balance"] == {"posted": 1500, "held": 0, "available": 1500}

    for points in (250, 100, 1100):  # not a step, below the minimum, above the maximum
        shop.refused(
            anna,
            {"mode": "hold", "points": points},
            400,
            "invalid_points_choice",
            "pay-with-points",
        )
    shop.refused(anna, {"mode": "hold"}, 400, "invalid_points_choice", "pay-with-points")
    too_much = shop.refused(
        anna,
        {"mode": "hold", "points": 800, "basket": basket(("CAKE", 1, 350))},
        400,
        "invalid_points_choice",
        "pay-with-points",
    )
    assert too_much["max_points_usable"] == 300
    assert shop.balance(anna) == (1500, 0, 1500)
    offer = shop.offer(anna, "pay-with-points")
    assert (offer["redeemable"], offer["points_from"]) == (True, 200)
    assert shop.stack.verify() == []


# -- refusals -----------------------------------------------------------------------------------


def give_tiers(stack: Stack, program_id: int, tiers: dict[int, str]) -> None:
    """Publish a version with silver (base) and gold, and put members on the given levels."""

    async def work(conn: AsyncConnection) -> None:
        version = await conn.scalar(
            select(func.coalesce(func.max(rule_sets.c.version), 0)).where(
                rule_sets.c.program_id == program_id
            )
        )
        document = msgspec.to_builtins(STARTER_RULES)
        document["tiers"] = {
            "levels": [
                {"code": "silver", "name": {"de": "Silber", "en": "Silver"}, "threshold": 0},
                {"code": "gold", "name": {"de": "Gold", "en": "Gold"}, "threshold": 1000},
            ]
        }
        now = stack.clock.now
        await conn.execute(
            rule_sets.insert().values(
                program_id=program_id,
                version=int(version or 0) + 1,
                status="published",
                document=document,
                effective_from=now,
                created_at=now,
                created_by="test",
                published_at=now,
                published_by="test",
            )
        )
        for member_id, level in tiers.items():
            account_id = await conn.scalar(
                select(accounts.c.id).where(
                    accounts.c.program_id == program_id, accounts.c.member_id == member_id
                )
            )
            await conn.execute(
                tier_states.insert().values(
                    account_id=account_id,
                    program_id=program_id,
                    earned=level,
                    since=now,
                    review_at=now + timedelta(days=365),
                    review_due=now + timedelta(days=365),
                    updated_at=now,
                )
            )

    async def go() -> None:
        await in_transaction(stack.engine, work)

    stack.run(go)


def test_tier_restriction(shop: Shop) -> None:
    shop.create(tiers=["gold"])
    silver = shop.member("Sam", 1000)
    gold = shop.member("Gina", 1000)
    give_tiers(shop.stack, shop.program_id, {silver: "silver", gold: "gold"})

    offer = shop.offers(silver)
    assert offer["tier"] == "silver"
    assert (offer["rewards"][0]["redeemable"], offer["rewards"][0]["refusal"]) == (
        False,
        "reward_tier_restricted",
    )
    before = shop.stack.snapshot()
    refusal = shop.refused(silver, {"mode": "hold"}, 403, "reward_tier_restricted")
    assert refusal["tiers"] == ["gold"]
    assert shop.stack.snapshot() == before
    assert shop.balance(silver) == (1000, 0, 1000)

    assert shop.offers(gold)["rewards"][0]["redeemable"] is True
    held = shop.redeem(gold, {"mode": "hold"})
    assert held["balance"] == {"posted": 1000, "held": 300, "available": 700}
    assert shop.balance(gold) == (1000, 300, 700)


def test_per_member_limit(shop: Shop) -> None:
    shop.create(per_member_limit=1)
    anna = shop.member("Anna", 1000)
    ben = shop.member("Ben", 300)
    first = shop.redeem(anna, {"mode": "voucher"})
    assert first["balance"] == {"posted": 700, "held": 0, "available": 700}
    refusal = shop.refused(anna, {"mode": "voucher"}, 422, "reward_limit_reached")
    assert refusal["limit"] == 1
    assert shop.balance(anna) == (700, 0, 700)
    assert shop.offer(anna)["refusal"] == "reward_limit_reached"
    # The limit is per member.
    other = shop.redeem(ben, {"mode": "voucher"})
    assert other["balance"] == {"posted": 0, "held": 0, "available": 0}
    assert shop.stack.verify() == []


def test_stock_exhaustion(shop: Shop) -> None:
    shop.create(stock=2)
    members = [shop.member(name, 300) for name in ("Anna", "Ben", "Cleo")]
    for member in members[:2]:
        assert shop.redeem(member, {"mode": "voucher"})["balance"]["available"] == 0
    last = members[2]
    assert shop.offer(last)["refusal"] == "reward_out_of_stock"
    before = shop.stack.snapshot()
    assert shop.refused(last, {"mode": "voucher"}, 422, "reward_out_of_stock")["stock"] == 2
    assert shop.stack.snapshot() == before
    assert shop.balance(last) == (300, 0, 300)
    entry = shop.catalogue()["coffee"]
    assert (entry["units_redeemed"], entry["stock_left"]) == (2, 0)


def test_validity_window(shop: Shop) -> None:
    opens, closes = START + timedelta(days=1), START + timedelta(days=2)
    shop.create(valid_from=opens.isoformat(), valid_until=closes.isoformat())
    anna = shop.member("Anna", 1000)
    shop.refused(anna, {"mode": "hold"}, 422, "reward_not_yet_valid")
    assert shop.offer(anna)["refusal"] == "reward_not_yet_valid"
    assert shop.balance(anna) == (1000, 0, 1000)

    shop.stack.clock.advance(days=1)
    held = shop.redeem(anna, {"mode": "hold"})
    assert held["balance"] == {"posted": 1000, "held": 300, "available": 700}
    shop.finish(held["redemption_id"], "release")
    assert shop.balance(anna) == (1000, 0, 1000)

    shop.stack.clock.advance(days=1)  # valid_until is exclusive
    shop.refused(anna, {"mode": "hold"}, 422, "reward_expired")
    assert shop.offer(anna)["refusal"] == "reward_expired"
    assert shop.balance(anna) == (1000, 0, 1000)


def test_insufficient_points_writes_nothing(shop: Shop) -> None:
    shop.create()
    anna = shop.member("Anna", 299)
    offer = shop.offer(anna)
    assert (offer["redeemable"], offer["refusal"], offer["points_from"]) == (
        False,
        "insufficient_points",
        300,
    )
    before = shop.stack.snapshot()
    for mode in ("hold", "voucher"):
        shop.refused(anna, {"mode": mode}, 422, "insufficient_points")
    assert shop.stack.snapshot() == before
    assert shop.balance(anna) == (299, 0, 299)
    assert shop.catalogue()["coffee"]["units_redeemed"] == 0


def test_a_redeem_replays_by_its_key(shop: Shop) -> None:
    shop.create(stock=3)
    anna = shop.member("Anna", 1000)
    body = {"mode": "hold", "basket": basket(("CAKE", 1, 900))}
    key = shop.stack.shop.new_key()
    first = shop.stack.shop.post(shop.redeem_path(anna), body, key=key)
    assert first.status_code == 201, first.text
    before = shop.stack.snapshot()
    again = shop.stack.shop.post(shop.redeem_path(anna), body, key=key)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert shop.stack.snapshot() == before
    assert shop.balance(anna) == (1000, 300, 700)
    assert shop.catalogue()["coffee"]["units_redeemed"] == 1
    other = shop.stack.shop.post(shop.redeem_path(anna), {"mode": "voucher"}, key=key)
    assert_problem(other, 422, "idempotency_key_reused")
    # A refusal replays too.
    ben = shop.member("Ben", 10)
    refusal_key = shop.stack.shop.new_key()
    refused = shop.stack.shop.post(shop.redeem_path(ben), {"mode": "hold"}, key=refusal_key)
    assert_problem(refused, 422, "insufficient_points")
    replayed = shop.stack.shop.post(shop.redeem_path(ben), {"mode": "hold"}, key=refusal_key)
    assert_problem(replayed, 422, "insufficient_points")
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert shop.balance(ben) == (10, 0, 10)
    # Completing replays as well.
    done_key = shop.stack.shop.new_key()
    path = f"/programs/{shop.program_id}/redemptions/{first.json()['redemption_id']}/complete"
    done = shop.stack.shop.post(path, key=done_key)
    assert done.status_code == 201, done.text
    redone = shop.stack.shop.post(path, key=done_key)
    assert redone.headers["Idempotent-Replayed"] == "true"
    assert redone.json() == done.json()
    assert shop.balance(anna) == (700, 0, 700)


def test_bad_input(shop: Shop) -> None:
    shop.create()
    anna = shop.member("Anna", 1000)
    shop.refused(anna, {"mode": "hold"}, 404, "reward_not_found", code="nope")
    shop.refused(anna, {"mode": "hold", "points": 200}, 400, "invalid_points_choice")
    shop.refused(anna, {"mode": "later"}, 400, "validation_failed")
    shop.refused(anna, {"mode": "hold", "pints": 300}, 400, "validation_failed")
    shop.refused(anna, {"mode": "hold", "points": "300"}, 400, "validation_failed")
    shop.refused(
        anna,
        {"mode": "hold", "basket": basket(("CAKE", 1, 500), currency="CHF")},
        422,
        "currency_mismatch",
    )
    no_key = shop.stack.shop.post(shop.redeem_path(anna), {"mode": "hold"}, key=None)
    assert_problem(no_key, 400, "idempotency_key_missing")
    shop.refused(123456, {"mode": "hold"}, 404, "member_not_found")
    assert_problem(
        shop.stack.shop.get(f"/programs/{shop.program_id}/redemptions/999"),
        404,
        "redemption_not_found",
    )
    assert_problem(shop.finish(999, "complete"), 404, "redemption_not_found")
    invalid = shop.admin.post(f"/programs/{shop.program_id}/rewards", reward("free", points_cost=0))
    assert_problem(invalid, 400, "invalid_reward")
    window = shop.admin.post(
        f"/programs/{shop.program_id}/rewards",
        reward("late", valid_from="2025-02-01T00:00:00Z", valid_until="2025-01-01T00:00:00Z"),
    )
    assert_problem(window, 400, "invalid_window")
    assert shop.balance(anna) == (1000, 0, 1000)


def test_another_merchant_sees_nothing(shop: Shop) -> None:
    shop.create()
    anna = shop.member("Anna", 1000)
    held = shop.redeem(anna, {"mode": "hold"})
    rival = shop.stack.rival
    assert_problem(rival.get(f"/programs/{shop.program_id}/rewards"), 404, "program_not_found")
    assert_problem(
        rival.get(f"/programs/{shop.program_id}/redemptions/{held['redemption_id']}"),
        404,
        "redemption_not_found",
    )
    response = rival.post(
        f"/programs/{shop.program_id}/redemptions/{held['redemption_id']}/complete"
    )
    assert_problem(response, 404, "redemption_not_found")
    assert shop.balance(anna) == (1000, 300, 700)


# -- the admin API ------------------------------------------------------------------------------


def test_managers_keep_the_catalogue_and_support_reads_it(shop: Shop) -> None:
    base = f"/programs/{shop.program_id}/rewards"
    created = shop.create(stock=1)
    assert (created["units_redeemed"], created["stock_left"], created["active"]) == (0, 1, True)
    assert_problem(shop.admin.post(base, reward(points_cost=10)), 409, "reward_code_taken")

    anna = shop.member("Anna", 600)
    held = shop.redeem(anna, {"mode": "hold"})
    assert held["balance"] == {"posted": 600, "held": 300, "available": 300}
    below = shop.admin.put(f"{base}/coffee", reward(stock=0))
    assert assert_problem(below, 400, "invalid_reward")["units_redeemed"] == 1
    renamed = shop.admin.put(f"{base}/coffee", reward("tea"))
    assert_problem(renamed, 400, "validation_failed")
    updated = shop.admin.put(f"{base}/coffee", reward(stock=3, points_cost=250))
    assert updated.status_code == 200, updated.text
    assert (updated.json()["stock_left"], updated.json()["definition"]["points_cost"]) == (2, 250)

    support = sign_in(shop.stack, "support")
    assert support.get(base).status_code == 200
    assert support.get(f"{base}/coffee").json()["units_redeemed"] == 1
    assert_problem(support.post(base, reward("tea")), 403, "forbidden")
    assert_problem(support.post(f"{base}/coffee/archive"), 403, "forbidden")

    archived = shop.admin.post(f"{base}/coffee/archive")
    assert archived.status_code == 200, archived.text
    assert archived.json()["active"] is False
    assert shop.catalogue() == {}
    assert [r["code"] for r in shop.admin.get(base).json()] == []
    assert [r["code"] for r in shop.admin.get(base, {"include_inactive": "true"}).json()] == [
        "coffee"
    ]
    shop.refused(anna, {"mode": "hold"}, 422, "reward_inactive")
    # The pending redemption of an archived reward still completes.
    done = shop.finish(held["redemption_id"], "complete").json()
    assert done["balance"] == {"posted": 300, "held": 0, "available": 300}
    assert_problem(shop.admin.get(f"{base}/tea"), 404, "reward_not_found")

    async def audited(conn: AsyncConnection) -> list[str]:
        rows = await conn.execute(
            select(audit_log.c.action)
            .where(audit_log.c.entity == "reward")
            .order_by(audit_log.c.id)
        )
        return [row.action for row in rows]

    assert shop.stack.read_db(audited) == ["reward.create", "reward.update", "reward.archive"]
    assert shop.stack.verify() == []


def test_api_clients_see_the_catalogue_with_stock(shop: Shop) -> None:
    shop.create(stock=2)
    shop.create(code="cake", kind="percent_off", percent_off=10, amount_off=0, max_discount=500)
    shop.create(code="gone", active=False)
    assert sorted(shop.catalogue()) == ["cake", "coffee"]
    entry = shop.catalogue()["cake"]
    assert entry["stock_left"] is None
    assert entry["definition"]["percent_off"] == 10
    anna = shop.member("Anna", 400)
    held = shop.redeem(anna, {"mode": "hold", "basket": basket(("TART", 2, 1500))}, code="cake")
    assert (held["discount"], held["balance"]["available"]) == (300, 100)
    offers = shop.offers(anna)
    assert offers["available_points"] == 100
    assert {o["reward"]["code"]: o["refusal"] for o in offers["rewards"]} == {
        "cake": "insufficient_points",
        "coffee": "insufficient_points",
    }
