"""Four eyes in the browser: a support agent finds a member, books a small adjustment (posted at
once) and one above the program's approval threshold, which waits with the balance unchanged;
the owner approves it on the approvals page; the member page then shows the new balance.

With LOYALTY_WRITE_SCREENSHOTS=1 the member page's screenshot is written to
docs/screenshots/admin-member.png (see docs/MEMBER_SUPPORT.md).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from loyalty.services.demo import DEMO_OWNER, DEMO_SUPPORT
from tests.e2e.helpers import LEDGER_SECRET, BrowserErrors, Shop, ok

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WELCOME_POINTS = 1_250


def _member(shop: Shop, name: str, email: str) -> int:
    """A member with welcome points and two purchases (one point per euro), as the shop's own
    systems would book them through the ledger API."""
    base = f"/api/v1/programs/{shop.program_id}"
    key = secrets.token_hex(6)
    with httpx.Client(
        base_url=shop.server.base_url, headers={"Authorization": f"Bearer {LEDGER_SECRET}"}
    ) as client:
        member_id: int = ok(
            client.post(
                f"{base}/members",
                json={"display_name": name, "email": email},
                headers={"Idempotency-Key": f"join-{key}"},
            ),
            201,
        )["member_id"]
        ok(
            client.post(
                f"{base}/members/{member_id}/earn",
                json={"points": WELCOME_POINTS, "reference": "welcome"},
                headers={"Idempotency-Key": f"welcome-{key}"},
            ),
            201,
        )
        for number, cents in enumerate((4_250, 1_890), 1):
            line = {"line_id": "1", "sku": "BROT", "quantity": 1, "unit_price": cents}
            ok(
                client.post(
                    f"{base}/orders",
                    json={
                        "member_id": member_id,
                        "reference": f"BON-{key}-{number}",
                        "basket": {"currency": "EUR", "lines": [line]},
                    },
                    headers={"Idempotency-Key": f"order-{key}-{number}"},
                ),
                201,
            )
    return member_id


def _signed_in(browser: Browser, shop: Shop, login: tuple[str, str, str]) -> BrowserContext:
    context = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.goto(f"{shop.server.base_url}/admin/login")
    page.get_by_label("E-Mail").fill(login[0])
    page.get_by_label("Passwort").fill(login[1])
    page.get_by_role("button", name="Anmelden").click()
    expect(page).not_to_have_url(f"{shop.server.base_url}/admin/login")
    page.close()
    return context


def _available(page: Page, program_id: int) -> str:
    return page.locator(f"#program-{program_id} [data-balance=available]").inner_text()


def test_an_adjustment_above_the_threshold_waits_for_a_second_person(
    browser: Browser, shop: Shop, errors: BrowserErrors, tmp_path: Path
) -> None:
    email = f"greta.{secrets.token_hex(3)}@example.de"
    member_id = _member(shop, "Greta Gruber", email)
    balance = WELCOME_POINTS + 42 + 18
    support = _signed_in(browser, shop, DEMO_SUPPORT)
    owner = _signed_in(browser, shop, DEMO_OWNER)
    try:
        page = support.new_page()
        errors.watch(page)
        # Support finds the member by email (typed in another case) and opens the 360 view.
        page.goto(f"{shop.server.base_url}/admin/members")
        page.get_by_label("Suche").fill(email.upper())
        page.get_by_label("Suche").press("Enter")
        page.locator("#member-results").get_by_role("link", name="Greta Gruber").click()
        expect(page).to_have_url(f"{shop.server.base_url}/admin/members/{member_id}")
        section = page.locator(f"#program-{shop.program_id}")
        expect(section.locator("[data-balance=available]")).to_have_text(
            f"{balance:,}".replace(",", ".")
        )

        # Within the threshold (1,000): posted at once.
        form = section.locator("form.adjust")
        form.get_by_label("Punkte").fill("200")
        form.get_by_label("Grund").fill("Kaffee verschüttet")
        form.get_by_role("button", name="Korrektur buchen").click()
        balance += 200
        expect(section.locator("[data-balance=available]")).to_have_text(
            f"{balance:,}".replace(",", ".")
        )
        expect(
            section.locator("table.adjustments tr", has_text="Kaffee verschüttet")
        ).to_contain_text("gebucht")

        # Above it: waits for approval, nothing moves.
        form = page.locator(f"#program-{shop.program_id} form.adjust")
        form.get_by_label("Punkte").fill("5000")
        form.get_by_label("Grund").fill("Bonuskarte verloren, Stempel nachgetragen")
        form.get_by_role("button", name="Korrektur buchen").click()
        waiting = page.locator(
            f"#program-{shop.program_id} table.adjustments tr", has_text="Stempel nachgetragen"
        )
        expect(waiting).to_contain_text("wartet auf Freigabe")
        expect(page.locator(f"#program-{shop.program_id} [data-balance=available]")).to_have_text(
            f"{balance:,}".replace(",", ".")
        )
        # Support cannot approve their own request: the approvals page offers only withdrawing.
        page.goto(f"{shop.server.base_url}/admin/approvals")
        mine = page.locator("#pending-adjustments tr", has_text="Greta Gruber")
        expect(mine).to_contain_text("Ihr Antrag")
        expect(mine.get_by_role("button", name="Freigeben")).to_have_count(0)

        # The owner approves it.
        approvals = owner.new_page()
        errors.watch(approvals)
        approvals.goto(f"{shop.server.base_url}/admin/approvals")
        row = approvals.locator("#pending-adjustments tr", has_text="Greta Gruber")
        expect(row).to_contain_text("5.000")
        approvals.once("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name="Freigeben").click()
        decided = approvals.locator("#decided-adjustments tr", has_text="Greta Gruber").first
        expect(decided).to_contain_text("gebucht")
        expect(approvals.locator("#pending-adjustments tr", has_text="Greta Gruber")).to_have_count(
            0
        )

        # Back on the member page: the new balance, and the request posted.
        page.goto(f"{shop.server.base_url}/admin/members/{member_id}")
        balance += 5_000
        expect(page.locator(f"#program-{shop.program_id} [data-balance=available]")).to_have_text(
            f"{balance:,}".replace(",", ".")
        )
        expect(
            page.locator(
                f"#program-{shop.program_id} table.adjustments tr", has_text="Stempel nachgetragen"
            )
        ).to_contain_text("gebucht")
        expect(page.locator("#audit")).to_contain_text("adjustment.approve")
        png = page.screenshot(full_page=False)
        (tmp_path / "admin-member.png").write_bytes(png)
        if os.environ.get("LOYALTY_WRITE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            (SCREENSHOTS / "admin-member.png").write_bytes(png)
        assert errors.messages == []
    finally:
        support.close()
        owner.close()
