"""The mail outbox page of the embedded default: the owner signs in to the back office, reads a
member's sign-in mail, and its link opens the member's wallet signed in."""

from __future__ import annotations

import secrets

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.helpers import OWNER_LOGIN, BrowserErrors, Shop

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_the_owner_reads_the_sign_in_mail_and_its_link_signs_in(
    browser: Browser, shop: Shop, errors: BrowserErrors
) -> None:
    email = f"ole.{secrets.token_hex(4)}@example.de"
    with httpx.Client(base_url=shop.server.base_url) as client:
        joined = client.post(
            f"/api/v1/wallet/{shop.program_id}/enrollment",
            json={"display_name": "Ole", "email": email, "terms_accepted": True, "locale": "de"},
        )
        assert joined.status_code == 202, joined.text

    context = browser.new_context(locale="de-DE")
    page = context.new_page()
    errors.watch(page)
    try:
        page.goto(f"{shop.server.base_url}/admin/outbox")
        # Without a session the back office asks for one and then comes back here.
        expect(page).to_have_url(f"{shop.server.base_url}/admin/login?next=/admin/outbox")
        page.get_by_label("E-Mail").fill(OWNER_LOGIN["email"])
        page.get_by_label("Passwort").fill(OWNER_LOGIN["password"])
        page.get_by_role("button", name="Anmelden").click()
        expect(page).to_have_url(f"{shop.server.base_url}/admin/outbox")
        row = page.locator("#mail-rows tr", has_text=email)
        expect(row).to_have_count(1)
        expect(row).to_contain_text("im Postausgang")
        row.get_by_role("link").click()
        expect(page.locator("#mail-subject")).to_contain_text("Ihr Anmeldecode")
        # The mail is text; only its address became a link, to this server.
        expect(page.locator("#mail-body a")).to_have_count(1)
        page.locator("#mail-body a").click()
        expect(page).to_have_url(f"{shop.server.base_url}/wallet/{shop.program_id}")
        expect(page.get_by_text("Ihr Punktestand")).to_be_visible()
        assert errors.messages == []
    finally:
        context.close()
