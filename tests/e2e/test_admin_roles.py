"""Roles in the back office, in a real browser: a support user sees staff and tills without a
single control to change them, and when the page's own script (or anything else running in the
page, with the session cookie) asks the admin API anyway, the API refuses and nothing changes.
The owner sees the controls and creates a till whose key is shown exactly once."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.helpers import (
    OWNER_LOGIN,
    STARTUP_TIMEOUT_SECONDS,
    TERMINAL,
    BrowserErrors,
    Shop,
    ok,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ADMIN = "/api/v1/admin"
SUPPORT_PASSWORD = "Hilfsbereit-am-Telefon-7"
#: What the page's script would send; the API must refuse both.
FETCH = """async ([path, body]) => {
  const response = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "Accept": "application/json"},
    body: JSON.stringify(body),
  });
  return {status: response.status, body: await response.json()};
}"""


@pytest.fixture
def owner_api(shop: Shop) -> Iterator[httpx.Client]:
    """The admin API as seed-demo's owner (bearer token)."""
    with httpx.Client(base_url=shop.server.base_url, timeout=STARTUP_TIMEOUT_SECONDS) as client:
        token = ok(client.post(f"{ADMIN}/login", json=OWNER_LOGIN))["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client
        client.post(f"{ADMIN}/logout")


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
    try:
        yield context
    finally:
        context.close()


def sign_in(page: Page, shop: Shop, email: str, password: str, path: str) -> None:
    page.goto(f"{shop.server.base_url}{path}")
    expect(page).to_have_url(f"{shop.server.base_url}/admin/login?next={path}")
    page.get_by_label("E-Mail").fill(email)
    page.get_by_label("Passwort").fill(password)
    page.get_by_role("button", name="Anmelden").click()
    expect(page).to_have_url(f"{shop.server.base_url}{path}")


def test_a_support_user_sees_no_controls_and_is_refused_when_asking_anyway(
    context: BrowserContext, shop: Shop, owner_api: httpx.Client, errors: BrowserErrors
) -> None:
    support_email = f"sina.{secrets.token_hex(4)}@example.de"
    ok(
        owner_api.post(
            f"{ADMIN}/staff",
            json={
                "email": support_email,
                "password": SUPPORT_PASSWORD,
                "role": "support",
                "display_name": "Sina Service",
            },
        ),
        201,
    )
    page = context.new_page()
    errors.watch(page)

    sign_in(page, shop, support_email, SUPPORT_PASSWORD, "/admin/staff")
    staff_list = page.locator("#staff-list")
    expect(staff_list).to_contain_text(OWNER_LOGIN["email"])
    expect(staff_list).to_contain_text(support_email)
    expect(page.locator("#read-only")).to_be_visible()
    expect(page.locator("#create-staff")).to_have_count(0)
    expect(page.locator("select[name=role]")).to_have_count(0)
    expect(page.get_by_role("button", name="Deaktivieren")).to_have_count(0)
    expect(page.get_by_role("button", name="Rolle ändern")).to_have_count(0)
    expect(page.locator('[data-api*="/api/v1/admin/staff"]')).to_have_count(0)

    page.goto(f"{shop.server.base_url}/admin/terminals")
    till = page.locator(f"section[data-terminal={TERMINAL['code']}]")
    expect(till).to_contain_text(TERMINAL["name"])
    expect(till.locator("table.keys tbody tr")).not_to_have_count(0)
    expect(page.locator("#read-only")).to_be_visible()
    expect(page.locator("[data-issue], [data-api]")).to_have_count(0)
    expect(page.locator("#create-terminal")).to_have_count(0)
    expect(page.get_by_role("button", name="Neuen Schlüssel ausgeben")).to_have_count(0)
    expect(page.get_by_role("button", name="Sperren")).to_have_count(0)

    # The same requests the owner's controls make, from this page with this session's cookie.
    sneaky_email = f"mallory.{secrets.token_hex(4)}@example.de"
    made_staff = page.evaluate(
        FETCH,
        [
            f"{ADMIN}/staff",
            {
                "email": sneaky_email,
                "password": "Ein-sehr-langes-Passwort",
                "role": "owner",
                "display_name": "Mallory",
            },
        ],
    )
    sneaky_code = f"heimlich-{secrets.token_hex(3)}"
    made_till = page.evaluate(
        FETCH,
        [
            f"{ADMIN}/terminals",
            {"program_id": shop.program_id, "code": sneaky_code, "location": "x", "name": "x"},
        ],
    )
    for refused in (made_staff, made_till):
        assert refused["status"] == 403, refused
        assert refused["body"]["code"] == "forbidden", refused
    # Reading is what the role may do, with the same cookie.
    listed = page.evaluate("async (path) => (await fetch(path)).status", f"{ADMIN}/terminals")
    assert listed == 200

    emails = {user["email"] for user in ok(owner_api.get(f"{ADMIN}/staff"))}
    assert support_email in emails
    assert sneaky_email not in emails
    codes = {till["code"] for till in ok(owner_api.get(f"{ADMIN}/terminals"))}
    assert TERMINAL["code"] in codes
    assert sneaky_code not in codes
    # The console shows the two refused requests (403); nothing else went wrong.
    assert [message for message in errors.messages if "403" not in message] == []


def test_the_owner_creates_a_till_and_sees_its_key_once(
    context: BrowserContext, shop: Shop, errors: BrowserErrors
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors.watch(page)
    sign_in(page, shop, OWNER_LOGIN["email"], OWNER_LOGIN["password"], "/admin/staff")
    expect(page.locator("#create-staff")).to_be_visible()
    expect(page.get_by_role("button", name="Rolle ändern").first).to_be_visible()

    page.goto(f"{shop.server.base_url}/admin/terminals")
    expect(page.locator("#read-only")).to_have_count(0)
    code = f"theke-{secrets.token_hex(3)}"
    form = page.locator("#create-terminal form")
    form.get_by_label("Programm").select_option(str(shop.program_id))
    form.get_by_label("Code").fill(code)
    form.get_by_label("Name").fill("Theke hinten")
    form.get_by_label("Standort").fill("hinten")
    form.get_by_role("button", name="Anlegen").click()

    issued = page.locator("#issued")
    expect(issued).to_be_visible()
    key = page.locator("#issued-secret").text_content() or ""
    assert key.startswith("lk_")
    page.get_by_role("button", name="Kopieren").click()
    expect(page.locator("#issued-copied")).to_have_text("Kopiert")
    assert page.evaluate("navigator.clipboard.readText()") == key
    # The key works at the till.
    with httpx.Client(base_url=shop.server.base_url, timeout=STARTUP_TIMEOUT_SECONDS) as till:
        me: dict[str, Any] = ok(
            till.get("/api/v1/pos/terminal", headers={"Authorization": f"Bearer {key}"})
        )
    assert (me["terminal_code"], me["location"], me["program_id"]) == (
        code,
        "hinten",
        shop.program_id,
    )

    page.get_by_role("button", name="Gespeichert, weiter").click()
    section = page.locator(f"section[data-terminal={code}]")
    expect(section).to_contain_text("Theke hinten")
    expect(section.locator("table.keys tbody tr")).to_have_count(1)
    expect(issued).to_be_hidden()
    prefix = key.split("_")[1]
    expect(section.locator(f"tr[data-key='{prefix}']")).to_contain_text("gültig")
    assert key not in page.content()  # shown once: never again
    assert errors.messages == []
