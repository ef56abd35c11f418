"""Shopify: asynchronous order webhooks (``orders/paid``, ``refunds/create``).

Shopify POSTs the REST resource of the topic (``X-Shopify-Topic``) to
``/api/v1/pos/vendors/shopify/webhooks`` and wants a fast 2xx; anything else is retried (for
up to 48 hours) and may be delivered more than once:

=================  ===================================  ======================================
topic              canonical request                    service call (by the route)
=================  ===================================  ======================================
orders/paid        ``ShopifyOrderPaid(event)``          complete(event): earn on the order
refunds/create     ``ShopifyRefundCreated(refund)``     refund(original transaction id, refund)
(nothing to do)    ``ShopifyIgnored(reason)``           none: answer 200
=================  ===================================  ======================================

Sources (Shopify developer documentation, read 2025):

* Verify deliveries (HMAC-SHA256 of the raw body, keyed with the app's client secret,
  base64, in ``X-Shopify-Hmac-Sha256``): https://shopify.dev/docs/apps/build/webhooks/verify-deliveries
* Headers (``X-Shopify-Topic``, ``-Shop-Domain``, ``-Webhook-Id``, ``-Event-Id``,
  ``-Triggered-At``, ``-API-Version``): https://shopify.dev/docs/apps/build/webhooks/delivery-structure
* Duplicates ("the same ``X-Shopify-Event-Id`` across more than one webhook indicates a
  duplicate"): https://shopify.dev/docs/apps/build/webhooks/ignore-duplicates
* Payloads: the Order and Refund REST resources, https://shopify.dev/docs/api/admin-rest/latest/resources/order
  and https://shopify.dev/docs/api/admin-rest/latest/resources/refund; topic list
  https://shopify.dev/docs/api/webhooks (the fixtures follow Shopify's sample order
  ``#9999`` that "send test notification" delivers).

Idempotency
    ``idempotency_key`` is ``X-Shopify-Event-Id`` (the same for every delivery of one event),
    else ``X-Shopify-Webhook-Id``. Beneath it, the order id is the canonical
    ``transaction_id`` (an order completes once, whatever the event id) and the refund id the
    canonical ``refund_id`` (a refund is applied once).

Who the member is (first match wins)
    1. a note attribute (cart attribute) named ``loyalty_card`` (case-insensitive) whose value
       has the shape of one of our card numbers: a ``card_number`` scan. A value that is not
       a card number is ignored (a typing error must not lose the points), so the rule falls
       through to:
    2. the customer's email, else the order's ``email``, else its ``contact_email``;
    3. the customer's phone, else the order's ``phone`` (national numbers get
       ``VendorSettings.calling_code``).
    No match: ``ShopifyIgnored``. A shopper can type any card number into a cart attribute;
    that can only give their own purchase's points away, and the card number carries no
    personal data.

Money
    Shopify sends decimal strings in the shop's currency (``currency``; ``presentment_money``
    is ignored). Each is converted to minor units exactly; more decimals than the currency has
    are refused (``validation_failed``), never rounded. A line's discount is the sum of its
    ``discount_allocations`` (Shopify allocates order-level discounts to lines there); what
    ``total_discounts`` has beyond the line and shipping allocations (a payload without
    allocations) becomes the order discount, spread over the lines by value. Shipping lines
    are ``delivery`` lines, gift-card lines ``gift_card`` lines (both earn nothing unless a
    rule says so). With ``taxes_included`` (EU shops) prices include VAT and points are earned
    on gross prices, as shoppers see them.

Assumptions
    * ``sku`` is the SKU; a line without one (or longer than 64 characters) uses
      ``variant:<variant_id>``, else ``product:<product_id>``, else ``line:<id>``.
      ``product_type`` is not part of Shopify's order line item; when a payload carries it
      (``include_fields`` or an enriching proxy) it is the category (dropped when longer than
      64 characters).
    * The event time is ``processed_at``, else ``created_at``.
    * A refund without refund line items (shipping only, an amount-only adjustment) is
      ignored: the canonical refund treats "no lines" as "everything", which such a refund
      is not. Refund lines of quantity 0 are skipped. A refund line's ``amount`` is its
      ``subtotal`` (after discounts, before tax).
    * Line items with quantity 0 (removed by an order edit) are skipped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import msgspec
from msgspec import Struct

from loyalty.domain.basket import LineKind
from loyalty.domain.cards import ScanKind, is_card_number
from loyalty.domain.errors import DomainError, ErrorCode
from pos_adapter.events import (
    MemberScan,
    Order,
    OrderLine,
    PosEvent,
    Refund,
    RefundLine,
    Source,
)
from pos_adapter.vendors import (
    Headers,
    VendorAdapter,
    VendorPort,
    VendorReply,
    VendorSettings,
    decode,
    header,
    national_to_e164,
    parse_time,
    require_key,
    to_minor,
    validated,
)

DOCS_URL = "https://shopify.dev/docs/apps/build/webhooks/verify-deliveries"
TOPIC_HEADER = "X-Shopify-Topic"
HMAC_HEADER = "X-Shopify-Hmac-Sha256"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
SHOP_HEADER = "X-Shopify-Shop-Domain"
#: The note (cart) attribute that may carry a loyalty card number.
CARD_ATTRIBUTE = "loyalty_card"
_LABEL_MAX = 64


class Topic(StrEnum):
    ORDERS_PAID = "orders/paid"
    REFUNDS_CREATE = "refunds/create"


# --- Shopify's shapes (snake_case as sent; unknown fields are ignored) ----------------------

Id = int | str


class ShopifyMoney(Struct):
    amount: Decimal
    currency_code: str | None = None


class ShopifyMoneySet(Struct):
    shop_money: ShopifyMoney | None = None
    presentment_money: ShopifyMoney | None = None


class ShopifyDiscountAllocation(Struct):
    amount: Decimal | None = None
    amount_set: ShopifyMoneySet | None = None
    discount_application_index: int | None = None


class ShopifyLineItem(Struct):
    id: Id
    quantity: int
    price: Decimal
    sku: str | None = None
    name: str | None = None
    title: str | None = None
    variant_id: Id | None = None
    product_id: Id | None = None
    product_type: str | None = None
    gift_card: bool | None = None
    total_discount: Decimal | None = None
    discount_allocations: list[ShopifyDiscountAllocation] | None = None


class ShopifyShippingLine(Struct):
    price: Decimal
    id: Id | None = None
    title: str | None = None
    discounted_price: Decimal | None = None
    discount_allocations: list[ShopifyDiscountAllocation] | None = None


class ShopifyCustomer(Struct):
    id: Id | None = None
    email: str | None = None
    phone: str | None = None


class ShopifyNoteAttribute(Struct):
    name: str | None = None
    value: Any = None


class ShopifyOrder(Struct):
    """The ``orders/paid`` body: Shopify's Order resource (the fields read here)."""

    id: Id
    currency: str
    line_items: list[ShopifyLineItem]
    name: str | None = None
    created_at: str | None = None
    processed_at: str | None = None
    email: str | None = None
    contact_email: str | None = None
    phone: str | None = None
    customer: ShopifyCustomer | None = None
    note_attributes: list[ShopifyNoteAttribute] | None = None
    shipping_lines: list[ShopifyShippingLine] | None = None
    total_discounts: Decimal | None = None
    total_tax: Decimal | None = None
    total_tip_received: Decimal | None = None
    total_price: Decimal | None = None
    subtotal_price: Decimal | None = None
    taxes_included: bool | None = None
    financial_status: str | None = None
    location_id: Id | None = None
    device_id: Id | None = None
    user_id: Id | None = None
    test: bool | None = None


