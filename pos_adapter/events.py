"""The canonical POS event: what every till, whatever its vendor, tells the loyalty platform.

Vendor adapters (``pos_adapter/vendors``) map their payloads to these structs; the canonical REST
API (``pos_adapter/api.py``) takes them as they are. Money is in minor units (cents) of
``currency``; times are timezone-aware. The POS transaction id is the idempotency key of the
order: the same id completes once, however often it is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta, Struct, field

from loyalty.domain.basket import LineKind
from loyalty.domain.cards import ScanKind
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.quotes import BasketDocument, BasketLineDocument, Currency

#: Ids from outside systems (POS transaction ids, line ids, cashier ids).
ExternalId = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
Label = Annotated[str, Meta(min_length=1, max_length=64)]
#: Money in minor units; bounded so that sums of 500 lines stay far inside 64 bits.
Amount = Annotated[int, Meta(ge=0, le=10**12)]
Quantity = Annotated[int, Meta(ge=1, le=100_000)]
ScanValue = Annotated[str, Meta(min_length=1, max_length=320)]


class Source(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Where the event happened. The terminal's API key fixes merchant, location and terminal;
    these are what the till says about itself, kept for the record."""

    register: Label | None = None
    cashier: Label | None = None
    location: Label | None = None


class MemberScan(Struct, forbid_unknown_fields=True, omit_defaults=True):
    value: ScanValue
    #: None: recognised from the value's shape (rotating codes and card numbers have distinct
    #: prefixes; '@' means email; '+' and digits a phone number).
    kind: ScanKind | None = None


class OrderLine(Struct, forbid_unknown_fields=True, omit_defaults=True):
    line_id: ExternalId
    sku: Label
    quantity: Quantity
    unit_price: Amount
    category: Label | None = None
    discount: Amount = 0
    #: quantity x unit_price - discount; checked when given.
    total: Amount | None = None
    kind: LineKind = LineKind.MERCHANDISE


class Order(Struct, forbid_unknown_fields=True, omit_defaults=True):
    currency: Currency
    lines: Annotated[list[OrderLine], Meta(max_length=500)]
    #: Discounts on the whole order (coupons, staff discount), spread over the lines in
    #: proportion to their value before points are counted.
    order_discount: Amount = 0
    subtotal: Amount | None = None
    tax: Amount = 0
    tip: Amount = 0
    total: Amount | None = None


class Redemption(Struct, forbid_unknown_fields=True, omit_defaults=True):
    reward_code: Label
    #: Points-as-money: how many points the member chooses to use.
    points: Annotated[int, Meta(ge=1, le=10**12)] | None = None


class RefundLine(Struct, forbid_unknown_fields=True, omit_defaults=True):
    line_id: ExternalId
    quantity: Quantity
    amount: Amount | None = None


class Refund(Struct, forbid_unknown_fields=True, omit_defaults=True):
    #: The refund's own id at the POS (its idempotency key).
    refund_id: ExternalId
    #: The original sale's POS transaction id.
    original_transaction_id: ExternalId
    #: Empty: everything still unrefunded.
    lines: Annotated[list[RefundLine], Meta(max_length=500)] = field(default_factory=list)


class PosEvent(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One POS transaction as the loyalty platform sees it."""

    transaction_id: ExternalId
    occurred_at: datetime
    member: MemberScan
    order: Order | None = None
    source: Source = field(default_factory=Source)
    captured_offline: bool = False
    redemptions: Annotated[list[Redemption], Meta(max_length=20)] = field(default_factory=list)
    refund: Refund | None = None


def check_order(order: Order) -> None:
    """Totals the till sent must add up: a line's total is quantity x unit price - discount, the
    subtotal the sum of line totals, the total subtotal - order discount + tax + tip."""
    line_totals = []
    for line in order.lines:
        gross = line.quantity * line.unit_price
        if line.discount > gross:
            raise DomainError(
                ErrorCode.INVALID_BASKET,
                f"line {line.line_id!r}: the discount exceeds the line's value",
                line=line.line_id,
            )
        net = gross - line.discount
        if line.total is not None and line.total != net:
            raise DomainError(
                ErrorCode.ORDER_TOTALS_MISMATCH,
                f"line {line.line_id!r}: total {line.total} is not {net}",
                line=line.line_id,
            )
        line_totals.append(net)
    subtotal = sum(line_totals)
    if order.subtotal is not None and order.subtotal != subtotal:
        raise DomainError(
            ErrorCode.ORDER_TOTALS_MISMATCH,
            f"subtotal {order.subtotal} is not the sum of the lines ({subtotal})",
        )
    if order.order_discount > subtotal:
        raise DomainError(ErrorCode.INVALID_BASKET, "the order discount exceeds the subtotal")
    total = subtotal - order.order_discount + order.tax + order.tip
    if order.total is not None and order.total != total:
        raise DomainError(
            ErrorCode.ORDER_TOTALS_MISMATCH,
            f"total {order.total} is not subtotal - order discount + tax + tip ({total})",
        )


def basket_of(order: Order, location: str | None) -> BasketDocument:
    """The basket the earning rules price: line discounts plus the order discount spread over
    the lines by value (largest remainder, so the parts add up to the discount exactly).
    Tax and tip are not lines: points are never earned on them."""
    gross = [line.quantity * line.unit_price - line.discount for line in order.lines]
    spread = spread_discount(order.order_discount, gross)
    return BasketDocument(
        currency=order.currency,
        location=location,
        lines=[
            BasketLineDocument(
                line_id=line.line_id,
                sku=line.sku,
                category=line.category,
                quantity=line.quantity,
                unit_price=line.unit_price,
                line_discount=line.discount + share,
                kind=line.kind,
            )
            for line, share in zip(order.lines, spread, strict=True)
        ],
    )


def spread_discount(discount: int, values: list[int]) -> list[int]:
    """``discount`` split over ``values`` in proportion, each share at most its value; shares
    sum to min(discount, sum(values))."""
    total = sum(max(0, v) for v in values)
    if total == 0 or discount <= 0:
        return [0] * len(values)
    discount = min(discount, total)
    exact = [discount * max(0, v) for v in values]
    shares = [e // total for e in exact]
    left = discount - sum(shares)
    by_remainder = sorted(range(len(values)), key=lambda i: (-(exact[i] % total), i))
    for index in by_remainder[:left]:
        shares[index] += 1
    return shares
