"""Toast: the synchronous loyalty-partner protocol ("Toast loyalty integration API" 1.1.0).

Toast's POS calls one partner endpoint (``POST /api/v1/pos/vendors/toast/loyalty`` here) for
every loyalty step and waits for the answer (<= 500 ms on average; after 5 s it retries):

==================  ==========================  =============================================
Toast-Transaction-  canonical request           service call (by the route)
Type
==================  ==========================  =============================================
LOYALTY_SEARCH      ``ToastSearch(scan)``       identify(scan)
LOYALTY_INQUIRE     ``ToastInquire(event)``     identify + preview(scan, order), redemptions
                                                checked (not held)
LOYALTY_REDEEM      ``ToastRedeem(event)``      redeem(transaction_id, scan, r) per unit
LOYALTY_ACCRUE      ``ToastAccrue(event)``      complete(event): earn, capture the holds
LOYALTY_REVERSE     ``ToastReverse(guid)``      void / release what that Toast transaction did
==================  ==========================  =============================================

Sources (Toast developer documentation, read 2025):

* API reference: https://doc.toasttab.com/openapi/loyalty/operation/yourEndpointNamePost
  (LoyaltyTransaction, TransactionInformationCheck/Search/Reverse, Redemption, Offer,
  ResponseCheck, ResponseSearch, LoyaltyTransactionResponse under
  https://doc.toasttab.com/openapi/loyalty/tag/Data-definitions/schema/...)
* Transaction types, with request/response examples (the fixtures follow them):
  https://doc.toasttab.com/doc/devguide/apiLoyaltyTransactionDescriptions.html
* Error handling (200 ACCEPT; 400 with ERROR_* statuses; 404 for an unknown account; 500):
  https://doc.toasttab.com/doc/devguide/apiLoyaltyErrorHandling.html
* Authentication: https://doc.toasttab.com/doc/devguide/apiAuthenticatingRequestsFromToastApiClients.html
  (the JWT scheme of apiLoyaltyIntegrationAuthentication.html is deprecated by Toast).

Identity and idempotency
    The ``Toast-Transaction-GUID`` header identifies one loyalty transaction (one request and
    its retries): it is the idempotency key (``idempotency_key``). The canonical
    ``transaction_id`` of inquire/redeem/accrue is the **check GUID**: a check is what Toast
    pays and accrues separately (an order can be split into several checks), and redeem and
    accrue must share it so that completing the check captures its holds. LOYALTY_REVERSE
    names the ``Toast-Transaction-GUID`` of the redeem or accrue to undo; the route finds what
    that transaction did through its idempotency record (which stores the canonical request).

Authentication (chosen: static API key)
    Toast sends the static API key the partner supplied, as the whole ``Authorization`` header
    value (the docs' example has no scheme; ``Bearer <key>`` is accepted too). ``verify``
    compares it with the connection's key in constant time. Toast does not sign bodies, so
    ``ADAPTER.signs`` is False. The deprecated RS256 JWT scheme is not supported.

Money
    Toast sends dollars as JSON numbers (doubles). They are decoded straight into ``Decimal``
    (never float) and converted to minor units exactly; more decimals than the currency has
    are refused, except binary noise within a millionth of a cent (``0.30000000000000004``).
    Per-selection tax (``5.49612811`` in Toast's own example) is not read; the check's
    ``taxAmount`` is. Responses carry amounts as decimal JSON numbers (``12.34``).

Assumptions where Toast's public documentation is unclear
    * A selection's ``price`` is its line total after all discounts, check-level ones
      prorated (Toast's redeem example: check discount 5, ``preDiscountPrice`` 43.96,
      ``price`` 38.96), modifiers included; ``preDiscountPrice`` is the line total before
      discounts. So line discount = preDiscountPrice - price and ``order_discount`` = 0.
      When the line total does not divide by the quantity, the unit price is rounded up and
      the difference counted as discount, so the line's net is exactly Toast's ``price``.
    * A fractional quantity (sold by weight) becomes one unit priced at the line total.
    * Voided selections are left out; so are house-account payments
      (``HOUSE_ACCOUNT_PAY_BALANCE``); gift-card sales (``TOAST_CARD_SELL/RELOAD``) are
      gift-card lines. Service charges are not lines. The tip is the sum of the payments'
      ``tipAmount``.
    * The item's GUID is the SKU, the sales category's GUID the category: earning rules for
      Toast restaurants name Toast GUIDs.
    * Toast payloads carry no currency: it comes from the connection (``VendorSettings``).
      Search phone numbers are US-style national numbers: ``VendorSettings.calling_code``
      turns them into international form.
    * A Redemption's ``quantity`` n (Toast: "amount 5, quantity 2: 10 off") is n canonical
      redemptions of that reward; an accepted one is echoed with the per-unit amount.
    * Search answers accounts by email or phone only; names are not searched (a name
      identifies nobody and would list strangers' accounts at the till). The account
      ``identifier`` we hand Toast is the member's card number, never an email or phone
      (Toast forbids personal data in identifiers) in search answers; inquire/redeem answers
      echo the scanned identifier (the route does not hand a wallet-code member's card
      number to the till).
      ``pointsBalance`` is a string of digits (the schema's type); no email or phone is sent.
    * The identifier stays on the check: a wallet rotating code scanned at inquire time has
      passed its 30-second step by the accrue; the service's complete accepts codes shown up to
      4 hours before, for earning only (see docs/POS_ADAPTERS.md).
    * An accrue without a loyalty identifier (Toast sends one for every paid check), or for a
      voided or deleted check, is answered ACCEPT and earns nothing (``ToastAccrue.event``
      is None).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import msgspec
from msgspec import Struct, field

from loyalty.domain.basket import LineKind
from loyalty.domain.cards import ScanKind
from loyalty.domain.errors import DomainError, ErrorCode
from pos_adapter.events import (
    MemberScan,
    Order,
    OrderLine,
    PosEvent,
    Redemption,
    Source,
)
from pos_adapter.vendors import (
    IDENTITY_ERRORS,
    Headers,
    RedemptionOutcome,
    TillMember,
    TillReward,
    VendorAdapter,
    VendorPort,
    VendorReply,
    VendorSettings,
    decode,
    from_minor,
    header,
    national_to_e164,
    parse_time,
    require_key,
    to_minor,
    validated,
)

DOCS_URL = "https://doc.toasttab.com/openapi/loyalty/operation/yourEndpointNamePost"
TRANSACTION_TYPE_HEADER = "Toast-Transaction-Type"
TRANSACTION_GUID_HEADER = "Toast-Transaction-GUID"
RESTAURANT_HEADER = "Toast-Restaurant-External-ID"
AUTHORIZATION_HEADER = "Authorization"
#: Toast's limit for a static API key.
MAX_API_KEY_LENGTH = 255
#: Canonical redemptions per event (``PosEvent.redemptions``).
MAX_REDEMPTION_UNITS = 20


class TransactionType(StrEnum):
    SEARCH = "LOYALTY_SEARCH"
    INQUIRE = "LOYALTY_INQUIRE"
    REDEEM = "LOYALTY_REDEEM"
    ACCRUE = "LOYALTY_ACCRUE"
    REVERSE = "LOYALTY_REVERSE"


class TransactionStatus(StrEnum):
    ACCEPT = "ACCEPT"
    ERROR = "ERROR"
    INVALID_TRANSACTION_TYPE = "ERROR_INVALID_TOAST_TRANSACTION_TYPE"
    ACCOUNT_INVALID = "ERROR_ACCOUNT_INVALID"
    INVALID_INPUT_PROPERTIES = "ERROR_INVALID_INPUT_PROPERTIES"
    TRANSACTION_DOES_NOT_EXIST = "ERROR_TRANSACTION_DOES_NOT_EXIST"
    INVALID_TOKEN = "ERROR_INVALID_TOKEN"  # noqa: S105 (a status name, not a secret)
    TRANSACTION_CANNOT_BE_REVERSED = "ERROR_TRANSACTION_CANNOT_BE_REVERSED"
    INVALID_RESTAURANT = "ERROR_INVALID_RESTAURANT"


# --- Toast's shapes (camelCase; unknown fields are ignored, Toast adds fields freely) ------


class ToastModel(Struct, rename="camel", omit_defaults=True):
    pass


class ToastReference(ToastModel):
    guid: str | None = None
    entity_type: str | None = None
    external_id: str | None = None


class ToastDevice(ToastModel):
    id: str | None = None


class ToastPayment(ToastModel):
    guid: str | None = None
    amount: Decimal | None = None
    tip_amount: Decimal | None = None
    payment_status: str | None = None
    void_info: Any = None


class ToastSelection(ToastModel):
    guid: str | None = None
    item: ToastReference | None = None
    item_group: ToastReference | None = None
    sales_category: ToastReference | None = None
    display_name: str | None = None
    selection_type: str | None = None
    quantity: Decimal | None = None
    unit_of_measure: str | None = None
    #: The line total after discounts (see the module docs).
    price: Decimal | None = None
    pre_discount_price: Decimal | None = None
    voided: bool | None = None


class ToastAppliedLoyaltyInfo(ToastModel):
    loyalty_identifier: str | None = None


class ToastCheck(ToastModel):
    guid: str | None = None
    display_number: str | None = None
    opened_date: str | None = None
    closed_date: str | None = None
    paid_date: str | None = None
    modified_date: str | None = None
    selections: list[ToastSelection] | None = None
    payments: list[ToastPayment] | None = None
    applied_loyalty_info: ToastAppliedLoyaltyInfo | None = None
    amount: Decimal | None = None
    total_amount: Decimal | None = None
    tax_amount: Decimal | None = None
    payment_status: str | None = None
    voided: bool | None = None
    deleted: bool | None = None
    server: ToastReference | None = None
    created_device: ToastDevice | None = None
    last_modified_device: ToastDevice | None = None


class ToastItemApplication(ToastModel):
    selection_identifier: str | None = None
    amount: Decimal | None = None
    applied_discount_identifier: Any = None


class ToastRedemption(ToastModel):
    """An offer applied (or to apply) to a check; echoed back in responses."""

    identifier: str | None = None
    item_id: str | None = None
    selection_guid: str | None = None
    applied_discount_guid: str | None = None
    multi_item_discount_guid: str | None = None
    amount: Decimal | None = None
    item_application: list[ToastItemApplication] | None = None
    quantity: Decimal | None = None


class ToastSearchCriteria(ToastModel):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None


class ToastSearchInformation(ToastModel):
    search_criteria: ToastSearchCriteria | None = None


class ToastCheckInformation(ToastModel):
    loyalty_identifier: str | None = None
    order_guid: str | None = None
    check: ToastCheck | None = None
    redemptions: list[ToastRedemption] | None = None


class ToastReverseInformation(ToastModel):
    loyalty_identifier: str | None = None
    transaction_id: str | None = None
    redemptions: list[ToastRedemption] | None = None


class ToastLoyaltyTransaction(ToastModel):
    """The request body (Toast's ``LoyaltyTransaction``)."""

    toast_transaction_type: str | None = None
    search_transaction_information: ToastSearchInformation | None = None
    check_transaction_information: ToastCheckInformation | None = None
    reverse_transaction_information: ToastReverseInformation | None = None


# Response shapes


class ToastAccountInfo(ToastModel):
    identifier: str
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None
    points_balance: str | None = None


class ToastExpiration(ToastModel):
    date: str
    quantity: int | None = None


class ToastOffer(ToastModel):
    identifier: str
    name: str
    applicable: bool
    #: CHECK, ITEM or MULTI_ITEM (always sent: no default, so never omitted).
    selection_type: str
    amount: Decimal | None = None
    item_application: list[ToastItemApplication] | None = None
    quantity: int | None = None
    expiration: list[ToastExpiration] | None = None


class ToastRejectedRedemption(ToastModel):
    redemption: ToastRedemption
    message: str | None = None


class ToastResponseCheck(ToastModel):
    account_info: ToastAccountInfo | None = None
    offers: list[ToastOffer] | None = None
    applied_redemptions: list[ToastRedemption] | None = None
    rejected_redemptions: list[ToastRejectedRedemption] | None = None
    user_message: str | None = None


class ToastResponseSearch(ToastModel):
    accounts: list[ToastAccountInfo] = field(default_factory=list)


class ToastTransactionResponse(ToastModel):
    """The response body (Toast's ``LoyaltyTransactionResponse``)."""

    transaction_status: str
    message: str | None = None
    check_response: ToastResponseCheck | None = None
    search_response: ToastResponseSearch | None = None


# --- The canonical requests this adapter produces ------------------------------------------


class ToastRequest(Struct, frozen=True, kw_only=True):
    #: ``Toast-Transaction-GUID``: this request's idempotency key.
    transaction_guid: str
    #: ``Toast-Restaurant-External-ID``: which restaurant (the route maps it to a location).
    restaurant: str | None = None


class ToastRedemptionRequest(Struct, frozen=True, kw_only=True):
    """One Toast redemption: ``quantity`` canonical redemptions of ``redemption``."""

    #: As Toast sent it (echoed in the response).
    toast: ToastRedemption
    redemption: Redemption
    quantity: int = 1


class ToastSearch(ToastRequest, frozen=True, kw_only=True, tag="search"):
    """LOYALTY_SEARCH: identify(scan)."""

    scan: MemberScan


class ToastInquire(ToastRequest, frozen=True, kw_only=True, tag="inquire"):
    """LOYALTY_INQUIRE: identify + preview(event.member, event.order); the redemptions on
    the check are checked (``event.redemptions``), not held."""

    event: PosEvent
    currency: str
    redemptions: list[ToastRedemptionRequest] = field(default_factory=list)


class ToastRedeem(ToastRequest, frozen=True, kw_only=True, tag="redeem"):
    """LOYALTY_REDEEM: redeem(event.transaction_id, event.member, r) for each unit."""

    event: PosEvent
    currency: str
    redemptions: list[ToastRedemptionRequest] = field(default_factory=list)


class ToastAccrue(ToastRequest, frozen=True, kw_only=True, tag="accrue"):
    """LOYALTY_ACCRUE: complete(event). ``event`` None: nothing to earn (``skipped`` says
    why); answer ACCEPT."""

    event: PosEvent | None = None
    skipped: str | None = None


class ToastReverse(ToastRequest, frozen=True, kw_only=True, tag="reverse"):
    """LOYALTY_REVERSE: undo the redeem or accrue sent as ``reversed_transaction_guid``:
    an accrue is voided (void(transaction_id)); a redeem's holds are released, only those of
    ``redemptions`` when given (None: all of them)."""

    reversed_transaction_guid: str
    scan: MemberScan | None = None
    redemptions: list[ToastRedemptionRequest] | None = None


ToastCanonical = ToastSearch | ToastInquire | ToastRedeem | ToastAccrue | ToastReverse


# --- Authentication, idempotency -----------------------------------------------------------


def verify(body: bytes, headers: Headers, api_key: str) -> None:
    """The request carries the connection's static API key in ``Authorization`` (the bare
    key as Toast sends it, or ``Bearer <key>``); ``unauthorized`` otherwise. An empty
    configured key never matches. ``body`` is not signed by Toast and is not read."""
    del body
    presented = header(headers, AUTHORIZATION_HEADER)
    if presented is not None and presented[:7].lower() == "bearer ":
        presented = presented[7:].strip()
    expected = api_key.strip().encode()
    if (
        presented is None
        or not expected
        or len(presented) > MAX_API_KEY_LENGTH
        or not hmac.compare_digest(presented.encode(), expected)
    ):
        raise DomainError(
            ErrorCode.UNAUTHORIZED, "the Authorization header does not carry the Toast API key"
        )


def idempotency_key(headers: Headers) -> str:
    """The ``Toast-Transaction-GUID``: Toast retries a transaction with the same GUID."""
    return require_key(header(headers, TRANSACTION_GUID_HEADER), TRANSACTION_GUID_HEADER)


def transaction_type(headers: Headers) -> str:
    value = header(headers, TRANSACTION_TYPE_HEADER)
    if value is None:
        raise DomainError(
            ErrorCode.VALIDATION_FAILED, f"the {TRANSACTION_TYPE_HEADER} header is required"
        )
    return value


# --- Parsing -------------------------------------------------------------------------------


def _bad(detail: str, **extra: Any) -> DomainError:
    return DomainError(ErrorCode.VALIDATION_FAILED, detail, **extra)


def _money(value: Decimal | None, currency: str, where: str) -> int:
    if value is None:
        return 0
    return to_minor(value, currency, where, tolerate_float_noise=True)


def _quantity(value: Decimal | None, where: str) -> int | None:
    """A whole quantity as int; None for a fractional one (weight); refused when not > 0."""
    if value is None:
        return 1
    if not value.is_finite() or value <= 0 or value.adjusted() > 5:
        raise _bad(f"{where}: {value} is not a quantity", field=where)
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if exponent < 0 and any(digits[exponent:]):
        return None
    return int(value)


def _line_kind(selection: ToastSelection) -> LineKind | None:
    kind = (selection.selection_type or "").upper()
    if kind == "HOUSE_ACCOUNT_PAY_BALANCE":
        return None
    if kind in {"TOAST_CARD_SELL", "TOAST_CARD_RELOAD"}:
        return LineKind.GIFT_CARD
    return LineKind.MERCHANDISE


def _line(selection: ToastSelection, index: int, currency: str) -> OrderLine | None:
    where = f"check.selections[{index}]"
    kind = _line_kind(selection)
    if selection.voided or kind is None:
        return None
    if not selection.guid:
        raise _bad(f"{where}.guid is required", field=f"{where}.guid")
    price = _money(selection.price, currency, f"{where}.price")
    gross = price
    if selection.pre_discount_price is not None:
        gross = max(
            price, _money(selection.pre_discount_price, currency, f"{where}.preDiscountPrice")
        )
    quantity = _quantity(selection.quantity, f"{where}.quantity")
    if quantity is None:  # sold by weight: one unit at the line total
        quantity = 1
    unit_price = -(-gross // quantity)
    discount = unit_price * quantity - price
    sku = (selection.item.guid if selection.item else None) or selection.guid
    category = selection.sales_category.guid if selection.sales_category else None
    return OrderLine(
        line_id=selection.guid,
        sku=sku,
        quantity=quantity,
        unit_price=unit_price,
        category=category,
        discount=discount,
        total=price,
        kind=kind,
    )


def _order(check: ToastCheck, currency: str) -> Order:
    lines = [
        line
        for index, selection in enumerate(check.selections or [])
        if (line := _line(selection, index, currency)) is not None
    ]
    tip = sum(
        _money(payment.tip_amount, currency, f"check.payments[{index}].tipAmount")
        for index, payment in enumerate(check.payments or [])
        if payment.void_info is None and (payment.payment_status or "").upper() != "VOIDED"
    )
    return Order(
        currency=currency,
        lines=lines,
        tax=_money(check.tax_amount, currency, "check.taxAmount"),
        tip=tip,
    )


def _source(check: ToastCheck | None, restaurant: str | None) -> Source:
    device = None
    cashier = None
    if check is not None:
        device = (check.last_modified_device or check.created_device or ToastDevice()).id
        cashier = check.server.guid if check.server else None
    return Source(
        register=_label(device),
        cashier=_label(cashier),
        location=_label(restaurant),
    )


def _label(value: str | None) -> str | None:
    """A source label (1-64 characters) or None: these are kept for the record only."""
    if value is None or not 1 <= len(value) <= 64:
        return None
    return value


def _redemptions(
    toast: list[ToastRedemption] | None, where: str, currency: str
) -> tuple[list[ToastRedemptionRequest], list[Redemption]]:
    """Toast's redemptions, and the canonical ones (``quantity`` units each). Their amounts
    are Toast's, not ours (the service prices rewards), but they are echoed back, so they
    must be amounts."""
    requests: list[ToastRedemptionRequest] = []
    units: list[Redemption] = []
    for index, item in enumerate(toast or []):
        here = f"{where}[{index}]"
        if not item.identifier:
            raise _bad(f"{here}.identifier (the offer) is required", field=f"{here}.identifier")
        _money(item.amount, currency, f"{here}.amount")
        for number, application in enumerate(item.item_application or []):
            _money(application.amount, currency, f"{here}.itemApplication[{number}].amount")
        quantity = _quantity(item.quantity, f"{here}.quantity")
        if quantity is None:
            raise _bad(f"{here}.quantity must be a whole number", field=f"{here}.quantity")
        redemption = Redemption(reward_code=item.identifier)
        requests.append(
            ToastRedemptionRequest(toast=item, redemption=redemption, quantity=quantity)
        )
        units.extend([redemption] * min(quantity, MAX_REDEMPTION_UNITS + 1))
        if len(units) > MAX_REDEMPTION_UNITS:
            raise _bad(
                f"{where}: more than {MAX_REDEMPTION_UNITS} redemptions on one check",
                field=where,
            )
    return requests, units


def _body_type(body: ToastLoyaltyTransaction, kind: TransactionType) -> None:
    named = body.toast_transaction_type
    if named is not None and named.strip().upper() != kind.value:
        raise _bad(
            f"toastTransactionType {named!r} contradicts the {TRANSACTION_TYPE_HEADER} header "
            f"{kind.value}",
            field="toastTransactionType",
        )


def _kind(value: str) -> TransactionType:
    try:
        return TransactionType(value.strip().upper())
    except ValueError:
        raise DomainError(
            ErrorCode.UNSUPPORTED_VENDOR_REQUEST,
            f"Toast transaction type {value[:64]!r} is not supported; supported: "
            + ", ".join(t.value for t in TransactionType),
        ) from None


def parse_request(
    transaction_type: str,
    body: bytes,
    headers: Headers,
    *,
    settings: VendorSettings | None = None,
    received_at: datetime | None = None,
) -> ToastCanonical:
    """The canonical request for one Toast loyalty transaction.

    ``transaction_type`` is the ``Toast-Transaction-Type`` header; ``headers`` must carry the
    ``Toast-Transaction-GUID`` (and may carry ``Toast-Restaurant-External-ID``). Raises
    ``DomainError`` only: ``unsupported_vendor_request``, ``malformed_json``,
    ``validation_failed``, ``idempotency_key_missing`` / ``idempotency_key_invalid``.
    """
    settings = settings or VendorSettings()
    now = received_at or datetime.now(UTC)
    kind = _kind(transaction_type)
    guid = idempotency_key(headers)
    restaurant = header(headers, RESTAURANT_HEADER)
    payload = decode(body, ToastLoyaltyTransaction, "Toast loyalty transaction")
    _body_type(payload, kind)
    if kind is TransactionType.SEARCH:
        return _search(payload, guid, restaurant, settings)
    if kind is TransactionType.REVERSE:
        return _reverse(payload, guid, restaurant, settings.currency)
    return _check_request(payload, kind, guid, restaurant, settings, now)


def _search(
    payload: ToastLoyaltyTransaction, guid: str, restaurant: str | None, settings: VendorSettings
) -> ToastSearch:
    info = payload.search_transaction_information
    criteria = info.search_criteria if info else None
    if criteria is None:
        raise _bad("searchTransactionInformation.searchCriteria is required")
    email = (criteria.email or "").strip()
    phone = (criteria.phone or "").strip()
    if email:
        scan = MemberScan(value=email, kind=ScanKind.EMAIL)
    elif phone:
        scan = MemberScan(value=national_to_e164(phone, settings.calling_code), kind=ScanKind.PHONE)
    else:
        raise _bad(
            "search by email address or phone number; accounts are not searched by name",
            reason="name_search_unsupported",
        )
    return validated(ToastSearch(transaction_guid=guid, restaurant=restaurant, scan=scan))


def _reverse(
    payload: ToastLoyaltyTransaction, guid: str, restaurant: str | None, currency: str
) -> ToastReverse:
    info = payload.reverse_transaction_information
    if info is None or not info.transaction_id:
        raise _bad("reverseTransactionInformation.transactionId is required")
    requests: list[ToastRedemptionRequest] | None = None
    if info.redemptions:
        requests, _ = _redemptions(
            info.redemptions, "reverseTransactionInformation.redemptions", currency
        )
    identifier = (info.loyalty_identifier or "").strip()
    return validated(
        ToastReverse(
            transaction_guid=guid,
            restaurant=restaurant,
            reversed_transaction_guid=info.transaction_id,
            scan=MemberScan(value=identifier) if identifier else None,
            redemptions=requests,
        )
    )


def _check_request(
    payload: ToastLoyaltyTransaction,
    kind: TransactionType,
    guid: str,
    restaurant: str | None,
    settings: VendorSettings,
    now: datetime,
) -> ToastInquire | ToastRedeem | ToastAccrue:
    info = payload.check_transaction_information
    if info is None:
        raise _bad(f"checkTransactionInformation is required for {kind.value}")
    check = info.check
    identifier = (info.loyalty_identifier or "").strip()
    if not identifier and check is not None and check.applied_loyalty_info is not None:
        identifier = (check.applied_loyalty_info.loyalty_identifier or "").strip()
    if kind is TransactionType.ACCRUE:
        skipped = None
        if not identifier:
            skipped = "no loyalty account on the check"
        elif check is None:
            skipped = "no check in the accrue request"
        elif check.voided or check.deleted:
            skipped = "the check is voided or deleted"
        if skipped is not None:
            return ToastAccrue(transaction_guid=guid, restaurant=restaurant, skipped=skipped)
    if not identifier:
        raise _bad(
            f"checkTransactionInformation.loyaltyIdentifier is required for {kind.value}",
            field="checkTransactionInformation.loyaltyIdentifier",
        )
    if check is None or not check.guid:
        raise _bad(
            f"checkTransactionInformation.check with a guid is required for {kind.value}",
            field="checkTransactionInformation.check.guid",
        )
    requests, units = _redemptions(
        info.redemptions, "checkTransactionInformation.redemptions", settings.currency
    )
    occurred_at = now
    if kind is TransactionType.ACCRUE:
        occurred_at = (
            parse_time(check.closed_date, "check.closedDate")
            or parse_time(check.paid_date, "check.paidDate")
            or now
        )
    event = PosEvent(
        transaction_id=check.guid,
        occurred_at=occurred_at,
        member=MemberScan(value=identifier),
        order=_order(check, settings.currency),
        source=_source(check, restaurant),
        redemptions=units,
    )
    if kind is TransactionType.ACCRUE:
        return validated(ToastAccrue(transaction_guid=guid, restaurant=restaurant, event=event))
    if kind is TransactionType.REDEEM:
        return validated(
            ToastRedeem(
                transaction_guid=guid,
                restaurant=restaurant,
                event=event,
                currency=settings.currency,
                redemptions=requests,
            )
        )
    return validated(
        ToastInquire(
            transaction_guid=guid,
            restaurant=restaurant,
            event=event,
            currency=settings.currency,
            redemptions=requests,
        )
    )


def _parse(
    message_type: str,
    body: bytes,
    headers: Headers,
    settings: VendorSettings,
    received_at: datetime | None,
) -> ToastCanonical:
    return parse_request(message_type, body, headers, settings=settings, received_at=received_at)


# --- Rendering -----------------------------------------------------------------------------

_ENCODER = msgspec.json.Encoder(decimal_format="number")


def _reply(status_code: int, response: ToastTransactionResponse) -> VendorReply:
    return VendorReply(status_code=status_code, body=_ENCODER.encode(response))


def _account(member: TillMember, identifier: str) -> ToastAccountInfo:
    first, _, last = member.display_name.strip().partition(" ")
    return ToastAccountInfo(
        identifier=identifier,
        first_name=first,
        last_name=last.strip(),
        points_balance=str(member.balance.available),
    )


def _offer(reward: TillReward, currency: str) -> ToastOffer:
    amount = None if reward.discount is None else from_minor(reward.discount, currency)
    items = None
    if reward.line_id is not None:
        items = [ToastItemApplication(selection_identifier=reward.line_id, amount=amount)]
    expiration = None
    if reward.expires_at is not None:
        expiration = [ToastExpiration(date=reward.expires_at.isoformat(), quantity=1)]
    return ToastOffer(
        identifier=reward.code,
        name=reward.name,
        applicable=reward.usable,
        selection_type="ITEM" if reward.line_id is not None else "CHECK",
        amount=amount,
        item_application=items,
        quantity=1,
        expiration=expiration,
    )


def _applied(
    request: ToastRedemptionRequest, outcome: RedemptionOutcome, currency: str
) -> ToastRedemption:
    amount = from_minor(outcome.discount, currency)
    toast = request.toast
    items = toast.item_application
    if outcome.line_id is not None:
        items = [ToastItemApplication(selection_identifier=outcome.line_id, amount=amount)]
    return ToastRedemption(
        identifier=toast.identifier,
        item_id=toast.item_id,
        selection_guid=toast.selection_guid or outcome.line_id,
        applied_discount_guid=toast.applied_discount_guid,
        multi_item_discount_guid=toast.multi_item_discount_guid,
        amount=amount,
        item_application=items,
        quantity=Decimal(request.quantity),
    )


def _check_response(
    request: ToastInquire | ToastRedeem,
    member: TillMember | None,
    outcomes: Sequence[RedemptionOutcome],
    *,
    offers: bool,
    user_message: str | None,
) -> ToastResponseCheck:
    if len(outcomes) != len(request.redemptions):
        raise ValueError("one outcome per Toast redemption of the request, in its order")
    applied: list[ToastRedemption] = []
    rejected: list[ToastRejectedRedemption] = []
    for asked, outcome in zip(request.redemptions, outcomes, strict=True):
        if outcome.accepted:
            applied.append(_applied(asked, outcome, request.currency))
        else:
            rejected.append(
                ToastRejectedRedemption(
                    redemption=asked.toast, message=outcome.message or "not redeemable"
                )
            )
    identifier = member.card_number if member and member.card_number else None
    identifier = identifier or request.event.member.value
    return ToastResponseCheck(
        account_info=_account(member, identifier) if member is not None else None,
        offers=[_offer(r, request.currency) for r in member.rewards]
        if offers and member is not None
        else None,
        applied_redemptions=applied,
        rejected_redemptions=rejected,
        user_message=user_message,
    )


def render_search(members: Sequence[TillMember]) -> VendorReply:
    """LOYALTY_SEARCH answer: the members found, identified by card number (members without
    one are left out: Toast would send their email or phone back as identifier). None found:
    404 ERROR_ACCOUNT_INVALID, as Toast expects."""
    accounts = [_account(m, m.card_number) for m in members if m.card_number]
    if not accounts:
        return _reply(
            404, ToastTransactionResponse(transaction_status=TransactionStatus.ACCOUNT_INVALID)
        )
    return _reply(
        200,
        ToastTransactionResponse(
            transaction_status=TransactionStatus.ACCEPT,
            search_response=ToastResponseSearch(accounts=accounts),
        ),
    )


def render_inquire(
    request: ToastInquire,
    member: TillMember,
    outcomes: Sequence[RedemptionOutcome] = (),
    *,
    points_to_earn: int | None = None,
) -> VendorReply:
    """LOYALTY_INQUIRE answer: the account, its offers (the member's rewards), the check's
    redemptions accepted or rejected (``outcomes[i]`` answers ``request.redemptions[i]``),
    and the points the check would earn as the message for the guest."""
    message = None
    if points_to_earn is not None:
        message = f"You will earn {points_to_earn} points with this check."
    response = _check_response(request, member, outcomes, offers=True, user_message=message)
    return _reply(
        200,
        ToastTransactionResponse(
            transaction_status=TransactionStatus.ACCEPT, check_response=response
        ),
    )


def render_redeem(
    request: ToastRedeem, member: TillMember | None, outcomes: Sequence[RedemptionOutcome]
) -> VendorReply:
    """LOYALTY_REDEEM answer: ACCEPT with the applied and rejected redemptions (Toast: the
    status stays ACCEPT when some are rejected; the POS removes those from the check)."""
    response = _check_response(request, member, outcomes, offers=False, user_message=None)
    return _reply(
        200,
        ToastTransactionResponse(
            transaction_status=TransactionStatus.ACCEPT, check_response=response
        ),
    )


def render_accrue(points_earned: int | None = None) -> VendorReply:
    """LOYALTY_ACCRUE answer: ACCEPT; with the points earned as the receipt message."""
    response = None
    if points_earned is not None:
        response = ToastResponseCheck(user_message=f"You earned {points_earned} points.")
    return _reply(
        200,
        ToastTransactionResponse(
            transaction_status=TransactionStatus.ACCEPT, check_response=response
        ),
    )


def render_reverse() -> VendorReply:
    """LOYALTY_REVERSE answer: ACCEPT (Toast wants nothing else)."""
    return _reply(200, ToastTransactionResponse(transaction_status=TransactionStatus.ACCEPT))


_STATUS_BY_CODE: dict[str, tuple[int, TransactionStatus]] = {
    ErrorCode.MALFORMED_JSON: (400, TransactionStatus.INVALID_INPUT_PROPERTIES),
    ErrorCode.VALIDATION_FAILED: (400, TransactionStatus.INVALID_INPUT_PROPERTIES),
    ErrorCode.IDEMPOTENCY_KEY_MISSING: (400, TransactionStatus.INVALID_INPUT_PROPERTIES),
    ErrorCode.IDEMPOTENCY_KEY_INVALID: (400, TransactionStatus.INVALID_INPUT_PROPERTIES),
    ErrorCode.UNAUTHORIZED: (400, TransactionStatus.INVALID_TOKEN),
    ErrorCode.UNSUPPORTED_VENDOR_REQUEST: (400, TransactionStatus.INVALID_TRANSACTION_TYPE),
    ErrorCode.MEMBER_NOT_FOUND: (404, TransactionStatus.ACCOUNT_INVALID),
    ErrorCode.NOT_ENROLLED: (404, TransactionStatus.ACCOUNT_INVALID),
    ErrorCode.UNKNOWN_SCAN: (404, TransactionStatus.ACCOUNT_INVALID),
    ErrorCode.INVALID_CARD_NUMBER: (404, TransactionStatus.ACCOUNT_INVALID),
    ErrorCode.INVALID_ROTATING_CODE: (404, TransactionStatus.ACCOUNT_INVALID),
    ErrorCode.ROTATING_CODE_EXPIRED: (404, TransactionStatus.ACCOUNT_INVALID),
    ErrorCode.CARD_NOT_FOUND: (404, TransactionStatus.ACCOUNT_INVALID),
    ErrorCode.SCAN_AMBIGUOUS: (404, TransactionStatus.ACCOUNT_INVALID),
    ErrorCode.TERMINAL_NOT_FOUND: (400, TransactionStatus.INVALID_RESTAURANT),
    ErrorCode.TRANSACTION_NOT_FOUND: (400, TransactionStatus.TRANSACTION_DOES_NOT_EXIST),
    ErrorCode.ORDER_NOT_FOUND: (400, TransactionStatus.TRANSACTION_DOES_NOT_EXIST),
    ErrorCode.JOURNAL_NOT_FOUND: (400, TransactionStatus.TRANSACTION_DOES_NOT_EXIST),
    ErrorCode.HOLD_NOT_FOUND: (400, TransactionStatus.TRANSACTION_DOES_NOT_EXIST),
    ErrorCode.REDEMPTION_NOT_FOUND: (400, TransactionStatus.TRANSACTION_DOES_NOT_EXIST),
    ErrorCode.NOT_REVERSIBLE: (400, TransactionStatus.TRANSACTION_CANNOT_BE_REVERSED),
    ErrorCode.ALREADY_REVERSED: (400, TransactionStatus.TRANSACTION_CANNOT_BE_REVERSED),
    ErrorCode.NOTHING_LEFT_TO_REVERSE: (400, TransactionStatus.TRANSACTION_CANNOT_BE_REVERSED),
    ErrorCode.HOLD_ALREADY_CAPTURED: (400, TransactionStatus.TRANSACTION_CANNOT_BE_REVERSED),
    ErrorCode.SERVICE_UNAVAILABLE: (500, TransactionStatus.ERROR),
    ErrorCode.INTERNAL_ERROR: (500, TransactionStatus.ERROR),
}


def render_error(error: DomainError) -> VendorReply:
    """A refusal as Toast expects it: 400 with the matching ERROR_* status (404
    ERROR_ACCOUNT_INVALID for an unknown member, 500 for our own failures, which Toast
    retries), otherwise 400 ERROR; the detail as ``message`` (Toast logs it)."""
    status_code, status = _STATUS_BY_CODE.get(error.code, (400, TransactionStatus.ERROR))
    return _reply(
        status_code,
        ToastTransactionResponse(transaction_status=status, message=error.detail[:500]),
    )


# --- Carrying a request out ----------------------------------------------------------------


def _checked(
    requests: Sequence[ToastRedemptionRequest], member: TillMember
) -> list[RedemptionOutcome]:
    """An inquire's redemptions, checked against the rewards usable on the check (not held):
    each usable, and all of them together within the member's available points."""
    rewards = {reward.code: reward for reward in member.rewards}
    budget = member.balance.available
    outcomes: list[RedemptionOutcome] = []
    for asked in requests:
        code = asked.redemption.reward_code
        reward = rewards.get(code)
        if reward is None or not reward.usable:
            why = reward.refusal if reward is not None else None
            outcomes.append(
                RedemptionOutcome(
                    reward_code=code,
                    accepted=False,
                    message=why or "this offer is not available to the guest",
                )
            )
            continue
        cost = (asked.redemption.points or reward.points) * asked.quantity
        if cost > budget:
            outcomes.append(
                RedemptionOutcome(
                    reward_code=code, accepted=False, message="not enough points for this offer"
                )
            )
            continue
        budget -= cost
        outcomes.append(
            RedemptionOutcome(
                reward_code=code,
                accepted=True,
                discount=reward.discount or 0,
                points=cost,
                line_id=reward.line_id,
            )
        )
    return outcomes


async def _redeem(
    port: VendorPort, request: ToastRedeem, asked: ToastRedemptionRequest, first_unit: int
) -> RedemptionOutcome:
    """Hold every unit of one Toast redemption, or none: a refused unit gives back the units
    held before it, and the whole redemption is rejected."""
    held: list[RedemptionOutcome] = []
    for unit in range(asked.quantity):
        key = f"{request.transaction_guid}:{first_unit + unit}"
        try:
            held.append(await port.redeem(request.event, key, asked.redemption))
        except DomainError as error:
            if error.code in IDENTITY_ERRORS:
                raise
            ids = [o.redemption_id for o in held if o.redemption_id is not None]
            if ids:
                await port.release(f"{key}:undo", request.event.transaction_id, ids)
            return RedemptionOutcome(
                reward_code=asked.redemption.reward_code, accepted=False, message=error.detail
            )
    first = held[0]
    return RedemptionOutcome(
        reward_code=first.reward_code,
        accepted=True,
        redemption_id=first.redemption_id,
        discount=first.discount,
        points=sum(o.points for o in held),
        line_id=first.line_id,
    )


async def _reverse_it(request: ToastReverse, port: VendorPort) -> VendorReply:
    earlier = await port.earlier(request.reversed_transaction_guid)
    if earlier is None:
        if request.scan is None:
            # Toast reverses accrues of checks without an account too, and wants ACCEPT.
            return render_reverse()
        raise DomainError(
            ErrorCode.TRANSACTION_NOT_FOUND,
            "no accepted loyalty transaction has this GUID",
            transaction_guid=request.reversed_transaction_guid,
        )
    if earlier.transaction_id is None:
        return render_reverse()  # it earned nothing: nothing to undo
    if earlier.message_type == TransactionType.ACCRUE:
        await port.void(earlier.transaction_id)
    elif earlier.message_type == TransactionType.REDEEM:
        chosen = [r.redemption_id for r in earlier.redemptions]
        if request.redemptions is not None:
            wanted: dict[str, int] = {}
            for asked in request.redemptions:
                code = asked.redemption.reward_code
                wanted[code] = wanted.get(code, 0) + asked.quantity
            chosen = []
            for past in earlier.redemptions:
                if wanted.get(past.reward_code, 0) > 0:
                    wanted[past.reward_code] -= 1
                    chosen.append(past.redemption_id)
        if chosen:
            await port.release(request.transaction_guid, earlier.transaction_id, chosen)
    else:
        raise DomainError(
            ErrorCode.NOT_REVERSIBLE,
            f"a {earlier.message_type} transaction cannot be reversed",
            transaction_guid=request.reversed_transaction_guid,
        )
    return render_reverse()


async def handle(request: ToastCanonical, port: VendorPort) -> VendorReply:
    """Carry out a parsed Toast transaction through ``port``; the answer in Toast's shape.
    Refusals propagate as ``DomainError`` (the route answers them with ``render_error``),
    except redemptions the service refuses: those are listed as rejected, as Toast wants."""
    if isinstance(request, ToastSearch):
        return render_search(await port.search(request.scan.value))
    if isinstance(request, ToastInquire):
        assert request.event.order is not None  # the parser always builds one
        member, points = await port.preview(request.event.member.value, request.event.order)
        outcomes = _checked(request.redemptions, member)
        return render_inquire(request, member, outcomes, points_to_earn=points)
    if isinstance(request, ToastRedeem):
        outcomes = []
        unit = 0
        for asked in request.redemptions:
            outcomes.append(await _redeem(port, request, asked, unit))
            unit += asked.quantity
        member = await port.identify(request.event.member.value)
        return render_redeem(request, member, outcomes)
    if isinstance(request, ToastAccrue):
        if request.event is None:
            return render_accrue()
        return render_accrue(await port.complete(request.event))
    return await _reverse_it(request, port)


ADAPTER: VendorAdapter = VendorAdapter(
    name="toast",
    title="Toast loyalty integration",
    docs_url=DOCS_URL,
    style="synchronous",
    signs=False,
    endpoint="loyalty",
    message_type_header=TRANSACTION_TYPE_HEADER,
    message_types=tuple(t.value for t in TransactionType),
    verify=verify,
    idempotency_key=idempotency_key,
    tenant_header=RESTAURANT_HEADER,
    parse=_parse,
    handle=handle,
    render_error=render_error,
)
