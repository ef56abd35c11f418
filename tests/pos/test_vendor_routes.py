"""The vendors' own protocols end to end, through the mounted route and a vendor connection:
Toast's loyalty transactions and Shopify's order webhooks, with balances asserted at every
step, replays of the same message ids changing nothing, and bad keys or signatures refused
with nothing written. Request bodies are the documented fixtures of tests/pos/fixtures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from loyalty.db.tables import vendor_messages
from pos_adapter.vendors.shopify import signature
from tests.app.conftest import Stack
from tests.app.staff_session import Manager
from tests.support.problems import assert_problem

from .test_terminal_api import Till, line, order, setup, wallet_code

FIXTURES = Path(__file__).parent / "fixtures"
VENDORS = "/api/v1/pos/vendors"
RESTAURANT = "9a7c4d2e-0000-4e1b-a000-000000000001"
SHOP = "treue-laden.myshopify.com"
SHOP_SECRET = "shpss_0123456789abcdef0123456789abcdef"


def fixture(name: str) -> dict[str, Any]:
    """A documented request body; its offer 5OFF is our reward code ``5off`` (codes are
    lowercase here; Toast echoes whatever identifier our offers gave it)."""
    text = (FIXTURES / name).read_text().replace('"5OFF"', '"5off"')
    document: dict[str, Any] = json.loads(text)
    return document


def terminal_id(manager: Manager) -> int:
    (terminal,) = manager.call("GET", "/terminals")
    return int(terminal["terminal_id"])


def balance(till: Till, card: str) -> dict[str, int]:
    result: dict[str, int] = till.ok("/identify", {"member": {"value": card}})["balance"]
    return result


def logged_messages(stack: Stack) -> int:
    count = stack.read_db(
        lambda conn: conn.scalar(select(func.count()).select_from(vendor_messages))
    )
    return int(count or 0)


class Toast:
    def __init__(self, stack: Stack, api_key: str) -> None:
        self.stack = stack
        self.api_key = api_key

    def send(
        self, kind: str, guid: str, body: dict[str, Any], *, api_key: str | None = None
    ) -> Any:
        return self.stack.client.post(
            f"{VENDORS}/toast/loyalty",
            content=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Toast-Transaction-Type": kind,
                "Toast-Transaction-GUID": guid,
                "Toast-Restaurant-External-ID": RESTAURANT,
                "Authorization": api_key or self.api_key,
            },
        )

    def ok(self, kind: str, guid: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.send(kind, guid, body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        assert answer["transactionStatus"] == "ACCEPT", answer
        return answer


def toast_check(kind: str, identifier: str, check_guid: str, closed: str | None) -> dict[str, Any]:
    """Toast's documented redeem request (two units of offer 5OFF on a 38.96 check), as the
    transaction ``kind`` for our member and check."""
    body = copy.deepcopy(fixture("toast_redeem.json"))
    body["toastTransactionType"] = kind
    info = body["checkTransactionInformation"]
    info["loyaltyIdentifier"] = identifier
    check = info["check"]
    check["guid"] = check_guid
    check["appliedLoyaltyInfo"]["loyaltyIdentifier"] = identifier
    check["closedDate"] = closed
    check["paidDate"] = closed
    return body


def connect_toast(stack: Stack) -> tuple[Till, str, int, Toast, Manager]:
    manager, till, pid, member, card = setup(stack)
    manager.call(
        "POST",
        f"/programs/{pid}/rewards",
        {
            "code": "5off",
            "kind": "amount_off",
            "name": {"de": "5 Euro Rabatt", "en": "5 off"},
            "points_cost": 100,
            "amount_off": 500,
        },
        201,
    )
    issued = manager.call(
        "POST",
        "/vendor-connections",
        {"vendor": "toast", "account": RESTAURANT, "terminal_id": terminal_id(manager)},
        201,
    )
    assert issued["secret"].startswith("vk_")
    assert issued["connection"]["secret_hint"] == issued["secret"][-4:]
    (listed,) = manager.call("GET", "/vendor-connections")
    assert "secret" not in listed
    assert listed["account"] == RESTAURANT
    # A first sale through the canonical API: 1000 points to spend.
    till.ok(
        "/transactions/T-0/complete",
        {
            "occurred_at": stack.clock.now.isoformat(),
            "member": {"value": card},
            "order": order(line("1", 100_000)),
        },
    )
    return till, card, member, Toast(stack, issued["secret"]), manager


def test_toast_inquire_redeem_accrue_and_reverse(any_stack: Stack) -> None:
    stack = any_stack
    till, card, member, toast, _ = connect_toast(stack)
    assert balance(till, card) == {"posted": 1000, "held": 0, "available": 1000}
    code = wallet_code(stack, member)

    # Search by email finds nobody (the member gave none): Toast's 404 ACCOUNT_INVALID.
    searched = toast.send("LOYALTY_SEARCH", "g-search", fixture("toast_search_email.json"))
    assert (searched.status_code, searched.json()["transactionStatus"]) == (
        404,
        "ERROR_ACCOUNT_INVALID",
    )

    # Inquire with the wallet code: the account by card number, the offers, the points to earn.
    inquired = toast.ok(
        "LOYALTY_INQUIRE", "g-inquire", toast_check("LOYALTY_INQUIRE", code, "C-1", None)
    )
    checked = inquired["checkResponse"]
    # The scanned code is echoed as the account id: the card number is not handed out.
    assert checked["accountInfo"]["identifier"] == code
    assert card not in inquired_raw(toast, code)
    assert checked["accountInfo"]["pointsBalance"] == "1000"
    assert {o["identifier"]: o["applicable"] for o in checked["offers"]}["5off"] is True
    assert [r["identifier"] for r in checked["appliedRedemptions"]] == ["5off"]
    to_earn = int(checked["userMessage"].split()[3])
    assert to_earn > 0
    assert balance(till, card)["held"] == 0  # inquire holds nothing

    # Redeem two units of 5OFF with the same code on the same check: 200 points held.
    redeem = toast_check("LOYALTY_REDEEM", code, "C-1", None)
    redeemed = toast.ok("LOYALTY_REDEEM", "g-redeem", redeem)
    assert [r["identifier"] for r in redeemed["checkResponse"]["appliedRedemptions"]] == ["5off"]
    assert redeemed["checkResponse"]["rejectedRedemptions"] == []
    assert balance(till, card) == {"posted": 1000, "held": 200, "available": 800}
    # Toast retries the same GUID: the first answer again, nothing held twice.
    retried = toast.send("LOYALTY_REDEEM", "g-redeem", redeem)
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json() == redeemed
    assert balance(till, card)["held"] == 200

    # The cashier voids one of the two discounts: a reverse naming one unit releases 100.
    reverse_one = fixture("toast_reverse.json")
    info = reverse_one["reverseTransactionInformation"]
    info.update(
        loyaltyIdentifier=code, transactionId="g-redeem", redemptions=info["redemptions"][:1]
    )
    toast.ok("LOYALTY_REVERSE", "g-reverse-1", reverse_one)
    assert balance(till, card) == {"posted": 1000, "held": 100, "available": 900}

    # Accrue after payment, ten minutes on: the code has lapsed, it still earns for its member;
    # the remaining hold is captured.
    stack.clock.advance(minutes=10)
    closed = stack.clock.now.isoformat()
    accrue = toast_check("LOYALTY_ACCRUE", code, "C-1", closed)
    accrued = toast.ok("LOYALTY_ACCRUE", "g-accrue", accrue)
    assert accrued["checkResponse"]["userMessage"] == f"You earned {to_earn} points."
    after_sale = {"posted": 900 + to_earn, "held": 0, "available": 900 + to_earn}
    assert balance(till, card) == after_sale
    assert toast.send("LOYALTY_ACCRUE", "g-accrue", accrue).json() == accrued
    assert balance(till, card) == after_sale
    # Reversing the redeem now that the check is paid: Toast is told it cannot be.
    late = fixture("toast_reverse.json")
    late["reverseTransactionInformation"].update(
        loyaltyIdentifier=code, transactionId="g-redeem", redemptions=None
    )
    refused = toast.send("LOYALTY_REVERSE", "g-reverse-late", late)
    assert (refused.status_code, refused.json()["transactionStatus"]) == (
        400,
        "ERROR_TRANSACTION_CANNOT_BE_REVERSED",
    )

    # The check is voided: the accrue is reversed, earned points out, redeemed points back.
    void = fixture("toast_reverse.json")
    void["reverseTransactionInformation"].update(
        loyaltyIdentifier=code, transactionId="g-accrue", redemptions=None
    )
    toast.ok("LOYALTY_REVERSE", "g-reverse-2", void)
    assert balance(till, card) == {"posted": 1000, "held": 0, "available": 1000}
    assert toast.send("LOYALTY_REVERSE", "g-reverse-2", void).status_code == 200
    # ... and the redeem's reverse that follows finds nothing left to undo.
    toast.ok("LOYALTY_REVERSE", "g-reverse-3", late)
    assert balance(till, card) == {"posted": 1000, "held": 0, "available": 1000}

    # Toast reverses a transaction we never saw: TRANSACTION_DOES_NOT_EXIST.
    unknown = fixture("toast_reverse.json")
    unknown["reverseTransactionInformation"].update(loyaltyIdentifier=card, transactionId="nope")
    missing = toast.send("LOYALTY_REVERSE", "g-reverse-4", unknown)
    assert missing.json()["transactionStatus"] == "ERROR_TRANSACTION_DOES_NOT_EXIST"


def inquired_raw(toast: Toast, code: str) -> str:
    body = toast_check("LOYALTY_INQUIRE", code, "C-1", None)
    answer: str = toast.send("LOYALTY_INQUIRE", "g-inquire", body).text
    return answer


def test_toast_search_by_email_answers_the_card_number(stack: Stack) -> None:
    till, card, _, toast, _ = connect_toast(stack)
    program_id = till.stack.client.get("/api/v1/pos/terminal", headers=till.headers).json()[
        "program_id"
    ]
    enrolled = stack.shop.ok(
        f"/programs/{program_id}/members",
        {"display_name": "Ada Lovelace", "email": "ada@example.de"},
    )
    search = fixture("toast_search_email.json")
    search["searchTransactionInformation"]["searchCriteria"]["email"] = "ADA@example.de"
    found = toast.ok("LOYALTY_SEARCH", "g-search", search)
    (account,) = found["searchResponse"]["accounts"]
    assert (account["firstName"], account["lastName"], account["pointsBalance"]) == (
        "Ada",
        "Lovelace",
        "0",
    )
    assert account["identifier"].startswith("07")
    assert account["identifier"] != card
    assert "email" not in account
    assert "phone" not in account
    # The number Toast keeps identifies her at the accrue.
    accrue = toast_check(
        "LOYALTY_ACCRUE", account["identifier"], "C-ADA", stack.clock.now.isoformat()
    )
    assert toast.ok("LOYALTY_ACCRUE", "g-ada", accrue)["checkResponse"]["userMessage"]
    assert balance(till, account["identifier"])["posted"] > 0
    del enrolled


def test_toast_accrue_without_account_earns_nothing(stack: Stack) -> None:
    till, card, _, toast, _ = connect_toast(stack)
    answer = toast.ok("LOYALTY_ACCRUE", "g-anon", fixture("toast_accrue_anonymous.json"))
    assert answer.get("checkResponse") is None
    assert balance(till, card)["posted"] == 1000


def test_toast_with_a_wrong_key_or_restaurant_changes_nothing(stack: Stack) -> None:
    till, card, member, toast, manager = connect_toast(stack)
    body = toast_check("LOYALTY_REDEEM", card, "C-9", None)
    before = logged_messages(stack)

    wrong = toast.send("LOYALTY_REDEEM", "g-1", body, api_key="vk_not-the-key")
    assert (wrong.status_code, wrong.json()["transactionStatus"]) == (400, "ERROR_INVALID_TOKEN")
    other = stack.client.post(
        f"{VENDORS}/toast/loyalty",
        content=json.dumps(body).encode(),
        headers={
            "Toast-Transaction-Type": "LOYALTY_REDEEM",
            "Toast-Transaction-GUID": "g-2",
            "Toast-Restaurant-External-ID": "another-restaurant",
            "Authorization": toast.api_key,
        },
    )
    assert other.json()["transactionStatus"] == "ERROR_INVALID_TOKEN"
    assert balance(till, card)["held"] == 0
    assert logged_messages(stack) == before

    # A disabled connection is refused the same way.
    (connection,) = manager.call("GET", "/vendor-connections")
    manager.call("POST", f"/vendor-connections/{connection['connection_id']}/disable")
    stack.app.state.vendor_connections._cache.clear()
    refused = toast.send("LOYALTY_REDEEM", "g-3", body)
    assert refused.json()["transactionStatus"] == "ERROR_INVALID_TOKEN"
    assert balance(till, card)["held"] == 0
    del member


def test_toast_key_replaced_at_once(stack: Stack) -> None:
    till, card, _, toast, manager = connect_toast(stack)
    (connection,) = manager.call("GET", "/vendor-connections")
    issued = manager.call("POST", f"/vendor-connections/{connection['connection_id']}/secret", {})
    assert issued["secret"] != toast.api_key
    search = fixture("toast_search_email.json")
    old = toast.send("LOYALTY_SEARCH", "g-old", search)
    assert old.json()["transactionStatus"] == "ERROR_INVALID_TOKEN"
    fresh = toast.send("LOYALTY_SEARCH", "g-new", search, api_key=f"Bearer {issued['secret']}")
    assert fresh.json()["transactionStatus"] == "ERROR_ACCOUNT_INVALID"  # authenticated
    assert balance(till, card)["posted"] == 1000


# --- Shopify -------------------------------------------------------------------------------


class Shop:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def deliver(
        self, topic: str, event_id: str, body: dict[str, Any], *, secret: str = SHOP_SECRET
    ) -> Any:
        raw = json.dumps(body).encode()
        return self.stack.client.post(
            f"{VENDORS}/shopify/webhooks",
            content=raw,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": signature(raw, secret),
                "X-Shopify-Event-Id": event_id,
                "X-Shopify-Webhook-Id": f"w-{event_id}",
                "X-Shopify-Shop-Domain": SHOP,
            },
        )


def connect_shop(stack: Stack) -> tuple[Till, str, Shop, dict[str, Any]]:
    manager, till, _, _, card = setup(stack)
    manager.call(
        "POST",
        "/vendor-connections",
        {
            "vendor": "shopify",
            "account": SHOP,
            "terminal_id": terminal_id(manager),
            "secret": SHOP_SECRET,
            "calling_code": "49",
        },
        201,
    )
    paid = fixture("shopify_orders_paid_eur_card.json")
    paid["processed_at"] = paid["created_at"] = stack.clock.now.isoformat()
    for attribute in paid["note_attributes"]:
        if attribute["name"].lower() == "loyalty_card":
            attribute["value"] = card
    return till, card, Shop(stack), paid


def refund_of(order_id: int, refund_id: int, *lines: tuple[int, int]) -> dict[str, Any]:
    return {
        "id": refund_id,
        "order_id": order_id,
        "created_at": "2026-11-22T10:00:00+01:00",
        "refund_line_items": [
            {"id": refund_id * 10 + n, "line_item_id": item, "quantity": quantity}
            for n, (item, quantity) in enumerate(lines)
        ],
    }


def test_shopify_paid_refunded_in_parts(any_stack: Stack) -> None:
    stack = any_stack
    till, card, shop, paid = connect_shop(stack)
    before = balance(till, card)["posted"]

    assert shop.deliver("orders/paid", "e-paid", paid).status_code == 200
    sale = stack.client.get(f"/api/v1/pos/transactions/{paid['id']}", headers=till.headers).json()
    earned = sale["points_earned"]
    assert earned > 0
    assert balance(till, card)["posted"] == before + earned

    # A duplicate delivery and the same order under another event id change nothing.
    again = shop.deliver("orders/paid", "e-paid", paid)
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert shop.deliver("orders/paid", "e-paid-resent", paid).status_code == 200
    assert balance(till, card)["posted"] == before + earned

    # A partial refund (one of the two 3.49 items), then the rest: back where it started.
    first = refund_of(paid["id"], 7001, (13688971493691, 1))
    assert shop.deliver("refunds/create", "e-refund-1", first).status_code == 200
    partly = balance(till, card)["posted"]
    assert before < partly < before + earned
    assert shop.deliver("refunds/create", "e-refund-1", first).status_code == 200
    assert balance(till, card)["posted"] == partly
    rest = refund_of(
        paid["id"], 7002, (13688971493691, 1), (13688971493692, 1), (13688971493693, 1)
    )
    assert shop.deliver("refunds/create", "e-refund-2", rest).status_code == 200
    assert balance(till, card)["posted"] == before


def test_shopify_refusals_are_acknowledged_once_recorded(stack: Stack) -> None:
    till, card, shop, paid = connect_shop(stack)
    # A refund of an order the platform never earned on: 200 (Shopify would retry for 48
    # hours), the reason in the body, nothing changed.
    answer = shop.deliver("refunds/create", "e-ghost", refund_of(1, 2, (3, 1)))
    assert answer.status_code == 200
    assert answer.json()["code"] == "transaction_not_found"
    assert balance(till, card)["posted"] == 0
    # An order whose currency is not the program's is refused the same way.
    dollars = {**paid, "currency": "USD", "id": 5994571302222}
    assert shop.deliver("orders/paid", "e-usd", dollars).json()["code"] == "currency_mismatch"
    assert balance(till, card)["posted"] == 0


@pytest.mark.parametrize("secret", ["shpss_an-attackers-guess-000000", ""])
def test_shopify_bad_signature_changes_nothing(stack: Stack, secret: str) -> None:
    till, card, shop, paid = connect_shop(stack)
    before = logged_messages(stack)
    refused = shop.deliver("orders/paid", "e-forged", paid, secret=secret or "x")
    assert refused.status_code == 401
    assert refused.json()["code"] == "signature_invalid"
    assert balance(till, card)["posted"] == 0
    assert logged_messages(stack) == before
    # The genuine delivery with the same event id is still handled afterwards.
    assert shop.deliver("orders/paid", "e-forged", paid).status_code == 200
    assert balance(till, card)["posted"] > 0


def test_vendor_connections_are_checked(stack: Stack) -> None:
    manager, _, _, _, _ = setup(stack)
    tid = terminal_id(manager)
    unknown = manager.client.post(
        "/api/v1/admin/vendor-connections",
        json={"vendor": "square", "account": "x", "terminal_id": tid},
        headers=manager.headers,
    )
    assert_problem(unknown, 404, "unknown_vendor")
    no_secret = manager.client.post(
        "/api/v1/admin/vendor-connections",
        json={"vendor": "shopify", "account": SHOP, "terminal_id": tid},
        headers=manager.headers,
    )
    assert_problem(no_secret, 400, "validation_failed")
    foreign = manager.client.post(
        "/api/v1/admin/vendor-connections",
        json={"vendor": "toast", "account": RESTAURANT, "terminal_id": tid + 1000},
        headers=manager.headers,
    )
    assert_problem(foreign, 404, "terminal_not_found")
    body = {"vendor": "toast", "account": RESTAURANT, "terminal_id": tid}
    manager.call("POST", "/vendor-connections", body, 201)
    taken = manager.client.post(
        "/api/v1/admin/vendor-connections", json=body, headers=manager.headers
    )
    assert_problem(taken, 409, "vendor_account_taken")
    assert len(manager.call("GET", "/vendor-connections")) == 1
    # An endpoint no adapter serves.
    assert_problem(
        stack.client.post(f"{VENDORS}/square/webhooks", content=b"{}"), 404, "unknown_vendor"
    )
