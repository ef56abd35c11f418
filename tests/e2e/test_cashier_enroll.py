"""A cashier enrolls a new member at the till by email, in headless Chromium against the app
running as a real server.

New member opens a dialog: the customer's address and name go to ``POST /api/v1/pos/members``,
and the page identifies the member at once by the card number it answers (the sale can go on);
the member's mail to complete the profile waits in the outbox. The same address again is that
member, selected; an address that is none shows in the banner in the page's words. The page
must log no error to the console.

The server, the shop (program with tiers, terminal) and Chromium come from ``conftest.py`` and
``helpers.py`` beside this file.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from playwright.sync_api import Browser, Page, expect

from pos_adapter.cashier.i18n import STRINGS
from tests.e2e.helpers import (
    LOCALES,
    TIMEOUT_MS,
    VIEWPORT,
    BrowserErrors,
    Shop,
    amount,
    points,
    sign_in,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

LANG: Final = "de"
T = STRINGS[LANG]
NAME = "Greta Neumann"


@pytest.fixture
def page(browser: Browser, errors: BrowserErrors) -> Iterator[Page]:
    """A fresh German browser profile (no stored key)."""
    context = browser.new_context(
        locale=LOCALES[LANG],
        viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]},
    )
    try:
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        errors.watch(page)
        yield page
    finally:
        context.close()


def enroll(page: Page, email: str, name: str = "") -> None:
    """New member, the address (and name), Anlegen: as a cashier does it."""
    page.get_by_role("button", name=T["enroll"], exact=True).click()
    dialog = page.get_by_role("dialog", name=T["enroll_title"])
    expect(dialog).to_be_visible()
    email_field = dialog.get_by_label(T["email"], exact=True)
    expect(email_field).to_be_focused()
    page.keyboard.type(email)
    if name:
        dialog.get_by_label(T["enroll_name"], exact=True).fill(name)
    dialog.get_by_role("button", name=T["enroll_submit"], exact=True).click()


def mails(shop: Shop, email: str) -> list[str]:
    rows = shop.server.query(
        "SELECT kind FROM mail_outbox WHERE to_address = ? ORDER BY id", email.lower()
    )
    return [kind for (kind,) in rows]


def selected_member_id(page: Page) -> int:
    """The member the page's sale belongs to (what it sends as the member with the sale)."""
    member_id: int = page.evaluate(
        "JSON.parse(sessionStorage.getItem('loyalty.pos.sale')).member.member_id"
    )
    return member_id


