"""The program pages (programs, one program, a rule-set version with its editors and the
simulator, a reward) rendered for each role through the page session cookie, and the admin API
refusing through that same cookie what a page hides."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from admin.web.programs import version_rows
from loyalty.services.rule_sets import RuleSetSummary

from .conftest import AdminStack, PageSession

pytestmark = pytest.mark.integration

#: What the pages offer only to those who may change something: programs.js and admin.js act
#: on these attributes, and nothing else on the pages writes.
WRITE_CONTROLS = re.compile(r"data-(pp-)?api=")


def _text(de: str, en: str) -> dict[str, str]:
    return {"de": de, "en": en}


TIERS = {
    "levels": [
        {"code": "bronze", "name": _text("Bronze", "Bronze"), "threshold": 0},
        {
            "code": "silver",
            "name": _text("Silber", "Silver"),
            "threshold": 500,
            "multiplier": "1.25",
        },
        {
            "code": "gold",
            "name": _text("Gold", "Gold"),
            "threshold": 1500,
            "multiplier": "1.5",
            "perks": _text("Kaffee gratis", "Free coffee"),
        },
    ]
}
RULES = {
    "earning_rules": [
        {
            "code": "points-per-euro",
            "kind": "spend",
            "name": _text("Ein Punkt je Euro", "A point per euro"),
            "points": 1,
            "per_amount": 100,
        },
        {
            "code": "bio-double",
            "kind": "multiplier",
            "name": _text("Bio doppelt", "Organic double"),
            "multiplier": "2",
            "scope": {"categories": ["bio"]},
        },
    ],
    "promotions": [
        {
            "code": "saturday-double",
            "kind": "multiplier",
            "name": _text("Samstag doppelt", "Saturdays double"),
            "starts_at": "2025-01-01T00:00:00Z",
            "ends_at": "2026-01-01T00:00:00Z",
            "multiplier": "2",
            "weekdays": [6],
        },
    ],
    "caps": [{"period": "day", "max_points": 800}],
    "tiers": TIERS,
}


class Program:
    """A program with version 1 (the starter rules), version 2 (RULES, live) and draft 3."""

    def __init__(self, admin: AdminStack, owner: PageSession, code: str = "sonne") -> None:
        created = _ok(
            owner.call("POST", "/programs", {"code": code, "name": "Sonne", "currency": "EUR"}), 201
        )
        self.id: int = created["program_id"]
        self.api = f"/programs/{self.id}"
        draft = _ok(owner.call("POST", f"{self.api}/rule-sets", {}), 201)
        _ok(owner.call("PUT", f"{self.api}/rule-sets/{draft['version']}", RULES))
        _ok(owner.call("POST", f"{self.api}/rule-sets/{draft['version']}/publish", {}))
        self.live = draft["version"]
        self.draft: int = _ok(owner.call("POST", f"{self.api}/rule-sets", {}), 201)["version"]
        reward = {
            "code": "kaffee",
            "kind": "free_item",
            "name": _text("Kaffee gratis", "Free coffee"),
            "points_cost": 150,
            "sku": "KAFFEE",
        }
        _ok(owner.call("POST", f"{self.api}/rewards", reward), 201)

    @property
    def page(self) -> str:
        return f"/admin/programs/{self.id}"

    def version_page(self, version: int) -> str:
        return f"/admin/programs/{self.id}/rule-sets/{version}"


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _page(session: PageSession, path: str, **params: Any) -> str:
    response = session.page(path, params or None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def _data_attribute(page: str, name: str) -> Any:
    found = re.search(rf"{name}='([^']*)'", page)
    assert found is not None, name
    return json.loads(html.unescape(found.group(1)))


# --- Who gets in -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/admin/programs", "/admin/programs/1", "/admin/programs/1/rule-sets/1"]
)
def test_without_a_session_the_pages_send_to_the_sign_in(admin: AdminStack, path: str) -> None:
    response = admin.client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/login?next={path}"


def test_a_cashier_gets_the_no_access_page(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    program = Program(admin, owner)
    cashier = admin.page_session("cashier")
    for path in ("/admin/programs", program.page, program.version_page(program.draft)):
        response = cashier.page(path)
        assert response.status_code == 403
        assert "Kein Zugang" in response.text
        assert "Sonne" not in response.text


def test_the_pages_are_strict_and_bilingual(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    program = Program(admin, owner)
    pages = {
        "/admin/programs": ("Programme", "Programs"),
        program.page: ("Sonne", "Sonne"),
        program.version_page(program.draft): ("Version 3", "Version 3"),
        f"{program.page}/rewards/kaffee": ("Prämie „Kaffee gratis“", "Reward “Free coffee”"),
        f"{program.page}/new-reward": ("Neue Prämie", "New reward"),
    }
    for path, (german_title, english_title) in pages.items():
        german = owner.page(path)
        english = owner.page(path, {"lang": "en"})
        assert german.status_code == english.status_code == 200, path
        assert '<html lang="de">' in german.text
        assert '<html lang="en">' in english.text
        for response in (german, english):
            policy = response.headers["content-security-policy"]
            assert "script-src 'self'" in policy
            assert "style-src 'self'" in policy
            assert re.search(r"<script(?![^>]*\bsrc=)", response.text) is None
            assert " style=" not in response.text
            assert '/admin/static/programs.js"' in response.text
        assert f"<h1>{german_title}" in german.text, path
        assert f"<h1>{english_title}" in english.text, path
    for asset in ("programs.js", "programs.css"):
        assert admin.client.get(f"/admin/static/{asset}").status_code == 200


# --- Configurators ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "program_manager"])
def test_configurators_see_every_edit_control(admin: AdminStack, role: str) -> None:
    program = Program(admin, admin.page_session("owner"))
    session = admin.page_session(role)
    api = f"/api/v1/admin/programs/{program.id}"

    listing = _page(session, "/admin/programs")
    assert 'id="create-program" data-pp-api="POST /api/v1/admin/programs"' in listing

    page = _page(session, program.page)
    assert f'id="program-settings" data-pp-api="PATCH {api}"' in page
    assert f'id="card-colours" data-pp-api="PATCH {api}"' in page
    assert f'data-pp-api="POST {api}/rule-sets"' in page
    assert f'data-api="POST {api}/rewards/kaffee/archive"' in page
    assert f'href="/admin/programs/{program.id}/new-reward"' in page

    draft = _page(session, program.version_page(program.draft))
    versioned = f"{api}/rule-sets/{program.draft}"
    for control in (
        f'id="publish" data-pp-api="POST {versioned}/publish"',
        f'data-api="DELETE {versioned}"',
        f'id="tier-editor" data-pp-api="PUT {versioned}/tiers"',
        f'data-api="DELETE {versioned}/tiers"',
        f'data-pp-api="PUT {versioned}/earning-rules/{{code}}"',
        f'data-api="DELETE {versioned}/earning-rules/bio-double"',
        f'data-pp-api="PUT {versioned}/promotions/{{code}}"',
        f'data-api="DELETE {versioned}/promotions/saturday-double"',
        f'id="caps-form" data-pp-api="PUT {versioned}/caps"',
        'data-type="json-body"',
    ):
        assert control in draft, control
    # The tier editor holds each level's fields, the threshold as typed.
    silver = re.search(r'<tr data-pp-level data-level-code="silver">(.*?)</tr>', draft, re.S)
    assert silver is not None
    assert 'name="threshold" data-type="threshold" value="500"' in silver.group(1)
    assert 'name="multiplier" data-type="decimal" value="1.25"' in silver.group(1)

    reward = _page(session, f"{program.page}/rewards/kaffee")
    assert f'data-pp-api="PUT {api}/rewards/{{code}}"' in reward
    assert f'data-pp-api="POST {api}/rewards"' in _page(session, f"{program.page}/new-reward")


def test_a_published_version_offers_a_new_draft_but_no_editor(admin: AdminStack) -> None:
    program = Program(admin, admin.page_session("owner"))
    manager = admin.page_session("program_manager")
    live = _page(manager, program.version_page(program.live))
    assert f"data-pp-body='{{\"based_on\": {program.live}}}'" in live
    for editor in ('id="publish"', 'id="tier-editor"', 'id="caps-form"', "earning-rules/{code}"):
        assert editor not in live
    assert 'id="sim-form"' in live


def test_the_manager_changes_a_draft_through_the_cookie_session(admin: AdminStack) -> None:
    program = Program(admin, admin.page_session("owner"))
    manager = admin.page_session("program_manager")
    tiers = json.loads(json.dumps(TIERS))
    tiers["levels"][1]["threshold"] = 300
    path = f"{program.api}/rule-sets/{program.draft}/tiers"
    assert manager.call("PUT", path, tiers, origin="https://evil.example").status_code == 403
    _ok(manager.call("PUT", path, tiers))
    page = _page(manager, program.version_page(program.draft))
    silver = re.search(r'<tr data-level-code="silver">(.*?)</tr>', page, re.S)
    assert silver is not None
    assert '<td class="pp-num" data-threshold>300</td>' in silver.group(1)
    # The live version still has the old threshold until the draft is published.
    live = _page(manager, program.version_page(program.live))
    assert "data-threshold>500</td>" in live


# --- Support: everything, read-only ----------------------------------------------------------


def test_support_sees_everything_read_only(admin: AdminStack) -> None:
    program = Program(admin, admin.page_session("owner"))
    support = admin.page_session("support")
    pages = [
        _page(support, "/admin/programs"),
        _page(support, program.page),
        _page(support, program.version_page(program.draft)),
        _page(support, program.version_page(program.live)),
        _page(support, f"{program.page}/rewards/kaffee"),
    ]
    for page in pages:
        assert WRITE_CONTROLS.search(page) is None
        assert "data-pp-base" not in page
        # The only forms: signing out, and the simulator's two (which only read).
        forms = re.findall(r"<form[^>]*>", page)
        assert all(
            'action="/admin/session/end"' in form
            or 'id="sim-form"' in form
            or 'id="simulation-form"' in form
            for form in forms
        ), forms
    listing, program_page, draft, _, reward = pages
    assert "Sonne" in listing
    assert 'id="create-program"' not in listing
    assert 'id="program-settings-read"' in program_page
    assert "Kaffee gratis" in program_page
    assert "data-threshold>500</td>" in draft
    assert 'id="sim-form"' in draft
    assert 'id="reward-read"' in reward


def test_the_api_refuses_support_the_writes_its_pages_hide(admin: AdminStack) -> None:
    program = Program(admin, admin.page_session("owner"))
    support = admin.page_session("support")
    versioned = f"{program.api}/rule-sets/{program.draft}"
    refused = [
        ("PATCH", program.api, {"name": "Mond"}),
        ("POST", "/programs", {"code": "mond", "name": "Mond", "currency": "EUR"}),
        ("POST", f"{program.api}/rule-sets", {}),
        ("PUT", f"{versioned}/tiers", TIERS),
        ("PUT", f"{versioned}/caps", []),
        ("DELETE", f"{versioned}/earning-rules/bio-double", None),
        ("POST", f"{versioned}/publish", {}),
        ("DELETE", versioned, None),
        ("POST", f"{program.api}/rewards/kaffee/archive", None),
    ]
    for method, path, body in refused:
        response = support.call(method, path, body)
        assert response.status_code == 403, (method, path, response.text)
    # Nothing changed; reading (and pricing a sample) is open to support.
    view = _ok(support.call("GET", versioned))
    assert view["status"] == "draft"
    assert (
        view["document"]["tiers"]
        == _ok(support.call("GET", f"{program.api}/rule-sets/{program.live}"))["document"]["tiers"]
    )
    sample = {
        "basket": {
            "currency": "EUR",
            "lines": [{"line_id": "1", "sku": "B", "quantity": 1, "unit_price": 2000}],
        },
        "tier": "silver",
    }
    preview = _ok(support.call("POST", f"{versioned}/preview", {"samples": [sample]}))
    assert preview["items"][0]["draft"]["points"] == 25


# --- What the pages show ---------------------------------------------------------------------


def test_the_version_page_reads_like_a_rule_book(admin: AdminStack) -> None:
    program = Program(admin, admin.page_session("owner"))
    manager = admin.page_session("program_manager")
    german = _page(manager, program.version_page(program.live), lang="de")
    english = _page(manager, program.version_page(program.live), lang="en")
    for expected in (
        "1 P je 1,00\xa0€ Umsatz",
        "Punkte × 2 · Kategorien: bio",
        "an: Sa",
        "data-threshold>1.500</td>",
        "× 1,25",
        "Kaffee gratis",
        "höchstens 800 je Mitglied und Tag",
        "gültig",
    ):
        assert expected in german, expected
    for expected in (
        "1 pts per €1.00 spent",
        "points × 2 · categories: bio",
        "on: Sat",
        "data-threshold>1,500</td>",
        "× 1.25",
        "Free coffee",
        "at most 800 per member and day",
        "live",
    ):
        assert expected in english, expected


def test_the_simulator_gets_what_it_needs(admin: AdminStack) -> None:
    program = Program(admin, admin.page_session("owner"))
    manager = admin.page_session("program_manager")
    page = _page(manager, program.version_page(program.draft), lang="en")
    assert f'data-version="{program.draft}" data-live-version="{program.live}"' in page
    data = _data_attribute(page, "data-sim")
    assert data["tiers"] == {
        "basis": "points",
        "window": "calendar_year",
        "levels": [
            {"code": "bronze", "threshold": 0},
            {"code": "silver", "threshold": 500},
            {"code": "gold", "threshold": 1500},
        ],
    }
    assert data["tier_choices"] == [["bronze", "Bronze"], ["silver", "Silver"], ["gold", "Gold"]]
    assert data["names"]["rule:bio-double"] == "Organic double"
    assert data["names"]["promotion:saturday-double"] == "Saturdays double"
    assert data["texts"]["live_column"] == "Live (version {n})"


def test_the_versions_show_which_is_live_scheduled_past_or_a_draft(any_admin: AdminStack) -> None:
    admin = any_admin
    owner = admin.page_session("owner")
    program = Program(admin, owner)
    start = admin.clock.now + timedelta(days=7)
    _ok(
        owner.call(
            "POST",
            f"{program.api}/rule-sets/{program.draft}/publish",
            {"effective_from": start.isoformat()},
        )
    )
    newest = _ok(owner.call("POST", f"{program.api}/rule-sets", {}), 201)["version"]
    assert _states(_page(owner, program.page)) == {
        1: "past",
        program.live: "live",
        program.draft: "scheduled",
        newest: "draft",
    }
    listing = _page(owner, "/admin/programs", lang="en")
    assert f'rule-sets/{program.live}">Version {program.live}</a>' in listing

    admin.clock.advance(days=8)
    owner = admin.page_session("owner")
    assert _states(_page(owner, program.page)) == {
        1: "past",
        program.live: "past",
        program.draft: "live",
        newest: "draft",
    }


def _states(page: str) -> dict[int, str]:
    found = re.findall(
        r'rule-sets/(\d+)">Version \d+</a></td>\s*<td><span class="pp-badge pp-badge-(\w+)', page
    )
    return {int(version): state for version, state in found}


def test_version_rows_pick_the_live_version_as_pricing_does() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)

    def summary(version: int, status: str, effective: datetime | None) -> RuleSetSummary:
        return RuleSetSummary(
            version=version,
            status=status,
            effective_from=effective,
            based_on=None,
            created_at=now,
            created_by="x",
            updated_at=None,
            published_at=effective,
            published_by=None,
        )

    rows = version_rows(
        [
            summary(5, "draft", None),
            summary(4, "published", now + timedelta(days=1)),
            summary(3, "published", now - timedelta(days=1)),
            # Same start as 3 but a lower version: 3 wins, as find_rules_in_force decides.
            summary(2, "published", now - timedelta(days=1)),
            summary(1, "published", now - timedelta(days=30)),
        ],
        now,
    )
    assert [(row.version, row.state) for row in rows] == [
        (5, "draft"),
        (4, "scheduled"),
        (3, "live"),
        (2, "past"),
        (1, "past"),
    ]
    assert all(row.state != "live" for row in version_rows([summary(1, "draft", None)], now))


def test_the_settings_form_holds_the_program_and_its_adjustment_policy(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    program = Program(admin, owner)
    _ok(
        owner.call(
            "PATCH",
            program.api,
            {
                "point_value_micros": 5_000,
                "referral_bonus_points": 25,
                "adjustment_approval_threshold": 700,
            },
        )
    )
    page = _page(owner, program.page)
    assert 'name="point_value_micros" data-type="micros" required value="0.005"' in page
    assert 'name="referral_bonus_points" data-type="int" inputmode="numeric" value="25"' in page
    assert (
        'name="adjustment_approval_threshold" data-type="int" inputmode="numeric" value="700"'
        in page
    )
    assert 'name="adjustment_limits" data-type="json"' in page
    # The card colours start from the default style, with the contrast hint's texts.
    assert 'name="card_background" value="#12355b"' in page
    assert 'data-ok="gut lesbar"' in page


def test_the_simulator_link_leads_to_the_newest_draft(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    program = Program(admin, owner)

    def simulator(**params: Any) -> httpx.Response:
        return owner.client.get(
            f"{program.page}/simulator",
            params=params,
            headers=owner.headers(None),
            follow_redirects=False,
        )

    response = simulator()
    assert response.status_code == 303
    assert response.headers["location"] == f"{program.version_page(program.draft)}#simulator"
    assert owner.call("DELETE", f"{program.api}/rule-sets/{program.draft}").status_code == 204
    response = simulator()
    assert response.headers["location"] == f"{program.version_page(program.live)}#simulator"
    assert simulator(version=1).headers["location"] == f"{program.version_page(1)}#simulator"
    assert simulator(version=99).status_code == 404


def test_programs_of_another_merchant_stay_unseen(admin: AdminStack) -> None:
    rival_owner = admin.page_session("owner", merchant_id=admin.rival_id)
    theirs = Program(admin, rival_owner, code="mond")
    mine = admin.page_session("owner")
    assert "Sonne" not in _page(mine, "/admin/programs")
    for path in (
        theirs.page,
        theirs.version_page(theirs.draft),
        f"{theirs.page}/rewards/kaffee",
        f"{theirs.page}/simulator",
    ):
        assert mine.page(path).status_code == 404, path
