"""Outgoing webhooks, the pure part: events and payloads, Standard Webhooks signatures, the retry
schedule, and which URLs an endpoint may have."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

import pytest

from loyalty.domain import webhooks as wh
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.webhooks import EventType

AT = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
SHOP = wh.ProgramRef(program_id=4, code="bonus", merchant_id=1)


# --- events --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "delta", "expected"),
    [
        ("earn", 120, EventType.POINTS_EARNED),
        ("adjust", 50, EventType.POINTS_EARNED),
        ("adjust", -50, EventType.POINTS_DEDUCTED),
        ("redeem", -200, EventType.POINTS_REDEEMED),
        ("capture", -80, EventType.POINTS_REDEEMED),
        ("expire", -30, EventType.POINTS_EXPIRED),
        ("refund", -40, EventType.POINTS_REVERSED),
        ("refund", 40, EventType.POINTS_REVERSED),
        ("reversal", -120, EventType.POINTS_REVERSED),
        ("transfer", -10, EventType.POINTS_TRANSFERRED),
        ("hold", 0, None),
        ("release", 0, None),
        ("hold_expiry", 0, None),
        ("capture", 0, None),
    ],
)
def test_journal_kinds_map_to_events(kind: str, delta: int, expected: EventType | None) -> None:
    assert wh.journal_event_type(kind, delta) == expected


def test_every_kind_with_events_is_known_to_the_ledger() -> None:
    from loyalty.domain.journals import JournalKind

    assert set(wh.JOURNAL_KINDS_WITH_EVENTS) <= {str(kind) for kind in JournalKind}
    without = {str(k) for k in JournalKind} - set(wh.JOURNAL_KINDS_WITH_EVENTS)
    assert without == {"hold", "release", "hold_expiry"}


def test_an_earn_becomes_points_earned_with_no_personal_data() -> None:
    event = wh.journal_event(
        wh.JournalFact(
            journal_id=77,
            kind="earn",
            delta=120,
            program=SHOP,
            member_id=9,
            created_at=AT,
            effective_at=AT - timedelta(hours=1),
            reference="order:A-1",
        )
    )
    assert event is not None
    assert event.event_id == "journal:77"
    assert event.type is EventType.POINTS_EARNED
    assert event.payload == {
        "id": "journal:77",
        "type": "points.earned",
        "timestamp": "2025-03-10T09:30:00Z",
        "data": {
            "program": {"id": 4, "code": "bonus"},
            "member_id": 9,
            "points": 120,
            "delta": 120,
            "journal": {
                "id": 77,
                "kind": "earn",
                "reference": "order:A-1",
                "effective_at": "2025-03-10T08:30:00Z",
            },
        },
    }


def test_a_refund_names_what_it_reverses_and_a_transfer_its_receiver() -> None:
    refund = wh.journal_event(
        wh.JournalFact(12, "refund", 40, SHOP, 9, AT, AT, reference="r-1", reverses_id=11)
    )
    assert refund is not None
    assert refund.payload["data"]["journal"]["reverses_id"] == 11
    assert (refund.payload["data"]["points"], refund.payload["data"]["delta"]) == (40, 40)
    transfer = wh.journal_event(
        wh.JournalFact(13, "transfer", -25, SHOP, 9, AT, AT, counter_member_id=10)
    )
    assert transfer is not None
    assert transfer.type is EventType.POINTS_TRANSFERRED
    assert transfer.payload["data"]["to_member_id"] == 10
    assert transfer.payload["data"]["points"] == 25


def test_a_tier_change_event() -> None:
    event = wh.tier_event(wh.TierFact(5, SHOP, 9, "base", "silver", "earned", AT))
    assert event.event_id == "tier:5"
    assert event.payload["type"] == "tier.changed"
    assert event.payload["data"] == {
        "program": {"id": 4, "code": "bonus"},
        "member_id": 9,
        "tier": {"before": "base", "after": "silver", "reason": "earned"},
    }


def _lot(account: int, free: int, expires_at: datetime, tz: str = "Europe/Berlin") -> wh.FreeLot:
    return wh.FreeLot(
        account_id=account,
        member_id=account * 10,
        program=SHOP,
        timezone=tz,
        free=free,
        expires_at=expires_at,
    )


def test_expiring_soon_groups_by_member_and_last_valid_day_within_the_notice() -> None:
    now = datetime(2025, 3, 1, 12, tzinfo=UTC)  # 1 March in Berlin
    lots = [
        # Account 1: two lots lapsing on the same Berlin day (10 March), one later (14 March),
        # one after the notice period (16 March: the 15th is its last valid day).
        _lot(1, 30, datetime(2025, 3, 10, 8, tzinfo=UTC)),
        _lot(1, 20, datetime(2025, 3, 10, 20, tzinfo=UTC)),
        _lot(1, 5, datetime(2025, 3, 14, 12, tzinfo=UTC)),
        _lot(1, 7, datetime(2025, 3, 16, 12, tzinfo=UTC)),
        # Account 2: lapses at midnight Berlin of 16 March (= 15 March 23:00 UTC): its last
        # valid day is 15 March, the last day of the notice period (1 March + 14 days).
        _lot(2, 40, datetime(2025, 3, 15, 23, tzinfo=UTC)),
        # Already lapsed, and no free points: nothing to announce.
        _lot(3, 10, datetime(2025, 3, 1, 11, tzinfo=UTC)),
        _lot(4, 0, datetime(2025, 3, 5, tzinfo=UTC)),
    ]
    events = wh.expiring_soon_events(lots, now, days=14)
    summary = {
        e.event_id: (e.payload["data"]["points"], e.payload["data"]["last_valid_day"])
        for e in events
    }
    assert summary == {
        "expiring:1:2025-03-10": (50, "2025-03-10"),
        "expiring:1:2025-03-14": (5, "2025-03-14"),
        "expiring:2:2025-03-15": (40, "2025-03-15"),
    }
    first = next(e for e in events if e.event_id == "expiring:1:2025-03-10")
    assert first.type is EventType.POINTS_EXPIRING_SOON
    assert first.occurred_at == now
    assert first.payload["data"]["member_id"] == 10
    assert first.payload["data"]["expires_at"] == "2025-03-10T08:00:00Z"


def test_last_valid_day_is_the_day_before_a_midnight_expiry() -> None:
    midnight_berlin = datetime(2025, 1, 31, 23, tzinfo=UTC)  # 1 Feb 00:00 CET
    assert wh.last_valid_day(midnight_berlin, "Europe/Berlin").isoformat() == "2025-01-31"
    assert wh.last_valid_day(midnight_berlin, "UTC").isoformat() == "2025-01-31"
    assert wh.last_valid_day(AT, "Europe/Berlin").isoformat() == "2025-03-10"


def test_receives_by_merchant_program_type_and_creation_time() -> None:
    event = wh.tier_event(wh.TierFact(5, SHOP, 9, None, "silver", "earned", AT))
    every_program = wh.Subscription(1, 1, None, frozenset({"tier.changed"}), AT)
    assert wh.receives(every_program, event)
    assert wh.receives(wh.Subscription(1, 1, 4, frozenset({"tier.changed"}), AT), event)
    assert not wh.receives(wh.Subscription(1, 1, 5, frozenset({"tier.changed"}), AT), event)
    assert not wh.receives(wh.Subscription(1, 2, None, frozenset({"tier.changed"}), AT), event)
    assert not wh.receives(wh.Subscription(1, 1, None, frozenset({"points.earned"}), AT), event)
    later = wh.Subscription(1, 1, None, frozenset({"tier.changed"}), AT + timedelta(seconds=1))
    assert not wh.receives(later, event)


# --- signing -------------------------------------------------------------------------------

#: The example of the Standard Webhooks reference libraries' tests.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_standard_webhooks_example() -> None:
    assert wh.sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_signature_headers_and_an_independent_hmac() -> None:
    secret = wh.new_secret(bytes(range(32)))
    assert secret.startswith("whsec_")
    assert wh.secret_key(secret) == bytes(range(32))
    body = b'{"a":1}'
    headers = wh.signature_headers(secret, "journal:1", AT, body)
    assert headers["webhook-id"] == "journal:1"
    assert headers["webhook-timestamp"] == str(int(AT.timestamp()))
    mac = hmac.new(
        bytes(range(32)), f"journal:1.{int(AT.timestamp())}.".encode() + body, hashlib.sha256
    )
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac.digest()).decode()


def _spec_headers(**overrides: str) -> dict[str, str]:
    headers = {
        "Webhook-Id": SPEC_ID,
        "Webhook-Timestamp": str(SPEC_TIMESTAMP),
        "Webhook-Signature": SPEC_SIGNATURE,
    }
    headers.update(overrides)
    return headers


SPEC_NOW = datetime.fromtimestamp(SPEC_TIMESTAMP, UTC)


def test_verify_accepts_a_good_message_with_any_header_case() -> None:
    wh.verify(SPEC_SECRET, _spec_headers(), SPEC_BODY, SPEC_NOW + timedelta(minutes=4))
    several = f"v1,bm90IGl0 {SPEC_SIGNATURE} v2,other"
    wh.verify(SPEC_SECRET, _spec_headers(**{"Webhook-Signature": several}), SPEC_BODY, SPEC_NOW)


@pytest.mark.parametrize(
    ("secret", "headers", "body", "now"),
    [
        pytest.param(SPEC_SECRET, _spec_headers(), b'{"test": 2432232315}', SPEC_NOW, id="body"),
        pytest.param(wh.new_secret(b"x" * 24), _spec_headers(), SPEC_BODY, SPEC_NOW, id="secret"),
        pytest.param(
            SPEC_SECRET, _spec_headers(**{"Webhook-Id": "msg_other"}), SPEC_BODY, SPEC_NOW, id="id"
        ),
        pytest.param(
            SPEC_SECRET,
            _spec_headers(**{"Webhook-Timestamp": str(SPEC_TIMESTAMP + 1)}),
            SPEC_BODY,
            SPEC_NOW,
            id="timestamp-changed",
        ),
        pytest.param(
            SPEC_SECRET, _spec_headers(), SPEC_BODY, SPEC_NOW + timedelta(minutes=6), id="stale"
        ),
        pytest.param(
            SPEC_SECRET, _spec_headers(), SPEC_BODY, SPEC_NOW - timedelta(minutes=6), id="future"
        ),
        pytest.param(
            SPEC_SECRET,
            _spec_headers(**{"Webhook-Signature": SPEC_SIGNATURE.replace("v1,", "v2,")}),
            SPEC_BODY,
            SPEC_NOW,
            id="version",
        ),
        pytest.param(
            SPEC_SECRET,
            {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP)},
            SPEC_BODY,
            SPEC_NOW,
            id="no-signature",
        ),
        pytest.param(
            SPEC_SECRET,
            _spec_headers(**{"Webhook-Timestamp": "soon"}),
            SPEC_BODY,
            SPEC_NOW,
            id="bad-timestamp",
        ),
    ],
)
def test_verify_refuses(secret: str, headers: dict[str, str], body: bytes, now: datetime) -> None:
    with pytest.raises(DomainError) as refused:
        wh.verify(secret, headers, body, now)
    assert refused.value.code is ErrorCode.SIGNATURE_INVALID


def test_secrets_need_enough_randomness_and_proper_base64() -> None:
    with pytest.raises(ValueError, match="24"):
        wh.new_secret(b"short")
    with pytest.raises(ValueError, match="base64"):
        wh.secret_key("whsec_not base64!")


# --- retries -------------------------------------------------------------------------------


def test_retry_schedule_without_jitter() -> None:
    delays = [wh.retry_delay(n, 0.5) for n in range(1, wh.MAX_ATTEMPTS)]
    assert delays == [
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=10),
        timedelta(hours=1),
        timedelta(hours=6),
        timedelta(hours=12),
        timedelta(hours=24),
    ]
    assert wh.retry_delay(wh.MAX_ATTEMPTS, 0.5) is None
    assert wh.MAX_ATTEMPTS == 8
    assert sum(wh.RETRY_DELAYS, timedelta()) == timedelta(hours=43, minutes=12, seconds=30)


def test_jitter_spreads_a_delay_by_ten_percent_either_way() -> None:
    assert wh.retry_delay(1, 0.0) == timedelta(seconds=27)
    assert wh.retry_delay(1, 1.0) == timedelta(seconds=33)
    assert wh.retry_delay(4, 0.25) == timedelta(minutes=57)
    with pytest.raises(ValueError, match="random_value"):
        wh.retry_delay(1, 1.5)
    with pytest.raises(ValueError, match="follows an attempt"):
        wh.retry_delay(0, 0.5)


@pytest.mark.parametrize(
    ("status_code", "attempts", "expected"),
    [
        (200, 1, (wh.DeliveryStatus.DELIVERED, None)),
        (204, 8, (wh.DeliveryStatus.DELIVERED, None)),
        (500, 1, (wh.DeliveryStatus.PENDING, AT + timedelta(seconds=30))),
        (301, 2, (wh.DeliveryStatus.PENDING, AT + timedelta(minutes=2))),
        (None, 3, (wh.DeliveryStatus.PENDING, AT + timedelta(minutes=10))),
        (410, 7, (wh.DeliveryStatus.PENDING, AT + timedelta(hours=24))),
        (500, 8, (wh.DeliveryStatus.FAILED, None)),
        (None, 8, (wh.DeliveryStatus.FAILED, None)),
    ],
)
def test_after_attempt(
    status_code: int | None, attempts: int, expected: tuple[wh.DeliveryStatus, datetime | None]
) -> None:
    outcome = wh.after_attempt(status_code, attempts, AT, 0.5)
    assert (outcome.status, outcome.next_attempt_at) == expected


# --- endpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/loyalty",
        "https://hooks.example.com:8443/in?token=abc",
        "HTTPS://Hooks.Example.com/",
        "https://93.184.216.34/hook",
    ],
)
def test_public_https_urls_are_fine_everywhere(url: str) -> None:
    assert wh.check_url(url, production=True) == url
    assert wh.check_url(url, production=False) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]:9000/",
        "http://api.localhost/hook",
        "https://127.0.0.1/hook",
    ],
)
def test_loopback_is_for_development_only(url: str) -> None:
    assert wh.check_url(url, production=False) == url
    with pytest.raises(DomainError) as refused:
        wh.check_url(url, production=True)
    assert refused.value.code is ErrorCode.INVALID_WEBHOOK_URL


@pytest.mark.parametrize(
    ("url", "production", "words"),
    [
        ("http://hooks.example.com/", False, "https"),
        ("http://hooks.example.com/", True, "https"),
        ("ftp://hooks.example.com/", False, "https"),
        ("hooks.example.com/hook", False, "https"),
        ("https://user:pass@hooks.example.com/", False, "password"),
        ("https://user@hooks.example.com/", False, "password"),
        ("https:///path-only", False, "host"),
        ("https://hooks.example.com:99999/", False, "port"),
        ("https://hooks.example.com/#part", False, "fragment"),
        ("https://hooks.example.com/a b", False, "spaces"),
        ("https://hooks.example.com/\x00", False, "control"),
        ("", False, "spaces"),
        ("https://hooks.example.com/" + "a" * 2000, False, "2000"),
        ("https://10.0.0.5/hook", True, "public"),
        ("https://192.168.1.10/hook", True, "public"),
        ("https://169.254.169.254/latest/meta-data", True, "public"),
        ("https://[fd00::1]/hook", True, "public"),
        ("https://0.0.0.0/hook", True, "public"),
    ],
)
def test_refused_urls(url: str, production: bool, words: str) -> None:
    with pytest.raises(DomainError) as refused:
        wh.check_url(url, production=production)
    assert refused.value.code is ErrorCode.INVALID_WEBHOOK_URL
    assert words in refused.value.detail


def test_events_are_checked_deduplicated_and_ordered() -> None:
    assert wh.check_events(["tier.changed", "points.earned", "points.earned"]) == [
        "points.earned",
        "tier.changed",
    ]
    for wrong in (["points.stolen"], ["webhook.test"], []):
        with pytest.raises(DomainError) as refused:
            wh.check_events(wrong)
        assert refused.value.code is ErrorCode.UNKNOWN_WEBHOOK_EVENT
        assert "points.earned" in refused.value.extra["known"]


def test_description_is_trimmed_and_bounded() -> None:
    assert wh.check_description("  CRM  ") == "CRM"
    with pytest.raises(DomainError) as refused:
        wh.check_description("x" * 201)
    assert refused.value.code is ErrorCode.VALIDATION_FAILED


def test_docs_list_every_event_type() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "WEBHOOKS.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", text, re.MULTILINE))
    assert documented == {str(t) for t in EventType}
