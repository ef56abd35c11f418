"""The wallet's card screen in headless Chromium at phone size, against the app as a real server.

A customer joins on the wallet's welcome page, reads the sign-in code from the mail outbox and
signs in; the shop's back office gives them points. The card page computes the rotating code in
the browser (WebCrypto) from the secret it fetched once, and draws it as a QR code: a screenshot
of the page is decoded with a real decoder (zxing-cpp), and the terminal API identifies the
member by the decoded value; the Code 128 barcode decodes to the member's card number. The
full-screen mode shows the code bigger. Then the browser goes offline: the service worker
answers the card page and the home page from its copies, marked offline, and the card still
shows a code the till accepts (computed on the device from its stored key). A second device
with a copy of the session cookie gets no secret and is told to sign in again.

With LOYALTY_WRITE_SCREENSHOTS=1 the screenshots are written to docs/screenshots/ (see the
README there); otherwise only to the test's temporary folder.

The server, the shop (program and terminal) and Chromium come from ``conftest.py``.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.e2e.helpers import LEDGER_SECRET, OWNER_LOGIN, TIMEOUT_MS, BrowserErrors, Shop, ok
from wallet.i18n import TEXTS

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: An iPhone 12-15's screen in CSS pixels, at twice the density.
PHONE: ViewportSize = {"width": 390, "height": 844}
SCALE = 2
POINTS = 1250
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
#: What the page may log once the browser is offline: its failed requests (the live balance).
OFFLINE_NOISE = "ERR_INTERNET_DISCONNECTED"


def phone_context(browser: Browser, locale: str) -> BrowserContext:
    context = browser.new_context(
        locale=locale,
        viewport=PHONE,
        device_scale_factor=SCALE,
        is_mobile=True,
        has_touch=True,
        service_workers="allow",
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = phone_context(browser, "de-DE")
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext, errors: BrowserErrors) -> Page:
    page = context.new_page()
    errors.watch(page)
    return page


def save(page: Page, name: str, folder: Path) -> Image.Image:
    """A screenshot of what the phone shows, kept in ``folder`` and, with
    LOYALTY_WRITE_SCREENSHOTS=1, in docs/screenshots/."""
    png = page.screenshot()
    (folder / name).write_bytes(png)
    if os.environ.get("LOYALTY_WRITE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(png)
    return Image.open(io.BytesIO(png))


def decoded(image: Image.Image) -> dict[str, str]:
    """What a real decoder reads in the screenshot: {format name: text}."""
    found = {result.format.name: result.text for result in zxingcpp.read_barcodes(image)}
    assert "QRCode" in found, found
    return found


def identified_member(shop: Shop, value: str) -> int:
    """The member the till's identify names for a scanned value."""
    with shop.client(shop.terminal_key) as till:
        body = ok(till.post("/api/v1/pos/identify", json={"member": {"value": value}}))
    member_id: int = body["member_id"]
    return member_id


def join_and_sign_in(page: Page, shop: Shop, name: str, email: str) -> int:
    """Join on the welcome page, sign in with the mailed code; the member's id."""
    t = TEXTS["de"]
    page.goto(f"{shop.server.base_url}/wallet/{shop.program_id}")
    join = page.locator("#join-form")
    join.get_by_label(t["name"]).fill(name)
    join.get_by_label(t["email"]).fill(email)
    join.get_by_label(t["terms"]).check()
    join.get_by_role("button", name=t["join"]).click()
    code_form = page.locator("#enter-code")
    expect(code_form).to_be_visible()
    [(body,)] = shop.server.query(
        "SELECT body_text FROM mail_outbox WHERE to_address = ? ORDER BY id DESC LIMIT 1", email
    )
    code = re.search(r"\b(\d{6})\b", body)
    assert code, body
    code_form.get_by_label(t["code"]).fill(code.group(1))
    code_form.get_by_role("button", name=t["sign_in"], exact=True).click()
    expect(page.locator("#balance-value")).to_be_visible()
    [(member_id,)] = shop.server.query("SELECT id FROM members WHERE email = ?", email)
    return int(member_id)


def give_points(shop: Shop, member_id: int) -> None:
    with shop.client(LEDGER_SECRET) as client:
        key = secrets.token_hex(8)
        ok(
            client.post(
                f"/api/v1/programs/{shop.program_id}/members/{member_id}/earn",
                json={"points": POINTS, "reference": "welcome"},
                headers={"Idempotency-Key": f"wallet-card-{key}"},
            ),
            201,
        )


#: The catalogue the screenshots show: one reward within 1.250 points, one beyond.
REWARDS = (
    ("kaffee", "Kaffee gratis", "Free coffee", 100),
    ("torte", "Ganze Torte", "Whole cake", 2000),
)


