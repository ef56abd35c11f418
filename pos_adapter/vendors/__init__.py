"""Vendor adapters: each POS vendor's own protocol, translated to and from the canonical POS API.

An adapter is a pure translation module (no database, no I/O) plus the vendor's request
authentication and a ``handle`` function that carries a parsed request out through a
``VendorPort``. ``pos_adapter/vendor_routes.py`` mounts every adapter of ``VENDORS``; for each
request it does::

    connection = the merchant's vendor connection for adapter.tenant(headers)
    adapter.verify(raw_body, headers, connection.secret)   # before anything else
    key = adapter.idempotency_key(headers)                 # the vendor's own id of the message
    request = adapter.parse(adapter.message_type(headers), raw_body, headers, settings, now)
    reply = await adapter.handle(request, port)            # or adapter.render_error(error)

Adding a vendor is one new module in this package that ends with an ``ADAPTER =
VendorAdapter(...)`` and one entry in ``VENDORS`` below; the platform serves
``route_path(adapter)`` (``/api/v1/pos/vendors/<name>/<endpoint>``) from the registry.
docs/POS_ADAPTERS.md describes the adapters, their mappings and assumptions.

What this module offers the adapters:

* ``to_minor`` / ``from_minor``: vendor decimal money <-> integer minor units, exactly
  (``Decimal`` only; a value with more decimals than the currency has is refused, never
  rounded, except the binary-float noise a vendor that sends JSON doubles may add).
* ``decode`` / ``validated``: msgspec decoding whose every failure is a ``DomainError``
  (``malformed_json`` or ``validation_failed``); parse functions raise nothing else.
* ``header`` and ``require_key``: case-insensitive header lookup, idempotency-key checks.
* The till views the render functions take (``TillMember``, ``TillReward``,
  ``RedemptionOutcome``): what the route hands the adapter after calling the service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeVar

import msgspec
from msgspec import Struct, field

from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.results import Balance
from pos_adapter.events import Order, PosEvent, Redemption, Refund

#: Request headers as the route has them (Litestar's headers, or a plain dict in tests).
Headers = Mapping[str, str]
T = TypeVar("T")
S = TypeVar("S", bound=Struct)

ROUTE_PREFIX = "/api/v1/pos/vendors"

# --- Money ---------------------------------------------------------------------------------

#: ISO 4217 minor-unit exponents that are not 2.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"),
        0,
    ),
    **dict.fromkeys(("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
#: Largest amount accepted, in minor units (the canonical ``Amount`` bound).
MAX_MINOR = 10**12
#: More significant digits than any real amount has; longer numbers are refused unread.
_MAX_DIGITS = 40
#: A vendor that sends JSON doubles (Toast) may add binary noise such as 0.30000000000000004;
#: a value within a millionth of a minor unit of a whole one is taken as that whole one.
_NOISE = 10**6


def minor_exponent(currency: str) -> int:
    """Digits after the decimal point in ``currency`` (ISO 4217): 2 unless listed."""
    return _EXPONENTS.get(currency, 2)


def _bad(detail: str, **extra: Any) -> DomainError:
    return DomainError(ErrorCode.VALIDATION_FAILED, detail, **extra)


def to_minor(
    value: Decimal, currency: str, where: str, *, tolerate_float_noise: bool = False
) -> int:
    """``value`` (major units, e.g. ``Decimal("12.34")`` USD) in minor units (1234), exactly.

    Refused with ``validation_failed`` (``extra["field"] = where``): not finite, negative,
    more than ``MAX_MINOR`` minor units, or more decimals than the currency has (``12.345``
    USD). Trailing zeros do not count (``8.0`` JPY is 8). With ``tolerate_float_noise``, a
    value within a millionth of a minor unit of a whole one is that one (binary doubles).
    """
    if not isinstance(value, Decimal) or not value.is_finite():
        raise _bad(f"{where}: not a finite number", field=where)
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if sign and any(digits):
        raise _bad(f"{where}: must not be negative", field=where)
    coefficient = int("".join(map(str, digits[: _MAX_DIGITS + 1])))
    if coefficient == 0:
        return 0
    if len(digits) > _MAX_DIGITS or exponent < -_MAX_DIGITS or value.adjusted() > 15:
        raise _bad(f"{where}: {value} is out of range for an amount", field=where)
    places = minor_exponent(currency)
    shift = exponent + places  # minor = coefficient * 10**shift
    if shift >= 0:
        minor = coefficient * int(10**shift)
    else:
        unit = int(10**-shift)
        minor, remainder = divmod(coefficient, unit)
        if remainder:
            if not tolerate_float_noise:
                raise _bad(
                    f"{where}: {value} has more than {places} decimals ({currency})",
                    field=where,
                )
            if remainder * 2 >= unit:
                minor, remainder = minor + 1, unit - remainder
            if remainder * _NOISE >= unit:
                raise _bad(
                    f"{where}: {value} has more than {places} decimals ({currency})",
                    field=where,
                )
    if minor > MAX_MINOR:
        raise _bad(f"{where}: {value} is out of range for an amount", field=where)
    return minor


def from_minor(amount: int, currency: str) -> Decimal:
    """``amount`` minor units as a decimal in major units with the currency's places:
    ``from_minor(1234, "USD") == Decimal("12.34")``, ``from_minor(5, "JPY") == Decimal("5")``.
    Exact: ``to_minor(from_minor(n, c), c, ...) == n``."""
    return Decimal(amount).scaleb(-minor_exponent(currency))


# --- Headers, decoding, validation ---------------------------------------------------------


def header(headers: Headers, name: str) -> str | None:
    """The value of header ``name`` (case-insensitive), stripped; None when absent or blank."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    if value is None:
        return None
    value = value.strip()
    return value or None


