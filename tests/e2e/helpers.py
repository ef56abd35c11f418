"""What the browser tests of the cashier page share: the app as a real server, the shop it
serves (program, terminal, members), and the page's ways of showing points and money.

The server is a process of its own: ``loyalty migrate`` and ``loyalty seed-demo`` on a temporary
SQLite file, then uvicorn with the app factory (as ``loyalty serve`` runs it) on a loopback
socket that the test binds and hands over (``--fd``): no race for a free port, and requests wait
in the socket's backlog until the app is up. The program (with tiers), the terminal and the
members are made through the admin and ledger APIs as an owner and a shop's system would.

The fixtures that use these live in ``conftest.py`` beside this file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from loyalty.domain.cards import rotating_code
from loyalty.services.demo import DEMO_MERCHANT, DEMO_OWNER
from loyalty.services.member_cards import card_secret
from pos_adapter.cashier.i18n import STRINGS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Playwright's waits (auto-waiting actions, ``expect``); generous for a loaded CI machine.
TIMEOUT_MS = 15_000
STARTUP_TIMEOUT_SECONDS = 30
#: seed-demo's owner (demo data: the password is public).
OWNER_LOGIN = {"email": DEMO_OWNER[0], "password": DEMO_OWNER[1]}
LEDGER_SECRET = "e2e-ledger-secret"
START_POINTS = 1250
#: The cashier's till (terminal) and where it stands, as the page's header shows them.
TERMINAL = {"code": "kasse-1", "location": "Filiale Mitte", "name": "Kasse 1"}
#: The name of the program's base tier (every member from 0 points) in each language.
BASE_TIER_NAME = {"de": "Basis", "en": "Basic"}
LOCALES = {"de": "de-DE", "en": "en-GB"}
VIEWPORT = {"width": 1280, "height": 800}


# --- The server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    base_url: str
    database: Path
    env: dict[str, str]
    workdir: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def loyalty(self, *args: str) -> str:
        """Run the ``loyalty`` command on the server's database; its output (exit 0 or fail)."""
        return run_loyalty(self.env, self.workdir, *args)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.database)) as db:
            return db.execute(sql, params).fetchall()


def run_loyalty(env: dict[str, str], cwd: Path, *args: str) -> str:
    command = [sys.executable, "-c", "from loyalty.app.cli import main; main()", *args]
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"loyalty {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_server(workdir: Path) -> Iterator[Server]:
    """The app on a migrated, seeded SQLite file in ``workdir``, served by uvicorn in a process
    of its own until the block ends."""
    database = workdir / "loyalty.db"
    env = {name: value for name, value in os.environ.items() if not name.startswith("LOYALTY_")}
    env.update(
        LOYALTY_DATABASE_URL=f"sqlite+aiosqlite:///{database}",
        LOYALTY_SECRET_KEY=secrets.token_hex(16),
        LOYALTY_SWEEP_INTERVAL_SECONDS="0",
        PYTHONUNBUFFERED="1",
    )
    run_loyalty(env, workdir, "migrate")
    run_loyalty(env, workdir, "seed-demo")
    with contextlib.closing(sqlite3.connect(database)) as db:
        (merchant_id,) = db.execute("SELECT id FROM merchants").fetchone()
    # The ledger API client of the shop's back office (enrols members, gives start points).
    env["LOYALTY_API_KEYS"] = f"e2e={LEDGER_SECRET}@{merchant_id}"

    log = workdir / "server.log"
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, log.open("wb") as log_file:
        port = listener.getsockname()[1]
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "loyalty.app.factory:create_app",
                "--fd",
                str(listener.fileno()),
            ],
            pass_fds=(listener.fileno(),),
            env=env,
            cwd=workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    # The listener is closed here, in this process only: should the server die, a waiting
    # request is refused instead of hanging.
    served = Server(f"http://127.0.0.1:{port}", database, env, workdir, log)
    try:
        try:
            with httpx.Client(base_url=served.base_url, timeout=STARTUP_TIMEOUT_SECONDS) as client:
                ready = client.get("/ready")
            assert ready.status_code == 200, ready.text
        except (httpx.HTTPError, AssertionError) as error:
            pytest.fail(f"the server did not come up ({error!r}):\n{served.log_text()}")
        yield served
    finally:
        stop(process)


# --- The shop: program with tiers, terminal, members ------------------------------------------


@dataclass(frozen=True)
class Shop:
    server: Server
    program_id: int
    terminal_key: str

    def client(self, secret: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.base_url,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=STARTUP_TIMEOUT_SECONDS,
        )


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    return response.json()


