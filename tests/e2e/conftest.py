"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, and one app server with
its shop for every test of this folder (package scope: started once, stopped after the last).

Chromium is Debian's (``apt-get install chromium``), driven by Playwright's driver (no browser
download). Without it the tests skip, or fail with LOYALTY_REQUIRE_SERVICES=1, as in CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

from tests.e2e.helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    BrowserErrors,
    Server,
    Shop,
    open_shop,
    running_server,
)
from tests.support.services import services_required


@pytest.fixture(scope="package")
def chromium() -> Path:
    """Debian's Chromium: skip without it, or fail when LOYALTY_REQUIRE_SERVICES=1 (CI)."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)"
        if services_required():
            pytest.fail(f"{reason} [LOYALTY_REQUIRE_SERVICES=1]", pytrace=False)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="package")
def playwright(chromium: Path) -> Iterator[Playwright]:
    """Playwright's driver; a test that needs Chromium with flags of its own launches it here."""
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright, chromium: Path) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="package")
def server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app on a migrated, seeded SQLite file, served by uvicorn in a process of its own
    (after ``chromium``: without a browser there is nothing to serve)."""
    with running_server(tmp_path_factory.mktemp("cashier-server")) as served:
        yield served


@pytest.fixture(scope="package")
def shop(server: Server) -> Shop:
    """A program "kasse" (one point per euro; tiers basis from 0 and silber from 5000 points)
    and its terminal."""
    return open_shop(server)


@pytest.fixture
def errors() -> BrowserErrors:
    return BrowserErrors([])