class ShopifyRefundLineItem(Struct):
    line_item_id: Id
    quantity: int
    id: Id | None = None
    subtotal: Decimal | None = None
    subtotal_set: ShopifyMoneySet | None = None
    total_tax: Decimal | None = None
    restock_type: str | None = None


class ShopifyRefund(Struct):
    """The ``refunds/create`` body: Shopify's Refund resource (the fields read here)."""

    id: Id
    order_id: Id
    created_at: str | None = None
    processed_at: str | None = None
    refund_line_items: list[ShopifyRefundLineItem] | None = None


# --- The canonical requests this adapter produces ------------------------------------------


class ShopifyRequest(Struct, frozen=True, kw_only=True):
    #: The delivery's idempotency key (``X-Shopify-Event-Id`` or ``-Webhook-Id``).
    webhook_key: str
    #: ``X-Shopify-Shop-Domain``: which shop (the route maps it to the merchant).
    shop: str | None = None


class ShopifyOrderPaid(ShopifyRequest, frozen=True, kw_only=True, tag="order_paid"):
    """orders/paid: complete(event)."""

    event: PosEvent


class ShopifyRefundCreated(ShopifyRequest, frozen=True, kw_only=True, tag="refund_created"):
    """refunds/create: refund(refund.original_transaction_id, refund)."""

    refund: Refund


class ShopifyIgnored(ShopifyRequest, frozen=True, kw_only=True, tag="ignored"):
    """A delivery with nothing to do for loyalty: answer 200 so Shopify does not retry."""

    topic: str
    reason: str


