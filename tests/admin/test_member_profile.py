"""The member 360-degree view: profile and consents, per program balance with lots and expiry,
pending holds, tier and history, the ledger (with further pages), orders with returns,
redemptions, adjustment requests, merges, and the member's audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction
from loyalty.db.tables import member_consents
from tests.admin.conftest import AdminStack, StaffSession
from tests.admin.member_support import Shop, open_shop
from tests.support.problems import assert_problem

TIERS = {
    "levels": [
        {"code": "bronze", "name": {"de": "Bronze", "en": "Bronze"}, "threshold": 0},
        {"code": "silver", "name": {"de": "Silber", "en": "Silver"}, "threshold": 300},
    ],
    "basis": "points",
    "window": "calendar_year",
    "downgrade": "one_step",
}


def _line(line_id: str, cents: int, quantity: int = 1) -> dict[str, Any]:
    return {"line_id": line_id, "sku": f"SKU{line_id}", "quantity": quantity, "unit_price": cents}


def _publish_tiers(owner: StaffSession, program_id: int) -> None:
    draft = owner.post(f"/programs/{program_id}/rule-sets", {}).json()
    version = draft["version"]
    tiers = owner.put(f"/programs/{program_id}/rule-sets/{version}/tiers", TIERS)
    assert tiers.status_code == 200, tiers.text
    published = owner.post(f"/programs/{program_id}/rule-sets/{version}/publish", {})
    assert published.status_code == 200, published.text


def _consent(admin: AdminStack, member_id: int, program_id: int, at: datetime) -> None:
    async def work(conn: AsyncConnection) -> None:
        await conn.execute(
            member_consents.insert().values(
                member_id=member_id,
                program_id=program_id,
                kind="marketing",
                granted=True,
                text_version="2025-01",
                source="wallet",
                at=at,
            )
        )

    admin.stack.run(lambda: in_transaction(admin.stack.engine, work))


def _setup(admin: AdminStack) -> tuple[Shop, int, StaffSession]:
    shop = open_shop(admin)
    owner = admin.session("owner")
    _publish_tiers(owner, shop.program_id)
    mia = shop.member("Mia Muster", email="mia@example.com", phone="+4915112345678")
    _consent(admin, mia, shop.program_id, admin.clock())
    order = shop.api.ok(
        f"/programs/{shop.program_id}/orders",
        {
            "member_id": mia,
            "reference": "B-1",
            "basket": {"currency": "EUR", "lines": [_line("1", 25_000), _line("2", 1_000, 2)]},
        },
    )
    assert order["points"] == 270
    shop.api.ok(
        f"/programs/{shop.program_id}/orders/B-1/returns",
        {"lines": [{"line_id": "2", "quantity": 1}], "reference": "R-1"},
    )
    reward = {
        "code": "coffee",
        "kind": "amount_off",
        "name": {"de": "Kaffee", "en": "Coffee"},
        "points_cost": 50,
        "amount_off": 250,
    }
    assert owner.post(f"/programs/{shop.program_id}/rewards", reward).status_code == 201
    shop.api.ok(
        f"/programs/{shop.program_id}/members/{mia}/rewards/coffee/redeem", {"mode": "voucher"}
    )
    shop.hold(mia, 20)
    support = admin.session("support")
    posted = support.post(
        f"/programs/{shop.program_id}/members/{mia}/adjustments",
        {"points": 100, "reason": "Broken cup"},
    )
    assert posted.status_code == 201, posted.text
    pending = support.post(
        f"/programs/{shop.program_id}/members/{mia}/adjustments",
        {"points": 2_000, "reason": "Lost card"},
    )
    assert pending.json()["status"] == "pending"
    return shop, mia, support


def test_the_360_view(any_admin: AdminStack) -> None:
    shop, mia, support = _setup(any_admin)
    other = shop.member("Mia alt")
    shop.earn(other, 5)
    merged = support.post(f"/members/{other}/merge", {"into_member_id": mia, "reason": "Twice"})
    assert merged.status_code == 200, merged.text

    view = any_admin.session("program_manager").read(f"/members/{mia}")
    member = view["member"]
    assert (member["member_id"], member["display_name"], member["email"], member["phone"]) == (
        mia,
        "Mia Muster",
        "mia@example.com",
        "+4915112345678",
    )
    assert member["card_number_formatted"].replace(" ", "") == member["card_number"]
    assert (member["erased"], member["merged_into_id"]) == (False, None)
    assert [(c["kind"], c["granted"], c["source"]) for c in view["consents"]] == [
        ("marketing", True, "wallet")
    ]
    assert [(m["source_member_id"], m["target_member_id"]) for m in view["merges"]] == [
        (other, mia)
    ]

    (section,) = view["programs"]
    assert section["program_id"] == shop.program_id
    # 270 earned, 10 clawed back by the return, 50 redeemed, 100 adjusted, 5 merged in;
    # 20 of it held for an open sale.
    assert section["balance"] == {"posted": 315, "held": 20, "available": 295}
    assert sum(lot["remaining"] for lot in section["lots"]) == 315
    assert all(lot["expires_at"] for lot in section["lots"])  # 30-day expiry
    expiries = [lot["expires_at"] for lot in section["lots"]]
    assert expiries == sorted(expiries)
    assert [hold["points"] for hold in section["holds"]] == [20]
    assert section["tier"]["current"]["code"] == "bronze"
    assert section["tier"]["qualifying_total"] == 260
    kinds = [item["kind"] for item in section["ledger"]["items"]]
    assert kinds == ["transfer", "adjust", "hold", "redeem", "refund", "earn"]
    transfer = section["ledger"]["items"][0]
    assert (transfer["delta"], transfer["counter_member_id"]) == (5, other)
    adjust = section["ledger"]["items"][1]
    assert adjust["actor"].endswith(f"<{support.email}>")
    assert adjust["reason"] == "Broken cup"
    (order,) = section["orders"]
    assert (order["reference"], order["total"], order["points"]) == ("B-1", 27_000, 270)
    assert [(r["reference"], r["points"]) for r in order["returns"]] == [("R-1", 10)]
    (redemption,) = section["redemptions"]
    assert (redemption["reward_code"], redemption["status"], redemption["points"]) == (
        "coffee",
        "completed",
        50,
    )
    assert redemption["voucher_code"]
    assert [(a["points"], a["status"]) for a in section["adjustments"]] == [
        (2_000, "pending"),
        (100, "posted"),
    ]
    assert section["adjustment_policy"]["approval_threshold"] == 1_000
    actions = [entry["action"] for entry in view["audit"]]
    assert actions == ["member.merge_in", "adjustment.request", "adjustment.post"]


def test_the_ledger_pages(any_admin: AdminStack) -> None:
    shop = open_shop(any_admin)
    ida = shop.member("Ida")
    for points in range(1, 8):
        shop.earn(ida, points)
    support = any_admin.session("support")
    path = f"/programs/{shop.program_id}/members/{ida}/ledger"
    first = support.read(path, {"limit": 3})
    assert [item["points"] for item in first["items"]] == [7, 6, 5]
    second = support.read(path, {"limit": 3, "cursor": first["next_cursor"]})
    assert [item["points"] for item in second["items"]] == [4, 3, 2]
    third = support.read(path, {"limit": 3, "cursor": second["next_cursor"]})
    assert ([item["points"] for item in third["items"]], third["next_cursor"]) == ([1], None)
    assert_problem(support.get(path, {"cursor": "nonsense"}), 400, "invalid_cursor")
    other = open_shop(any_admin)
    assert_problem(
        support.get(f"/programs/{other.program_id}/members/{ida}/ledger"),
        404,
        "member_not_enrolled",
    )
    rival = any_admin.session("support", merchant_id=any_admin.rival_id)
    assert_problem(rival.get(path), 404, "program_not_found")


def test_an_erased_member_shows_no_personal_data(admin: AdminStack) -> None:
    shop = open_shop(admin)
    eva = shop.member("Eva", email="eva@example.com")
    shop.earn(eva, 40)
    privacy = admin.stack.app.state.member_privacy
    admin.stack.run(privacy.erase, eva, admin.shop_id, admin.clock())
    view = admin.session("support").read(f"/members/{eva}")
    member = view["member"]
    assert member["erased"] is True
    assert (member["display_name"], member["email"], member["card_number"]) == (None, None, None)
    assert view["programs"][0]["balance"]["posted"] == 0
    assert [item["kind"] for item in view["programs"][0]["ledger"]["items"]] == [
        "expire",
        "earn",
    ]
    assert [entry["action"] for entry in view["audit"]] == ["member.erase"]


def test_a_program_without_tiers_shows_none(admin: AdminStack) -> None:
    shop = open_shop(admin)
    leo = shop.member("Leo")
    view = admin.session("owner").read(f"/members/{leo}")
    assert view["programs"][0]["tier"] is None
    assert view["programs"][0]["lots"] == []
    assert_problem(admin.session("owner").get("/members/999999"), 404, "member_not_found")


def test_the_member_pages_show_each_role_its_controls(admin: AdminStack) -> None:
    shop = open_shop(admin)
    mia = shop.member("Mia Muster", email="mia@example.com")
    shop.earn(mia, 1_234)
    adjust = f'data-api="POST /api/v1/admin/programs/{shop.program_id}/members/{mia}/adjustments"'
    merge = f'data-api="POST /api/v1/admin/members/{mia}/merge"'

    support = admin.page_session("support")
    found = support.page("/admin/members", {"q": "MIA@example.com", "lang": "en"})
    assert found.status_code == 200, found.text
    assert f'href="/admin/members/{mia}"' in found.text
    assert "Content-Security-Policy" in found.headers
    page = support.page(f"/admin/members/{mia}", {"lang": "en"})
    assert page.status_code == 200, page.text
    assert "Mia Muster" in page.text
    assert ">1,234<" in page.text  # the available balance, formatted
    assert adjust in page.text
    assert merge in page.text
    assert "Your limit per adjustment: 10,000 points." in page.text

    german = support.page(f"/admin/members/{mia}", {"lang": "de"}).text
    assert "Korrektur buchen" in german
    assert ">1.234<" in german

    # Program managers may adjust (a smaller limit) but not merge.
    manager = admin.page_session("program_manager")
    page = manager.page(f"/admin/members/{mia}", {"lang": "en"})
    assert adjust in page.text
    assert "Your limit per adjustment: 2,000 points." in page.text
    assert merge not in page.text
    # With a table that leaves them out, no adjust form either.
    owner = admin.session("owner")
    limited = owner.patch(f"/programs/{shop.program_id}", {"adjustment_limits": {"support": 500}})
    assert limited.status_code == 200, limited.text
    assert adjust not in manager.page(f"/admin/members/{mia}").text
    assert adjust in support.page(f"/admin/members/{mia}").text

    # A merged-away record offers nothing and points to the target.
    other = shop.member("Mia Zwei")
    merged = owner.post(f"/members/{other}/merge", {"into_member_id": mia, "reason": "x"})
    assert merged.status_code == 200, merged.text
    page = support.page(f"/admin/members/{other}", {"lang": "en"})
    assert f'href="/admin/members/{mia}"' in page.text
    assert "merged into" in page.text
    assert f"/members/{other}/adjustments" not in page.text
    assert f'data-api="POST /api/v1/admin/members/{other}/merge"' not in page.text
    assert support.page("/admin/members/999999").status_code == 404


def test_the_member_pages_need_a_session(admin: AdminStack) -> None:
    response = admin.client.get("/admin/members", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login")
