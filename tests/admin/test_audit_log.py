"""GET /audit-log: the merchant's own entries, newest first, in keyset pages, filterable."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction
from loyalty.services.audit import audit_entries, record_change
from loyalty.services.context import Staff
from tests.admin.conftest import AdminStack, StaffSession
from tests.support.problems import assert_problem


def _rename(owner: StaffSession, staff_id: int, times: int) -> None:
    for number in range(times):
        response = owner.patch(f"/staff/{staff_id}", {"display_name": f"Name {number}"})
        assert response.status_code == 200, response.text


def _all_pages(session: StaffSession, limit: int, **filters: Any) -> list[list[dict[str, Any]]]:
    pages = []
    params: dict[str, Any] = {"limit": limit, **filters}
    while True:
        page = session.read("/audit-log", params)
        assert set(page) == {"entries", "next_before_id"}
        pages.append(page["entries"])
        if page["next_before_id"] is None:
            return pages
        assert page["next_before_id"] == page["entries"][-1]["id"]
        params["before_id"] = page["next_before_id"]


def test_audit_log_pages_newest_first(any_admin: AdminStack) -> None:
    owner = any_admin.session("owner")
    user = any_admin.add_staff("support")
    _rename(owner, user.staff_id, 5)  # 2 creations + 5 renames = 7 entries

    pages = _all_pages(owner, limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    ids = [entry["id"] for page in pages for entry in page]
    assert ids == sorted(ids, reverse=True)
    assert ids == [row["id"] for row in reversed(any_admin.audit_rows())]

    newest = pages[0][0]
    assert set(newest) == {
        "id", "at", "actor", "staff_id", "action", "entity", "entity_id", "program_id",
        "before", "after",
    }  # fmt: skip
    assert newest["action"] == "update"
    assert newest["after"]["display_name"] == "Name 4"
    assert newest["before"]["display_name"] == "Name 3"
    assert newest["at"].endswith("Z")


def test_a_full_last_page_says_there_is_no_more(admin: AdminStack) -> None:
    owner = admin.session("owner")
    user = admin.add_staff("support")
    _rename(owner, user.staff_id, 2)  # 4 entries
    assert [len(page) for page in _all_pages(owner, limit=2)] == [2, 2]
    assert [len(page) for page in _all_pages(owner, limit=4)] == [4]


def test_new_entries_do_not_shift_the_pages(admin: AdminStack) -> None:
    owner = admin.session("owner")
    user = admin.add_staff("support")
    _rename(owner, user.staff_id, 3)
    first = owner.read("/audit-log", {"limit": 2})
    _rename(owner, user.staff_id, 2)  # newer entries arrive meanwhile
    second = owner.read("/audit-log", {"limit": 2, "before_id": first["next_before_id"]})
    assert second["entries"][0]["id"] == first["entries"][-1]["id"] - 1


def test_filter_by_entity_and_program(admin: AdminStack) -> None:
    owner = admin.session("owner")
    program = admin.stack.create_program()
    program_id = program["program_id"]
    staff = Staff(
        staff_id=owner.staff_id,
        merchant_id=owner.merchant_id,
        role="owner",
        email=owner.email,
        display_name="Olga",
    )

    async def record(conn: AsyncConnection) -> None:
        await record_change(
            conn,
            staff,
            action="update",
            entity="tier_policy",
            entity_id=program_id,
            at=admin.clock.now,
            before={"tiers": []},
            after={"tiers": ["gold"]},
            program_id=program_id,
        )

    admin.stack.run(in_transaction, admin.stack.engine, record)

    by_program = owner.read("/audit-log", {"program_id": program_id})["entries"]
    assert [(e["entity"], e["program_id"]) for e in by_program] == [("tier_policy", program_id)]
    by_entity = owner.read("/audit-log", {"entity": "staff"})["entries"]
    assert {e["entity"] for e in by_entity} == {"staff"}
    assert len(by_entity) == 1
    assert owner.read("/audit-log", {"program_id": program_id + 1})["entries"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": "ten"},
        {"before_id": 0},
        {"program_id": -1},
        {"entity": ""},
        {"entity": "x" * 65},
    ],
)
def test_bad_query_parameters(admin: AdminStack, params: dict[str, Any]) -> None:
    owner = admin.session("owner")
    assert_problem(owner.get("/audit-log", params), 400, "validation_failed")


def test_merchants_never_see_each_others_staff_or_audit(any_admin: AdminStack) -> None:
    shop_owner = any_admin.session("owner")
    shop_user = any_admin.add_staff("support")
    _rename(shop_owner, shop_user.staff_id, 2)
    rival_owner = any_admin.session("owner", merchant_id=any_admin.rival_id)
    rival_support = any_admin.session("support", merchant_id=any_admin.rival_id)

    for rival in (rival_owner, rival_support):
        listed = rival.read("/staff")
        assert {user["staff_id"] for user in listed} == {
            rival_owner.staff_id,
            rival_support.staff_id,
        }
        entries = [entry for page in _all_pages(rival, limit=1) for entry in page]
        assert {entry["entity_id"] for entry in entries} == {
            str(rival_owner.staff_id),
            str(rival_support.staff_id),
        }
        # Paging from below one of the shop's ids shows nothing of the shop either.
        shop_ids = [
            row["id"] for row in any_admin.audit_rows() if row["merchant_id"] != rival.merchant_id
        ]
        page = rival.read("/audit-log", {"before_id": max(shop_ids)})
        assert all(entry["id"] not in shop_ids for entry in page["entries"])
        assert_problem(
            rival.patch(f"/staff/{shop_user.staff_id}", {"display_name": "x"}),
            403 if rival is rival_support else 404,
            "forbidden" if rival is rival_support else "staff_not_found",
        )
    shop_entries = [entry for page in _all_pages(shop_owner, limit=50) for entry in page]
    assert len(shop_entries) == 4
    assert str(rival_owner.staff_id) not in {entry["entity_id"] for entry in shop_entries}


def test_the_service_bounds_the_page_size_itself(admin: AdminStack) -> None:
    owner = admin.session("owner")
    user = admin.add_staff("support")
    _rename(owner, user.staff_id, 3)
    engine = admin.stack.engine

    tiny = admin.stack.run(lambda: audit_entries(engine, owner.merchant_id, limit=0))
    assert len(tiny.entries) == 1
    assert tiny.next_before_id == tiny.entries[0].id
    assert tiny.entries[0].at == admin.clock.now
    assert tiny.entries[0].at.tzinfo is not None
    huge = admin.stack.run(lambda: audit_entries(engine, owner.merchant_id, limit=10**6))
    assert len(huge.entries) == 5
    assert huge.next_before_id is None
