"""Apple Wallet and Google Wallet passes through the wallet's API, and Apple's pass web service.

The app runs with a test pass certificate chain (tests/wallet/pass_keys.py) and a test Google
service account written to files, as an installation configures them. The signed pass is
verified with openssl against the test CA; the save link's JWT with PyJWT. In the app, APNs is
an ``httpx.MockTransport`` handed to its ``ApnsClient`` (``mock_apns``); the client itself is
tried against a real HTTP/2 server over TLS that demands the pass certificate
(tests/wallet/fake_apns.py). Apple's and Google's real services are not reached.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.app.factory import create_app
from loyalty.app.settings import Settings
from loyalty.db.tables import members, pass_registrations, wallet_passes
from tests.app import conftest
from tests.app.conftest import START, MutableClock, Stack, open_stack
from tests.app.test_api_rewards import give_tiers
from tests.support.problems import assert_problem
from tests.wallet.fake_apns import fake_apns_server
from tests.wallet.pass_keys import (
    NOW,
    PASS_TYPE_ID,
    TEAM_ID,
    Chain,
    key_pem,
    make_chain,
    pem,
    service_account_json,
)
from tests.wallet.test_apple_pass import open_pass, verify
from tests.wallet.test_google_wallet import EMAIL, ISSUER, decode
from wallet.passes.apns import ApnsClient, client_ssl_context
from wallet.passes.apple import authentication_token
from wallet.passes.google import SAVE_URL_PREFIX
from wallet.passes_api import PassUpdates, parse_update_tag

from .test_sign_in_api import ADA, WALLET, code_in, enroll, mails, program, sign_in

PUBLIC_URL = "https://loyalty.example.de"
WEB_SERVICE = "/api/v1/wallet/apple/v1"
DEVICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
PUSH_TOKEN = "ab" * 32
FAKE_APNS = "https://apns.invalid"


# --- The app with wallet keys ------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain() -> Chain:
    """Valid at the app's clock (START, early 2025) and at the pass tests' NOW (2026)."""
    return make_chain(not_before=START - timedelta(days=30), not_after=NOW + timedelta(days=365))


@pytest.fixture(scope="module")
def google_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def wallet_settings(tmp_path: Path, chain: Chain, google_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """The settings an installation with both wallets sets, files written to ``tmp_path``."""
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "pass.pem").write_bytes(pem(chain.pass_certificate))
    (keys / "pass.key").write_bytes(key_pem(chain.pass_key, b"geheim"))
    (keys / "wwdr.pem").write_bytes(pem(chain.wwdr))
    (keys / "google.json").write_text(service_account_json(google_key, EMAIL))
    return {
        "public_url": PUBLIC_URL,
        "apple_pass_type_id": PASS_TYPE_ID,
        "apple_team_id": TEAM_ID,
        "apple_pass_cert": str(keys / "pass.pem"),
        "apple_pass_key": str(keys / "pass.key"),
        "apple_pass_key_password": "geheim",
        "apple_wwdr_cert": str(keys / "wwdr.pem"),
        "apple_apns_url": FAKE_APNS,
        "google_wallet_issuer_id": ISSUER,
        "google_wallet_service_account": str(keys / "google.json"),
    }


StackWith = Callable[[str, dict[str, Any]], Stack]


@pytest.fixture
def stack_with(monkeypatch: pytest.MonkeyPatch, clock: MutableClock) -> Iterator[StackWith]:
    """``stack_with(url, settings)``: ``open_stack`` whose app has these settings too."""
    with ExitStack() as exits:

        def open_with(url: str, extra: dict[str, Any]) -> Stack:
            def configured_app(settings: Settings, **kwargs: Any) -> Any:
                return create_app(msgspec.structs.replace(settings, **extra), **kwargs)

            monkeypatch.setattr(conftest, "create_app", configured_app)
            return open_stack(exits, url, clock)

        yield open_with


@pytest.fixture
def wallets(stack_with: StackWith, db_url: str, wallet_settings: dict[str, Any]) -> Stack:
    """The app (SQLite and PostgreSQL) with both wallets configured."""
    return stack_with(db_url, wallet_settings)


@dataclass
class MockApns:
    """Answers every push with ``status`` (or raises ``error``) and records what was sent."""

    status: int = 200
    error: Exception | None = None
    sent: list[tuple[str, str, bytes]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.url.path, request.headers["apns-topic"], request.content))
        if self.error is not None:
            raise self.error
        body = {"reason": "Unregistered"} if self.status == 410 else None
        return httpx.Response(self.status, json=body)


def mock_apns(stack: Stack, apns: MockApns) -> PassUpdates:
    """The app's pushes go to ``apns`` from now on."""
    updates: PassUpdates = stack.app.state.pass_updates
    stack.run(updates.apns.aclose)
    updates.apns = ApnsClient(PASS_TYPE_ID, base_url=FAKE_APNS, transport=httpx.MockTransport(apns))
    return updates