def open_shop(server: Server) -> Shop:
    """A program "kasse" (one point per euro; tiers basis from 0 and silber from 5000 points)
    and its terminal, made by seed-demo's owner through the admin API."""
    with httpx.Client(base_url=server.base_url, timeout=STARTUP_TIMEOUT_SECONDS) as client:
        token = ok(client.post("/api/v1/admin/login", json=OWNER_LOGIN))["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        admin = "/api/v1/admin"
        program = ok(
            client.post(
                f"{admin}/programs",
                json={"code": "kasse", "name": "Kassenpunkte", "currency": "EUR"},
            ),
            201,
        )
        rule_sets = f"{admin}/programs/{program['program_id']}/rule-sets"
        draft = ok(client.post(rule_sets, json={}), 201)
        levels = [
            {"code": "basis", "name": BASE_TIER_NAME, "threshold": 0},
            {"code": "silber", "name": {"de": "Silber", "en": "Silver"}, "threshold": 5000},
        ]
        ok(client.put(f"{rule_sets}/{draft['version']}/tiers", json={"levels": levels}))
        ok(client.post(f"{rule_sets}/{draft['version']}/publish", json={}))
        terminal = ok(
            client.post(
                f"{admin}/terminals", json={"program_id": program["program_id"], **TERMINAL}
            ),
            201,
        )
        assert client.post(f"{admin}/logout").status_code == 204
    return Shop(server, program["program_id"], terminal["api_key"])


@dataclass(frozen=True)
class Member:
    member_id: int
    name: str
    card_number: str


def enrol(shop: Shop, name: str) -> Member:
    """A member of the program with START_POINTS, as the shop's back office would make one."""
    with shop.client(LEDGER_SECRET) as client:
        members = f"/api/v1/programs/{shop.program_id}/members"
        key = secrets.token_hex(8)
        enrolled = ok(
            client.post(
                members, json={"display_name": name}, headers={"Idempotency-Key": f"enrol-{key}"}
            ),
            201,
        )
        member_id = enrolled["member_id"]
        ok(
            client.post(
                f"{members}/{member_id}/earn",
                json={"points": START_POINTS, "reference": "welcome"},
                headers={"Idempotency-Key": f"welcome-{key}"},
            ),
            201,
        )
    [(card_number,)] = shop.server.query("SELECT card_number FROM members WHERE id = ?", member_id)
    return Member(member_id, name, card_number)


def wallet_code(shop: Shop, member: Member) -> str:
    """The member's rotating code of this moment, as the wallet shows it in its QR code."""
    server_key = shop.server.env["LOYALTY_SECRET_KEY"].encode()
    secret = card_secret(server_key, member.member_id, 0)
    return rotating_code(member.member_id, secret, datetime.now(UTC))


# --- The page ------------------------------------------------------------------------------


@dataclass
class BrowserErrors:
    """What the page must not produce: console errors and uncaught exceptions."""

    messages: list[str]

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console.error: {message.text} ({message.location})")

    def page_error(self, error: Exception) -> None:
        self.messages.append(f"pageerror: {error}")

    def watch(self, page: Page) -> None:
        page.on("console", self.console)
        page.on("pageerror", self.page_error)


def sign_in(page: Page, shop: Shop, lang: str) -> None:
    """Open the page in a fresh profile and sign the till in with its terminal key."""
    t = STRINGS[lang]
    page.goto(f"{shop.server.base_url}/pos")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page).to_have_title(t["page_title"])
    expect(page.get_by_role("heading", name=t["login_title"])).to_be_visible()
    key_form = page.locator("#form-key")
    key_form.get_by_label(t["terminal_key"]).fill(shop.terminal_key)
    key_form.get_by_role("button", name=t["sign_in"]).click()
    expect(page.locator("#where")).to_have_text(
        f"{TERMINAL['name']} · {TERMINAL['location']} · {DEMO_MERCHANT}"
    )
    expect(page.locator("#login")).to_be_hidden()
    expect(page.get_by_text(t["no_member"])).to_be_visible()


def points(value: int, lang: str) -> str:
    """Points as the page shows them: "1.262 P" in German, "1,262 pts" in English."""
    grouped = f"{value:,}".replace(",", "." if lang == "de" else ",")
    return f"{grouped} {STRINGS[lang]['points_unit']}"


def money(cents: int, lang: str) -> str:
    """Euros as the page shows them: "12,00 €" in German, "€12.00" in English."""
    euros, rest = divmod(cents, 100)
    return f"{euros},{rest:02d} €" if lang == "de" else f"€{euros}.{rest:02d}"


def amount(cents: int, lang: str) -> str:
    """Euros as a cashier types them: "4,50" in German, "4.50" in English."""
    euros, rest = divmod(cents, 100)
    return f"{euros}{',' if lang == 'de' else '.'}{rest:02d}"
