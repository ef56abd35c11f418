"""A basket as a till sends it: lines with money in integer minor units (cents), never floats."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from .errors import DomainError, ErrorCode
from .points import is_whole

#: No single line or basket can plausibly exceed this (10 million in major units).
MAX_MONEY_MINOR = 10**9
MAX_QUANTITY = 100_000
MAX_LINES = 500


class LineKind(StrEnum):
    MERCHANDISE = "merchandise"
    GIFT_CARD = "gift_card"
    TAX = "tax"
    TIP = "tip"
    DELIVERY = "delivery"


#: What earning rules leave out unless a rule says otherwise (Square, Shopify and Open Loyalty
#: all exclude gift cards, tax and tips from points by default).
DEFAULT_EXCLUDED_KINDS = frozenset(
    {LineKind.GIFT_CARD, LineKind.TAX, LineKind.TIP, LineKind.DELIVERY}
)


@dataclass(frozen=True, slots=True)
class BasketLine:
    line_id: str
    sku: str
    quantity: int
    unit_price: int
    category: str | None = None
    #: Discount on the whole line, in minor units.
    line_discount: int = 0
    kind: LineKind = LineKind.MERCHANDISE

    @property
    def gross(self) -> int:
        return self.quantity * self.unit_price

    @property
    def net(self) -> int:
        return self.gross - self.line_discount


@dataclass(frozen=True, slots=True)
class Basket:
    currency: str
    lines: tuple[BasketLine, ...]
    location: str | None = None

    def __post_init__(self) -> None:
        check_basket(self)

    @property
    def net(self) -> int:
        return sum(line.net for line in self.lines)

    def returning(self, quantities: Mapping[str, int]) -> Basket:
        """The basket as if ``quantities`` (line id -> units) had never been bought.

        A line's discount shrinks in proportion to the units kept, rounded down (the member keeps
        the benefit of the doubt). Lines with nothing left disappear.
        """
        known = {line.line_id: line for line in self.lines}
        for line_id, units in quantities.items():
            if line_id not in known:
                raise DomainError(
                    ErrorCode.UNKNOWN_ORDER_LINE, f"the order has no line {line_id!r}", line=line_id
                )
            if not is_whole(units) or units <= 0:
                raise DomainError(
                    ErrorCode.INVALID_BASKET, "returned quantities must be positive whole numbers"
                )
            if units > known[line_id].quantity:
                raise DomainError(
                    ErrorCode.RETURN_EXCEEDS_ORDER,
                    f"line {line_id!r} had {known[line_id].quantity} units",
                    line=line_id,
                )
        kept: list[BasketLine] = []
        for line in self.lines:
            units = line.quantity - quantities.get(line.line_id, 0)
            if units == 0:
                continue
            discount = line.line_discount * units // line.quantity
            kept.append(replace(line, quantity=units, line_discount=discount))
        return Basket(self.currency, tuple(kept), self.location)


def require_currency(basket_currency: str, program_currency: str) -> None:
    """A basket is priced only in its program's currency."""
    if basket_currency != program_currency:
        raise DomainError(
            ErrorCode.CURRENCY_MISMATCH,
            f"the basket is in {basket_currency}, the program in {program_currency}",
            basket_currency=basket_currency,
            program_currency=program_currency,
        )


def check_basket(basket: Basket) -> None:
    def bad(detail: str, **extra: object) -> DomainError:
        return DomainError(ErrorCode.INVALID_BASKET, detail, **extra)

    if len(basket.currency) != 3 or not basket.currency.isalpha() or not basket.currency.isupper():
        raise bad("currency must be an ISO 4217 code such as EUR")
    if len(basket.lines) > MAX_LINES:
        raise bad(f"a basket has at most {MAX_LINES} lines")
    seen: set[str] = set()
    for line in basket.lines:
        if not line.line_id or line.line_id in seen:
            raise bad("every line needs a line_id unique within the basket", line=line.line_id)
        seen.add(line.line_id)
        if not line.sku:
            raise bad("every line needs a sku", line=line.line_id)
        if not is_whole(line.quantity) or not 0 < line.quantity <= MAX_QUANTITY:
            raise bad(f"quantity must be between 1 and {MAX_QUANTITY}", line=line.line_id)
        if not is_whole(line.unit_price) or not 0 <= line.unit_price <= MAX_MONEY_MINOR:
            raise bad("unit_price must be a whole number of minor units, >= 0", line=line.line_id)
        if not is_whole(line.line_discount) or not 0 <= line.line_discount <= line.gross:
            raise bad("line_discount must lie between 0 and the line's price", line=line.line_id)
    if basket.net > MAX_MONEY_MINOR:
        raise bad("the basket's total is implausibly large")
