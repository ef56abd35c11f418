"""The rule-set API refuses what cannot work with a stable code and changes nothing: overlapping
or unordered tier thresholds, negative rates, windows that end before they start, publishing an
invalid draft, editing a published version, publishing into the past."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.tables import audit_log, rule_sets

from .conftest import Stack
from .staff_session import Manager

NAME = {"de": "x", "en": "x"}


def _level(code: str, threshold: int, multiplier: str = "1") -> dict[str, Any]:
    return {"code": code, "name": NAME, "threshold": threshold, "multiplier": multiplier}


def _promotion(**overrides: Any) -> dict[str, Any]:
    body = {
        "code": "promo",
        "kind": "multiplier",
        "name": NAME,
        "starts_at": "2025-02-01T00:00:00Z",
        "ends_at": "2025-03-01T00:00:00Z",
        "multiplier": "2",
    }
    return body | overrides


def _spend_rule(**overrides: Any) -> dict[str, Any]:
    return {
        "code": "spend",
        "kind": "spend",
        "name": NAME,
        "points": 1,
        "per_amount": 100,
    } | overrides


# (what is wrong, the draft document, the code publishing answers)
INVALID_DRAFTS = [
    (
        "unordered tier thresholds",
        {"tiers": {"levels": [_level("base", 0), _level("gold", 900), _level("silver", 300)]}},
        "tier_thresholds_unordered",
    ),
    (
        "overlapping tier thresholds (two levels at 300)",
        {"tiers": {"levels": [_level("base", 0), _level("silver", 300), _level("gold", 300)]}},
        "tier_thresholds_unordered",
    ),
    (
        "a base level that needs points",
        {"tiers": {"levels": [_level("base", 10)]}},
        "tier_thresholds_unordered",
    ),
    ("a negative earning rate", {"earning_rules": [_spend_rule(points=-1)]}, "invalid_rate"),
    ("a zero spend divisor", {"earning_rules": [_spend_rule(per_amount=0)]}, "invalid_rate"),
    (
        "a tier multiplier below 1",
        {"tiers": {"levels": [_level("base", 0), _level("silver", 300, "0.5")]}},
        "invalid_rate",
    ),
    (
        "a promotion that ends before it starts",
        {"promotions": [_promotion(ends_at="2025-01-01T00:00:00Z")]},
        "invalid_window",
    ),
    (
        "duplicate rule codes",
        {"earning_rules": [_spend_rule(), _spend_rule()]},
        "duplicate_code",
    ),
    (
        "a rule limited to a tier nobody defined",
        {"earning_rules": [_spend_rule(audience={"tiers": ["platinum"]})]},
        "unknown_tier",
    ),
]


@pytest.fixture
def manager(stack: Stack) -> Manager:
    return Manager(stack)


@pytest.fixture
def program_id(manager: Manager) -> int:
    program = manager.call(
        "POST", "/programs", {"code": "rules", "name": "Regeln", "currency": "EUR"}, 201
    )
    program_id: int = program["program_id"]
    return program_id


def _counts(stack: Stack) -> tuple[Any, ...]:
    async def work(conn: AsyncConnection) -> tuple[Any, ...]:
        published = await conn.scalar(
            select(func.count()).select_from(rule_sets).where(rule_sets.c.status == "published")
        )
        audits = await conn.scalar(select(func.count()).select_from(audit_log))
        documents = (
            await conn.execute(select(rule_sets.c.document).order_by(rule_sets.c.id))
        ).scalars()
        return published, audits, list(documents)

    return stack.read_db(work)


@pytest.mark.parametrize(
    ("story", "document", "code"), INVALID_DRAFTS, ids=[c[0] for c in INVALID_DRAFTS]
)
def test_an_invalid_draft_is_saved_with_its_problem_but_never_published(
    stack: Stack, manager: Manager, program_id: int, story: str, document: Any, code: str
) -> None:
    draft = manager.call("POST", f"/programs/{program_id}/rule-sets", {}, 201)
    version = draft["version"]
    saved = manager.call("PUT", f"/programs/{program_id}/rule-sets/{version}", document)
    assert [problem["code"] for problem in saved["problems"]] == [code], story
    before = _counts(stack)
    refused = manager.client.post(
        f"/api/v1/admin/programs/{program_id}/rule-sets/{version}/publish",
        json={},
        headers=manager.headers,
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    body = refused.json()
    assert (body["code"], body["problems"][0]["code"]) == ("rule_set_invalid", code)
    assert _counts(stack) == before


def test_a_published_version_cannot_change(stack: Stack, manager: Manager, program_id: int) -> None:
    base = f"/programs/{program_id}/rule-sets/1"
    before = _counts(stack)
    for method, path, body in [
        ("PUT", base, {"earning_rules": []}),
        ("PUT", f"{base}/promotions/promo", _promotion()),
        ("PUT", f"{base}/tiers", {"levels": [_level("base", 0)]}),
        ("DELETE", f"{base}/earning-rules/points-per-unit", None),
        ("DELETE", base, None),
        ("POST", f"{base}/publish", {}),
    ]:
        response = manager.client.request(
            method, f"/api/v1/admin{path}", json=body, headers=manager.headers
        )
        assert (response.status_code, response.json()["code"]) == (409, "rule_set_not_draft"), path
    assert _counts(stack) == before


def test_publishing_never_reaches_into_the_past(
    stack: Stack, manager: Manager, program_id: int
) -> None:
    version = manager.call("POST", f"/programs/{program_id}/rule-sets", {}, 201)["version"]
    before = _counts(stack)
    response = manager.client.post(
        f"/api/v1/admin/programs/{program_id}/rule-sets/{version}/publish",
        json={"effective_from": "2025-01-01T00:00:00Z"},
        headers=manager.headers,
    )
    assert (response.status_code, response.json()["code"]) == (400, "effective_from_in_past")
    assert _counts(stack) == before


def test_shape_errors_are_refused_before_anything_is_stored(
    stack: Stack, manager: Manager, program_id: int
) -> None:
    version = manager.call("POST", f"/programs/{program_id}/rule-sets", {}, 201)["version"]
    before = _counts(stack)
    for body in [
        {"earning_rules": [_spend_rule(kind="per_moon_phase")]},
        {"tiers": {"levels": [_level("base", 0)], "window": "fortnight"}},
        {"promotions": [_promotion(starts_at="next tuesday")]},
        {"unknown_section": []},
    ]:
        response = manager.client.put(
            f"/api/v1/admin/programs/{program_id}/rule-sets/{version}",
            json=body,
            headers=manager.headers,
        )
        assert (response.status_code, response.json()["code"]) == (400, "validation_failed")
    assert _counts(stack) == before


def test_a_published_version_prices_orders_from_its_date_on_only(
    stack: Stack, manager: Manager, program_id: int
) -> None:
    """Publishing with a future date leaves orders before it at the old rules."""
    version = manager.call("POST", f"/programs/{program_id}/rule-sets", {}, 201)["version"]
    manager.call(
        "PUT",
        f"/programs/{program_id}/rule-sets/{version}/earning-rules/points-per-unit",
        _spend_rule(code="points-per-unit", points=3),
    )
    manager.call(
        "POST",
        f"/programs/{program_id}/rule-sets/{version}/publish",
        {"effective_from": "2025-02-01T00:00:00Z"},
    )
    member = stack.shop.ok(f"/programs/{program_id}/members", {"display_name": "Ida"})["member_id"]
    basket = {
        "currency": "EUR",
        "lines": [{"line_id": "1", "sku": "A", "quantity": 1, "unit_price": 1000}],
    }
    january = stack.shop.ok(
        f"/programs/{program_id}/orders", {"member_id": member, "reference": "J", "basket": basket}
    )
    stack.clock.now = stack.clock.now.replace(month=2, day=2)
    february = stack.shop.ok(
        f"/programs/{program_id}/orders", {"member_id": member, "reference": "F", "basket": basket}
    )
    assert (january["points"], january["quote"]["rule_set_version"]) == (10, 1)
    assert (february["points"], february["quote"]["rule_set_version"]) == (30, version)
    # The simulation of version 1 against both orders: 10 + 10 instead of 10 + 30.
    manager.login()
    simulation = manager.call("GET", f"/programs/{program_id}/rule-sets/1/simulation?days=30")
    assert (simulation["orders"], simulation["points_issued"], simulation["points_with_draft"]) == (
        2,
        40,
        20,
    )


def test_a_published_version_keeps_the_rounding_it_was_published_with(
    stack: Stack, manager: Manager, program_id: int
) -> None:
    """Changing the program's default rounding later re-prices nothing already published."""
    version = manager.call("POST", f"/programs/{program_id}/rule-sets", {}, 201)["version"]
    manager.call(
        "PUT",
        f"/programs/{program_id}/rule-sets/{version}/earning-rules/points-per-unit",
        _spend_rule(code="points-per-unit", per_amount=300),
    )
    published = manager.call("POST", f"/programs/{program_id}/rule-sets/{version}/publish", {})
    assert published["document"]["rounding"] == "down"
    manager.call("PATCH", f"/programs/{program_id}", {"rounding": "up"})
    member = stack.shop.ok(f"/programs/{program_id}/members", {"display_name": "Ida"})["member_id"]
    basket = {
        "currency": "EUR",
        "lines": [{"line_id": "1", "sku": "A", "quantity": 1, "unit_price": 1000}],
    }
    response = stack.shop.post(f"/programs/{program_id}/members/{member}/quote", {"basket": basket})
    # 10.00 EUR at 1 point per 3.00 EUR = 3.33 points: rounded down, as when published.
    assert (response.status_code, response.json()["points"]) == (200, 3)


