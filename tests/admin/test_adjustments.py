"""Manual adjustments through the admin API: per-role limits, the approval threshold, four eyes
(approval by a second person, never by the requester, never twice), reject, cancel, the audit
trail, and the program settings that drive them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.adjustments import Adjustments
from loyalty.services.context import Staff
from loyalty.services.ledger import Ledger
from tests.admin.conftest import AdminStack, StaffSession
from tests.admin.member_support import Shop, open_shop
from tests.support.problems import assert_problem


def _adjust(session: StaffSession, shop: Shop, member_id: int, points: int, **extra: Any) -> Any:
    return session.post(
        f"/programs/{shop.program_id}/members/{member_id}/adjustments",
        {"points": points, "reason": "Goodwill after a complaint", **extra},
    )


def _decide(session: StaffSession, shop: Shop, request_id: int, what: str, **body: Any) -> Any:
    return session.post(f"/programs/{shop.program_id}/adjustments/{request_id}/{what}", body)


def _member_audit(admin: AdminStack, member_id: int) -> list[str]:
    return [
        row["action"]
        for row in admin.audit_rows()
        if row["entity"] == "member" and row["entity_id"] == str(member_id)
    ]


def test_within_the_threshold_the_points_post_at_once(any_admin: AdminStack) -> None:
    shop = open_shop(any_admin)
    anna = shop.member("Anna")
    shop.earn(anna, 300)
    support = any_admin.session("support")

    response = _adjust(support, shop, anna, 1_000)  # the threshold itself: still at once
    assert response.status_code == 201, response.text
    posted = response.json()
    assert (posted["status"], posted["points"], posted["needs_approval"]) == (
        "posted",
        1_000,
        False,
    )
    assert posted["journal_id"] is not None
    assert posted["balance"]["available"] == 1_300
    assert posted["requested_by"] == support.staff_id
    assert posted["decided_by"] is None
    assert shop.available(anna) == 1_300

    debit = _adjust(support, shop, anna, -300).json()
    assert (debit["status"], debit["balance"]["available"]) == ("posted", 1_000)

    # The journal names the staff member and the reason.
    journal = shop.api.read(f"/programs/{shop.program_id}/journals/{posted['journal_id']}")
    assert journal["kind"] == "adjust"
    assert journal["reason"] == "Goodwill after a complaint"
    assert journal["actor"].endswith(f"<{support.email}>")
    assert _member_audit(any_admin, anna) == ["adjustment.post", "adjustment.post"]
    assert any_admin.stack.verify() == []


def test_a_debit_beyond_the_available_points_is_refused(any_admin: AdminStack) -> None:
    shop = open_shop(any_admin)
    anna = shop.member("Anna")
    shop.earn(anna, 200)
    owner = any_admin.session("owner")
    before = any_admin.stack.snapshot()
    for points in (-201, -5_000):  # at once, and one that would wait
        refused = assert_problem(_adjust(owner, shop, anna, points), 422, "insufficient_points")
        assert (refused["requested"], refused["available"]) == (-points, 200)
    assert any_admin.stack.snapshot().counts == before.counts
    assert shop.available(anna) == 200


def test_above_the_threshold_a_second_person_approves(any_admin: AdminStack) -> None:
    shop = open_shop(any_admin)
    anna = shop.member("Anna")
    support = any_admin.session("support")
    owner = any_admin.session("owner")

    pending = _adjust(support, shop, anna, 5_000).json()
    assert (pending["status"], pending["needs_approval"], pending["journal_id"]) == (
        "pending",
        True,
        None,
    )
    assert shop.available(anna) == 0  # nothing moved yet

    listed = owner.read(f"/programs/{shop.program_id}/adjustments", {"status": "pending"})
    assert [item["request_id"] for item in listed["items"]] == [pending["request_id"]]
    everywhere = owner.read("/adjustments", {"status": "pending"})
    assert [item["request_id"] for item in everywhere["items"]] == [pending["request_id"]]
    assert everywhere["items"][0]["member_name"] == "Anna"

    # The requester cannot approve their own request.
    assert_problem(
        _decide(support, shop, pending["request_id"], "approve"), 403, "four_eyes_required"
    )
    assert shop.available(anna) == 0

    approved = _decide(owner, shop, pending["request_id"], "approve", note="Receipt checked")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["status"], body["decided_by"], body["decision_note"]) == (
        "posted",
        owner.staff_id,
        "Receipt checked",
    )
    assert body["balance"]["available"] == 5_000
    assert shop.available(anna) == 5_000
    journal = shop.api.read(f"/programs/{shop.program_id}/journals/{body['journal_id']}")
    assert "approved by" in journal["actor"]

    # A second approval changes nothing.
    other_owner = any_admin.session("owner")
    again = _decide(other_owner, shop, pending["request_id"], "approve")
    assert assert_problem(again, 409, "adjustment_not_pending")["status"] == 409
    assert shop.available(anna) == 5_000
    assert owner.read(f"/programs/{shop.program_id}/adjustments", {"status": "pending"}) == {
        "items": [],
        "next_before_id": None,
    }
    assert _member_audit(any_admin, anna) == ["adjustment.request", "adjustment.approve"]
    assert any_admin.stack.verify() == []


def test_limits_per_role(any_admin: AdminStack) -> None:
    """The defaults: owner no limit, support 10,000, program_manager 2,000 (either sign)."""
    shop = open_shop(any_admin)
    anna = shop.member("Anna")
    support = any_admin.session("support")
    manager = any_admin.session("program_manager")
    owner = any_admin.session("owner")

    refused = assert_problem(_adjust(support, shop, anna, 10_001), 403, "adjustment_limit_exceeded")
    assert refused["limit"] == 10_000
    assert_problem(_adjust(manager, shop, anna, 2_001), 403, "adjustment_limit_exceeded")
    assert _adjust(manager, shop, anna, 2_000).json()["status"] == "pending"
    big = _adjust(owner, shop, anna, 1_000_000).json()
    assert big["status"] == "pending"

    # An approver's own limit must cover the amount.
    assert_problem(
        _decide(manager, shop, big["request_id"], "approve"), 403, "adjustment_limit_exceeded"
    )
    assert_problem(
        _decide(support, shop, big["request_id"], "approve"), 403, "adjustment_limit_exceeded"
    )
    assert _decide(any_admin.session("owner"), shop, big["request_id"], "approve").json()[
        "status"
    ] == ("posted")
    assert shop.available(anna) == 1_000_000


def test_reject_and_cancel(any_admin: AdminStack) -> None:
    shop = open_shop(any_admin)
    anna = shop.member("Anna")
    support = any_admin.session("support")
    manager = any_admin.session("program_manager")
    first = _adjust(support, shop, anna, 1_500).json()
    second = _adjust(support, shop, anna, 1_800).json()

    assert_problem(_decide(support, shop, first["request_id"], "reject"), 403, "four_eyes_required")
    rejected = _decide(manager, shop, first["request_id"], "reject", note="No receipt")
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["decision_note"]) == (
        "rejected",
        "No receipt",
    )
    assert_problem(
        _decide(any_admin.session("owner"), shop, first["request_id"], "approve"),
        409,
        "adjustment_not_pending",
    )

    # Only the requester cancels.
    assert_problem(_decide(manager, shop, second["request_id"], "cancel"), 403, "forbidden")
    cancelled = _decide(support, shop, second["request_id"], "cancel").json()
    assert (cancelled["status"], cancelled["decided_by"]) == ("cancelled", None)
    assert_problem(
        _decide(support, shop, second["request_id"], "cancel"), 409, "adjustment_not_pending"
    )
    assert shop.available(anna) == 0
    everything = support.read(f"/programs/{shop.program_id}/adjustments")["items"]
    assert [(item["request_id"], item["status"]) for item in everything] == [
        (second["request_id"], "cancelled"),
        (first["request_id"], "rejected"),
    ]
    assert _member_audit(any_admin, anna) == [
        "adjustment.request",
        "adjustment.request",
        "adjustment.reject",
        "adjustment.cancel",
    ]
    assert_problem(
        support.get(f"/programs/{shop.program_id}/adjustments", {"status": "lost"}),
        400,
        "validation_failed",
    )


def test_an_approval_the_points_no_longer_cover_leaves_the_request_pending(
    any_admin: AdminStack,
) -> None:
    shop = open_shop(any_admin)
    anna = shop.member("Anna")
    shop.earn(anna, 2_000)
    support = any_admin.session("support")
    owner = any_admin.session("owner")
    pending = _adjust(support, shop, anna, -1_500).json()
    assert pending["status"] == "pending"
    shop.api.ok(f"/programs/{shop.program_id}/members/{anna}/redeem", {"points": 1_000})

    assert_problem(
        _decide(owner, shop, pending["request_id"], "approve"), 422, "insufficient_points"
    )
    listed = owner.read(f"/programs/{shop.program_id}/adjustments", {"status": "pending"})
    assert [item["request_id"] for item in listed["items"]] == [pending["request_id"]]
    # Once the member has the points again, the same request can still be approved.
    shop.earn(anna, 600)
    approved = _decide(owner, shop, pending["request_id"], "approve").json()
    assert (approved["status"], approved["balance"]["available"]) == ("posted", 100)
    assert any_admin.stack.verify() == []


def test_program_settings_drive_the_policy(any_admin: AdminStack) -> None:
    shop = open_shop(any_admin)
    anna = shop.member("Anna")
    owner = any_admin.session("owner")
    support = any_admin.session("support")
    manager = any_admin.session("program_manager")
    path = f"/programs/{shop.program_id}"

    program = owner.read(path)
    assert program["adjustment_approval_threshold"] == 1_000
    assert program["adjustment_limits"] is None
    assert program["adjustment_limits_in_force"] == {
        "owner": None,
        "support": 10_000,
        "program_manager": 2_000,
    }
    assert_problem(support.patch(path, {"adjustment_approval_threshold": 5}), 403, "forbidden")
    assert_problem(
        owner.patch(path, {"adjustment_limits": {"cashier": 100}}), 400, "validation_failed"
    )
    assert_problem(
        owner.patch(path, {"adjustment_limits": {"support": -1}}), 400, "validation_failed"
    )

    changed = manager.patch(
        path, {"adjustment_approval_threshold": 100, "adjustment_limits": {"support": 500}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["adjustment_limits"] == {"support": 500}
    assert changed.json()["adjustment_limits_in_force"] == {"support": 500}
    audit = [row for row in any_admin.audit_rows() if row["action"] == "program.update"][-1]
    assert audit["before"]["adjustment_limits"] is None
    assert audit["after"]["adjustment_limits"] == {"support": 500}
    assert audit["after"]["adjustment_approval_threshold"] == 100

    assert _adjust(support, shop, anna, 100).json()["status"] == "posted"
    assert _adjust(support, shop, anna, 101).json()["status"] == "pending"
    assert_problem(_adjust(support, shop, anna, 501), 403, "adjustment_limit_exceeded")
    # Roles left out of the program's own table may not adjust, owners included.
    assert_problem(_adjust(manager, shop, anna, 1), 403, "adjustment_limit_exceeded")
    assert_problem(_adjust(owner, shop, anna, 1), 403, "adjustment_limit_exceeded")

    # Other fields leave the table alone; null goes back to the defaults.
    kept = owner.patch(path, {"name_en": "Bonus"}).json()
    assert kept["adjustment_limits"] == {"support": 500}
    reset = owner.patch(path, {"adjustment_limits": None}).json()
    assert reset["adjustment_limits"] is None
    assert reset["adjustment_limits_in_force"]["owner"] is None
    assert _adjust(owner, shop, anna, 1).json()["status"] == "posted"
    listed = owner.read("/programs")
    assert [p["adjustment_approval_threshold"] for p in listed] == [100]


def test_nothing_crosses_merchants(any_admin: AdminStack) -> None:
    shop = open_shop(any_admin)
    anna = shop.member("Anna")
    pending = _adjust(any_admin.session("support"), shop, anna, 5_000).json()
    rival = any_admin.session("owner", merchant_id=any_admin.rival_id)
    assert_problem(_adjust(rival, shop, anna, 10), 404, "program_not_found")
    assert_problem(_decide(rival, shop, pending["request_id"], "approve"), 404, "program_not_found")
    assert_problem(rival.get(f"/programs/{shop.program_id}/adjustments"), 404, "program_not_found")
    assert rival.read("/adjustments")["items"] == []
    # The rival's own program does not open the shop's request either.
    theirs = open_shop(any_admin, api=any_admin.stack.rival)
    theirs_path = f"/programs/{theirs.program_id}/adjustments/{pending['request_id']}/approve"
    assert_problem(rival.post(theirs_path, {}), 404, "adjustment_request_not_found")
    stranger = theirs.member("Rita")
    assert_problem(_adjust(any_admin.session("owner"), shop, stranger, 10), 404, "member_not_found")


def test_unknown_or_not_enrolled(any_admin: AdminStack) -> None:
    shop = open_shop(any_admin)
    other = open_shop(any_admin)
    outsider = other.member("Otto")
    owner = any_admin.session("owner")
    assert_problem(_adjust(owner, shop, outsider, 10), 404, "member_not_enrolled")
    assert_problem(_adjust(owner, shop, 999_999, 10), 404, "member_not_found")
    assert_problem(_adjust(owner, shop, outsider, 0), 400, "invalid_amount")
    assert_problem(
        owner.post(
            f"/programs/{shop.program_id}/members/{outsider}/adjustments",
            {"points": 10, "reason": "   "},
        ),
        400,
        "reason_required",
    )
    assert_problem(_decide(owner, shop, 999_999, "approve"), 404, "adjustment_request_not_found")


def test_a_retry_with_the_same_key_posts_once(any_admin: AdminStack) -> None:
    shop = open_shop(any_admin)
    anna = shop.member("Anna")
    support = any_admin.session("support")
    path = f"/programs/{shop.program_id}/members/{anna}/adjustments"
    body = {"points": 300, "reason": "Birthday"}
    headers = {**support.headers(), "Idempotency-Key": "adjust-anna-1"}
    first = any_admin.client.post("/api/v1/admin" + path, json=body, headers=headers)
    second = any_admin.client.post("/api/v1/admin" + path, json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["request_id"] == second.json()["request_id"]
    assert shop.available(anna) == 300


def _staff(admin: AdminStack, role: str) -> Staff:
    view = admin.add_staff(role)
    return Staff(
        staff_id=view.staff_id,
        merchant_id=admin.shop_id,
        role=view.role,
        email=view.email,
        display_name=view.display_name,
    )


def test_concurrent_approvals_post_once(any_admin: AdminStack) -> None:
    """Five owners approve the same request at the same moment, each through its own ledger
    (as five app processes would): one wins, the others hear it is no longer pending."""
    shop = open_shop(any_admin)
    anna = shop.member("Anna")
    pending = _adjust(any_admin.session("support"), shop, anna, 4_000).json()
    approvers = [_staff(any_admin, "owner") for _ in range(5)]
    engine = any_admin.stack.engine

    async def approve_all() -> list[object]:
        async def one(staff: Staff) -> object:
            service = Adjustments(Ledger(engine, clock=any_admin.clock))
            try:
                return await service.approve(staff, shop.program_id, pending["request_id"])
            except DomainError as error:
                return error.code

        return list(await asyncio.gather(*(one(staff) for staff in approvers)))

    outcomes = any_admin.stack.run(approve_all)
    posted = [o for o in outcomes if not isinstance(o, ErrorCode)]
    assert len(posted) == 1, outcomes
    assert (
        sorted(str(o) for o in outcomes if isinstance(o, ErrorCode))
        == ["adjustment_not_pending"] * 4
    )
    assert shop.available(anna) == 4_000
    history = shop.api.read(f"/programs/{shop.program_id}/members/{anna}/history")["items"]
    assert [item["kind"] for item in history] == ["adjust"]
    assert any_admin.stack.verify() == []


@pytest.mark.parametrize("what", ["approve", "reject", "cancel"])
def test_decisions_need_a_body_of_the_right_shape(admin: AdminStack, what: str) -> None:
    shop = open_shop(admin)
    anna = shop.member("Anna")
    owner = admin.session("owner")
    pending = _adjust(admin.session("support"), shop, anna, 5_000).json()
    assert_problem(
        _decide(owner, shop, pending["request_id"], what, verdict="yes"), 400, "validation_failed"
    )


def test_the_approvals_page(admin: AdminStack) -> None:
    shop = open_shop(admin)
    anna = shop.member("Anna")
    support_page = admin.page_session("support")
    request = support_page.call(
        "POST",
        f"/programs/{shop.program_id}/members/{anna}/adjustments",
        {"points": 5_000, "reason": "Lost card"},
    )
    assert request.status_code == 201, request.text
    request_id = request.json()["request_id"]
    base = f"/api/v1/admin/programs/{shop.program_id}/adjustments/{request_id}"

    mine = support_page.page("/admin/approvals", {"lang": "en"})
    assert mine.status_code == 200, mine.text
    assert "Your request" in mine.text
    assert f'data-api="POST {base}/cancel"' in mine.text
    assert f"{base}/approve" not in mine.text
    assert f"{base}/reject" not in mine.text

    owner = admin.page_session("owner").page("/admin/approvals", {"lang": "en"}).text
    assert f'data-api="POST {base}/approve"' in owner
    assert f'data-api="POST {base}/reject"' in owner
    assert f"{base}/cancel" not in owner

    manager = admin.page_session("program_manager").page("/admin/approvals", {"lang": "en"})
    assert "above your limit" in manager.text
    assert f"{base}/approve" not in manager.text
    assert f'data-api="POST {base}/reject"' in manager.text

    # Approved through the page's call (the cookie session), it moves to the decided list.
    approver = admin.page_session("owner")
    assert (
        approver.call(
            "POST", f"/programs/{shop.program_id}/adjustments/{request_id}/approve", {}
        ).status_code
        == 200
    )
    after = approver.page("/admin/approvals", {"lang": "en"}).text
    assert "No adjustments are waiting for approval." in after
    assert 'id="decided-adjustments"' in after
