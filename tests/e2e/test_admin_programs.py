"""A program manager configures the demo program in the browser: starts a draft, lowers a tier
threshold, runs the simulator for a member who reaches the tier only under the draft and sees
the tier bonus side by side with the live version, publishes; the API then prices with the new
threshold.

With LOYALTY_WRITE_SCREENSHOTS=1 the simulator's screenshot is written to
docs/screenshots/admin-simulator.png (see docs/PROGRAM_PAGES.md).
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from loyalty.services.demo import DEMO_PROGRAM_CODE
from tests.e2e.helpers import OWNER_LOGIN, BrowserErrors, Server, ok

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ADMIN = "/api/v1/admin"
BERLIN = ZoneInfo("Europe/Berlin")
#: The sample basket: one loaf of (not organic) bread for 20.00 EUR.
BASKET_PRICE = 2000


def save(page: Page, name: str, folder: Path, selector: str | None = None) -> Path:
    """A screenshot kept in ``folder`` and, with LOYALTY_WRITE_SCREENSHOTS=1, in docs/."""
    png = page.locator(selector).screenshot() if selector else page.screenshot(full_page=True)
    (folder / name).write_bytes(png)
    if os.environ.get("LOYALTY_WRITE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(png)
    return folder / name


class Back:
    """The owner's side, through the admin API: what the test sets up and checks."""

    def __init__(self, server: Server) -> None:
        self.client = httpx.Client(base_url=server.base_url + ADMIN, timeout=30)
        token = ok(self.client.post("/login", json=OWNER_LOGIN))["token"]
        self.client.headers["Authorization"] = f"Bearer {token}"
        [program] = [p for p in ok(self.client.get("/programs")) if p["code"] == DEMO_PROGRAM_CODE]
        self.program_id: int = program["program_id"]
        self.api = f"/programs/{self.program_id}"

    def get(self, path: str, **params: Any) -> Any:
        return ok(self.client.get(self.api + path, params=params))

    def live_version(self) -> dict[str, Any]:
        """The version that prices a purchase now (the latest start not after now)."""
        now = datetime.now(BERLIN)
        started = [
            v
            for v in self.get("/rule-sets")
            if v["status"] == "published" and datetime.fromisoformat(v["effective_from"]) <= now
        ]
        live = max(started, key=lambda v: (v["effective_from"], v["version"]))
        view: dict[str, Any] = self.get(f"/rule-sets/{live['version']}")
        return view

    def bronze_member(self, silver_threshold: int) -> dict[str, Any]:
        """A member on the base tier with some qualifying points, below silver."""
        for row in self.get("/members", tier="bronze", limit=100)["items"]:
            status: dict[str, Any] = self.get(f"/members/{row['member_id']}/tier")
            if (
                status["current"]["code"] == "bronze"
                and status["basis"] == "points"
                and 0 < status["qualifying_total"] < silver_threshold
            ):
                return status
        raise AssertionError("the demo has no bronze member with qualifying points")

    def add_manager(self) -> tuple[str, str]:
        email = f"pm-{secrets.token_hex(4)}@example.com"
        password = f"Manager-{secrets.token_hex(8)}"
        body = {
            "email": email,
            "password": password,
            "role": "program_manager",
            "display_name": "Paula Planer",
        }
        ok(self.client.post("/staff", json=body), 201)
        return email, password

    def preview(self, version: int, tier: str, at: datetime) -> int:
        sample = {
            "basket": {
                "currency": "EUR",
                "lines": [
                    {
                        "line_id": "1",
                        "sku": "BROT",
                        "category": "bread",
                        "quantity": 1,
                        "unit_price": BASKET_PRICE,
                    }
                ],
            },
            "tier": tier,
            "at": at.isoformat(),
        }
        found = ok(
            self.client.post(f"{self.api}/rule-sets/{version}/preview", json={"samples": [sample]})
        )
        points: int = found["items"][0]["draft"]["points"]
        return points


def _points(value: int) -> str:
    """Points as the German page shows them ("1.234 P")."""
    return f"{value:,}".replace(",", ".") + " P"