#: What the platform's idempotency store accepts (loyalty.services.idempotency).
MAX_KEY_LENGTH = 128


def require_key(value: str | None, header_name: str) -> str:
    """``value`` as an idempotency key: present, at most 128 printable ASCII characters."""
    if value is None:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_MISSING, f"the {header_name} header is required"
        )
    if len(value) > MAX_KEY_LENGTH or not all("!" <= ch <= "~" for ch in value):
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_INVALID,
            f"the {header_name} header must be 1-{MAX_KEY_LENGTH} printable ASCII characters",
        )
    return value


def decode(body: bytes, type_: type[T], what: str) -> T:
    """``body`` decoded as ``type_``; ``malformed_json`` when it is not JSON (or not UTF-8),
    ``validation_failed`` when it does not have the vendor's shape."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise DomainError(ErrorCode.MALFORMED_JSON, f"the {what} body must be bytes")
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as error:
        raise _bad(f"the {what} body does not have the expected shape: {error}") from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise DomainError(ErrorCode.MALFORMED_JSON, f"the {what} body is not valid JSON") from None


def validated(value: S) -> S:
    """``value`` checked against its own type's constraints (msgspec checks ``Meta`` only when
    decoding, not when a Struct is built in code): ``validation_failed`` naming the field."""
    try:
        return msgspec.convert(msgspec.to_builtins(value), type(value))
    except msgspec.ValidationError as error:
        raise _bad(f"the vendor data does not make a valid canonical request: {error}") from None


def parse_time(value: str | None, where: str) -> datetime | None:
    """An ISO 8601 time with an offset (``Z``, ``+02:00`` or ``+0000``); None stays None.
    A time without an offset is refused: guessing the zone would misdate the event."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _bad(f"{where}: {value!r} is not an ISO 8601 time", field=where) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _bad(f"{where}: {value!r} has no UTC offset", field=where)
    return parsed


_PHONE_SEPARATORS = frozenset(" -./()")


def national_to_e164(raw: str, calling_code: str | None) -> str:
    """A phone number as the vendor sent it, in international form where that is certain.

    ``+...`` stays as it is. A national number (``(555) 123-4567``, ``0151 2345678``) gets
    ``calling_code`` when one is configured: the trunk prefix is dropped (a leading ``0``;
    ``1`` for NANP numbers of 11 digits). Anything but digits and `` -./()`` (``555-BILL``),
    or no calling code: the value is passed on unchanged and the scan classifier decides (it
    wants ``+`` and the country code)."""
    text = raw.strip()
    if text.startswith("+") or calling_code is None:
        return text
    if not text or any(not (ch in _PHONE_SEPARATORS or "0" <= ch <= "9") for ch in text):
        return text
    digits = "".join(ch for ch in text if "0" <= ch <= "9")
    if not digits:
        return text
    nanp_trunk = calling_code == "1" and len(digits) == 11 and digits.startswith("1")
    if nanp_trunk or digits.startswith("0"):
        digits = digits[1:]
    return f"+{calling_code}{digits}"


