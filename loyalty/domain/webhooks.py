"""Outgoing webhooks, the pure part: which ledger facts become which events, what a receiver
gets, how a message is signed (Standard Webhooks), when a failed delivery is tried again, and
which addresses may receive.

Payloads carry as little personal data as serves the receiver: the member's id in this platform
(pseudonymous; the receiver looks up more through the API when it is entitled to), never a name,
an email address, a phone or card number, nor the free-text reason or the staff member of an
adjustment. Time and randomness are parameters, as everywhere in the domain.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from .errors import DomainError, ErrorCode


class EventType(StrEnum):
    #: Points credited to a member: an earn (a purchase, a referral bonus) or a positive
    #: manual adjustment.
    POINTS_EARNED = "points.earned"
    #: Points spent: a redemption, or the capture of a hold.
    POINTS_REDEEMED = "points.redeemed"
    #: Points that lapsed by the program's expiry policy.
    POINTS_EXPIRED = "points.expired"
    #: A refund or reversal of an earlier operation (``delta`` says which way it moved points).
    POINTS_REVERSED = "points.reversed"
    #: Points taken away by a negative manual adjustment.
    POINTS_DEDUCTED = "points.deducted"
    #: Points moved from one member to another (e.g. when two member records are merged).
    POINTS_TRANSFERRED = "points.transferred"
    #: A member's free points lapse within the notice period: one event per member and day.
    POINTS_EXPIRING_SOON = "points.expiring_soon"
    #: A member's tier changed (earned, reviewed at period end, assigned by staff).
    TIER_CHANGED = "tier.changed"
    #: Sent on request from the admin side to check an endpoint; never subscribed to.
    TEST = "webhook.test"


#: The event types an endpoint may subscribe to, in the order the admin side lists them.
SUBSCRIBABLE: tuple[EventType, ...] = tuple(t for t in EventType if t is not EventType.TEST)
#: The events the ledger's journals give rise to.
JOURNAL_EVENTS = frozenset(
    {
        EventType.POINTS_EARNED,
        EventType.POINTS_REDEEMED,
        EventType.POINTS_EXPIRED,
        EventType.POINTS_REVERSED,
        EventType.POINTS_DEDUCTED,
        EventType.POINTS_TRANSFERRED,
    }
)
#: Journal kinds that can become an event (holds, releases and hold expiries change only what
#: is held, not what a member has: the capture that ends a hold is the redemption).
JOURNAL_KINDS_WITH_EVENTS = (
    "earn",
    "adjust",
    "redeem",
    "capture",
    "expire",
    "refund",
    "reversal",
    "transfer",
)


def journal_event_type(kind: str, delta: int) -> EventType | None:
    """The event a journal of ``kind`` that changed the member's points by ``delta`` is."""
    if delta == 0:
        return None
    match kind:
        case "earn":
            return EventType.POINTS_EARNED
        case "adjust":
            return EventType.POINTS_EARNED if delta > 0 else EventType.POINTS_DEDUCTED
        case "redeem" | "capture":
            return EventType.POINTS_REDEEMED
        case "expire":
            return EventType.POINTS_EXPIRED
        case "refund" | "reversal":
            return EventType.POINTS_REVERSED
        case "transfer":
            return EventType.POINTS_TRANSFERRED
    return None


# --- events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProgramRef:
    program_id: int
    code: str
    merchant_id: int


@dataclass(frozen=True, slots=True)
class Event:
    """One event, ready to be queued for every endpoint that receives it."""

    #: Stable: a receiver deduplicates on it (the ``webhook-id`` header), and finding the same
    #: fact twice gives the same id, so it is queued once.
    event_id: str
    type: EventType
    occurred_at: datetime
    program: ProgramRef
    #: The full message body (``id``, ``type``, ``timestamp``, ``data``).
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JournalFact:
    journal_id: int
    kind: str
    #: What the journal did to the member's points (negative: taken away).
    delta: int
    program: ProgramRef
    member_id: int
    created_at: datetime
    effective_at: datetime
    reference: str | None = None
    reverses_id: int | None = None
    #: The receiving member of a transfer.
    counter_member_id: int | None = None