def test_a_manager_lowers_a_tier_threshold_sees_the_difference_and_publishes(
    browser: Browser, server: Server, errors: BrowserErrors, tmp_path: Path
) -> None:
    back = Back(server)
    live = back.live_version()
    levels = {level["code"]: level for level in live["document"]["tiers"]["levels"]}
    member = back.bronze_member(levels["silver"]["threshold"])
    # Silver from exactly what the member has qualified with: under the draft they hold it.
    new_threshold = member["qualifying_total"]
    email, password = back.add_manager()
    at = (datetime.now(BERLIN) + timedelta(hours=1)).replace(second=0, microsecond=0)

    context = browser.new_context(
        locale="de-DE", timezone_id="Europe/Berlin", viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    errors.watch(page)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    try:
        # Sign in; the page asked for comes back after the sign-in.
        page.goto(f"{server.base_url}/admin/programs")
        expect(page).to_have_url(f"{server.base_url}/admin/login?next=/admin/programs")
        page.get_by_label("E-Mail").fill(email)
        page.get_by_label("Passwort").fill(password)
        page.get_by_role("button", name="Anmelden").click()
        expect(page.get_by_role("heading", name="Programme", exact=True)).to_be_visible()
        page.get_by_role("link", name="Sonnenpunkte").click()

        # A new draft: a copy of the live version.
        page.get_by_role("button", name="Neuer Entwurf").click()
        expect(page.locator("#version-state")).to_have_text("Entwurf")
        draft = int(page.url.rsplit("/", 1)[1])
        assert draft > live["version"]
        expect(page.get_by_text(f"Basiert auf: Version {live['version']}")).to_be_visible()

        # Lower silver's threshold in the tier editor.
        page.locator("#tier-editor-box > summary").click()
        silver = page.locator("#tier-editor tr[data-level-code=silver]")
        expect(silver.locator("input[name=threshold]")).to_have_value(
            str(levels["silver"]["threshold"])
        )
        silver.locator("input[name=threshold]").fill(str(new_threshold))
        page.get_by_role("button", name="Stufen speichern").click()
        expect(
            page.locator("#tier-table tr[data-level-code=silver] [data-threshold]")
        ).to_have_text(_points(new_threshold).removesuffix(" P"))
        expect(page.locator("#draft-problems")).to_have_text(
            "Der Entwurf kann veröffentlicht werden."
        )

        # The simulator: the member, a basket, a moment; draft and live side by side.
        simulator = page.locator("#simulator")
        simulator.locator("input[name=member_id]").fill(str(member["member_id"]))
        line = simulator.locator("[data-sim-lines] [data-sim-line]").first
        line.locator("input[name=sku]").fill("BROT")
        line.locator("input[name=category]").fill("bread")
        line.locator("input[name=quantity]").fill("1")
        line.locator("input[name=unit_price]").fill("20,00")
        simulator.locator("input[name=at]").fill(at.strftime("%Y-%m-%dT%H:%M"))
        simulator.get_by_role("button", name="Berechnen").click()

        live_points = back.preview(live["version"], "bronze", at)
        draft_points = back.preview(draft, "silver", at)
        assert draft_points > live_points
        expect(page.locator("#sim-live [data-tier]")).to_have_text("Bronze")
        expect(page.locator("#sim-draft [data-tier]")).to_have_text("Silber")
        expect(page.locator("#sim-live [data-total]")).to_have_text(_points(live_points))
        expect(page.locator("#sim-draft [data-total]")).to_have_text(_points(draft_points))
        expect(page.locator("#sim-difference")).to_contain_text(
            "+" + _points(draft_points - live_points)
        )
        expect(page.locator("#sim-difference")).to_have_class("pp-sim-diff pp-up")
        tier_row = page.locator("#sim-table tr[data-line='tier:silver']")
        expect(tier_row).to_have_class("pp-changed")
        expect(tier_row).to_contain_text("Silber (× 1,25)")
        expect(
            page.get_by_text(f"Qualifizierende Summe des Mitglieds: {_points(new_threshold)}")
        ).to_be_visible()
        shot = save(page, "admin-simulator.png", tmp_path, "#simulator")
        assert shot.stat().st_size > 10_000

        # Looking back at real purchases works under the draft too.
        page.get_by_role("button", name="Neu berechnen").click()
        expect(page.locator("#simulation-result")).to_contain_text("Einkäufe")
        save(page, "admin-rule-set-draft.png", tmp_path)

        # Publish now, after the confirmation.
        page.get_by_role("button", name="Veröffentlichen").click()
        expect(page.locator("#version-state")).to_have_text("gültig")
        assert dialogs == [
            f"Version {draft} veröffentlichen? Danach lässt sie sich nicht mehr ändern."
        ]
        expect(page.locator("#tier-editor")).to_have_count(0)
        assert errors.messages == []
    finally:
        context.close()

    # The API prices with the new threshold from now on.
    now_live = back.live_version()
    assert now_live["version"] == draft
    assert now_live["status"] == "published"
    thresholds = {
        level["code"]: level["threshold"] for level in now_live["document"]["tiers"]["levels"]
    }
    assert thresholds == {
        code: new_threshold if code == "silver" else level["threshold"]
        for code, level in levels.items()
    }
    back.client.close()