def add_rewards(shop: Shop) -> None:
    """The program's rewards, made by the owner (once per server: a second call finds them)."""
    with httpx.Client(base_url=shop.server.base_url, timeout=TIMEOUT_MS / 1000) as client:
        token = ok(client.post("/api/v1/admin/login", json=OWNER_LOGIN))["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        for code, german, english, cost in REWARDS:
            made = client.post(
                f"/api/v1/admin/programs/{shop.program_id}/rewards",
                json={
                    "code": code,
                    "kind": "amount_off",
                    "name": {"de": german, "en": english},
                    "points_cost": cost,
                    "amount_off": cost * 2,
                },
            )
            assert made.status_code in (201, 409), made.text
        client.post("/api/v1/admin/logout")


def card_shown(page: Page) -> None:
    """The QR code is drawn and the barcode image has loaded."""
    expect(page.locator("#card.ready #card-qr svg")).to_be_visible()
    expect(page.locator("#card-countdown")).to_have_text(re.compile(r"Neuer Code in \d+ s"))
    page.wait_for_function(
        "() => { const img = document.getElementById('card-barcode');"
        " return img && img.complete && img.naturalWidth > 0; }"
    )


def test_the_card_screen_shows_a_code_the_till_accepts_also_offline(
    browser: Browser,
    context: BrowserContext,
    page: Page,
    errors: BrowserErrors,
    shop: Shop,
    tmp_path: Path,
) -> None:
    t = TEXTS["de"]
    email = f"lena.{secrets.token_hex(4)}@example.de"
    member_id = join_and_sign_in(page, shop, "Lena Vogel", email)
    [(card_number,)] = shop.server.query("SELECT card_number FROM members WHERE id = ?", member_id)
    give_points(shop, member_id)
    add_rewards(shop)
    page.reload()
    expect(page.locator("#balance-value")).to_have_text("1.250")
    page.evaluate("() => window.scrollTo(0, 0)")
    save(page, "wallet-home.png", tmp_path)
    page.get_by_role("link", name=t["nav_rewards"], exact=True).click()
    expect(page.get_by_text("Kaffee gratis")).to_be_visible()
    expect(page.locator("li.affordable")).to_contain_text("Kaffee gratis")
    expect(page.locator("li.locked")).to_contain_text("Ganze Torte")
    save(page, "wallet-rewards.png", tmp_path)
    page.go_back()

    # The card: the tab in the navigation.
    page.get_by_role("link", name=t["nav_card"], exact=True).click()
    expect(page).to_have_url(re.compile(rf"/wallet/{shop.program_id}/card$"))
    card_shown(page)
    formatted = " ".join(
        [card_number[:2], card_number[2:6], card_number[6:10], card_number[10:14], card_number[14:]]
    )
    expect(page.locator("#card-number")).to_have_text(formatted)
    expect(page.get_by_text(t["card_brightness"])).to_be_visible()

    # The service worker controls the page (it was registered on the first visit); the card
    # page and its barcode are in its copies after this visit.
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    page.reload()
    card_shown(page)

    seen = decoded(save(page, "wallet-card.png", tmp_path))
    assert re.fullmatch(rf"08{member_id:010d}\d{{8}}", seen["QRCode"]), seen
    assert identified_member(shop, seen["QRCode"]) == member_id
    assert seen.get("Code128") == card_number
    # The secret was fetched once: the session has it recorded.
    delivered = shop.server.query(
        "SELECT COUNT(*) FROM member_sessions WHERE member_id = ? "
        "AND card_secret_delivered_at IS NOT NULL",
        member_id,
    )
    assert delivered == [(1,)]

    # Full screen: the code bigger, the screen kept on where the browser lets it.
    page.get_by_role("button", name=t["card_fullscreen"]).click()
    expect(page.locator("#card")).to_have_class(re.compile(r"\bpresenting\b"))
    close = page.get_by_role("button", name=t["card_fullscreen_close"])
    expect(close).to_be_visible()
    big = page.locator("#card-qr").bounding_box()
    assert big is not None
    assert big["width"] >= 0.8 * PHONE["width"], big
    seen_big = decoded(save(page, "wallet-card-fullscreen.png", tmp_path))
    assert identified_member(shop, seen_big["QRCode"]) == member_id
    close.click()
    expect(page.locator("#card")).not_to_have_class(re.compile(r"\bpresenting\b"))
    assert errors.messages == []

    # Offline: the card page from the service worker's copy, marked offline; the code is still
    # computed on the device, and the till (online) accepts it.
    context.set_offline(True)
    page.reload()
    expect(page.locator("#offline-note")).to_be_visible()
    expect(page.locator("#offline-note")).to_contain_text(t["offline"])
    card_shown(page)
    seen_offline = decoded(save(page, "wallet-card-offline.png", tmp_path))
    assert identified_member(shop, seen_offline["QRCode"]) == member_id
    assert seen_offline.get("Code128") == card_number

    # ... and the last known balance.
    page.goto(f"{shop.server.base_url}/wallet/{shop.program_id}")
    expect(page.locator("#balance-value")).to_have_text("1.250")
    expect(page.locator("#offline-note")).to_contain_text(t["offline"])
    page.screenshot(path=tmp_path / "wallet-home-offline.png")
    context.set_offline(False)
    assert [m for m in errors.messages if OFFLINE_NOISE not in m] == []

    # Another device with a copy of the session cookie: no secret for it; it is told to sign
    # in again (in English, chosen on the page: the member's own language is German).
    other = phone_context(browser, "de-DE")
    try:
        other.add_cookies(context.cookies())  # type: ignore[arg-type]
        stolen = other.new_page()
        errors.watch(stolen)
        stolen.goto(f"{shop.server.base_url}/wallet/{shop.program_id}/card?lang=en")
        english = TEXTS["en"]
        expect(stolen.get_by_text(english["card_sign_in_again"])).to_be_visible()
        expect(stolen.locator("#card-qr svg")).to_have_count(0)
        stolen.screenshot(path=tmp_path / "wallet-card-sign-in-again.png")
        assert [m for m in errors.messages if OFFLINE_NOISE not in m] == []
        stolen.get_by_role("button", name=english["card_sign_in_again_button"]).click()
        expect(stolen.get_by_role("heading", name=english["sign_in_title"])).to_be_visible()
    finally:
        other.close()
    assert "Traceback" not in shop.server.log_text()