@dataclass(frozen=True, slots=True)
class TierFact:
    change_id: int
    program: ProgramRef
    member_id: int
    before: str | None
    after: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class FreeLot:
    """Free (unspent, unheld) points of one lot of a member, with its expiry."""

    account_id: int
    member_id: int
    program: ProgramRef
    timezone: str
    free: int
    expires_at: datetime


def iso(moment: datetime) -> str:
    """An aware time as ISO 8601 in UTC with a ``Z``."""
    if moment.utcoffset() is None:
        raise ValueError("webhook times must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _envelope(
    event_id: str, event_type: EventType, at: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    # Standard Webhooks' body shape (type, timestamp, data), with the event id as well.
    return {"id": event_id, "type": str(event_type), "timestamp": iso(at), "data": data}


def _program(program: ProgramRef) -> dict[str, Any]:
    return {"id": program.program_id, "code": program.code}


def journal_event(fact: JournalFact) -> Event | None:
    event_type = journal_event_type(fact.kind, fact.delta)
    if event_type is None:
        return None
    event_id = f"journal:{fact.journal_id}"
    journal: dict[str, Any] = {
        "id": fact.journal_id,
        "kind": fact.kind,
        "reference": fact.reference,
        "effective_at": iso(fact.effective_at),
    }
    if fact.reverses_id is not None:
        journal["reverses_id"] = fact.reverses_id
    data: dict[str, Any] = {
        "program": _program(fact.program),
        "member_id": fact.member_id,
        "points": abs(fact.delta),
        "delta": fact.delta,
        "journal": journal,
    }
    if event_type is EventType.POINTS_TRANSFERRED:
        data["to_member_id"] = fact.counter_member_id
    payload = _envelope(event_id, event_type, fact.created_at, data)
    return Event(event_id, event_type, fact.created_at, fact.program, payload)


def tier_event(fact: TierFact) -> Event:
    event_id = f"tier:{fact.change_id}"
    data = {
        "program": _program(fact.program),
        "member_id": fact.member_id,
        "tier": {"before": fact.before, "after": fact.after, "reason": fact.reason},
    }
    payload = _envelope(event_id, EventType.TIER_CHANGED, fact.at, data)
    return Event(event_id, EventType.TIER_CHANGED, fact.at, fact.program, payload)


def last_valid_day(expires_at: datetime, timezone: str) -> date:
    """The last local day on which points lapsing at ``expires_at`` can still be spent
    (``expires_at`` is the first instant they no longer can)."""
    return (expires_at - timedelta(microseconds=1)).astimezone(ZoneInfo(timezone)).date()


def expiring_soon_events(lots: Iterable[FreeLot], now: datetime, days: int) -> list[Event]:
    """One event per member account and last valid day, for free points whose last valid day
    falls within ``days`` days of today (the program's today); the day is part of the id, so a
    member hears about each day once."""
    groups: dict[tuple[int, date], list[FreeLot]] = {}
    for lot in lots:
        if lot.free <= 0 or lot.expires_at <= now:
            continue
        zone = ZoneInfo(lot.timezone)
        day = last_valid_day(lot.expires_at, lot.timezone)
        if day > now.astimezone(zone).date() + timedelta(days=days):
            continue
        groups.setdefault((lot.account_id, day), []).append(lot)
    events = []
    for (account_id, day), group in sorted(groups.items()):
        first = group[0]
        event_id = f"expiring:{account_id}:{day.isoformat()}"
        data = {
            "program": _program(first.program),
            "member_id": first.member_id,
            "points": sum(lot.free for lot in group),
            "last_valid_day": day.isoformat(),
            "expires_at": iso(min(lot.expires_at for lot in group)),
        }
        payload = _envelope(event_id, EventType.POINTS_EXPIRING_SOON, now, data)
        events.append(Event(event_id, EventType.POINTS_EXPIRING_SOON, now, first.program, payload))
    return events


def webhook_test_payload(event_id: str, endpoint_id: int, at: datetime) -> dict[str, Any]:
    """The body of a test message (``webhook.test``)."""
    data = {"endpoint_id": endpoint_id, "message": "a test message from the loyalty platform"}
    return _envelope(event_id, EventType.TEST, at, data)


@dataclass(frozen=True, slots=True)
class Subscription:
    """What an active endpoint receives."""

    endpoint_id: int
    merchant_id: int
    #: None: every program of the merchant.
    program_id: int | None
    events: frozenset[str]
    #: An endpoint receives what happens from its creation on, not the history before it.
    created_at: datetime


def receives(subscription: Subscription, event: Event) -> bool:
    return (
        subscription.merchant_id == event.program.merchant_id
        and subscription.program_id in (None, event.program.program_id)
        and str(event.type) in subscription.events
        and event.occurred_at >= subscription.created_at
    )


# --- signing (https://www.standardwebhooks.com) --------------------------------------------

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)
SIGNATURE_VERSION = "v1"
#: How far a message's timestamp may lie from the receiver's clock (replay protection).
DEFAULT_TOLERANCE = timedelta(minutes=5)
MIN_SECRET_BYTES = 24


