"""The wallet in a browser, end to end: join on the welcome page, read the code from the mail
outbox as the member reads their mail, sign in, see the balance and the tier; a purchase
completed at a till shows on the open page without a reload; the page switches to German."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.helpers import BASE_TIER_NAME, BrowserErrors, Shop, ok

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PHONE = {"width": 390, "height": 844}


def test_join_sign_in_and_watch_a_sale_arrive(
    browser: Browser, shop: Shop, errors: BrowserErrors
) -> None:
    email = f"mia.{secrets.token_hex(4)}@example.de"
    context = browser.new_context(viewport=PHONE, locale="en-GB")
    page = context.new_page()
    errors.watch(page)
    try:
        page.goto(f"{shop.server.base_url}/wallet/{shop.program_id}")
        expect(page.get_by_role("heading", name="Join")).to_be_visible()
        join = page.locator("#join-form")
        join.get_by_label("Name").fill("Mia Schulz")
        join.get_by_label("Email address").fill(email)
        join.get_by_label("I accept the programme terms").check()
        join.get_by_role("button", name="Create my card").click()
        expect(page.locator("#joined")).to_be_visible()

        [(body,)] = shop.server.query(
            "SELECT body_text FROM mail_outbox WHERE to_address = ? ORDER BY id DESC LIMIT 1",
            email,
        )
        code = re.search(r"\b(\d{6})\b", body)
        assert code is not None, body
        page.locator("#enter-code").get_by_label("Code from the email").fill(code.group(1))
        page.locator("#enter-code").get_by_role("button", name="Sign in").click()

        balance = page.locator("#balance-value")
        expect(balance).to_have_text("0")
        expect(page.locator(".tier .badge")).to_have_text(BASE_TIER_NAME["en"])

        [(card,)] = shop.server.query("SELECT card_number FROM members WHERE email = ?", email)
        sale = {
            "occurred_at": datetime.now(UTC).isoformat(),
            "member": {"value": card},
            "order": {
                "currency": "EUR",
                "lines": [{"line_id": "1", "sku": "TORTE", "quantity": 1, "unit_price": 125_000}],
            },
        }
        with shop.client(shop.terminal_key) as till:
            done = ok(
                till.post(f"/api/v1/pos/transactions/W-{secrets.token_hex(4)}/complete", json=sale)
            )
        assert done["points_earned"] == 1250
        # No reload: the server pushed the new balance to the open page.
        expect(balance).to_have_text("1,250")

        page.get_by_role("link", name="DE", exact=True).click()
        expect(page.get_by_text("Ihr Punktestand")).to_be_visible()
        expect(balance).to_have_text("1.250")
        assert errors.messages == []
    finally:
        context.close()
