"""Member search in the back office: by card number (as typed, with spaces or dashes), email
(any case), phone (national or international form), name (part of it, any case) and member
number; scoped to the merchant; erased members without personal data; pages."""

from __future__ import annotations

from typing import Any

import pytest

from loyalty.domain.cards import format_card_number
from loyalty.services.member_search import SearchKeys, search_keys
from tests.admin.conftest import AdminStack, StaffSession
from tests.admin.member_support import open_shop
from tests.support.problems import assert_problem


def _ids(session: StaffSession, query: str, **params: Any) -> list[int]:
    page = session.read("/members", {"q": query, **params})
    return [hit["member_id"] for hit in page["items"]]


@pytest.fixture
def people(any_admin: AdminStack) -> dict[str, int]:
    shop = open_shop(any_admin)
    anna = shop.member("Anna Alt", email="anna.alt@example.com", phone="+4915112345678")
    hanna = shop.member("Hanna Berg", email="hanna@example.org")
    otto = shop.member("Otto Nanna")
    shop.earn(anna, 120)
    return {"anna": anna, "hanna": hanna, "otto": otto, "program": shop.program_id}


def test_by_card_number_as_typed(any_admin: AdminStack, people: dict[str, int]) -> None:
    support = any_admin.session("support")
    card = support.read(f"/members/{people['anna']}")["member"]["card_number"]
    spaced = format_card_number(card)
    dashed = spaced.replace(" ", "-")
    for typed in (card, spaced, dashed, f"  {card} "):
        page = support.read("/members", {"q": typed})
        assert [hit["member_id"] for hit in page["items"]] == [people["anna"]], typed
        assert page["items"][0]["matched_by"] == ["card_number"]
    hit = support.read("/members", {"q": card})["items"][0]
    assert hit["card_number_formatted"] == spaced
    assert hit["accounts"] == [
        {
            "program_id": people["program"],
            "program_name": "Bonuspunkte",
            "posted": 120,
            "held": 0,
            "available": 120,
        }
    ]


def test_by_email_in_any_case(any_admin: AdminStack, people: dict[str, int]) -> None:
    support = any_admin.session("support")
    assert _ids(support, "ANNA.Alt@Example.COM") == [people["anna"]]
    assert _ids(support, " hanna@example.org ") == [people["hanna"]]
    # Exact addresses only: part of one is no address (and no name).
    assert _ids(support, "anna.alt@example") == []
    hit = support.read("/members", {"q": "anna.alt@example.com"})["items"][0]
    assert hit["matched_by"] == ["email"]


def test_by_phone_in_any_form(any_admin: AdminStack, people: dict[str, int]) -> None:
    support = any_admin.session("support")
    for typed in ("+4915112345678", "+49 151 1234 5678", "0151 12345678", "0151-12345678"):
        assert _ids(support, typed) == [people["anna"]], typed


def test_by_name_case_insensitive_part(any_admin: AdminStack, people: dict[str, int]) -> None:
    support = any_admin.session("support")
    assert _ids(support, "anna") == [people["anna"], people["hanna"], people["otto"]]
    assert _ids(support, "ANNA ALT") == [people["anna"]]
    assert _ids(support, "berg") == [people["hanna"]]
    assert _ids(support, "nobody") == []
    # Wildcards are text: "%" and "_" match themselves only.
    assert _ids(support, "a%") == []
    assert _ids(support, "a_t") == []
    hit = support.read("/members", {"q": "Hanna"})["items"][0]
    assert hit["matched_by"] == ["name"]


def test_by_member_number(any_admin: AdminStack, people: dict[str, int]) -> None:
    support = any_admin.session("support")
    otto = people["otto"]
    assert _ids(support, str(otto)) == [otto]
    assert _ids(support, f"#{otto}") == [otto]


def test_pages(any_admin: AdminStack, people: dict[str, int]) -> None:
    support = any_admin.session("support")
    first = support.read("/members", {"q": "anna", "limit": 2})
    assert [hit["member_id"] for hit in first["items"]] == [people["anna"], people["hanna"]]
    assert first["next_after_id"] == people["hanna"]
    second = support.read("/members", {"q": "anna", "limit": 2, "after_id": people["hanna"]})
    assert [hit["member_id"] for hit in second["items"]] == [people["otto"]]
    assert second["next_after_id"] is None


def test_only_the_merchants_own_members(any_admin: AdminStack, people: dict[str, int]) -> None:
    rival = any_admin.session("support", merchant_id=any_admin.rival_id)
    assert _ids(rival, "anna.alt@example.com") == []
    assert _ids(rival, "Anna") == []
    assert _ids(rival, str(people["anna"])) == []
    assert_problem(rival.get(f"/members/{people['anna']}"), 404, "member_not_found")


def test_erased_members_show_as_erased(any_admin: AdminStack, people: dict[str, int]) -> None:
    privacy = any_admin.stack.app.state.member_privacy
    any_admin.stack.run(privacy.erase, people["hanna"], any_admin.shop_id, any_admin.clock())
    support = any_admin.session("support")
    assert _ids(support, "hanna@example.org") == []
    assert _ids(support, "Hanna") == []
    assert _ids(support, "Gelöschtes") == []  # the placeholder name is nobody's
    (hit,) = support.read("/members", {"q": str(people["hanna"])})["items"]
    assert hit["erased"] is True
    assert hit["erased_at"] is not None
    assert (hit["display_name"], hit["email"], hit["phone"], hit["card_number"]) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize("query", ["", "   ", "x" * 201])
def test_a_query_is_needed(admin: AdminStack, query: str) -> None:
    support = admin.session("support")
    assert_problem(support.get("/members", {"q": query}), 400, "validation_failed")


def test_every_back_office_role_searches(admin: AdminStack) -> None:
    for role in ("owner", "program_manager", "support"):
        assert admin.session(role).get("/members", {"q": "x"}).status_code == 200
    assert_problem(admin.session("cashier").get("/members", {"q": "x"}), 403, "forbidden")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Anna", SearchKeys(name="Anna")),
        ("anna@example.com", SearchKeys(email="anna@example.com")),
        ("ANNA@EXAMPLE.COM", SearchKeys(email="anna@example.com")),
        ("0151 12345678", SearchKeys(phone="+4915112345678")),
        ("+49 151 12345678", SearchKeys(phone="+4915112345678")),
        ("42", SearchKeys(member_id=42)),
        ("#42", SearchKeys(member_id=42)),
        ("not@valid", SearchKeys()),
        ("%", SearchKeys()),
    ],
)
def test_how_a_query_is_read(query: str, expected: SearchKeys) -> None:
    assert search_keys(query) == expected


def test_a_card_number_is_read_as_card_and_member_number() -> None:
    from loyalty.domain.cards import new_card_number

    card = new_card_number()
    keys = search_keys(format_card_number(card))
    assert keys.card_number == card
    assert keys.name is None