def test_period_caps_count_what_the_member_earned_before(
    stack: Stack, manager: Manager, program_id: int
) -> None:
    """Day and week caps cut an order by what the member already earned in that period."""
    version = manager.call("POST", f"/programs/{program_id}/rule-sets", {}, 201)["version"]
    manager.call(
        "PUT",
        f"/programs/{program_id}/rule-sets/{version}/caps",
        [{"period": "day", "max_points": 150}, {"period": "week", "max_points": 200}],
    )
    manager.call("POST", f"/programs/{program_id}/rule-sets/{version}/publish", {})
    member = stack.shop.ok(f"/programs/{program_id}/members", {"display_name": "Ida"})["member_id"]

    def order(reference: str) -> int:
        basket = {
            "currency": "EUR",
            "lines": [{"line_id": "1", "sku": "A", "quantity": 1, "unit_price": 10_000}],
        }
        body = {"member_id": member, "reference": reference, "basket": basket}
        points: int = stack.shop.ok(f"/programs/{program_id}/orders", body)["points"]
        return points

    # Wednesday 15 Jan 2025: 100, then 50 (day cap 150); Thursday: 50 (week cap 200 - 150).
    assert [order("1"), order("2")] == [100, 50]
    stack.clock.now = stack.clock.now.replace(day=16)
    assert order("3") == 50


