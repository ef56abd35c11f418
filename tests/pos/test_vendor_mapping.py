"""Vendor adapters: vendor payloads to canonical requests, signatures, vendor-shaped answers.

The fixtures (tests/pos/fixtures, README there) follow the vendors' documented examples; the
expected canonical events below are worked out by hand from them (amounts in cents). The
properties: no bytes and no JSON make a parse function raise anything but ``DomainError``;
money converts between cents and the vendors' decimals exactly.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.basket import LineKind
from loyalty.domain.cards import ScanKind
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.results import Balance
from pos_adapter.events import (
    MemberScan,
    Order,
    OrderLine,
    PosEvent,
    Redemption,
    Refund,
    RefundLine,
    Source,
    basket_of,
    check_order,
)
from pos_adapter.vendors import (
    VENDORS,
    RedemptionOutcome,
    TillMember,
    TillReward,
    VendorSettings,
    from_minor,
    national_to_e164,
    route_path,
    shopify,
    to_minor,
    toast,
    vendor,
)
from pos_adapter.vendors.shopify import ShopifyIgnored, ShopifyOrderPaid, ShopifyRefundCreated
from pos_adapter.vendors.toast import (
    ToastAccrue,
    ToastInquire,
    ToastRedeem,
    ToastRedemption,
    ToastRedemptionRequest,
    ToastReverse,
    ToastSearch,
)

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
GUID = "0b5b8c1e-6f0e-4a8e-9d1b-3d1e0c3b8a11"
RESTAURANT = "3b2a1c9e-7c41-4f1a-8d55-0c6b1c2f9e10"
CARD = "07314159265358971"
TOAST_HEADERS = {"Toast-Transaction-GUID": GUID, "Toast-Restaurant-External-ID": RESTAURANT}
US = VendorSettings(currency="USD", calling_code="1")
EVENT_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
SHOP = "apple.myshopify.com"
SHOPIFY_HEADERS = {"X-Shopify-Event-Id": EVENT_ID, "X-Shopify-Shop-Domain": SHOP}
SECRET = "hush-7f3a9c2e54b1d0"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def data(name: str) -> Any:
    return json.loads(raw(name))


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def toast_parse(
    kind: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    settings: VendorSettings = US,
) -> Any:
    return toast.parse_request(
        kind,
        body,
        TOAST_HEADERS if headers is None else headers,
        settings=settings,
        received_at=NOW,
    )


def shopify_parse(
    topic: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    settings: VendorSettings = US,
) -> Any:
    return shopify.parse_webhook(
        topic,
        body,
        SHOPIFY_HEADERS if headers is None else headers,
        settings=settings,
        received_at=NOW,
    )


def refused(call: Callable[[], object]) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call()
    return caught.value


# --- The registry --------------------------------------------------------------------------


def test_the_registry_names_every_adapter_and_its_route() -> None:
    assert set(VENDORS) == {"toast", "shopify"}
    assert route_path(VENDORS["toast"]) == "/api/v1/pos/vendors/toast/loyalty"
    assert route_path(VENDORS["shopify"]) == "/api/v1/pos/vendors/shopify/webhooks"
    assert VENDORS["toast"].signs is False
    assert VENDORS["toast"].style == "synchronous"
    assert VENDORS["shopify"].signs is True
    assert VENDORS["shopify"].style == "webhook"
    for name, adapter in VENDORS.items():
        assert adapter.name == name
        assert adapter.docs_url.startswith("https://")
    assert VENDORS["toast"].message_types == (
        "LOYALTY_SEARCH",
        "LOYALTY_INQUIRE",
        "LOYALTY_REDEEM",
        "LOYALTY_ACCRUE",
        "LOYALTY_REVERSE",
    )
    assert VENDORS["shopify"].message_types == ("orders/paid", "refunds/create")
    assert refused(lambda: vendor("square")).code is ErrorCode.NOT_FOUND


def test_the_route_can_drive_any_adapter_through_the_registry() -> None:
    toast_headers = {**TOAST_HEADERS, "toast-transaction-type": "LOYALTY_ACCRUE"}
    adapter = VENDORS["toast"]
    assert adapter.message_type(toast_headers) == "LOYALTY_ACCRUE"
    assert adapter.idempotency_key(toast_headers) == GUID
    assert adapter.tenant(toast_headers) == RESTAURANT
    parsed = adapter.parse(
        adapter.message_type(toast_headers), raw("toast_accrue.json"), toast_headers, US, NOW
    )
    assert isinstance(parsed, ToastAccrue)

    shopify_headers = {**SHOPIFY_HEADERS, "X-Shopify-Topic": "orders/paid"}
    adapter = VENDORS["shopify"]
    assert adapter.tenant(shopify_headers) == SHOP
    body = raw("shopify_orders_paid.json")
    adapter.verify(body, {**shopify_headers, "X-Shopify-Hmac-Sha256": sign(body)}, SECRET)
    parsed = adapter.parse(adapter.message_type(shopify_headers), body, shopify_headers, US, NOW)
    assert isinstance(parsed, ShopifyOrderPaid)
    assert refused(lambda: adapter.message_type({})).code is ErrorCode.VALIDATION_FAILED


# --- Toast: requests -----------------------------------------------------------------------

INQUIRE_EVENT = PosEvent(
    transaction_id="5728df00-d770-4aeb-a4c9-53226a104ac0",
    occurred_at=NOW,
    member=MemberScan(value=CARD),
    order=Order(
        currency="USD",
        lines=[
            # 8 crab cakes, 87.92: 10.99 each
            OrderLine(
                line_id="5e4fa4aa-4269-4383-9bbd-774591bbfb3c",
                sku="5abf524e-31b5-4c1b-a797-7a44d888d071",
                quantity=8,
                unit_price=1099,
                total=8792,
            ),
            OrderLine(
                line_id="c4c6cd98-d1ba-42f6-87c0-4d8af7486be7",
                sku="a1a96ffc-fb39-422b-93bd-44f15692f707",
                quantity=1,
                unit_price=950,
                total=950,
            ),
        ],
        tax=609,  # the check's taxAmount; the selections' 5.49612811 is not read
    ),
    source=Source(location=RESTAURANT),
)

REDEEM_OFFER = ToastRedemption(identifier="5OFF", amount=Decimal(5), quantity=Decimal(2))
REDEEM_EVENT = PosEvent(
    transaction_id="c79ecf26-1540-486c-9aee-e10ef34e228e",
    occurred_at=NOW,
    member=MemberScan(value=CARD),
    order=Order(
        currency="USD",
        lines=[
            # 4 crab cakes: 43.96 before the check's 5.00 discount, 38.96 after
            OrderLine(
                line_id="dfa59529-c3d1-4dff-967d-12e19525f749",
                sku="5abf524e-31b5-4c1b-a797-7a44d888d071",
                quantity=4,
                unit_price=1099,
                discount=500,
                total=3896,
            )
        ],
        tax=244,
    ),
    source=Source(location=RESTAURANT),
    # "amount 5, quantity 2": the reward twice
    redemptions=[Redemption(reward_code="5OFF"), Redemption(reward_code="5OFF")],
)

ACCRUE_EVENT = PosEvent(
    transaction_id="5728df00-d770-4aeb-a4c9-53226a104ac0",
    # closedDate "2019-04-08T21:16:46.767+0000"
    occurred_at=datetime(2019, 4, 8, 21, 16, 46, 767000, tzinfo=UTC),
    member=MemberScan(value=CARD),
    order=Order(
        currency="USD",
        lines=[
            OrderLine(
                line_id="c3283098-44c1-4712-866a-2b53cdc39b25",
                sku="859d3db8-9dd4-42ab-9f6a-374d09e27825",
                category="c6909137-0deb-4197-9003-3092294fe1a3",
                quantity=1,
                unit_price=800,
                total=800,
            )
        ],
        tax=69,
    ),
    source=Source(register="f51c0a6ce7da722c", location=RESTAURANT),
)

TOAST_CASES = [
    pytest.param(
        "toast_search_email.json",
        "LOYALTY_SEARCH",
        ToastSearch(
            transaction_guid=GUID,
            restaurant=RESTAURANT,
            scan=MemberScan(value="a1@toasttab.com", kind=ScanKind.EMAIL),
        ),
        id="search-email",
    ),
    pytest.param(
        "toast_search_phone.json",
        "LOYALTY_SEARCH",
        ToastSearch(
            transaction_guid=GUID,
            restaurant=RESTAURANT,
            scan=MemberScan(value="+16175550134", kind=ScanKind.PHONE),
        ),
        id="search-phone",
    ),
    pytest.param(
        "toast_inquire.json",
        "LOYALTY_INQUIRE",
        ToastInquire(
            transaction_guid=GUID, restaurant=RESTAURANT, event=INQUIRE_EVENT, currency="USD"
        ),
        id="inquire",
    ),
    pytest.param(
        "toast_redeem.json",
        "LOYALTY_REDEEM",
        ToastRedeem(
            transaction_guid=GUID,
            restaurant=RESTAURANT,
            event=REDEEM_EVENT,
            currency="USD",
            redemptions=[
                ToastRedemptionRequest(
                    toast=REDEEM_OFFER, redemption=Redemption(reward_code="5OFF"), quantity=2
                )
            ],
        ),
        id="redeem",
    ),
    pytest.param(
        "toast_accrue.json",
        "LOYALTY_ACCRUE",
        ToastAccrue(transaction_guid=GUID, restaurant=RESTAURANT, event=ACCRUE_EVENT),
        id="accrue",
    ),
    pytest.param(
        "toast_accrue_anonymous.json",
        "LOYALTY_ACCRUE",
        ToastAccrue(
            transaction_guid=GUID,
            restaurant=RESTAURANT,
            skipped="no loyalty account on the check",
        ),
        id="accrue-without-account",
    ),
    pytest.param(
        "toast_reverse.json",
        "LOYALTY_REVERSE",
        ToastReverse(
            transaction_guid=GUID,
            restaurant=RESTAURANT,
            reversed_transaction_guid="ab11d469-5ed5-4daa-b9d6-addefdb1c1f7",
            scan=MemberScan(value=CARD),
            redemptions=[
                ToastRedemptionRequest(
                    toast=ToastRedemption(
                        identifier="5OFF",
                        applied_discount_guid="64456691-c34e-4784-9c6e-fc514a0f4b7b",
                        amount=Decimal("0.01"),
                        quantity=Decimal(1),
                    ),
                    redemption=Redemption(reward_code="5OFF"),
                )
            ]
            * 2,
        ),
        id="reverse",
    ),
]


@pytest.mark.parametrize(("fixture", "kind", "expected"), TOAST_CASES)
def test_toast_fixtures_map_to_the_canonical_requests(
    fixture: str, kind: str, expected: object
) -> None:
    assert toast_parse(kind, raw(fixture)) == expected


def test_toast_transaction_types_are_read_case_insensitively() -> None:
    assert isinstance(toast_parse(" loyalty_inquire ", raw("toast_inquire.json")), ToastInquire)


def mutated(name: str, change: Callable[[Any], None]) -> bytes:
    body = data(name)
    change(body)
    return encode(body)


def first_selection(body: Any) -> Any:
    return body["checkTransactionInformation"]["check"]["selections"][0]


def set_first_selection(**fields: Any) -> Callable[[Any], None]:
    return lambda body: first_selection(body).update(fields)


def check_of(body: Any) -> Any:
    return body["checkTransactionInformation"]["check"]


TOAST_REFUSALS = [
    pytest.param(
        "LOYALTY_SEARCH",
        raw("toast_search_name.json"),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="search-by-name",
    ),
    pytest.param(
        "LOYALTY_TRANSFER",
        raw("toast_reverse.json"),
        TOAST_HEADERS,
        ErrorCode.UNSUPPORTED_VENDOR_REQUEST,
        id="unsupported-type",
    ),
    pytest.param(
        "LOYALTY_ACCRUE",
        raw("toast_inquire.json"),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="header-and-body-types-differ",
    ),
    pytest.param(
        "LOYALTY_INQUIRE",
        raw("toast_inquire.json"),
        {},
        ErrorCode.IDEMPOTENCY_KEY_MISSING,
        id="no-transaction-guid",
    ),
    pytest.param(
        "LOYALTY_INQUIRE",
        raw("toast_inquire.json"),
        {"Toast-Transaction-GUID": "a b"},
        ErrorCode.IDEMPOTENCY_KEY_INVALID,
        id="guid-with-a-space",
    ),
    pytest.param(
        "LOYALTY_INQUIRE",
        raw("toast_inquire.json"),
        {"Toast-Transaction-GUID": "g" * 129},
        ErrorCode.IDEMPOTENCY_KEY_INVALID,
        id="guid-too-long",
    ),
    pytest.param(
        "LOYALTY_INQUIRE",
        b"{not json",
        TOAST_HEADERS,
        ErrorCode.MALFORMED_JSON,
        id="not-json",
    ),
    pytest.param(
        "LOYALTY_INQUIRE",
        b"\xff\xfe",
        TOAST_HEADERS,
        ErrorCode.MALFORMED_JSON,
        id="not-utf8",
    ),
    pytest.param(
        "LOYALTY_INQUIRE",
        b"[]",
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="json-array",
    ),
    pytest.param(
        "LOYALTY_INQUIRE",
        mutated("toast_inquire.json", set_first_selection(price=87.925)),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="price-with-three-decimals",
    ),
    pytest.param(
        "LOYALTY_INQUIRE",
        mutated("toast_inquire.json", set_first_selection(price=-1)),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="negative-price",
    ),
    pytest.param(
        "LOYALTY_INQUIRE",
        mutated("toast_inquire.json", set_first_selection(quantity=0)),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="zero-quantity",
    ),
    pytest.param(
        "LOYALTY_INQUIRE",
        mutated("toast_inquire.json", set_first_selection(guid=None)),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="selection-without-guid",
    ),
    pytest.param(
        "LOYALTY_INQUIRE",
        mutated("toast_inquire.json", set_first_selection(price="lots")),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="price-not-a-number",
    ),
    pytest.param(
        "LOYALTY_REDEEM",
        mutated(
            "toast_redeem.json",
            lambda b: (
                b["checkTransactionInformation"].update(loyaltyIdentifier=None)
                or check_of(b).update(appliedLoyaltyInfo=None)
            ),
        ),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="redeem-without-account",
    ),
    pytest.param(
        "LOYALTY_REDEEM",
        mutated(
            "toast_redeem.json",
            lambda b: b["checkTransactionInformation"]["redemptions"][0].update(quantity=21),
        ),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="more-than-20-redemptions",
    ),
    pytest.param(
        "LOYALTY_REDEEM",
        mutated(
            "toast_redeem.json",
            lambda b: b["checkTransactionInformation"]["redemptions"][0].update(amount="NaN"),
        ),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="redemption-amount-nan",
    ),
    pytest.param(
        "LOYALTY_REDEEM",
        mutated(
            "toast_redeem.json",
            lambda b: b["checkTransactionInformation"]["redemptions"][0].update(identifier=""),
        ),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="redemption-without-offer",
    ),
    pytest.param(
        "LOYALTY_ACCRUE",
        mutated("toast_accrue.json", lambda b: check_of(b).update(closedDate="2019-04-08T21:16")),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="closed-date-without-offset",
    ),
    pytest.param(
        "LOYALTY_INQUIRE",
        mutated(
            "toast_inquire.json",
            lambda b: b["checkTransactionInformation"].update(loyaltyIdentifier="7" * 321),
        ),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="identifier-too-long",
    ),
    pytest.param(
        "LOYALTY_REVERSE",
        mutated(
            "toast_reverse.json",
            lambda b: b["reverseTransactionInformation"].update(transactionId=None),
        ),
        TOAST_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="reverse-without-transaction",
    ),
]


@pytest.mark.parametrize(("kind", "body", "headers", "code"), TOAST_REFUSALS)
def test_toast_refusals(kind: str, body: bytes, headers: dict[str, str], code: ErrorCode) -> None:
    assert refused(lambda: toast_parse(kind, body, headers)).code is code


def inquire_lines(change: Callable[[Any], None], settings: VendorSettings = US) -> list[OrderLine]:
    parsed = toast_parse(
        "LOYALTY_INQUIRE", mutated("toast_inquire.json", change), settings=settings
    )
    assert parsed.event.order is not None
    return list(parsed.event.order.lines)


def test_toast_double_noise_is_the_nearest_cent_and_other_decimals_are_refused() -> None:
    line = inquire_lines(set_first_selection(price=0.30000000000000004, preDiscountPrice=None))[0]
    assert (line.quantity, line.unit_price, line.discount, line.total) == (8, 4, 2, 30)
    error = refused(lambda: inquire_lines(set_first_selection(price=0.305)))
    assert error.extra["field"] == "check.selections[0].price"


def test_toast_a_line_total_that_does_not_divide_keeps_its_exact_net() -> None:
    # 3 for 10.00: 3.34 each, 0.02 counted as discount, so the net is exactly 10.00
    line = inquire_lines(set_first_selection(quantity=3, price=10, preDiscountPrice=10))[0]
    assert (line.quantity, line.unit_price, line.discount, line.total) == (3, 334, 2, 1000)


def test_toast_weighed_items_are_one_unit_at_the_line_total() -> None:
    line = inquire_lines(
        set_first_selection(quantity=1.25, unitOfMeasure="LB", price=12.34, preDiscountPrice=12.34)
    )[0]
    assert (line.quantity, line.unit_price, line.discount, line.total) == (1, 1234, 0, 1234)


def test_toast_voided_and_house_account_selections_are_left_out_gift_cards_kept() -> None:
    def change(body: Any) -> None:
        selections = check_of(body)["selections"]
        selections[0]["voided"] = True
        selections[1]["selectionType"] = "TOAST_CARD_SELL"
        selections.append(
            {**selections[1], "guid": "h1", "selectionType": "HOUSE_ACCOUNT_PAY_BALANCE"}
        )

    lines = inquire_lines(change)
    assert [(line.line_id, line.kind) for line in lines] == [
        ("c4c6cd98-d1ba-42f6-87c0-4d8af7486be7", LineKind.GIFT_CARD)
    ]


def test_toast_currency_comes_from_the_connection() -> None:
    yen = VendorSettings(currency="JPY")

    def whole_yen(body: Any) -> None:
        check_of(body)["selections"][0].update(price=8792, preDiscountPrice=8792)
        check_of(body)["selections"][1].update(price=950.0, preDiscountPrice=950)
        check_of(body)["taxAmount"] = 609

    lines = inquire_lines(whole_yen, yen)
    assert [(line.quantity, line.unit_price) for line in lines] == [(8, 1099), (1, 950)]
    # the fixture's 9.5 is no yen amount
    assert refused(lambda: inquire_lines(lambda body: None, yen)).extra == {
        "field": "check.selections[0].price"
    }


def test_toast_accrue_reads_tips_identifier_fallback_and_dates() -> None:
    def change(body: Any) -> None:
        body["checkTransactionInformation"]["loyaltyIdentifier"] = None  # appliedLoyaltyInfo has it
        check = check_of(body)
        check["closedDate"] = None
        check["payments"][0]["tipAmount"] = 1.5
        check["payments"].append(
            {**check["payments"][0], "tipAmount": 9, "paymentStatus": "VOIDED"}
        )

    parsed = toast_parse("LOYALTY_ACCRUE", mutated("toast_accrue.json", change))
    assert parsed.event.member == MemberScan(value=CARD)
    assert parsed.event.order.tip == 150
    # no closedDate: paidDate "2019-04-08T21:16:46.767+0000"
    assert parsed.event.occurred_at == datetime(2019, 4, 8, 21, 16, 46, 767000, tzinfo=UTC)

    def dateless(body: Any) -> None:
        check_of(body).update(closedDate=None, paidDate=None)

    assert (
        toast_parse("LOYALTY_ACCRUE", mutated("toast_accrue.json", dateless)).event.occurred_at
        == NOW
    )


def test_toast_accrue_for_a_voided_check_earns_nothing() -> None:
    body = mutated("toast_accrue.json", lambda b: check_of(b).update(voided=True))
    parsed = toast_parse("LOYALTY_ACCRUE", body)
    assert parsed == ToastAccrue(
        transaction_guid=GUID, restaurant=RESTAURANT, skipped="the check is voided or deleted"
    )


def test_toast_phone_search_without_calling_code_passes_the_number_on() -> None:
    parsed = toast_parse(
        "LOYALTY_SEARCH", raw("toast_search_phone.json"), settings=VendorSettings()
    )
    assert parsed.scan == MemberScan(value="(617) 555-0134", kind=ScanKind.PHONE)


@pytest.mark.parametrize(
    ("raw_number", "code", "expected"),
    [
        ("(617) 555-0134", "1", "+16175550134"),
        ("1-617-555-0134", "1", "+16175550134"),
        ("030 1234567", "49", "+49301234567"),
        ("+49 30 1234567", "1", "+49 30 1234567"),
        ("555-555-BILL", "1", "555-555-BILL"),
        ("6175550134", None, "6175550134"),
    ],
)
def test_national_phone_numbers(raw_number: str, code: str | None, expected: str) -> None:
    assert national_to_e164(raw_number, code) == expected


# --- Toast: authentication -----------------------------------------------------------------

API_KEY = "c75a2aa085d30a90308841d388fc7828f1a28e29bdd2c82150a30cf356d4d87f"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": API_KEY},
        {"authorization": API_KEY},
        {"Authorization": f"Bearer {API_KEY}"},
        {"Authorization": f"bearer  {API_KEY} "},
    ],
)
def test_toast_accepts_its_static_api_key(headers: dict[str, str]) -> None:
    toast.verify(b"{}", headers, API_KEY)


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({}, API_KEY),
        ({"Authorization": ""}, API_KEY),
        ({"Authorization": API_KEY[:-1]}, API_KEY),
        ({"Authorization": API_KEY + "0"}, API_KEY),
        ({"Authorization": "Bearer"}, API_KEY),
        ({"Authorization": "Schlüssel"}, API_KEY),
        ({"Authorization": ""}, ""),
        ({}, ""),
        ({"Authorization": "x" * 300}, "x" * 300),
    ],
)
def test_toast_refuses_anything_else(headers: dict[str, str], key: str) -> None:
    assert refused(lambda: toast.verify(b"{}", headers, key)).code is ErrorCode.UNAUTHORIZED


# --- Toast: responses ----------------------------------------------------------------------


def answer(reply: Any) -> tuple[int, Any]:
    """Status and body, with JSON numbers read exactly."""
    return reply.status_code, json.loads(reply.body, parse_float=Decimal)


MEMBER = TillMember(
    member_id=7,
    display_name="Jack Williams",
    tier="gold",
    balance=Balance(posted=1200, held=100, available=1100),
    card_number=CARD,
    rewards=[
        TillReward(code="5OFF", name="5 off", usable=True, points=500, discount=500),
        TillReward(
            code="FREE-CRAB",
            name="Free crab cake",
            usable=False,
            points=2000,
            discount=1099,
            line_id="5e4fa4aa-4269-4383-9bbd-774591bbfb3c",
            expires_at=datetime(2025, 12, 31, tzinfo=UTC),
            refusal="not enough points",
        ),
    ],
)
ACCOUNT = {
    "identifier": CARD,
    "firstName": "Jack",
    "lastName": "Williams",
    "pointsBalance": "1100",
}


def test_toast_inquire_answer_lists_offers_in_dollars() -> None:
    request = toast_parse("LOYALTY_INQUIRE", raw("toast_inquire.json"))
    assert answer(toast.render_inquire(request, MEMBER, points_to_earn=97)) == (
        200,
        {
            "transactionStatus": "ACCEPT",
            "checkResponse": {
                "accountInfo": ACCOUNT,
                "offers": [
                    {
                        "identifier": "5OFF",
                        "name": "5 off",
                        "applicable": True,
                        "selectionType": "CHECK",
                        "amount": Decimal("5.00"),
                        "quantity": 1,
                    },
                    {
                        "identifier": "FREE-CRAB",
                        "name": "Free crab cake",
                        "applicable": False,
                        "selectionType": "ITEM",
                        "amount": Decimal("10.99"),
                        "itemApplication": [
                            {
                                "selectionIdentifier": "5e4fa4aa-4269-4383-9bbd-774591bbfb3c",
                                "amount": Decimal("10.99"),
                            }
                        ],
                        "quantity": 1,
                        "expiration": [{"date": "2025-12-31T00:00:00+00:00", "quantity": 1}],
                    },
                ],
                "appliedRedemptions": [],
                "rejectedRedemptions": [],
                "userMessage": "You will earn 97 points with this check.",
            },
        },
    )


def test_toast_redeem_answer_applies_and_rejects_what_the_check_asked_for() -> None:
    request = toast_parse("LOYALTY_REDEEM", raw("toast_redeem.json"))
    accepted = RedemptionOutcome(reward_code="5OFF", accepted=True, discount=500, points=500)
    assert answer(toast.render_redeem(request, MEMBER, [accepted])) == (
        200,
        {
            "transactionStatus": "ACCEPT",
            "checkResponse": {
                "accountInfo": ACCOUNT,
                "appliedRedemptions": [
                    {"identifier": "5OFF", "amount": Decimal("5.00"), "quantity": 2}
                ],
                "rejectedRedemptions": [],
            },
        },
    )
    rejected = RedemptionOutcome(reward_code="5OFF", accepted=False, message="not enough points")
    assert answer(toast.render_redeem(request, None, [rejected])) == (
        200,
        {
            "transactionStatus": "ACCEPT",
            "checkResponse": {
                "appliedRedemptions": [],
                "rejectedRedemptions": [
                    {
                        "redemption": {"identifier": "5OFF", "amount": 5, "quantity": 2},
                        "message": "not enough points",
                    }
                ],
            },
        },
    )
    with pytest.raises(ValueError, match="one outcome per Toast redemption"):
        toast.render_redeem(request, MEMBER, [])


def test_toast_search_answer_identifies_accounts_by_card_number_only() -> None:
    no_card = msgspec.structs.replace(MEMBER, member_id=8, card_number=None)
    assert answer(toast.render_search([MEMBER, no_card])) == (
        200,
        {"transactionStatus": "ACCEPT", "searchResponse": {"accounts": [ACCOUNT]}},
    )
    assert answer(toast.render_search([no_card])) == (
        404,
        {"transactionStatus": "ERROR_ACCOUNT_INVALID"},
    )


def test_toast_accrue_and_reverse_answers() -> None:
    assert answer(toast.render_accrue()) == (200, {"transactionStatus": "ACCEPT"})
    assert answer(toast.render_accrue(8)) == (
        200,
        {"transactionStatus": "ACCEPT", "checkResponse": {"userMessage": "You earned 8 points."}},
    )
    assert answer(toast.render_reverse()) == (200, {"transactionStatus": "ACCEPT"})


@pytest.mark.parametrize(
    ("code", "status", "transaction_status"),
    [
        (ErrorCode.VALIDATION_FAILED, 400, "ERROR_INVALID_INPUT_PROPERTIES"),
        (ErrorCode.MALFORMED_JSON, 400, "ERROR_INVALID_INPUT_PROPERTIES"),
        (ErrorCode.UNSUPPORTED_VENDOR_REQUEST, 400, "ERROR_INVALID_TOAST_TRANSACTION_TYPE"),
        (ErrorCode.UNAUTHORIZED, 400, "ERROR_INVALID_TOKEN"),
        (ErrorCode.MEMBER_NOT_FOUND, 404, "ERROR_ACCOUNT_INVALID"),
        (ErrorCode.CARD_NOT_FOUND, 404, "ERROR_ACCOUNT_INVALID"),
        (ErrorCode.UNKNOWN_SCAN, 404, "ERROR_ACCOUNT_INVALID"),
        (ErrorCode.TERMINAL_NOT_FOUND, 400, "ERROR_INVALID_RESTAURANT"),
        (ErrorCode.TRANSACTION_NOT_FOUND, 400, "ERROR_TRANSACTION_DOES_NOT_EXIST"),
        (ErrorCode.NOT_REVERSIBLE, 400, "ERROR_TRANSACTION_CANNOT_BE_REVERSED"),
        (ErrorCode.INSUFFICIENT_POINTS, 400, "ERROR"),
        (ErrorCode.INTERNAL_ERROR, 500, "ERROR"),
    ],
)
def test_toast_error_answers(code: ErrorCode, status: int, transaction_status: str) -> None:
    assert answer(toast.render_error(DomainError(code, "why"))) == (
        status,
        {"transactionStatus": transaction_status, "message": "why"},
    )


# --- Shopify: requests ---------------------------------------------------------------------

ORDER_9999 = PosEvent(
    transaction_id="820982911946154508",
    # processed_at is null in the sample: created_at "2019-06-04T13:53:06-04:00"
    occurred_at=datetime(2019, 6, 4, 13, 53, 6, tzinfo=timezone(timedelta(hours=-4))),
    # the customer's email, not the order's jon@doe.ca
    member=MemberScan(value="john@test.com", kind=ScanKind.EMAIL),
    order=Order(
        currency="USD",
        lines=[
            OrderLine(
                line_id="866550311766439020", sku="IPOD2008PINK", quantity=1, unit_price=19900
            ),
            OrderLine(
                line_id="141249953214522974",
                sku="IPOD2008PINK",
                quantity=1,
                unit_price=19900,
                discount=500,  # its discount allocation; total_discounts 5.00 is all allocated
            ),
            OrderLine(
                line_id="shipping:271878346596884015",
                sku="shipping",
                quantity=1,
                unit_price=1000,
                kind=LineKind.DELIVERY,
            ),
        ],
    ),
)

ORDER_1042 = PosEvent(
    transaction_id="5994571301111",
    occurred_at=datetime(2025, 3, 14, 10, 2, 11, tzinfo=timezone(timedelta(hours=1))),
    # the loyalty_card attribute wins over the customer's email and phone
    member=MemberScan(value="07 2718 2818 2845 902", kind=ScanKind.CARD_NUMBER),
    order=Order(
        currency="EUR",
        lines=[
            # 2 x 3.49, 10 % off allocated: 0.70
            OrderLine(
                line_id="13688971493691",
                sku="BROT-500",
                category="Brot",
                quantity=2,
                unit_price=349,
                discount=70,
            ),
            OrderLine(
                line_id="13688971493692",
                sku="variant:44610569208041",  # no SKU
                quantity=1,
                unit_price=2500,
                kind=LineKind.GIFT_CARD,
            ),
            OrderLine(
                line_id="13688971493693",
                sku="KAFFEE-1KG",
                category="Kaffee",
                quantity=1,
                unit_price=1490,
                discount=149,
            ),
            OrderLine(
                line_id="shipping:4390293217452",
                sku="shipping",
                quantity=1,
                unit_price=490,
                kind=LineKind.DELIVERY,
            ),
        ],
        tax=207,
        tip=100,
    ),
    source=Source(register="1", cashier="82309431", location="40192688301"),
)

SHOPIFY_CASES = [
    pytest.param(
        "shopify_orders_paid.json",
        "orders/paid",
        ShopifyOrderPaid(webhook_key=EVENT_ID, shop=SHOP, event=ORDER_9999),
        id="orders-paid-sample-9999",
    ),
    pytest.param(
        "shopify_orders_paid_eur_card.json",
        "orders/paid",
        ShopifyOrderPaid(webhook_key=EVENT_ID, shop=SHOP, event=ORDER_1042),
        id="orders-paid-eur-card",
    ),
    pytest.param(
        "shopify_refunds_create.json",
        "refunds/create",
        ShopifyRefundCreated(
            webhook_key=EVENT_ID,
            shop=SHOP,
            refund=Refund(
                refund_id="929361464",
                original_transaction_id="820982911946154508",
                # 199.00 less its 5.00 discount, before tax
                lines=[RefundLine(line_id="141249953214522974", quantity=1, amount=19400)],
            ),
        ),
        id="refunds-create",
    ),
]


@pytest.mark.parametrize(("fixture", "topic", "expected"), SHOPIFY_CASES)
def test_shopify_fixtures_map_to_the_canonical_requests(
    fixture: str, topic: str, expected: object
) -> None:
    assert shopify_parse(topic, raw(fixture)) == expected


def paid(change: Callable[[Any], None], settings: VendorSettings = US) -> Any:
    return shopify_parse(
        "orders/paid", mutated("shopify_orders_paid_eur_card.json", change), settings=settings
    )


def test_shopify_a_card_attribute_that_is_no_card_number_falls_back_to_the_email() -> None:
    def change(body: Any) -> None:
        body["note_attributes"][1]["value"] = "12345"

    assert paid(change).event.member == MemberScan(
        value="anna.beispiel@example.de", kind=ScanKind.EMAIL
    )


def test_shopify_phone_only_orders_use_the_phone() -> None:
    def change(body: Any) -> None:
        body.update(note_attributes=[], email=None, contact_email=None, phone=None)
        body["customer"].update(email=None, phone="030 1234567")

    parsed = paid(change, VendorSettings(calling_code="49"))
    assert parsed.event.member == MemberScan(value="+49301234567", kind=ScanKind.PHONE)


def test_shopify_orders_without_a_member_are_ignored() -> None:
    def change(body: Any) -> None:
        body.update(note_attributes=None, email=None, contact_email=None, phone=None, customer=None)

    assert paid(change) == ShopifyIgnored(
        webhook_key=EVENT_ID,
        shop=SHOP,
        topic="orders/paid",
        reason="the order names no loyalty card, email address or phone number",
    )


def test_shopify_unallocated_discounts_become_the_order_discount() -> None:
    def change(body: Any) -> None:
        for item in body["line_items"]:
            item["discount_allocations"] = []
        body["line_items"][1]["quantity"] = 0  # removed by an order edit: left out

    order = paid(change).event.order
    assert order.order_discount == 219
    assert [line.line_id for line in order.lines] == [
        "13688971493691",
        "13688971493693",
        "shipping:4390293217452",
    ]


def test_shopify_long_skus_fall_back_to_the_variant() -> None:
    def change(body: Any) -> None:
        body["line_items"][0]["sku"] = "S" * 65

    assert paid(change).event.order.lines[0].sku == "variant:44610569208040"


def refund_with(change: Callable[[Any], None]) -> Any:
    return shopify_parse("refunds/create", mutated("shopify_refunds_create.json", change))


def test_shopify_refunds_without_returned_items_are_ignored() -> None:
    expected = ShopifyIgnored(
        webhook_key=EVENT_ID,
        shop=SHOP,
        topic="refunds/create",
        reason="the refund returns no line items (shipping or amount only)",
    )
    assert refund_with(lambda b: b.update(refund_line_items=[])) == expected
    assert refund_with(lambda b: b["refund_line_items"][0].update(quantity=0)) == expected


def test_shopify_refund_amount_falls_back_to_the_subtotal_number() -> None:
    def change(body: Any) -> None:
        del body["refund_line_items"][0]["subtotal_set"]

    assert refund_with(change).refund.lines == [
        RefundLine(line_id="141249953214522974", quantity=1, amount=19400)
    ]


SHOPIFY_REFUSALS = [
    pytest.param(
        "orders/paid",
        mutated("shopify_orders_paid.json", lambda b: b["line_items"][0].update(price="199.001")),
        SHOPIFY_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="price-with-three-decimals",
    ),
    pytest.param(
        "orders/paid",
        mutated(
            "shopify_orders_paid.json",
            lambda b: b.update(currency="JPY") or b["line_items"][0].update(price="100.5"),
        ),
        SHOPIFY_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="yen-with-decimals",
    ),
    pytest.param(
        "orders/paid",
        mutated("shopify_orders_paid.json", lambda b: b["line_items"][0].update(price="-1.00")),
        SHOPIFY_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="negative-price",
    ),
    pytest.param(
        "orders/paid",
        mutated("shopify_orders_paid.json", lambda b: b["line_items"][0].update(quantity=-1)),
        SHOPIFY_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="negative-quantity",
    ),
    pytest.param(
        "orders/paid",
        mutated("shopify_orders_paid.json", lambda b: b.update(currency="dollars")),
        SHOPIFY_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="no-currency-code",
    ),
    pytest.param(
        "orders/paid",
        mutated("shopify_orders_paid.json", lambda b: b.update(processed_at="yesterday")),
        SHOPIFY_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="bad-time",
    ),
    pytest.param(
        "orders/paid",
        b"",
        SHOPIFY_HEADERS,
        ErrorCode.MALFORMED_JSON,
        id="empty-body",
    ),
    pytest.param(
        "orders/paid",
        b'{"id": 1}',
        SHOPIFY_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="no-line-items",
    ),
    pytest.param(
        "orders/create",
        raw("shopify_orders_paid.json"),
        SHOPIFY_HEADERS,
        ErrorCode.UNSUPPORTED_VENDOR_REQUEST,
        id="unsupported-topic",
    ),
    pytest.param(
        "orders/paid",
        raw("shopify_orders_paid.json"),
        {},
        ErrorCode.IDEMPOTENCY_KEY_MISSING,
        id="no-event-id",
    ),
    pytest.param(
        "refunds/create",
        mutated("shopify_refunds_create.json", lambda b: b.update(order_id=" ")),
        SHOPIFY_HEADERS,
        ErrorCode.VALIDATION_FAILED,
        id="refund-without-order",
    ),
]


@pytest.mark.parametrize(("topic", "body", "headers", "code"), SHOPIFY_REFUSALS)
def test_shopify_refusals(
    topic: str, body: bytes, headers: dict[str, str], code: ErrorCode
) -> None:
    assert refused(lambda: shopify_parse(topic, body, headers)).code is code


def test_shopify_idempotency_key_is_the_event_id_else_the_webhook_id() -> None:
    both = {"X-Shopify-Event-Id": "event-1", "X-Shopify-Webhook-Id": "webhook-1"}
    assert shopify.idempotency_key(both) == "event-1"
    assert shopify.idempotency_key({"x-shopify-webhook-id": "webhook-1"}) == "webhook-1"
    assert refused(lambda: shopify.idempotency_key({})).code is ErrorCode.IDEMPOTENCY_KEY_MISSING
    assert refused(lambda: shopify.idempotency_key({"X-Shopify-Event-Id": "é"})).code is (
        ErrorCode.IDEMPOTENCY_KEY_INVALID
    )


def test_shopify_error_answers() -> None:
    def status(code: ErrorCode) -> int:
        return shopify.render_error(DomainError(code, "why")).status_code

    assert status(ErrorCode.SIGNATURE_INVALID) == 401
    assert status(ErrorCode.VALIDATION_FAILED) == 400
    assert status(ErrorCode.MEMBER_NOT_FOUND) == 422
    assert status(ErrorCode.INTERNAL_ERROR) == 500
    reply = shopify.render_error(DomainError(ErrorCode.SIGNATURE_INVALID, "why"))
    assert json.loads(reply.body) == {"code": "signature_invalid", "detail": "why"}
    assert shopify.render_ack().status_code == 200


# --- Shopify: signatures -------------------------------------------------------------------


def sign(body: bytes, secret: str = SECRET) -> str:
    """Computed independently of the adapter: base64(HMAC-SHA256(secret, raw body))."""
    import hashlib
    import hmac

    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_shopify_signature_is_what_shopify_sends() -> None:
    body = raw("shopify_orders_paid.json")
    assert shopify.signature(body, SECRET) == sign(body)
    shopify.verify(body, {"X-Shopify-Hmac-Sha256": sign(body)}, SECRET)
    shopify.verify(body, {"x-shopify-hmac-sha256": sign(body)}, SECRET)


def tampered(body: bytes, index: int) -> bytes:
    changed = bytearray(body)
    changed[index] ^= 0x01
    return bytes(changed)


BODY = raw("shopify_orders_paid.json")


@pytest.mark.parametrize(
    ("body", "headers", "secret"),
    [
        pytest.param(BODY, {}, SECRET, id="missing"),
        pytest.param(BODY, {"X-Shopify-Hmac-Sha256": ""}, SECRET, id="empty"),
        pytest.param(
            BODY, {"X-Shopify-Hmac-Sha256": sign(BODY, "other")}, SECRET, id="other-secret"
        ),
        pytest.param(BODY, {"X-Shopify-Hmac-Sha256": sign(BODY)[:-4]}, SECRET, id="truncated"),
        pytest.param(BODY, {"X-Shopify-Hmac-Sha256": "not base64!"}, SECRET, id="not-base64"),
        pytest.param(BODY, {"X-Shopify-Hmac-Sha256": "zäh"}, SECRET, id="not-ascii"),
        pytest.param(
            BODY, {"X-Shopify-Hmac-Sha256": sign(BODY).encode().hex()}, SECRET, id="hex-not-base64"
        ),
        pytest.param(
            tampered(BODY, 0), {"X-Shopify-Hmac-Sha256": sign(BODY)}, SECRET, id="first-byte"
        ),
        pytest.param(
            tampered(BODY, len(BODY) // 2),
            {"X-Shopify-Hmac-Sha256": sign(BODY)},
            SECRET,
            id="middle-byte",
        ),
        pytest.param(
            tampered(BODY, len(BODY) - 1),
            {"X-Shopify-Hmac-Sha256": sign(BODY)},
            SECRET,
            id="last-byte",
        ),
        pytest.param(
            json.dumps(json.loads(BODY)).encode(),
            {"X-Shopify-Hmac-Sha256": sign(BODY)},
            SECRET,
            id="re-serialized-json",
        ),
        pytest.param(BODY, {"X-Shopify-Hmac-Sha256": sign(BODY, "")}, "", id="empty-secret"),
    ],
)
def test_shopify_refuses_bad_signatures(body: bytes, headers: dict[str, str], secret: str) -> None:
    error = refused(lambda: shopify.verify(body, headers, secret))
    assert error.code is ErrorCode.SIGNATURE_INVALID


@pytest.mark.property
@given(body=st.binary(max_size=2048), secret=st.text(min_size=1, max_size=64), data=st.data())
def test_shopify_any_signed_body_verifies_and_any_one_byte_change_does_not(
    body: bytes, secret: str, data: st.DataObject
) -> None:
    headers = {"X-Shopify-Hmac-Sha256": sign(body, secret)}
    shopify.verify(body, headers, secret)
    if body:
        index = data.draw(st.integers(0, len(body) - 1))
        flip = data.draw(st.integers(1, 255))
        changed = bytearray(body)
        changed[index] ^= flip
        assert refused(lambda: shopify.verify(bytes(changed), headers, secret)).code is (
            ErrorCode.SIGNATURE_INVALID
        )
    assert refused(lambda: shopify.verify(body + b" ", headers, secret)).code is (
        ErrorCode.SIGNATURE_INVALID
    )


# --- Properties: nothing but DomainError ---------------------------------------------------

TOAST_TYPES = [
    "LOYALTY_SEARCH",
    "LOYALTY_INQUIRE",
    "LOYALTY_REDEEM",
    "LOYALTY_ACCRUE",
    "LOYALTY_REVERSE",
]
SHOPIFY_TOPICS = ["orders/paid", "refunds/create"]


def parse_anything(vendor_name: str, kind: str, body: bytes) -> None:
    """Parse ``body``; a DomainError is fine, any other exception fails the test. What parses
    is an order the service accepts as consistent (``check_order``)."""
    try:
        parse = toast_parse if vendor_name == "toast" else shopify_parse
        parsed = parse(kind, body)
    except DomainError:
        return
    event = getattr(parsed, "event", None)
    if event is not None and event.order is not None:
        check_order(event.order)


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("toast_inquire.json", "LOYALTY_INQUIRE"),
        ("toast_redeem.json", "LOYALTY_REDEEM"),
        ("toast_accrue.json", "LOYALTY_ACCRUE"),
        ("shopify_orders_paid.json", "orders/paid"),
        ("shopify_orders_paid_eur_card.json", "orders/paid"),
    ],
)
def test_mapped_orders_are_consistent_baskets(fixture: str, kind: str) -> None:
    parsed = (toast_parse if kind.startswith("LOYALTY") else shopify_parse)(kind, raw(fixture))
    order = parsed.event.order
    check_order(order)
    basket_of(order, None).basket()  # the domain's basket checks


ANY_KIND = st.sampled_from(
    [("toast", kind) for kind in TOAST_TYPES] + [("shopify", topic) for topic in SHOPIFY_TOPICS]
)
JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=True, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["NaN", "1e999999999", "-0.00", "1E-999999999", "12.345", "", " "])
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_ENCODER = msgspec.json.Encoder(decimal_format="number")


def as_json(value: Any) -> bytes:
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError):  # a NaN decimal as a number: not JSON, send text
        return msgspec.json.encode(value)


@pytest.mark.property
@given(kind=ANY_KIND, body=st.binary(max_size=512))
def test_any_bytes_parse_or_raise_a_domain_error(kind: tuple[str, str], body: bytes) -> None:
    parse_anything(*kind, body)


@pytest.mark.property
@given(kind=ANY_KIND, value=JSON_VALUES)
def test_any_json_parses_or_raises_a_domain_error(kind: tuple[str, str], value: Any) -> None:
    parse_anything(*kind, as_json(value))


FIXTURE_FOR = {
    "LOYALTY_SEARCH": "toast_search_email.json",
    "LOYALTY_INQUIRE": "toast_inquire.json",
    "LOYALTY_REDEEM": "toast_redeem.json",
    "LOYALTY_ACCRUE": "toast_accrue.json",
    "LOYALTY_REVERSE": "toast_reverse.json",
    "orders/paid": "shopify_orders_paid_eur_card.json",
    "refunds/create": "shopify_refunds_create.json",
}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document (the root included)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    document = copy.deepcopy(document)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return document


@pytest.mark.property
@given(kind=ANY_KIND, data=st.data())
def test_fixtures_with_any_value_changed_parse_or_raise_a_domain_error(
    kind: tuple[str, str], data: st.DataObject
) -> None:
    document = json.loads(raw(FIXTURE_FOR[kind[1]]))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(document)))
        document = replaced(document, path, data.draw(JSON_VALUES))
    parse_anything(*kind, as_json(document))


# --- Properties: money ---------------------------------------------------------------------

CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "KWD", "CLF"])
CENTS = st.integers(0, 10**12)


@pytest.mark.property
@given(cents=CENTS, currency=CURRENCIES)
def test_minor_units_round_trip_through_decimals(cents: int, currency: str) -> None:
    decimal = from_minor(cents, currency)
    assert to_minor(decimal, currency, "x") == cents
    padded = f"{decimal}000" if "." in str(decimal) else f"{decimal}.000"
    assert to_minor(Decimal(padded), currency, "x") == cents  # trailing zeros
    assert to_minor(decimal, currency, "x", tolerate_float_noise=True) == cents


@pytest.mark.property
@given(cents=CENTS)
def test_cents_round_trip_through_toast_json(cents: int) -> None:
    """cents -> the dollars a Toast answer carries -> the JSON number Toast reads back ->
    cents: exact."""
    offer = toast.ToastOffer(
        identifier="R",
        name="R",
        applicable=True,
        selection_type="CHECK",
        amount=from_minor(cents, "USD"),
    )
    echoed = msgspec.json.decode(_ENCODER.encode(offer), type=toast.ToastOffer)
    assert echoed.amount is not None
    assert to_minor(echoed.amount, "USD", "amount", tolerate_float_noise=True) == cents
    # Toast's JSON doubles: the shortest repr of the nearest double is the decimal itself
    assert to_minor(Decimal(repr(cents / 100)), "USD", "amount", tolerate_float_noise=True) == cents


@pytest.mark.property
@given(a=st.integers(0, 10**8), b=st.integers(0, 10**8))
def test_binary_noise_of_double_sums_is_the_nearest_cent(a: int, b: int) -> None:
    noisy = Decimal(repr(a / 100 + b / 100))  # e.g. 0.1 + 0.2 = 0.30000000000000004
    assert to_minor(noisy, "USD", "x", tolerate_float_noise=True) == a + b


@pytest.mark.property
@given(cents=st.integers(0, 10**10), digit=st.integers(1, 9), currency=CURRENCIES)
def test_more_decimals_than_the_currency_has_are_refused(
    cents: int, digit: int, currency: str
) -> None:
    places = from_minor(cents, currency)
    text = f"{places}{digit}" if "." in str(places) else f"{places}.{digit}"
    for tolerate in (False, True):
        error = refused(
            lambda noise=tolerate: to_minor(  # type: ignore[misc]
                Decimal(text), currency, "price", tolerate_float_noise=noise
            )
        )
        assert error.code is ErrorCode.VALIDATION_FAILED
        assert error.extra == {"field": "price"}


@pytest.mark.parametrize(
    "value", ["NaN", "sNaN", "Infinity", "-0.01", "1e999999999", "1E-999999999", "1" * 50]
)
def test_amounts_that_are_no_amounts_are_refused(value: str) -> None:
    assert refused(lambda: to_minor(Decimal(value), "USD", "x")).code is ErrorCode.VALIDATION_FAILED


def test_amount_edge_cases() -> None:
    assert to_minor(Decimal("-0.00"), "USD", "x") == 0
    assert to_minor(Decimal("0E-999999999"), "USD", "x") == 0
    assert to_minor(Decimal("1E+4"), "USD", "x") == 1_000_000
    assert to_minor(Decimal("10000000000"), "USD", "x") == 10**12
    assert refused(lambda: to_minor(Decimal("10000000000.01"), "USD", "x")).code is (
        ErrorCode.VALIDATION_FAILED
    )
    assert from_minor(1234, "USD") == Decimal("12.34")
    assert str(from_minor(5, "JPY")) == "5"
    assert str(from_minor(1234, "KWD")) == "1.234"
