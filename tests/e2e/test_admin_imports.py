"""The import page in a real browser: a manager checks a file with bad lines and sees them by
line number, imports it (rejected: nothing imported), then imports the good lines by skipping
the bad ones; the past runs list both.

With LOYALTY_WRITE_SCREENSHOTS=1 the checked file's report is written to
docs/screenshots/admin-import.png (see docs/IMPORT.md).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from loyalty.services.demo import DEMO_MANAGER
from tests.e2e.helpers import BrowserErrors, Shop

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
    try:
        yield context
    finally:
        context.close()


def test_a_manager_checks_and_imports_a_member_file(
    context: BrowserContext, shop: Shop, errors: BrowserErrors, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    file = tmp_path / "kunden.csv"
    file.write_text(
        "external_id;display_name;email;opening_points\n"
        f"E2E-{tag}-1;Anna Berger;anna.{tag}@example.org;100\n"
        f"E2E-{tag}-2;;lukas.{tag}@example.org;\n"
        f"E2E-{tag}-3;Mia Gruber;mia@;zehn\n",
        encoding="utf-8",
    )
    base = shop.server.base_url
    path = f"/admin/imports?program={shop.program_id}"
    page = context.new_page()
    errors.watch(page)
    page.goto(base + path)
    page.get_by_label("E-Mail").fill(DEMO_MANAGER[0])
    page.get_by_label("Passwort").fill(DEMO_MANAGER[1])
    page.get_by_role("button", name="Anmelden").click()
    expect(page).to_have_url(base + path)

    page.get_by_label("CSV-Datei").set_input_files(file)
    page.get_by_role("button", name="Nur prüfen").click()
    report = page.locator("#import-report")
    expect(report).to_be_visible()
    expect(page.locator("#report-status")).to_have_text("abgelehnt")
    expect(report.locator("[data-count=rows_invalid]")).to_have_text("2")
    expect(report.locator("#report-problems tbody tr td:first-child")).to_have_text(["3", "4", "4"])
    expect(report).to_contain_text("Pflichtfeld leer")
    expect(report).to_contain_text("Keine E-Mail-Adresse")
    expect(report).to_contain_text("Nur geprüft, nichts gespeichert.")
    png = page.screenshot(full_page=True)
    if os.environ.get("LOYALTY_WRITE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / "admin-import.png").write_bytes(png)

    page.get_by_role("button", name="Importieren").click()
    expect(page).to_have_url(re.compile(rf"/admin/imports/\d+\?program={shop.program_id}$"))
    expect(page.locator("h1")).to_contain_text("abgelehnt")
    expect(page.locator("#problems tbody tr")).to_have_count(3)

    page.goto(base + path)
    page.get_by_label("CSV-Datei").set_input_files(file)
    page.get_by_label("Fehlerhafte Zeilen überspringen").check()
    page.get_by_role("button", name="Importieren").click()
    expect(page.locator("h1")).to_contain_text("importiert")
    expect(page.locator(".tile .value").nth(1)).to_have_text("1")

    page.goto(base + path)
    runs = page.locator("#runs tbody tr")
    expect(runs.first).to_contain_text("importiert")
    expect(runs.nth(1)).to_contain_text("abgelehnt")
    assert errors.messages == []