def test_the_longest_staff_names_fit_every_actor_column(any_stack: Stack) -> None:
    """Names and emails at their limits (200 and 320 characters) and a 500-character reason are
    recorded in full: audit log, rule-set authors and tier changes (PostgreSQL checks lengths)."""
    stack = any_stack
    email = "a" * 300 + "@shop.example"  # 313 characters
    manager = Manager(stack, email=email, display_name="N" * 200)
    program_id = manager.call(
        "POST", "/programs", {"code": "long", "name": "Lang", "currency": "EUR"}, 201
    )["program_id"]
    version = manager.call("POST", f"/programs/{program_id}/rule-sets", {}, 201)["version"]
    manager.call(
        "PUT",
        f"/programs/{program_id}/rule-sets/{version}/tiers",
        {"levels": [_level("base", 0), _level("gold", 100)]},
    )
    published = manager.call("POST", f"/programs/{program_id}/rule-sets/{version}/publish", {})
    label = f"{'N' * 200} <{email}>"
    assert (published["created_by"], published["published_by"]) == (label, label)
    member = stack.shop.ok(f"/programs/{program_id}/members", {"display_name": "Ida"})["member_id"]
    reason = "r" * 500
    status = manager.call(
        "PUT",
        f"/programs/{program_id}/members/{member}/tier",
        {"tier": "gold", "until": "2025-12-31T00:00:00Z", "reason": reason},
    )
    assert status["history"][0]["actor"] == f"{label}: {reason}"
    assert manager.call("GET", "/audit-log")["entries"][0]["actor"] == label


def test_a_promotion_budget_is_shared_by_all_members(any_stack: Stack) -> None:
    """A budget of 150 points: the first member's order takes 100 of it, the second member's
    the remaining 50, a third nothing (the budget counter row is locked per order)."""
    stack = any_stack
    manager = Manager(stack)
    program_id = manager.call(
        "POST", "/programs", {"code": "budget", "name": "Budget", "currency": "EUR"}, 201
    )["program_id"]
    version = manager.call("POST", f"/programs/{program_id}/rule-sets", {}, 201)["version"]
    manager.call(
        "PUT",
        f"/programs/{program_id}/rule-sets/{version}/promotions/promo",
        _promotion(starts_at="2025-01-01T00:00:00Z", budget_points=150, per_member_limit=5),
    )
    manager.call("POST", f"/programs/{program_id}/rule-sets/{version}/publish", {})
    basket = {
        "currency": "EUR",
        "lines": [{"line_id": "1", "sku": "A", "quantity": 1, "unit_price": 10_000}],
    }
    earned = []
    for name in ("Ada", "Bo", "Cy"):
        member = stack.shop.ok(f"/programs/{program_id}/members", {"display_name": name})
        order = stack.shop.ok(
            f"/programs/{program_id}/orders",
            {"member_id": member["member_id"], "reference": name, "basket": basket},
        )
        earned.append(order["points"])
    # 100 base points each; the x2 promotion adds 100, then 50, then nothing.
    assert earned == [200, 150, 100]
