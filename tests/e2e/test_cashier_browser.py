"""The cashier page at /pos in headless Chromium, against the app running as a real server.

A cashier signs the till in with its terminal key; a wedge scanner types the member's code into
the scan field and presses Enter; the cashier enters a basket line by line, previews and
completes the sale. The page shows the points earned and the new balance, and the terminal API,
the database and ``loyalty ledger verify`` agree with it. Once in German with the printed card's
number, once in English (both from the browser's Accept-Language) with the wallet's rotating
code; the page must log no error to the console.

The server, the shop (program with tiers, terminal) and Chromium come from ``conftest.py`` and
``helpers.py`` beside this file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from pos_adapter.cashier.i18n import STRINGS
from tests.e2e.helpers import (
    BASE_TIER_NAME,
    LEDGER_SECRET,
    LOCALES,
    START_POINTS,
    TIMEOUT_MS,
    VIEWPORT,
    BrowserErrors,
    Member,
    Shop,
    amount,
    enrol,
    money,
    ok,
    points,
    sign_in,
    wallet_code,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: What the basket earns: one point per euro (the program's starter rule), no tier bonus.
BASKET_CENTS = 2 * 450 + 1 * 300
BASKET_POINTS = 12


@dataclass(frozen=True)
class Case:
    lang: str
    #: What the scanner reads: the printed card's number or the wallet's rotating code (QR).
    scan: str
    member_name: str


CASES = [
    Case("de", "card_number", "Jürgen Müller"),
    Case("en", "rotating_code", "Emma Jones"),
]


@pytest.fixture(params=CASES, ids=lambda case: f"{case.lang}-{case.scan}")
def case(request: pytest.FixtureRequest) -> Case:
    chosen: Case = request.param
    return chosen


@pytest.fixture
def page(browser: Browser, case: Case, errors: BrowserErrors) -> Iterator[Page]:
    """A fresh browser profile (no stored key) whose Accept-Language asks for the case's
    language."""
    context = browser.new_context(locale=LOCALES[case.lang], viewport=VIEWPORT)
    try:
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        errors.watch(page)
        yield page
    finally:
        context.close()


# --- The test --------------------------------------------------------------------------------


def scanned_code(shop: Shop, member: Member, scan: str) -> str:
    """What the scanner reads: the card's number, or the wallet's code of this moment."""
    return member.card_number if scan == "card_number" else wallet_code(shop, member)


def test_a_sale_at_the_till_from_scan_to_new_balance(
    page: Page, errors: BrowserErrors, shop: Shop, case: Case, tmp_path: Path
) -> None:
    lang = case.lang
    t = STRINGS[lang]
    member = enrol(shop, case.member_name)
    expected_balance = START_POINTS + BASKET_POINTS

    # Sign the till in with its terminal key.
    sign_in(page, shop, lang)

    # A wedge scanner types into whatever has the focus, which is the scan field, and ends
    # with Enter.
    scan = page.get_by_label(t["scan_label"])
    expect(scan).to_be_focused()
    page.keyboard.type(scanned_code(shop, member, case.scan))
    page.keyboard.press("Enter")

    card = page.locator("#member")
    expect(card.locator("#member-name")).to_have_text(member.name)
    expect(card.locator("#member-tier")).to_have_text(BASE_TIER_NAME[lang])
    expect(card.locator("#member-available")).to_have_text(points(START_POINTS, lang))
    expect(card.locator("#member-detail")).to_contain_text(t[f"by_{case.scan}"])
    expect(scan).to_have_value("")  # ready for the next scan
    expect(scan).to_be_focused()

    # The basket, line by line: 2 x bread at 4.50 and a coffee at 3.00.
    page.get_by_role("button", name=t["mode_lines"], exact=True).click()
    for row, (sku, category, quantity, cents) in enumerate(
        (("BROT", "brot", 2, 450), ("KAFFEE", "getraenke", 1, 300)), start=1
    ):
        if row > 1:
            page.get_by_role("button", name=t["add_line"], exact=True).click()
        page.get_by_label(f"{t['sku']} {row}", exact=True).fill(sku)
        page.get_by_label(f"{t['category']} {row}", exact=True).fill(category)
        page.get_by_label(f"{t['quantity']} {row}", exact=True).fill(str(quantity))
        page.get_by_label(f"{t['unit_price']} {row}", exact=True).fill(amount(cents, lang))
    expect(page.locator("#sum-gross")).to_have_text(money(BASKET_CENTS, lang))
    expect(page.locator("#sum-pay")).to_have_text(money(BASKET_CENTS, lang))

    page.get_by_role("button", name=t["preview"]).click()
    expect(page.locator("#preview-points")).to_have_text(f"+{points(BASKET_POINTS, lang)}")

    page.get_by_role("button", name=t["complete"]).click()
    result = page.locator("#result")
    expect(result.locator("#result-points")).to_have_text(f"+{points(BASKET_POINTS, lang)}")
    expect(result.locator("#result-balance")).to_have_text(points(expected_balance, lang))
    expect(card.locator("#member-available")).to_have_text(points(expected_balance, lang))
    expect(page.get_by_role("button", name=t["next_customer"], exact=True)).to_be_visible()
    expect(page.locator("#banner")).to_be_hidden()
    page.screenshot(path=tmp_path / f"cashier_after_complete_{lang}.png", full_page=True)

    # The receipt number the page shows is the sale the terminal API knows.
    receipt = t["sale_id"].replace("{id}", "")
    shown = result.locator("#result-redeemed").inner_text()
    match = re.search(re.escape(receipt) + r"(POS-\S+)", shown)
    assert match, shown
    with shop.client(shop.terminal_key) as till:
        sale = ok(till.get(f"/api/v1/pos/transactions/{match.group(1)}"))
    assert (sale["status"], sale["member_id"], sale["identified_by"]) == (
        "completed",
        member.member_id,
        case.scan,
    )
    assert (sale["total"], sale["points_earned"], sale["points_redeemed"]) == (
        BASKET_CENTS,
        BASKET_POINTS,
        0,
    )
    assert [(line["sku"], line["quantity"], line["unit_price"]) for line in sale["lines"]] == [
        ("BROT", 2, 450),
        ("KAFFEE", 1, 300),
    ]

    # The balance through the ledger API, in the database, and the ledger's invariants.
    with shop.client(LEDGER_SECRET) as client:
        balance = ok(
            client.get(f"/api/v1/programs/{shop.program_id}/members/{member.member_id}/balance")
        )
    assert (balance["posted"], balance["held"], balance["available"]) == (
        expected_balance,
        0,
        expected_balance,
    )
    assert shop.server.query(
        "SELECT posted, held FROM accounts WHERE program_id = ? AND member_id = ?",
        shop.program_id,
        member.member_id,
    ) == [(expected_balance, 0)]
    assert "no differences" in shop.server.loyalty("ledger", "verify")

    assert errors.messages == []
    assert "Traceback" not in shop.server.log_text()