def test_the_cashier_enrolls_a_new_member_by_email(
    page: Page, errors: BrowserErrors, shop: Shop, tmp_path: Path
) -> None:
    email = f"greta.{secrets.token_hex(4)}@example.de"
    sign_in(page, shop, LANG)
    scan = page.get_by_label(T["scan_label"])
    card = page.locator("#member")
    banner = page.locator("#banner")
    banner_text = page.locator("#banner-text")
    dialog = page.get_by_role("dialog", name=T["enroll_title"])

    # New: the member is made, identified at once with 0 points, and the mail is on its way.
    page.get_by_role("button", name=T["enroll"], exact=True).click()
    expect(dialog).to_be_visible()
    dialog.get_by_label(T["email"], exact=True).fill(email)
    dialog.get_by_label(T["enroll_name"], exact=True).fill(NAME)
    page.screenshot(path=tmp_path / "cashier_enroll_dialog.png")
    dialog.get_by_role("button", name=T["enroll_submit"], exact=True).click()

    expect(dialog).to_be_hidden()
    expect(card.locator("#member-name")).to_have_text(NAME)
    expect(card.locator("#member-available")).to_have_text(points(0, LANG))
    expect(card.locator("#member-detail")).to_contain_text(T["by_card_number"])
    expect(banner).to_have_class("banner banner-info")
    expect(banner_text).to_have_text(T["info_enrolled"])
    expect(scan).to_be_focused()  # a wedge scanner types into it again
    page.screenshot(path=tmp_path / "cashier_enrolled.png")

    [(member_id, display_name)] = shop.server.query(
        "SELECT id, display_name FROM members WHERE email = ?", email
    )
    assert (display_name, selected_member_id(page)) == (NAME, member_id)
    assert mails(shop, email) == ["complete_profile"]

    # The sale goes on with the new member: 10 euros earn 10 points.
    page.locator("#total-amount").fill(amount(1000, LANG))
    page.get_by_role("button", name=T["complete"]).click()
    expect(page.locator("#result-points")).to_have_text(f"+{points(10, LANG)}")
    page.get_by_role("button", name=T["next_customer"], exact=True).click()

    # The same address again (typed otherwise): that member, selected; nothing new is made.
    enroll(page, email.upper(), "Jemand anderes")
    expect(dialog).to_be_hidden()
    expect(banner_text).to_have_text(T["info_enrolled_existing"])
    expect(card.locator("#member-name")).to_have_text(NAME)
    expect(card.locator("#member-available")).to_have_text(points(10, LANG))
    expect(scan).to_be_focused()
    assert selected_member_id(page) == member_id
    assert shop.server.query("SELECT COUNT(*) FROM members WHERE email = ?", email) == [(1,)]
    assert mails(shop, email) == ["complete_profile", "sign_in"]

    # An address the browser takes but the API refuses (no dot in the domain), first typed
    # into the scan field (no member has it), then taken from there into the dialog: the
    # banner, in the dialog, in the page's German; the address stays to be corrected.
    page.get_by_role("button", name=T["clear_member"], exact=True).click()
    expect(page.locator("#no-member")).to_be_visible()
    expect(scan).to_be_focused()
    page.keyboard.type("kunde@kasse")
    page.keyboard.press("Enter")
    expect(banner).to_have_class("banner banner-error")
    page.get_by_role("button", name=T["enroll"], exact=True).click()
    expect(dialog).to_be_visible()
    expect(banner).to_be_hidden()
    expect(dialog.get_by_label(T["email"], exact=True)).to_have_value("kunde@kasse")
    dialog.get_by_role("button", name=T["enroll_submit"], exact=True).click()
    expect(banner).to_have_class("banner banner-error")
    expect(banner_text).to_have_text(T["error_invalid_email"])
    expect(dialog.locator("#banner")).to_be_visible()
    email_field = dialog.get_by_label(T["email"], exact=True)
    expect(email_field).to_have_value("kunde@kasse")
    expect(email_field).to_be_focused()
    page.screenshot(path=tmp_path / "cashier_enroll_error.png")
    assert shop.server.query("SELECT COUNT(*) FROM members WHERE email = ?", "kunde@kasse") == [
        (0,)
    ]

    # Escape closes it: the error goes with it and the scan field has the focus back, the
    # address left in it selected, so a wedge scanner's next scan replaces it.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(banner).to_be_hidden()
    expect(scan).to_be_focused()
    [(card_number,)] = shop.server.query("SELECT card_number FROM members WHERE id = ?", member_id)
    page.keyboard.type(card_number)
    page.keyboard.press("Enter")
    expect(card.locator("#member-name")).to_have_text(NAME)
    expect(page.get_by_role("button", name=T["enroll"], exact=True)).to_be_hidden()

    # The dialog opens empty for the next customer; Cancel gives the scan field the focus back.
    page.get_by_role("button", name=T["clear_member"], exact=True).click()
    page.get_by_role("button", name=T["enroll"], exact=True).click()
    expect(dialog.get_by_label(T["email"], exact=True)).to_have_value("")
    expect(dialog.get_by_label(T["enroll_name"], exact=True)).to_have_value("")
    dialog.get_by_role("button", name=T["cancel"], exact=True).click()
    expect(dialog).to_be_hidden()
    expect(scan).to_be_focused()

    # Chromium logs refused requests itself ("Failed to load resource: ... 4xx"): the invalid
    # address's scan and enrollment, once each. The page logs nothing.
    refused = [
        m
        for m in errors.messages
        if "Failed to load resource" in m
        and ("/api/v1/pos/identify" in m or "/api/v1/pos/members" in m)
    ]
    assert len(refused) == 2, errors.messages
    assert [m for m in errors.messages if m not in refused] == []
    assert "Traceback" not in shop.server.log_text()