@dataclass
class Member:
    stack: Stack
    program_id: int
    member_id: int
    card_number: str

    def pass_url(self, kind: str) -> str:
        return f"{WALLET}/{self.program_id}/passes/{kind}"

    def earn(self, points: int) -> None:
        self.stack.shop.ok(
            f"/programs/{self.program_id}/members/{self.member_id}/earn", {"points": points}
        )

    def download(self) -> dict[str, bytes]:
        response = self.stack.client.get(self.pass_url("apple"))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/vnd.apple.pkpass"
        assert response.headers["content-disposition"].startswith("attachment")
        assert response.headers["cache-control"] == "no-store"
        return open_pass(response.content)


def signed_in_member(stack: Stack) -> Member:
    manager, pid = program(stack)
    enroll(stack, pid)
    member_id = sign_in(stack, pid, ADA["email"], code_in(mails(manager)[0])).json()["member_id"]
    card_number = stack.read_db(
        lambda conn: conn.scalar(select(members.c.card_number).where(members.c.id == member_id))
    )
    return Member(stack, pid, member_id, card_number)


def pass_document(files: dict[str, bytes]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(files["pass.json"])
    return document


def apple_auth(serial: str, token: str | None = None) -> dict[str, str]:
    token = token or authentication_token(server_key(), PASS_TYPE_ID, serial)
    return {"Authorization": f"ApplePass {token}"}


def server_key() -> str:
    return Settings().secret_key  # open_stack keeps the default one


def registration(serial: str, device: str = DEVICE) -> str:
    return f"{WEB_SERVICE}/devices/{device}/registrations/{PASS_TYPE_ID}/{serial}"


def registrations_of(device: str = DEVICE) -> str:
    return f"{WEB_SERVICE}/devices/{device}/registrations/{PASS_TYPE_ID}"


def all_rows(stack: Stack, query: Any) -> list[Any]:
    async def work(conn: AsyncConnection) -> list[Any]:
        return list((await conn.execute(query)).all())

    return stack.read_db(work)


def pass_row(stack: Stack, member_id: int) -> Any:
    (row,) = all_rows(stack, select(wallet_passes).where(wallet_passes.c.member_id == member_id))
    return row


# --- The Apple pass and its updates ------------------------------------------------------------


def test_the_apple_pass_shows_the_card_and_follows_the_balance(
    wallets: Stack, tmp_path: Path, chain: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    stack = wallets
    member = signed_in_member(stack)
    apns = MockApns()
    updates = mock_apns(stack, apns)
    member.earn(100)
    give_tiers(stack, member.program_id, {member.member_id: "silver"})
    stack.run(updates.drain)
    # No pass yet: a balance change touches nothing and pushes nothing.
    assert all_rows(stack, select(wallet_passes)) == []

    files = member.download()
    document = pass_document(files)
    serial = document["serialNumber"]
    assert document["storeCard"]["primaryFields"][0]["value"] == 100
    assert [(f["key"], f["value"]) for f in document["storeCard"]["secondaryFields"]] == [
        ("tier", "Silver"),  # the member reads English
        ("name", "Ada Lovelace"),
    ]
    assert document["barcodes"][0]["message"] == member.card_number
    assert document["sharingProhibited"] is True
    assert document["passTypeIdentifier"] == PASS_TYPE_ID
    assert document["webServiceURL"] == f"{PUBLIC_URL}/api/v1/wallet/apple"
    assert document["authenticationToken"] == authentication_token(
        server_key(), PASS_TYPE_ID, serial
    )
    assert member.card_number not in serial
    assert len(serial) >= 16
    result = verify(tmp_path, files, pem(chain.ca))
    assert result.returncode == 0, result.stderr
    created = pass_row(stack, member.member_id)
    assert (created.serial, created.program_id) == (serial, member.program_id)
    assert pass_document(member.download())["serialNumber"] == serial  # one pass per member

    # The device registers: 201, then 200; a wrong or missing token is refused.
    body = {"pushToken": PUSH_TOKEN}
    first = stack.client.post(registration(serial), json=body, headers=apple_auth(serial))
    assert first.status_code == 201, first.text
    again = stack.client.post(registration(serial), json=body, headers=apple_auth(serial))
    assert again.status_code == 200
    wrong = apple_auth(serial, authentication_token("another key", PASS_TYPE_ID, serial))
    assert_problem(
        stack.client.post(registration(serial), json=body, headers=wrong), 401, "unauthorized"
    )
    assert_problem(stack.client.post(registration(serial), json=body), 401, "unauthorized")
    for malformed in ({"pushToken": "../../x"}, {"pushToken": ""}, {}):
        refused = stack.client.post(
            registration(serial), json=malformed, headers=apple_auth(serial)
        )
        assert_problem(refused, 400, "validation_failed")

    listed = stack.client.get(registrations_of())
    assert listed.status_code == 200
    assert listed.json()["serialNumbers"] == [serial]
    tag = listed.json()["lastUpdated"]
    assert parse_update_tag(tag) == created.updated_at
    assert (
        stack.client.get(registrations_of(), params={"passesUpdatedSince": tag}).status_code == 204
    )

    stack.clock.advance(minutes=5)
    latest = stack.client.get(
        f"{WEB_SERVICE}/passes/{PASS_TYPE_ID}/{serial}", headers=apple_auth(serial)
    )
    assert latest.status_code == 200
    assert latest.headers["content-type"] == "application/vnd.apple.pkpass"
    before = latest.headers["last-modified"]
    assert_problem(
        stack.client.get(f"{WEB_SERVICE}/passes/{PASS_TYPE_ID}/{serial}"), 401, "unauthorized"
    )

    # A sale: the pass is marked changed and the registered device is pushed.
    stack.clock.advance(minutes=1)
    member.earn(50)
    stack.run(updates.drain)
    touched = pass_row(stack, member.member_id)
    assert touched.updated_at > created.updated_at
    assert touched.updated_at == stack.clock.now
    assert apns.sent == [(f"/3/device/{PUSH_TOKEN}", PASS_TYPE_ID, b"{}")]
    since = stack.client.get(registrations_of(), params={"passesUpdatedSince": tag})
    assert since.status_code == 200
    assert since.json()["serialNumbers"] == [serial]
    new_tag = since.json()["lastUpdated"]
    assert int(new_tag) > int(tag)
    assert (
        stack.client.get(registrations_of(), params={"passesUpdatedSince": new_tag}).status_code
        == 204
    )

    stack.clock.advance(seconds=30)
    url = f"{WEB_SERVICE}/passes/{PASS_TYPE_ID}/{serial}"
    changed = stack.client.get(url, headers={**apple_auth(serial), "If-Modified-Since": before})
    assert changed.status_code == 200
    document = pass_document(open_pass(changed.content))
    assert document["storeCard"]["primaryFields"][0]["value"] == 150
    assert document["serialNumber"] == serial
    now_modified = changed.headers["last-modified"]
    same = stack.client.get(url, headers={**apple_auth(serial), "If-Modified-Since": now_modified})
    assert same.status_code == 304
    assert same.content == b""
    head = stack.client.head(url, headers=apple_auth(serial))
    assert head.status_code == 200
    assert head.headers["last-modified"] == now_modified
    assert head.headers["content-type"] == "application/vnd.apple.pkpass"
    assert head.content == b""
    assert stack.client.head(url).status_code == 401

    # Wallet's log messages are logged, cut and one line each.
    with caplog.at_level(logging.INFO, logger="wallet.passes"):
        logged = stack.client.post(f"{WEB_SERVICE}/log", json={"logs": ["bad\nthing " + "x" * 900]})
    assert logged.status_code == 200
    (record,) = [r for r in caplog.records if "Apple Wallet says" in r.getMessage()]
    assert "\n" not in record.getMessage()
    assert len(record.getMessage()) < 600

    # Unregistered: nothing left to list.
    assert_problem(stack.client.delete(registration(serial), headers=wrong), 401, "unauthorized")
    assert stack.client.delete(registration(serial), headers=apple_auth(serial)).status_code == 200
    assert stack.client.get(registrations_of()).status_code == 204
    assert stack.client.delete(registration(serial), headers=apple_auth(serial)).status_code == 200


def test_a_token_opens_its_own_pass_only(wallets: Stack) -> None:
    stack = wallets
    member = signed_in_member(stack)
    serial = pass_document(member.download())["serialNumber"]
    body = {"pushToken": PUSH_TOKEN}
    other = "0123456789abcdef0123456789abcdef"
    # A token made for another serial, the right token for an unknown serial, another type.
    assert_problem(
        stack.client.post(registration(serial), json=body, headers=apple_auth(other)),
        401,
        "unauthorized",
    )
    assert_problem(
        stack.client.post(registration(other), json=body, headers=apple_auth(other)),
        401,
        "unauthorized",
    )
    other_type = f"{WEB_SERVICE}/devices/{DEVICE}/registrations/pass.de.example.other/{serial}"
    token = authentication_token(server_key(), "pass.de.example.other", serial)
    assert_problem(
        stack.client.post(other_type, json=body, headers={"Authorization": f"ApplePass {token}"}),
        401,
        "unauthorized",
    )
    assert_problem(
        stack.client.get(f"{WEB_SERVICE}/passes/{PASS_TYPE_ID}/{other}", headers=apple_auth(other)),
        401,
        "unauthorized",
    )
    assert all_rows(stack, select(pass_registrations)) == []


def test_apns_gone_forgets_the_registration_and_failures_never_fail_the_sale(
    wallets: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack = wallets
    member = signed_in_member(stack)
    serial = pass_document(member.download())["serialNumber"]
    for device, token in ((DEVICE, PUSH_TOKEN), ("second-device", "cd" * 32)):
        registered = stack.client.post(
            registration(serial, device), json={"pushToken": token}, headers=apple_auth(serial)
        )
        assert registered.status_code == 201

    # APNs unreachable: the sale is booked, both registrations stay, the failure is logged.
    down = MockApns(error=httpx.ConnectError("no route to host"))
    updates = mock_apns(stack, down)
    with caplog.at_level(logging.WARNING, logger="wallet.apns"):
        member.earn(10)
        stack.run(updates.drain)
    assert len(down.sent) == 2
    assert "APNs push" in caplog.text
    assert len(all_rows(stack, select(pass_registrations))) == 2

    # 410: the device no longer has the pass; its registrations are forgotten.
    gone = MockApns(status=410)
    updates = mock_apns(stack, gone)
    member.earn(10)
    stack.run(updates.drain)
    assert sorted(path for path, _, _ in gone.sent) == [
        f"/3/device/{PUSH_TOKEN}",
        f"/3/device/{'cd' * 32}",
    ]
    assert all_rows(stack, select(pass_registrations)) == []


def test_the_card_page_offers_both_wallets_when_configured(wallets: Stack) -> None:
    stack = wallets
    member = signed_in_member(stack)
    english = stack.client.get(f"/wallet/{member.program_id}/card?lang=en").text
    assert f'href="{member.pass_url("apple")}"' in english
    assert "Add to Apple Wallet" in english
    assert f'data-url="{member.pass_url("google")}"' in english
    assert "Save to Google Wallet" in english
    german = stack.client.get(f"/wallet/{member.program_id}/card?lang=de").text
    assert "Zu Apple Wallet hinzufügen" in german
    assert "In Google Wallet speichern" in german
    assert "<script>" not in german  # the button works from card.js (strict CSP)


# --- APNs over HTTP/2 ---------------------------------------------------------------------------


def client_context(settings: dict[str, Any], chain: Chain, *, certificate: bool = True) -> Any:
    """``client_ssl_context`` of these settings (or none without the certificate), trusting the
    fake APNs' test CA instead of Apple's."""
    if certificate:
        context = client_ssl_context(msgspec.structs.replace(Settings(), **settings))
    else:
        context = ssl.create_default_context()
    context.load_verify_locations(cadata=pem(chain.ca).decode())
    return context


async def test_a_push_is_an_http2_post_with_the_pass_certificate(
    chain: Chain, wallet_settings: dict[str, Any]
) -> None:
    gone_token = "ef" * 32
    async with fake_apns_server(chain) as server:
        server.status_for = lambda token: 410 if token == gone_token else 200
        client = ApnsClient(
            PASS_TYPE_ID, base_url=server.url, ssl_context=client_context(wallet_settings, chain)
        )
        try:
            delivered = await client.push(PUSH_TOKEN)
            gone = await client.push(gone_token)
        finally:
            await client.aclose()
    assert delivered.delivered
    assert (gone.status, gone.reason, gone.unregistered) == (410, "Unregistered", True)
    first = server.pushed[0]
    assert (first.method, first.path, first.body) == ("POST", f"/3/device/{PUSH_TOKEN}", b"{}")
    assert first.headers["apns-topic"] == PASS_TYPE_ID
    assert first.client_certificate == chain.pass_certificate.public_bytes(Encoding.DER)


async def test_without_the_pass_certificate_the_push_fails_and_says_so(
    chain: Chain, wallet_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    async with fake_apns_server(chain) as server:
        client = ApnsClient(
            PASS_TYPE_ID,
            base_url=server.url,
            ssl_context=client_context(wallet_settings, chain, certificate=False),
        )
        try:
            with caplog.at_level(logging.WARNING, logger="wallet.apns"):
                outcome = await client.push(PUSH_TOKEN)
        finally:
            await client.aclose()
    assert (outcome.status, outcome.delivered, outcome.unregistered) == (None, False, False)
    assert server.pushed == []
    assert "APNs push" in caplog.text


# --- Google Wallet -----------------------------------------------------------------------------


def test_the_google_save_link_is_signed_and_carries_the_card(
    wallets: Stack, google_key: rsa.RSAPrivateKey
) -> None:
    stack = wallets
    member = signed_in_member(stack)
    member.earn(70)
    response = stack.client.get(member.pass_url("google"), headers={"Sec-Fetch-Mode": "cors"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    link = response.json()["save_url"]
    assert link.startswith(SAVE_URL_PREFIX)
    claims = decode(link.removeprefix(SAVE_URL_PREFIX), google_key)
    (document,) = claims["payload"]["loyaltyObjects"]
    assert document["accountId"] == member.card_number
    assert document["id"] == f"{ISSUER}.{member.card_number}"
    assert document["barcode"]["value"] == member.card_number
    assert document["loyaltyPoints"]["balance"] == {"int": 70}
    assert "rotatingBarcode" not in document  # the card's secret never travels in a link
    (program_class,) = claims["payload"]["loyaltyClasses"]
    assert program_class["id"] == document["classId"] == f"{ISSUER}.program-{member.program_id}"
    assert program_class["programLogo"]["sourceUri"]["uri"].startswith(PUBLIC_URL)

    # A page navigation (a link from anywhere) or another site does not get it.
    navigated = stack.client.get(member.pass_url("google"), headers={"Sec-Fetch-Mode": "navigate"})
    assert_problem(navigated, 403, "forbidden")
    cross = stack.client.get(member.pass_url("google"), headers={"Sec-Fetch-Site": "cross-site"})
    assert_problem(cross, 403, "forbidden")


def test_passes_need_the_members_session(wallets: Stack) -> None:
    stack = wallets
    member = signed_in_member(stack)
    stack.client.cookies.clear()
    for kind in ("apple", "google"):
        assert stack.client.get(member.pass_url(kind)).status_code == 401


# --- Not configured ----------------------------------------------------------------------------


def test_without_keys_the_passes_are_a_clear_error_and_the_buttons_are_hidden(
    stack: Stack,
) -> None:
    member = signed_in_member(stack)
    apple = assert_problem(
        stack.client.get(member.pass_url("apple")), 404, "apple_wallet_not_configured"
    )
    assert "LOYALTY_APPLE_PASS_CERT" in apple["detail"]
    google = assert_problem(
        stack.client.get(member.pass_url("google")), 404, "google_wallet_not_configured"
    )
    assert "LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT" in google["detail"]
    assert_problem(
        stack.client.post(registration("abc"), json={"pushToken": PUSH_TOKEN}),
        404,
        "apple_wallet_not_configured",
    )
    page = stack.client.get(f"/wallet/{member.program_id}/card?lang=en").text
    assert "/passes/apple" not in page
    assert "google-wallet" not in page
    assert "Apple Wallet" not in page
    assert "Google Wallet" not in page
    assert stack.app.state.pass_updates is None


@pytest.fixture
def broken_wallets(
    stack_with: StackWith, sqlite_url: str, wallet_settings: dict[str, Any]
) -> Stack:
    """Apple's WWDR certificate cannot be read, Google's key file setting is missing."""
    broken = {**wallet_settings, "apple_wwdr_cert": "/nowhere/wwdr.pem"}
    broken.pop("google_wallet_service_account")
    return stack_with(sqlite_url, broken)


def test_keys_that_do_not_load_hide_the_buttons_and_are_logged(
    broken_wallets: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack = broken_wallets
    member = signed_in_member(stack)
    with caplog.at_level(logging.ERROR, logger="wallet.passes"):
        page = stack.client.get(f"/wallet/{member.program_id}/card").text
    assert "/passes/apple" not in page
    assert "google-wallet" not in page
    assert "LOYALTY_APPLE_WWDR_CERT: cannot read" in caplog.text
    assert "Google Wallet is partly configured" in caplog.text
    # The pass route fails loudly: the installation meant to offer passes.
    assert_problem(stack.client.get(member.pass_url("apple")), 500, "internal_error")
    assert stack.app.state.pass_updates is None
