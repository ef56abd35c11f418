"""The analytics dashboard in a real browser, as seed-demo's owner: the figures render (tiles,
SVG charts, tiers, segments, Net Promoter comments, the at-risk list) and agree with the admin
API's JSON, the CSV downloads work with the page's session, the period form and the language
switch work, and the page runs without a console error under its strict CSP.

With LOYALTY_WRITE_SCREENSHOTS=1 the dashboard's screenshot is written to
docs/screenshots/admin-dashboard.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.helpers import OWNER_LOGIN, BrowserErrors, Server

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PAGE = "/admin/analytics"


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
    try:
        yield context
    finally:
        context.close()


def german(value: int) -> str:
    return f"{value:,}".replace(",", ".")


def absolute(page: Page, href: str) -> str:
    return page.url.split("/admin/")[0] + href


def signed_in(context: BrowserContext, server: Server, errors: BrowserErrors) -> Page:
    page = context.new_page()
    errors.watch(page)
    page.goto(f"{server.base_url}{PAGE}")
    expect(page).to_have_url(f"{server.base_url}/admin/login?next={PAGE}")
    page.get_by_label("E-Mail").fill(OWNER_LOGIN["email"])
    page.get_by_label("Passwort").fill(OWNER_LOGIN["password"])
    page.get_by_role("button", name="Anmelden").click()
    expect(page).to_have_url(f"{server.base_url}{PAGE}")
    return page


def api_json(page: Page, href: str) -> Any:
    """What a download link of the page answers, with the page's session cookie."""
    response = page.request.get(absolute(page, href))
    assert response.ok, response.text()
    return response.json()


def test_the_owner_reads_the_dashboard(
    context: BrowserContext, server: Server, errors: BrowserErrors, tmp_path: Path
) -> None:
    page = signed_in(context, server, errors)
    expect(page.get_by_role("heading", level=1)).to_have_text("Kennzahlen · Sonnenpunkte")
    report = api_json(page, page.locator("#download-json").get_attribute("href") or "")
    # The default period: the last 30 days, in days.
    assert report["period"]["days"] == 30
    assert report["period"]["bucket"] == "day"
    assert report["members"]["at_end"] > 0, "seed-demo makes members with a history"

    tiles = page.locator("#kpi-tiles")
    expect(tiles.locator("#tile-members .value")).to_have_text(german(report["members"]["at_end"]))
    expect(tiles.locator("#tile-active .value")).to_have_text(german(report["members"]["active"]))
    expect(tiles.locator(".tile")).to_have_count(12)

    # Charts: drawn on the server, one point per day.
    expect(page.locator("svg#chart-members polyline")).to_have_count(1)
    expect(page.locator("svg#chart-members polygon.area")).to_have_count(1)
    expect(page.locator("svg#chart-activity polyline")).to_have_count(2)
    expect(page.locator("svg#chart-points polyline")).to_have_count(3)
    points = page.locator("svg#chart-points polyline").first.get_attribute("points") or ""
    assert len(points.split()) == len(report["series"]) == 30
    expect(page.locator("svg#chart-points title")).to_have_text("Punkte je Zeitschritt")
    expect(page.locator("#series-table tbody tr")).to_have_count(30)

    # Tiers and segments.
    assert report["tiers"] is not None
    expect(page.locator("svg#chart-tiers rect.bar")).to_have_count(
        sum(1 for level in report["tiers"]["levels"] if level["members"])
    )
    expect(page.locator("svg#chart-segments")).to_contain_text("Champions")
    expect(page.locator("#analytics-rfm")).to_contain_text(german(report["rfm"]["customers"]))

    # Comments of the period, newest first.
    comments = report["nps"]["comments"]
    expect(page.locator("#nps-comments li")).to_have_count(len(comments))
    if comments:
        expect(page.locator("#nps-comments li").first).to_contain_text(comments[0]["comment"])

    # The at-risk list and its CSV, downloaded with the page's session.
    at_risk = api_json(
        page,
        (page.locator("#download-json").get_attribute("href") or "").replace(
            "/analytics?", "/analytics/at-risk?"
        ),
    )
    rows = page.locator("#at-risk-table tbody tr")
    expect(rows).to_have_count(min(25, len(at_risk["members"])))
    if at_risk["members"]:
        expect(rows.first).to_contain_text(at_risk["members"][0]["display_name"])
    csv_href = page.locator("#download-at-risk").get_attribute("href") or ""
    download = page.request.get(absolute(page, csv_href))
    assert download.ok
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"].startswith('attachment; filename="at-risk-')
    lines = download.body().decode("utf-8-sig").splitlines()
    assert lines[0].startswith("member_id,display_name,email,marketing_consent")
    assert len(lines) == 1 + len(at_risk["members"])

    if os.environ.get("LOYALTY_WRITE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "admin-dashboard.png"), full_page=True)
    page.screenshot(path=str(tmp_path / "admin-dashboard.png"), full_page=True)
    assert errors.messages == []


def test_the_period_form_and_the_language(
    context: BrowserContext, server: Server, errors: BrowserErrors
) -> None:
    page = signed_in(context, server, errors)
    last = date.fromisoformat(page.locator("input[name=to]").input_value())
    first = last - timedelta(days=90)
    page.locator("input[name=from]").fill(first.isoformat())
    page.locator("select[name=bucket]").select_option("week")
    page.get_by_role("button", name="Anzeigen").click()
    expect(page).to_have_url(re.compile(r".*/admin/analytics\?.*bucket=week"))
    report = api_json(page, page.locator("#download-json").get_attribute("href") or "")
    assert (report["period"]["first"], report["period"]["bucket"]) == (first.isoformat(), "week")
    expect(page.locator("#series-table tbody tr")).to_have_count(len(report["series"]))
    assert 13 <= len(report["series"]) <= 15

    assert errors.messages == []

    # A period the API refuses is explained on the page (answered 400, which the browser logs).
    page.goto(f"{server.base_url}{PAGE}?from=2025-03-02&to=2025-03-01")
    expect(page.get_by_role("alert")).to_have_text("Der Zeitraum ist leer: „Von“ liegt nach „Bis“.")
    expect(page.locator("#kpi-tiles")).to_have_count(0)
    assert len(errors.messages) == 1, errors.messages
    assert "status of 400" in errors.messages[0]
    errors.messages.clear()

    page.goto(f"{server.base_url}{PAGE}?lang=en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Analytics · Sonnenpunkte")
    expect(page.locator("#tile-retention .label")).to_have_text("Retention rate")
    assert errors.messages == []