# --- What the route passes in and gets back ------------------------------------------------


class VendorSettings(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-connection settings the route passes to ``parse`` (from the merchant's vendor
    connection): what the vendor's payloads leave out."""

    #: Currency of vendors whose payloads carry none (Toast: the restaurant's currency).
    currency: str = "USD"
    #: Country calling code (digits, e.g. "1", "49") for national phone numbers; None: phone
    #: numbers must arrive in international form.
    calling_code: str | None = None


class VendorReply(Struct, frozen=True, kw_only=True):
    """An HTTP answer in the vendor's shape."""

    status_code: int
    body: bytes = b""
    media_type: str = "application/json"


# --- Till views: what the render functions take --------------------------------------------


class TillReward(Struct, frozen=True, kw_only=True):
    """A reward the member could use at this till (from the service's usable rewards)."""

    code: str
    name: str
    #: Usable with this member and basket now.
    usable: bool
    #: Points it costs (the smallest choice for points-as-money rewards).
    points: int
    #: Money off this basket, minor units, when known (a free item: that item's unit price).
    discount: int | None = None
    #: The basket line a free-item reward makes free.
    line_id: str | None = None
    expires_at: datetime | None = None
    #: Why it is not usable now, in words for the cashier.
    refusal: str | None = None


class TillMember(Struct, frozen=True, kw_only=True):
    """The member at the till (the service's identify result, plus their card number)."""

    member_id: int
    display_name: str
    tier: str | None = None
    balance: Balance
    rewards: list[TillReward] = field(default_factory=list)
    #: The member's static card number: what a vendor that stores an account identifier on
    #: its check (Toast's loyaltyIdentifier) sends back later. Never an email or phone.
    card_number: str | None = None


class RedemptionOutcome(Struct, frozen=True, kw_only=True):
    """What the service said to one redemption the till asked for."""

    reward_code: str
    accepted: bool
    #: The hold the redemption placed (a reverse releases it).
    redemption_id: int | None = None
    #: Money off per unit, minor units (a free item: its unit price).
    discount: int = 0
    points: int = 0
    line_id: str | None = None
    #: Why it was refused (the DomainError's detail), for the cashier.
    message: str | None = None


class PastRedemption(Struct, frozen=True, kw_only=True):
    redemption_id: int
    reward_code: str


class PastMessage(Struct, frozen=True, kw_only=True):
    """What an earlier message of the same vendor account did (a reverse undoes it)."""

    message_type: str
    #: The sale it acted on; None when it did nothing (an accrue without a member).
    transaction_id: str | None
    redemptions: list[PastRedemption] = field(default_factory=list)


#: Refusals about who the member is: a redemption step does not turn them into a rejected
#: redemption; the whole request fails (the vendor shows "account invalid").
IDENTITY_ERRORS = frozenset(
    {
        ErrorCode.UNKNOWN_SCAN,
        ErrorCode.INVALID_CARD_NUMBER,
        ErrorCode.INVALID_ROTATING_CODE,
        ErrorCode.CARD_NOT_FOUND,
        ErrorCode.SCAN_AMBIGUOUS,
        ErrorCode.MEMBER_NOT_FOUND,
        ErrorCode.NOT_ENROLLED,
    }
)


class VendorPort(Protocol):
    """What an adapter's ``handle`` may ask of the platform, in till views.

    The route implements it over the POS service for the vendor account's terminal and
    records what each call did, so that a later reverse can find it. Every method raises
    ``DomainError`` for a refusal and is idempotent under the ids it is given (the sale's
    transaction id, the redemption key, the refund id)."""

    @property
    def currency(self) -> str: ...

    async def identify(self, scan: str) -> TillMember: ...

    async def search(self, scan: str) -> list[TillMember]:
        """The members a typed email or phone names; none: an empty list."""
        ...

    async def preview(self, scan: str, order: Order) -> tuple[TillMember, int]:
        """The member with the rewards usable on ``order``, and the points it would earn."""
        ...

    async def redeem(self, event: PosEvent, key: str, redemption: Redemption) -> RedemptionOutcome:
        """Hold the points of one redemption on the open sale ``event.transaction_id``."""
        ...

    async def release(self, key: str, transaction_id: str, redemption_ids: list[int]) -> None: ...

    async def complete(self, event: PosEvent) -> int:
        """Earn on the sale and capture its holds; the points earned."""
        ...

    async def refund(self, refund: Refund) -> None: ...

    async def void(self, transaction_id: str) -> None: ...

    async def earlier(self, message_key: str) -> PastMessage | None:
        """What the earlier message ``message_key`` of this account did; None if unknown."""
        ...


# --- The registry --------------------------------------------------------------------------

#: parse(message_type, body, headers, settings, received_at) -> the vendor's canonical request.
Parser = Callable[[str, bytes, Headers, VendorSettings, datetime | None], Struct]


@dataclass(frozen=True, slots=True)
class VendorAdapter:
    """One vendor: how the platform mounts, authenticates and translates its requests."""

    name: str
    title: str
    #: The vendor documentation the adapter follows.
    docs_url: str
    #: "synchronous": the vendor waits for our answer (loyalty partner protocols);
    #: "webhook": the vendor notifies us and only wants a 2xx.
    style: Literal["synchronous", "webhook"]
    #: True: every body is signed (HMAC) and ``verify`` checks the signature over the raw
    #: bytes. False: the vendor presents a shared key and ``verify`` checks that.
    signs: bool
    #: The path below ``/api/v1/pos/vendors/<name>/``.
    endpoint: str
    #: The header naming the message type (Toast transaction type, Shopify topic).
    message_type_header: str
    message_types: tuple[str, ...]
    verify: Callable[[bytes, Headers, str], None]
    idempotency_key: Callable[[Headers], str]
    #: The header saying which vendor account (restaurant, shop) sent the request: the route
    #: looks the merchant's vendor connection (secret, settings, location) up by it.
    tenant_header: str
    parse: Parser
    #: Carries a parsed request out through the port and answers in the vendor's shape.
    handle: Callable[[Any, VendorPort], Awaitable[VendorReply]]
    render_error: Callable[[DomainError], VendorReply]

    def message_type(self, headers: Headers) -> str:
        """The message type the request names; ``validation_failed`` when it names none."""
        value = header(headers, self.message_type_header)
        if value is None:
            raise _bad(f"the {self.message_type_header} header is required")
        return value

    def tenant(self, headers: Headers) -> str | None:
        return header(headers, self.tenant_header)


def route_path(adapter: VendorAdapter) -> str:
    """Where the platform mounts ``adapter``: ``/api/v1/pos/vendors/<name>/<endpoint>``."""
    return f"{ROUTE_PREFIX}/{adapter.name}/{adapter.endpoint}"


# The adapters use the helpers above, so they are imported once those exist.
from . import shopify, toast  # noqa: E402

#: Every vendor the platform can mount, by name.
VENDORS: dict[str, VendorAdapter] = {
    adapter.name: adapter for adapter in (toast.ADAPTER, shopify.ADAPTER)
}


def vendor(name: str) -> VendorAdapter:
    """The adapter called ``name``; ``not_found`` for any other name."""
    adapter = VENDORS.get(name)
    if adapter is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no POS vendor adapter is called {name!r}")
    return adapter


__all__ = [
    "IDENTITY_ERRORS",
    "MAX_MINOR",
    "ROUTE_PREFIX",
    "VENDORS",
    "Headers",
    "PastMessage",
    "PastRedemption",
    "RedemptionOutcome",
    "TillMember",
    "TillReward",
    "VendorAdapter",
    "VendorPort",
    "VendorReply",
    "VendorSettings",
    "decode",
    "from_minor",
    "header",
    "minor_exponent",
    "national_to_e164",
    "parse_time",
    "require_key",
    "route_path",
    "to_minor",
    "validated",
    "vendor",
]