def new_secret(random_bytes: bytes) -> str:
    """A signing secret as Standard Webhooks writes it: ``whsec_`` + base64 of the key."""
    if len(random_bytes) < MIN_SECRET_BYTES:
        raise ValueError(f"a signing key needs at least {MIN_SECRET_BYTES} random bytes")
    return SECRET_PREFIX + base64.b64encode(random_bytes).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("a webhook secret is whsec_ followed by base64") from error


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_headers(secret: str, message_id: str, at: datetime, body: bytes) -> dict[str, str]:
    timestamp = int(at.timestamp())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Check a received message as a receiver should: the three headers present, the timestamp
    within ``tolerance`` of ``now``, and one of the ``v1`` signatures matching (several may be
    sent, space-separated). Raises ``signature_invalid`` otherwise."""
    lower = {name.lower(): value for name, value in headers.items()}
    message_id = lower.get("webhook-id")
    raw_timestamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not message_id or not raw_timestamp or not signatures:
        raise DomainError(ErrorCode.SIGNATURE_INVALID, "webhook signature headers are missing")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise DomainError(
            ErrorCode.SIGNATURE_INVALID, "webhook-timestamp is not a number"
        ) from None
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        raise DomainError(
            ErrorCode.SIGNATURE_INVALID, "the message's timestamp is outside the tolerance"
        )
    expected = sign(secret, message_id, timestamp, body)
    for candidate in signatures.split():
        if candidate.startswith(f"{SIGNATURE_VERSION},") and hmac.compare_digest(
            candidate.encode(), expected.encode()
        ):
            return
    raise DomainError(ErrorCode.SIGNATURE_INVALID, "no webhook signature matches")


# --- delivery ------------------------------------------------------------------------------


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


#: How long after the n-th failed attempt the next one is made; after the last, the delivery
#: has failed (about 43 hours after the first attempt) and waits for staff to replay it.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
#: Each delay varies by up to this share either way, so that receivers that were down together
#: are not hit by every retry at the same instant.
JITTER = 0.1


def retry_delay(attempts_made: int, random_value: float) -> timedelta | None:
    """How long to wait after ``attempts_made`` attempts that all failed; None when that was the
    last. ``random_value`` in [0, 1) spreads the delay by +-``JITTER`` (0.5: exactly)."""
    if attempts_made < 1:
        raise ValueError("a retry follows an attempt")
    if attempts_made >= MAX_ATTEMPTS:
        return None
    if not 0 <= random_value <= 1:
        raise ValueError("random_value lies in [0, 1]")
    base = RETRY_DELAYS[attempts_made - 1]
    factor = 1 + JITTER * (2 * random_value - 1)
    return timedelta(milliseconds=round(base.total_seconds() * 1000 * factor))


def accepted(status_code: int | None) -> bool:
    """A receiver accepts a message with any 2xx answer; anything else (a redirect included)
    is a failed attempt."""
    return status_code is not None and 200 <= status_code < 300


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    status: DeliveryStatus
    next_attempt_at: datetime | None


def after_attempt(
    status_code: int | None, attempts_made: int, at: datetime, random_value: float
) -> AttemptOutcome:
    """Where a delivery stands after its ``attempts_made``-th attempt answered ``status_code``
    (None: no answer) at ``at``."""
    if accepted(status_code):
        return AttemptOutcome(DeliveryStatus.DELIVERED, None)
    delay = retry_delay(attempts_made, random_value)
    if delay is None:
        return AttemptOutcome(DeliveryStatus.FAILED, None)
    return AttemptOutcome(DeliveryStatus.PENDING, at + delay)


# --- endpoints -----------------------------------------------------------------------------

MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 200
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def _invalid_url(detail: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_WEBHOOK_URL, detail, field="url")


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    address = _ip_literal(name)
    return address is not None and address.is_loopback


def check_url(url: str, *, production: bool) -> str:
    """An endpoint address: https (plain http only to this machine's loopback, and only in
    development), a host, no user name or password (they would be sent in the clear to every
    proxy log and shown on the admin page), no fragment, at most ``MAX_URL_LENGTH``
    characters. In production an address that names a loopback, private, link-local or other
    non-public IP is refused too, so that the platform cannot be pointed at its own network."""
    if len(url) > MAX_URL_LENGTH:
        raise _invalid_url(f"a webhook URL has at most {MAX_URL_LENGTH} characters")
    if not url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise _invalid_url("a webhook URL has no spaces or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"https", "http"}:
        raise _invalid_url("a webhook URL starts with https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise _invalid_url("a webhook URL carries no user name or password; use the signature")
    host = parts.hostname
    if not host:
        raise _invalid_url("a webhook URL names a host")
    try:
        parts.port  # noqa: B018 - raises on a port out of range or not a number
    except ValueError:
        raise _invalid_url("the port of the webhook URL is not valid") from None
    if parts.fragment:
        raise _invalid_url("a webhook URL has no #fragment (it is never sent)")
    loopback = is_loopback_host(host)
    if scheme == "http" and (production or not loopback):
        raise _invalid_url(
            "a webhook URL must use https"
            + ("" if production else " (http only to a loopback address, in development)")
        )
    if production:
        address = _ip_literal(host)
        if loopback or (address is not None and not address.is_global):
            raise _invalid_url("a webhook URL must name a public host, not a local address")
    return url


def check_description(description: str) -> str:
    text = description.strip()
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise DomainError(
            ErrorCode.VALIDATION_FAILED,
            f"a description has at most {MAX_DESCRIPTION_LENGTH} characters",
            field="description",
        )
    return text


def check_events(events: Iterable[str]) -> list[str]:
    """The subscribed event types: at least one, each known, in the canonical order."""
    wanted = set(events)
    unknown = sorted(wanted - {str(t) for t in SUBSCRIBABLE})
    if unknown:
        raise DomainError(
            ErrorCode.UNKNOWN_WEBHOOK_EVENT,
            f"unknown event type(s): {', '.join(unknown)}",
            unknown=unknown,
            known=[str(t) for t in SUBSCRIBABLE],
        )
    if not wanted:
        raise DomainError(
            ErrorCode.UNKNOWN_WEBHOOK_EVENT,
            "subscribe to at least one event type",
            known=[str(t) for t in SUBSCRIBABLE],
        )
    return [str(t) for t in SUBSCRIBABLE if str(t) in wanted]
