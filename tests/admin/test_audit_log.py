"""GET /audit-log: the merchant's own entries, newest first, in keyset pages, filterable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.audit import audit_entries, record_change
from loyalty.services.context import Staff
from tests.admin.conftest import PASSWORD, AdminStack, StaffSession
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


# --- Filters: actor, action, entity id, time range -------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def test_filter_by_actor_action_and_entity_id(any_admin: AdminStack) -> None:
    owner = any_admin.session("owner")  # its creation: actor "system"
    second_owner = any_admin.session("owner")  # actor "system"
    made = owner.post(
        "/staff",
        {"email": "lena@example.com", "password": PASSWORD, "role": "support",
         "display_name": "Lena"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    lena = made.json()["staff_id"]
    _rename(owner, lena, 2)
    renamed_by_second = second_owner.patch(f"/staff/{owner.staff_id}", {"display_name": "Olga"})
    assert renamed_by_second.status_code == 200, renamed_by_second.text

    by_owner = owner.read("/audit-log", {"staff_id": owner.staff_id})["entries"]
    assert [(e["action"], e["entity_id"]) for e in by_owner] == [
        ("update", str(lena)),
        ("update", str(lena)),
        ("create", str(lena)),
    ]
    assert {e["staff_id"] for e in by_owner} == {owner.staff_id}
    by_second = owner.read("/audit-log", {"staff_id": second_owner.staff_id})["entries"]
    assert [(e["action"], e["entity_id"]) for e in by_second] == [("update", str(owner.staff_id))]

    creations = owner.read("/audit-log", {"action": "create"})["entries"]
    assert [e["entity_id"] for e in creations] == [
        str(lena),
        str(second_owner.staff_id),
        str(owner.staff_id),
    ]
    assert [e["staff_id"] for e in creations] == [owner.staff_id, None, None]

    about_lena = owner.read("/audit-log", {"entity": "staff", "entity_id": str(lena)})["entries"]
    assert [e["action"] for e in about_lena] == ["update", "update", "create"]
    assert about_lena[0]["after"]["display_name"] == "Name 1"
    # Filters combine: all must match.
    combined = {"staff_id": owner.staff_id, "action": "create", "entity_id": str(lena)}
    assert [e["entity_id"] for e in owner.read("/audit-log", combined)["entries"]] == [str(lena)]
    nothing = {"staff_id": second_owner.staff_id, "entity_id": str(lena)}
    assert owner.read("/audit-log", nothing)["entries"] == []
    assert owner.read("/audit-log", {"action": "no.such_action"})["entries"] == []


def test_filter_by_time_range(any_admin: AdminStack) -> None:
    owner = any_admin.session("owner")
    user = any_admin.add_staff("support")
    clock = any_admin.clock
    times = []
    for number in range(4):
        times.append(clock.advance(hours=1))
        assert owner.patch(f"/staff/{user.staff_id}", {"display_name": f"Hour {number}"}).is_success

    def names(**params: Any) -> list[str]:
        entries = owner.read("/audit-log", {"entity_id": str(user.staff_id), **params})["entries"]
        return [e["after"]["display_name"] for e in entries]

    # ``from`` is inclusive, ``to`` exclusive.
    assert names(**{"from": _iso(times[1]), "to": _iso(times[3])}) == ["Hour 2", "Hour 1"]
    assert names(**{"from": _iso(times[3])}) == ["Hour 3"]
    assert names(**{"to": _iso(times[1])}) == ["Hour 0", user.display_name]
    # Another zone's notation of the same instant selects the same entries.
    berlin = timezone(timedelta(hours=1))
    assert names(**{"from": times[1].astimezone(berlin).isoformat()}) == [
        "Hour 3",
        "Hour 2",
        "Hour 1",
    ]
    assert names(**{"from": _iso(times[3] + timedelta(seconds=1))}) == []


def test_filtered_pages_keep_their_filter(admin: AdminStack) -> None:
    owner = admin.session("owner")
    first = admin.add_staff("support")
    second = admin.add_staff("support")
    for number in range(3):
        _rename(owner, first.staff_id, 1)
        assert owner.patch(f"/staff/{second.staff_id}", {"display_name": f"S {number}"}).is_success
    since = admin.clock.now  # every rename happened at this instant
    pages = _all_pages(
        owner, limit=2, entity_id=str(second.staff_id), action="update", **{"from": _iso(since)}
    )
    assert [len(page) for page in pages] == [2, 1]
    entries = [entry for page in pages for entry in page]
    assert {e["entity_id"] for e in entries} == {str(second.staff_id)}
    assert [e["after"]["display_name"] for e in entries] == ["S 2", "S 1", "S 0"]


@pytest.mark.parametrize(
    ("params", "in_detail"),
    [
        ({"from": "2025-03-01T00:00:00"}, "time zone"),
        ({"to": "2025-03-01T00:00:00"}, "time zone"),
        ({"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, "must be before"),
        ({"from": "2025-03-01T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, "must be before"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2025-02-30T00:00:00Z"}, "to"),
        ({"staff_id": 0}, "staff_id"),
        ({"staff_id": "me"}, "staff_id"),
        ({"action": ""}, "action"),
        ({"action": "x" * 65}, "action"),
        ({"entity_id": ""}, "entity_id"),
        ({"entity_id": "x" * 65}, "entity_id"),
    ],
)
def test_bad_filters_are_refused_clearly(
    admin: AdminStack, params: dict[str, Any], in_detail: str
) -> None:
    owner = admin.session("owner")
    body = assert_problem(owner.get("/audit-log", params), 400, "validation_failed")
    assert in_detail in str(body), body


def test_the_actor_filter_never_reaches_another_merchant(admin: AdminStack) -> None:
    shop_owner = admin.session("owner")
    rival_owner = admin.session("owner", merchant_id=admin.rival_id)
    rival_user = admin.add_staff("support", merchant_id=admin.rival_id)
    _rename(rival_owner, rival_user.staff_id, 2)
    assert rival_owner.read("/audit-log", {"staff_id": rival_owner.staff_id})["entries"]
    assert shop_owner.read("/audit-log", {"staff_id": rival_owner.staff_id})["entries"] == []
    about = {"entity": "staff", "entity_id": str(rival_user.staff_id)}
    assert shop_owner.read("/audit-log", about)["entries"] == []


def test_the_service_checks_the_time_range_itself(admin: AdminStack) -> None:
    owner = admin.session("owner")
    engine = admin.stack.engine
    naive = datetime(2025, 3, 1)
    with pytest.raises(DomainError) as refused:
        admin.stack.run(lambda: audit_entries(engine, owner.merchant_id, since=naive))
    assert refused.value.code is ErrorCode.VALIDATION_FAILED
    moment = datetime(2025, 3, 1, tzinfo=UTC)
    with pytest.raises(DomainError, match="must be before"):
        admin.stack.run(
            lambda: audit_entries(engine, owner.merchant_id, since=moment, until=moment)
        )