ShopifyCanonical = ShopifyOrderPaid | ShopifyRefundCreated | ShopifyIgnored


# --- Signature, idempotency ----------------------------------------------------------------


def signature(body: bytes, secret: str) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value Shopify sends for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(body: bytes, headers: Headers, secret: str) -> None:
    """The body is signed with ``secret``: ``X-Shopify-Hmac-Sha256`` is the base64
    HMAC-SHA256 of the exact raw bytes. ``signature_invalid`` when the header is missing,
    not base64, or does not match (compared in constant time); an empty secret never
    verifies."""
    presented = header(headers, HMAC_HEADER)
    if presented is None:
        raise DomainError(ErrorCode.SIGNATURE_INVALID, f"the {HMAC_HEADER} header is missing")
    try:
        claimed = base64.b64decode(presented.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        claimed = b""
    expected = hmac.new(secret.encode(), bytes(body), hashlib.sha256).digest()
    if not secret or not hmac.compare_digest(claimed, expected):
        raise DomainError(
            ErrorCode.SIGNATURE_INVALID,
            f"the {HMAC_HEADER} signature does not match the body",
        )


def idempotency_key(headers: Headers) -> str:
    """``X-Shopify-Event-Id``, else ``X-Shopify-Webhook-Id``: repeated deliveries of one
    event carry the same value."""
    value = header(headers, EVENT_ID_HEADER) or header(headers, WEBHOOK_ID_HEADER)
    return require_key(value, EVENT_ID_HEADER)


def topic(headers: Headers) -> str:
    value = header(headers, TOPIC_HEADER)
    if value is None:
        raise DomainError(ErrorCode.VALIDATION_FAILED, f"the {TOPIC_HEADER} header is required")
    return value


# --- Parsing -------------------------------------------------------------------------------


def _bad(detail: str, **extra: Any) -> DomainError:
    return DomainError(ErrorCode.VALIDATION_FAILED, detail, **extra)


def _text_id(value: Id | None) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def _label(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value if 1 <= len(value) <= _LABEL_MAX else None


def _allocated(
    allocations: list[ShopifyDiscountAllocation] | None, currency: str, where: str
) -> int:
    total = 0
    for index, allocation in enumerate(allocations or []):
        here = f"{where}.discount_allocations[{index}]"
        amount = allocation.amount
        if allocation.amount_set is not None and allocation.amount_set.shop_money is not None:
            amount = allocation.amount_set.shop_money.amount
        if amount is not None:
            total += to_minor(amount, currency, f"{here}.amount")
    return total


def _sku(item: ShopifyLineItem) -> str:
    sku = _label(item.sku)
    if sku is not None:
        return sku
    for prefix, value in (("variant", item.variant_id), ("product", item.product_id)):
        text = _text_id(value)
        if text is not None:
            return f"{prefix}:{text}"
    return f"line:{item.id}"


def _lines(order: ShopifyOrder, currency: str) -> tuple[list[OrderLine], int]:
    """The order's lines and the discounts allocated to them (lines and shipping)."""
    lines: list[OrderLine] = []
    allocated = 0
    for index, item in enumerate(order.line_items):
        where = f"line_items[{index}]"
        if item.quantity == 0:
            continue
        if item.quantity < 0:
            raise _bad(f"{where}.quantity must not be negative", field=f"{where}.quantity")
        unit_price = to_minor(item.price, currency, f"{where}.price")
        discount = _allocated(item.discount_allocations, currency, where)
        allocated += discount
        line_id = _text_id(item.id)
        if line_id is None:
            raise _bad(f"{where}.id is required", field=f"{where}.id")
        lines.append(
            OrderLine(
                line_id=line_id,
                sku=_sku(item),
                quantity=item.quantity,
                unit_price=unit_price,
                category=_label(item.product_type),
                discount=min(discount, unit_price * item.quantity),
                kind=LineKind.GIFT_CARD if item.gift_card else LineKind.MERCHANDISE,
            )
        )
    for index, shipping in enumerate(order.shipping_lines or []):
        where = f"shipping_lines[{index}]"
        price = to_minor(shipping.price, currency, f"{where}.price")
        discount = _allocated(shipping.discount_allocations, currency, where)
        allocated += discount
        ident = _text_id(shipping.id) or str(index)
        lines.append(
            OrderLine(
                line_id=f"shipping:{ident}",
                sku="shipping",
                quantity=1,
                unit_price=price,
                discount=min(discount, price),
                kind=LineKind.DELIVERY,
            )
        )
    return lines, allocated


def _card_attribute(order: ShopifyOrder) -> str | None:
    for attribute in order.note_attributes or []:
        name = (attribute.name or "").strip().lower()
        if name == CARD_ATTRIBUTE and isinstance(attribute.value, str | int):
            value = str(attribute.value).strip()
            if value and len(value) <= 64 and is_card_number(value):
                return value
    return None


def member_of(order: ShopifyOrder, settings: VendorSettings) -> MemberScan | None:
    """Who the order's member is (see the module docs for the rule); None: nobody."""
    card = _card_attribute(order)
    if card is not None:
        return MemberScan(value=card, kind=ScanKind.CARD_NUMBER)
    customer = order.customer or ShopifyCustomer()
    for email in (customer.email, order.email, order.contact_email):
        if email and email.strip():
            return MemberScan(value=email.strip(), kind=ScanKind.EMAIL)
    for phone in (customer.phone, order.phone):
        if phone and phone.strip():
            return MemberScan(
                value=national_to_e164(phone, settings.calling_code), kind=ScanKind.PHONE
            )
    return None


def _order_paid(
    body: bytes,
    key: str,
    shop: str | None,
    settings: VendorSettings,
    now: datetime,
) -> ShopifyOrderPaid | ShopifyIgnored:
    order = decode(body, ShopifyOrder, "Shopify orders/paid")
    currency = order.currency.strip().upper()
    member = member_of(order, settings)
    if member is None:
        return ShopifyIgnored(
            webhook_key=key,
            shop=shop,
            topic=Topic.ORDERS_PAID,
            reason="the order names no loyalty card, email address or phone number",
        )
    lines, allocated = _lines(order, currency)
    total_discounts = 0
    if order.total_discounts is not None:
        total_discounts = to_minor(order.total_discounts, currency, "total_discounts")
    transaction_id = _text_id(order.id)
    if transaction_id is None:
        raise _bad("id is required", field="id")
    occurred_at = (
        parse_time(order.processed_at, "processed_at")
        or parse_time(order.created_at, "created_at")
        or now
    )
    event = PosEvent(
        transaction_id=transaction_id,
        occurred_at=occurred_at,
        member=member,
        order=Order(
            currency=currency,
            lines=lines,
            # Never more than the lines are worth (check_order refuses that).
            order_discount=min(
                max(0, total_discounts - allocated),
                sum(line.quantity * line.unit_price - line.discount for line in lines),
            ),
            tax=0 if order.total_tax is None else to_minor(order.total_tax, currency, "total_tax"),
            tip=0
            if order.total_tip_received is None
            else to_minor(order.total_tip_received, currency, "total_tip_received"),
        ),
        source=Source(
            register=_label(_text_id(order.device_id)),
            cashier=_label(_text_id(order.user_id)),
            location=_label(_text_id(order.location_id)),
        ),
    )
    return validated(ShopifyOrderPaid(webhook_key=key, shop=shop, event=event))


def _refund_created(
    body: bytes, key: str, shop: str | None, currency: str
) -> ShopifyRefundCreated | ShopifyIgnored:
    refund = decode(body, ShopifyRefund, "Shopify refunds/create")
    lines: list[RefundLine] = []
    for index, item in enumerate(refund.refund_line_items or []):
        where = f"refund_line_items[{index}]"
        if item.quantity == 0:
            continue
        if item.quantity < 0:
            raise _bad(f"{where}.quantity must not be negative", field=f"{where}.quantity")
        amount_value = item.subtotal
        if item.subtotal_set is not None and item.subtotal_set.shop_money is not None:
            amount_value = item.subtotal_set.shop_money.amount
            currency = (item.subtotal_set.shop_money.currency_code or currency).strip().upper()
        line_id = _text_id(item.line_item_id)
        if line_id is None:
            raise _bad(f"{where}.line_item_id is required", field=f"{where}.line_item_id")
        lines.append(
            RefundLine(
                line_id=line_id,
                quantity=item.quantity,
                amount=None
                if amount_value is None
                else to_minor(amount_value, currency, f"{where}.subtotal"),
            )
        )
    if not lines:
        return ShopifyIgnored(
            webhook_key=key,
            shop=shop,
            topic=Topic.REFUNDS_CREATE,
            reason="the refund returns no line items (shipping or amount only)",
        )
    refund_id, order_id = _text_id(refund.id), _text_id(refund.order_id)
    if refund_id is None or order_id is None:
        raise _bad("id and order_id are required")
    canonical = Refund(refund_id=refund_id, original_transaction_id=order_id, lines=lines)
    return validated(ShopifyRefundCreated(webhook_key=key, shop=shop, refund=canonical))


def parse_webhook(
    topic: str,
    body: bytes,
    headers: Headers,
    *,
    settings: VendorSettings | None = None,
    received_at: datetime | None = None,
) -> ShopifyCanonical:
    """The canonical request for one Shopify webhook delivery (``topic`` is the
    ``X-Shopify-Topic`` header). Call ``verify`` first. Raises ``DomainError`` only:
    ``unsupported_vendor_request`` (another topic), ``malformed_json``,
    ``validation_failed``, ``idempotency_key_missing`` / ``idempotency_key_invalid``.

    ``settings.currency`` is used for refund amounts only when the refund line names no
    currency (the order's currency is not part of a refund payload).
    """
    settings = settings or VendorSettings()
    now = received_at or datetime.now(UTC)
    try:
        kind = Topic(topic.strip().lower())
    except ValueError:
        raise DomainError(
            ErrorCode.UNSUPPORTED_VENDOR_REQUEST,
            f"Shopify topic {topic[:64]!r} is not handled; subscribe this endpoint to "
            + " and ".join(t.value for t in Topic),
        ) from None
    key = idempotency_key(headers)
    shop = _label(header(headers, SHOP_HEADER))
    if kind is Topic.ORDERS_PAID:
        return _order_paid(body, key, shop, settings, now)
    return _refund_created(body, key, shop, settings.currency)


def _parse(
    message_type: str,
    body: bytes,
    headers: Headers,
    settings: VendorSettings,
    received_at: datetime | None,
) -> ShopifyCanonical:
    return parse_webhook(message_type, body, headers, settings=settings, received_at=received_at)


# --- Replies -------------------------------------------------------------------------------


def render_ack() -> VendorReply:
    """What Shopify wants for a delivery that was handled (or ignored, or a replay): 200."""
    return VendorReply(status_code=200)


_STATUS_BY_CODE: dict[str, int] = {
    ErrorCode.SIGNATURE_INVALID: 401,
    ErrorCode.MALFORMED_JSON: 400,
    ErrorCode.VALIDATION_FAILED: 400,
    ErrorCode.IDEMPOTENCY_KEY_MISSING: 400,
    ErrorCode.IDEMPOTENCY_KEY_INVALID: 400,
    ErrorCode.UNSUPPORTED_VENDOR_REQUEST: 400,
    ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT: 409,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.INTERNAL_ERROR: 500,
}


class _ErrorBody(Struct):
    code: str
    detail: str


def render_error(error: DomainError) -> VendorReply:
    """A refusal: Shopify only looks at the status (any non-2xx is retried), the body is for
    whoever reads the delivery log. Business refusals of a delivery Shopify will send again
    unchanged (an unknown member, a refund beyond the order) are 422: the route may prefer to
    acknowledge them with 200 after recording them, so Shopify stops retrying."""
    status = _STATUS_BY_CODE.get(error.code, 422)
    body = msgspec.json.encode(_ErrorBody(code=str(error.code), detail=error.detail[:500]))
    return VendorReply(status_code=status, body=body)


async def handle(request: ShopifyCanonical, port: VendorPort) -> VendorReply:
    """Carry out a parsed delivery through ``port``. A business refusal that every retry
    would meet again (an unknown customer, a refund of a sale without a member) is
    acknowledged with 200 and its reason in the body: Shopify would otherwise retry for 48
    hours and then drop the subscription. Authentication, malformed input and our own
    failures stay non-2xx."""
    try:
        if isinstance(request, ShopifyOrderPaid):
            await port.complete(request.event)
        elif isinstance(request, ShopifyRefundCreated):
            await port.refund(request.refund)
    except DomainError as error:
        refused = render_error(error)
        if refused.status_code != 422:
            raise
        return VendorReply(status_code=200, body=refused.body)
    return render_ack()


ADAPTER: VendorAdapter = VendorAdapter(
    name="shopify",
    title="Shopify order webhooks",
    docs_url=DOCS_URL,
    style="webhook",
    signs=True,
    endpoint="webhooks",
    message_type_header=TOPIC_HEADER,
    message_types=tuple(t.value for t in Topic),
    verify=verify,
    idempotency_key=idempotency_key,
    tenant_header=SHOP_HEADER,
    parse=_parse,
    handle=handle,
    render_error=render_error,
)

__all__ = [
    "ADAPTER",
    "ShopifyCanonical",
    "ShopifyIgnored",
    "ShopifyOrderPaid",
    "ShopifyRefundCreated",
    "parse_webhook",
    "render_ack",
    "render_error",
    "signature",
    "topic",
    "verify",
]
