"""Bad requests to every write endpoint: each gets its exact 4xx status, problem+json and stable
``code``, and leaves the ledger exactly as it was.

Every case runs on its own copy of one prepared ledger (a program with members, journals and
holds in every state), so that a case that wrongly changes something cannot hide another.
Business refusals (raised inside the operation) store their answer under the Idempotency-Key
and replay it; input refused before the operation stores nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from loyalty.app.problems import STATUS_BY_CODE
from loyalty.domain.errors import ErrorCode
from tests.app.conftest import (
    API,
    RIVAL_SECRET,
    SHOP_SECRET,
    START,
    MutableClock,
    Stack,
    open_stack,
)
from tests.support.services import copy_sqlite

PROBLEM_JSON = "application/problem+json"
INT64_OVERFLOW = 2**63
UNKNOWN = 999_999

# --- the prepared ledger ---------------------------------------------------------------------


def build_world(stack: Stack) -> dict[str, Any]:
    """Program ``p`` (members anna, ben, dora) and program ``q`` (member carl), with a journal
    and a hold in every state a refusal can be about. Returns the ids."""
    shop = stack.shop
    p = stack.create_program()["program_id"]
    q = stack.create_program(code="other", name="Andere")["program_id"]
    anna, ben, dora = (stack.enroll(p, name) for name in ("Anna", "Ben", "Dora"))
    carl = stack.enroll(q, "Carl")
    member = f"/programs/{p}/members/{anna}"
    journals = f"/programs/{p}/journals"
    earn = shop.ok(f"{member}/earn", {"points": 100})["journal_id"]
    redeem = shop.ok(f"{member}/redeem", {"points": 30})["journal_id"]
    shop.ok(f"/programs/{p}/members/{ben}/earn", {"points": 50})
    held = shop.ok(f"{member}/holds", {"points": 20})
    captured_hold = shop.ok(f"{member}/holds", {"points": 10})["hold"]["hold_id"]
    capture = shop.ok(f"/programs/{p}/holds/{captured_hold}/capture", {})["journal_id"]
    released_hold = shop.ok(f"{member}/holds", {"points": 5})["hold"]["hold_id"]
    release = shop.ok(f"/programs/{p}/holds/{released_hold}/release")["journal_id"]
    transfer = shop.ok(
        f"/programs/{p}/transfers", {"from_member_id": anna, "to_member_id": ben, "points": 10}
    )["journal_id"]
    reversed_earn = shop.ok(f"{member}/earn", {"points": 12})["journal_id"]
    reversal = shop.ok(f"{journals}/{reversed_earn}/reverse", {})["journal_id"]
    refunded_redeem = shop.ok(f"{member}/redeem", {"points": 6})["journal_id"]
    shop.ok(f"{journals}/{refunded_redeem}/refund", {"points": 6})
    adjust = shop.ok(
        f"{member}/adjustments", {"points": 3, "reason": "goodwill", "actor": "support"}
    )["journal_id"]
    shop.ok(f"/programs/{p}/members/{dora}/earn", {"points": 40})
    dora_hold = shop.ok(
        f"/programs/{p}/members/{dora}/holds", {"points": 30, "timeout_seconds": 5}
    )["hold"]["hold_id"]
    anna_balance = shop.read(f"{member}/balance")
    assert (anna_balance["posted"], anna_balance["held"]) == (53, 20)  # 33 available
    ben_balance = shop.read(f"/programs/{p}/members/{ben}/balance")
    assert (ben_balance["posted"], ben_balance["held"]) == (60, 0)
    return {
        "p": p,
        "q": q,
        "anna": anna,
        "ben": ben,
        "carl": carl,
        "dora": dora,
        "hold": held["hold"]["hold_id"],
        "hold_journal": held["journal_id"],
        "captured_hold": captured_hold,
        "released_hold": released_hold,
        "dora_hold": dora_hold,
        "earn": earn,
        "redeem": redeem,
        "capture": capture,
        "release": release,
        "transfer": transfer,
        "reversed_earn": reversed_earn,
        "reversal": reversal,
        "refunded_redeem": refunded_redeem,
        "adjust": adjust,
        "unknown": UNKNOWN,
        "shop_merchant": stack.shop.merchant_id,
        "rival_merchant": stack.rival.merchant_id,
    }


@dataclass
class World:
    stack: Stack
    ids: dict[str, Any]


@pytest.fixture(scope="module")
def world_template(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("bad-input") / "world.db"
    url = copy_sqlite(sqlite_template, path)
    with ExitStack() as exits:
        ids = build_world(open_stack(exits, url, MutableClock()))
    with sqlite3.connect(path) as conn:  # everything into the main file before it is copied
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path, ids


@pytest.fixture
def world(
    world_template: tuple[Path, dict[str, Any]], tmp_path: Path, clock: MutableClock
) -> Iterator[World]:
    template, ids = world_template
    url = copy_sqlite(template, tmp_path / "world.db")
    with ExitStack() as exits:
        stack = open_stack(
            exits, url, clock, merchant_ids=(ids["shop_merchant"], ids["rival_merchant"])
        )
        yield World(stack, ids)


@pytest.fixture(scope="module")
def shared_world(
    world_template: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One copy for all the requests refused before the operation: none may change it."""
    template, ids = world_template
    url = copy_sqlite(template, tmp_path_factory.mktemp("shared") / "world.db")
    with ExitStack() as exits:
        stack = open_stack(
            exits, url, MutableClock(), merchant_ids=(ids["shop_merchant"], ids["rival_merchant"])
        )
        yield World(stack, ids)


# --- cases ---------------------------------------------------------------------------------


#: Send ``Case.body`` as these raw bytes with this content type instead of as JSON.
@dataclass(frozen=True)
class Raw:
    content: bytes
    content_type: str = "application/json"


KEYED: Any = object()  # a fresh, valid Idempotency-Key
Body = Any  # a JSON value, Raw, None (no body), or a callable(ids) -> one of those


@dataclass(frozen=True)
class Case:
    path: str  # under /api/v1, with {placeholders} from the world's ids
    body: Body
    status: int
    code: str
    #: The refusal is an answer of the operation: stored under the key and replayed.
    stored: bool = False
    method: str = "POST"
    key: Any = KEYED
    authorization: str | None = f"Bearer {SHOP_SECRET}"
    prepare: Callable[[World], None] | None = field(default=None, compare=False)


def reject(path: str, body: Body, code: str, **kw: Any) -> Case:
    """A request refused before the operation runs: nothing is stored."""
    return Case(path, body, STATUS_BY_CODE[ErrorCode(code)], code, **kw)


def refuse(path: str, body: Body, code: str, **kw: Any) -> Case:
    """A business refusal: the operation ran, refused, and its answer is stored."""
    return Case(path, body, STATUS_BY_CODE[ErrorCode(code)], code, stored=True, **kw)


MEMBER = "/programs/{p}/members/{anna}"
HOLD = "/programs/{p}/holds/{hold}"
JOURNALS = "/programs/{p}/journals"

#: Every write endpoint with a request that would succeed: (path, body).
ENDPOINTS: dict[str, tuple[str, Body]] = {
    "create-program": ("/programs", {"code": "fresh", "name": "Frisch", "currency": "EUR"}),
    "enroll": ("/programs/{p}/members", {"display_name": "Eva"}),
    "earn": (MEMBER + "/earn", {"points": 5}),
    "redeem": (MEMBER + "/redeem", {"points": 5}),
    "hold": (MEMBER + "/holds", {"points": 5}),
    "capture": (HOLD + "/capture", {"points": 5}),
    "release": (HOLD + "/release", None),
    "refund": (JOURNALS + "/{redeem}/refund", {"points": 1}),
    "reverse": (JOURNALS + "/{earn}/reverse", {}),
    "adjust": (MEMBER + "/adjustments", {"points": 5, "reason": "goodwill", "actor": "support"}),
    "transfer": (
        "/programs/{p}/transfers",
        lambda ids: {"from_member_id": ids["anna"], "to_member_id": ids["ben"], "points": 5},
    ),
}
WITH_BODY = [name for name, (_, body) in ENDPOINTS.items() if body is not None]


def _amount_body(endpoint: str, value: Any) -> Body:
    body = ENDPOINTS[endpoint][1]
    if callable(body):
        return lambda ids: {**body(ids), "points": value}
    return {**body, "points": value}


BAD_AMOUNTS: dict[str, Any] = {
    "zero": 0,
    "negative": -1,
    "fraction": 1.5,
    "string": "10",
    "bool": True,
    "null": None,
    "int64-overflow": INT64_OVERFLOW,
    "2**70": 2**70,
    "over-1e12": 10**12 + 1,
}
AMOUNT_ENDPOINTS = ["earn", "redeem", "hold", "capture", "refund", "adjust", "transfer"]


def amount_cases() -> Iterator[Any]:
    for endpoint in AMOUNT_ENDPOINTS:
        path = ENDPOINTS[endpoint][0]
        for name, value in BAD_AMOUNTS.items():
            if endpoint == "capture" and value is None:
                continue  # capture's points may be null: the whole hold (test_api_ledger.py)
            if endpoint == "adjust" and value == -1:
                continue  # a negative adjustment is a debit
            code = "validation_failed"
            if endpoint == "adjust" and value == 0:
                code = "invalid_amount"  # the schema allows the sign; the ledger refuses zero
            yield pytest.param(
                reject(path, _amount_body(endpoint, value), code), id=f"{endpoint}-points-{name}"
            )
        if endpoint != "capture":  # capture without points spends the whole hold
            yield pytest.param(
                reject(path, _without_points(endpoint), "validation_failed"),
                id=f"{endpoint}-points-missing",
            )
    # Lax number parsing would read these as 1000 and 5: a string is not an amount.
    for name, value in {"string-exponent": "1e3", "string-fraction": "5.0"}.items():
        yield pytest.param(
            reject(MEMBER + "/earn", {"points": value}, "validation_failed"),
            id=f"earn-points-{name}",
        )
    for name, value in {
        "below-min": -(10**12) - 1,
        "int64-min": -(2**63),
        "-2**70": -(2**70),
    }.items():
        yield pytest.param(
            reject(MEMBER + "/adjustments", _amount_body("adjust", value), "validation_failed"),
            id=f"adjust-points-{name}",
        )


def _without_points(endpoint: str) -> Body:
    body = ENDPOINTS[endpoint][1]
    if callable(body):
        return lambda ids: {k: v for k, v in body(ids).items() if k != "points"}
    return {k: v for k, v in body.items() if k != "points"}


BAD_INTS: dict[str, Any] = {
    "zero": 0,
    "negative": -1,
    "fraction": 1.5,
    "string": "5",
    "bool": True,
    "null": None,
    "int64-overflow": INT64_OVERFLOW,
    "2**70": 2**70,
}


def other_number_cases() -> Iterator[Any]:
    program = ENDPOINTS["create-program"][1]
    for field_name in ("hold_timeout_seconds", "expiry_value"):
        for name, value in BAD_INTS.items():
            if field_name == "expiry_value" and value == 0:
                continue  # 0 is the value of a "never" policy
            yield pytest.param(
                reject("/programs", {**program, field_name: value}, "validation_failed"),
                id=f"create-program-{field_name}-{name}",
            )
    for name, value in BAD_INTS.items():
        yield pytest.param(
            reject("/programs/{p}/members", {"member_id": value}, "validation_failed"),
            id=f"enroll-member_id-{name}",
        )
        for side in ("from_member_id", "to_member_id"):
            yield pytest.param(
                reject(
                    "/programs/{p}/transfers",
                    lambda ids, side=side, value=value: {
                        **ENDPOINTS["transfer"][1](ids),
                        side: value,
                    },
                    "validation_failed",
                ),
                id=f"transfer-{side}-{name}",
            )
        if value is not None:  # null: the program's default timeout
            yield pytest.param(
                reject(
                    MEMBER + "/holds", {"points": 5, "timeout_seconds": value}, "validation_failed"
                ),
                id=f"hold-timeout_seconds-{name}",
            )
    for value in (4, 604_801):
        yield pytest.param(
            reject(MEMBER + "/holds", {"points": 5, "timeout_seconds": value}, "validation_failed"),
            id=f"hold-timeout_seconds-{value}",
        )


def lookup_cases() -> Iterator[Any]:
    carl = "/programs/{p}/members/{carl}"
    nobody = "/programs/{p}/members/{unknown}"
    nowhere = "/programs/{unknown}/members/{anna}"
    for endpoint in ("earn", "redeem", "hold", "adjust"):
        suffix = ENDPOINTS[endpoint][0].removeprefix(MEMBER)
        body = ENDPOINTS[endpoint][1]
        yield pytest.param(
            refuse(nobody + suffix, body, "member_not_found"), id=f"{endpoint}-unknown-member"
        )
        yield pytest.param(
            refuse(nowhere + suffix, body, "program_not_found"), id=f"{endpoint}-unknown-program"
        )
        yield pytest.param(
            refuse(carl + suffix, body, "member_not_enrolled"), id=f"{endpoint}-not-enrolled"
        )
    transfer = ENDPOINTS["transfer"][1]
    for name, change, code in [
        ("to-unknown-member", {"to_member_id": UNKNOWN}, "member_not_found"),
        ("from-unknown-member", {"from_member_id": UNKNOWN}, "member_not_found"),
        ("to-not-enrolled", "carl-to", "member_not_enrolled"),
        ("from-not-enrolled", "carl-from", "member_not_enrolled"),
    ]:

        def body(ids: dict[str, Any], change: Any = change) -> dict[str, Any]:
            if change == "carl-to":
                return {**transfer(ids), "to_member_id": ids["carl"]}
            if change == "carl-from":
                return {**transfer(ids), "from_member_id": ids["carl"]}
            return {**transfer(ids), **change}

        yield pytest.param(refuse("/programs/{p}/transfers", body, code), id=f"transfer-{name}")
    yield pytest.param(
        refuse("/programs/{unknown}/transfers", transfer, "program_not_found"),
        id="transfer-unknown-program",
    )
    yield pytest.param(
        refuse("/programs/{unknown}/members", {"display_name": "Eva"}, "program_not_found"),
        id="enroll-unknown-program",
    )
    yield pytest.param(
        refuse("/programs/{p}/members", {"member_id": UNKNOWN}, "member_not_found"),
        id="enroll-unknown-member",
    )
    for endpoint in ("capture", "release"):
        path, body = ENDPOINTS[endpoint]
        yield pytest.param(
            refuse(path.replace("{hold}", "{unknown}"), body, "hold_not_found"),
            id=f"{endpoint}-unknown-hold",
        )
        yield pytest.param(
            refuse(path.replace("{p}", "{q}"), body, "hold_not_found"),
            id=f"{endpoint}-hold-of-another-program",
        )
        yield pytest.param(
            refuse(path.replace("{p}", "{unknown}"), body, "hold_not_found"),
            id=f"{endpoint}-unknown-program",
        )
    for endpoint in ("refund", "reverse"):
        path, body = ENDPOINTS[endpoint]
        journal = "{redeem}" if endpoint == "refund" else "{earn}"
        yield pytest.param(
            refuse(path.replace(journal, "{unknown}"), body, "journal_not_found"),
            id=f"{endpoint}-unknown-journal",
        )
        yield pytest.param(
            refuse(path.replace("{p}", "{q}"), body, "journal_not_found"),
            id=f"{endpoint}-journal-of-another-program",
        )


def _advance(seconds: float) -> Callable[[World], None]:
    def prepare(world: World) -> None:
        world.stack.clock.advance(seconds=seconds)

    return prepare


def _expire_and_settle(world: World) -> None:
    """Let Dora's hold lapse, then a write on Dora releases it (status 'expired')."""
    world.stack.clock.advance(seconds=10)
    ids = world.ids
    world.stack.shop.ok(f"/programs/{ids['p']}/members/{ids['dora']}/earn", {"points": 1})


def _partial_refund(world: World) -> None:
    ids = world.ids
    world.stack.shop.ok(f"/programs/{ids['p']}/journals/{ids['redeem']}/refund", {"points": 20})


def _receiver_spends(world: World) -> None:
    ids = world.ids
    world.stack.shop.ok(f"/programs/{ids['p']}/members/{ids['ben']}/redeem", {"points": 60})


def business_cases() -> Iterator[Any]:
    dora_hold = "/programs/{p}/holds/{dora_hold}"
    cases = {
        # holds
        "capture-more-than-held": refuse(HOLD + "/capture", {"points": 21}, "capture_exceeds_hold"),
        "capture-twice": refuse(
            "/programs/{p}/holds/{captured_hold}/capture", {}, "hold_already_captured"
        ),
        "release-after-capture": refuse(
            "/programs/{p}/holds/{captured_hold}/release", None, "hold_already_captured"
        ),
        "capture-after-release": refuse(
            "/programs/{p}/holds/{released_hold}/capture", {}, "hold_already_released"
        ),
        "release-twice": refuse(
            "/programs/{p}/holds/{released_hold}/release", None, "hold_already_released"
        ),
        "capture-after-expiry": refuse(
            dora_hold + "/capture", {}, "hold_expired", prepare=_advance(5)
        ),
        "partial-capture-after-expiry": refuse(
            dora_hold + "/capture", {"points": 1}, "hold_expired", prepare=_advance(3600)
        ),
        "release-after-expiry": refuse(
            dora_hold + "/release", None, "hold_expired", prepare=_advance(10)
        ),
        "capture-after-expiry-was-settled": refuse(
            dora_hold + "/capture", {}, "hold_expired", prepare=_expire_and_settle
        ),
        # not enough points (33 available: 53 posted, 20 held)
        "redeem-more-than-available": refuse(
            MEMBER + "/redeem", {"points": 34}, "insufficient_points"
        ),
        "hold-more-than-available": refuse(
            MEMBER + "/holds", {"points": 34}, "insufficient_points"
        ),
        "adjust-below-zero": refuse(
            MEMBER + "/adjustments",
            {"points": -34, "reason": "r", "actor": "a"},
            "insufficient_points",
        ),
        "transfer-more-than-available": refuse(
            "/programs/{p}/transfers",
            lambda ids: {"from_member_id": ids["anna"], "to_member_id": ids["ben"], "points": 34},
            "insufficient_points",
        ),
        "reverse-transfer-after-receiver-spent": refuse(
            JOURNALS + "/{transfer}/reverse", {}, "insufficient_points", prepare=_receiver_spends
        ),
        # refunds and reversals
        "refund-redeem-beyond-original": refuse(
            JOURNALS + "/{redeem}/refund", {"points": 31}, "refund_exceeds_original"
        ),
        "refund-beyond-what-is-left": refuse(
            JOURNALS + "/{redeem}/refund",
            {"points": 11},
            "refund_exceeds_original",
            prepare=_partial_refund,
        ),
        "refund-of-fully-refunded": refuse(
            JOURNALS + "/{refunded_redeem}/refund", {"points": 1}, "refund_exceeds_original"
        ),
        "refund-capture-beyond-original": refuse(
            JOURNALS + "/{capture}/refund", {"points": 11}, "refund_exceeds_original"
        ),
        "refund-earn-beyond-original": refuse(
            JOURNALS + "/{earn}/refund", {"points": 101}, "refund_exceeds_original"
        ),
        "refund-a-hold": refuse(
            JOURNALS + "/{hold_journal}/refund", {"points": 1}, "journal_not_refundable"
        ),
        "refund-a-transfer": refuse(
            JOURNALS + "/{transfer}/refund", {"points": 1}, "journal_not_refundable"
        ),
        "refund-a-release": refuse(
            JOURNALS + "/{release}/refund", {"points": 1}, "journal_not_refundable"
        ),
        "refund-an-adjustment": refuse(
            JOURNALS + "/{adjust}/refund", {"points": 1}, "journal_not_refundable"
        ),
        "refund-a-reversal": refuse(
            JOURNALS + "/{reversal}/refund", {"points": 1}, "journal_not_refundable"
        ),
        "reverse-a-hold": refuse(
            JOURNALS + "/{hold_journal}/reverse", {}, "journal_not_reversible"
        ),
        "reverse-a-release": refuse(JOURNALS + "/{release}/reverse", {}, "journal_not_reversible"),
        "reverse-a-reversal": refuse(
            JOURNALS + "/{reversal}/reverse", {}, "journal_not_reversible"
        ),
        "second-reversal": refuse(
            JOURNALS + "/{reversed_earn}/reverse", {}, "journal_already_reversed"
        ),
        "refund-after-reversal": refuse(
            JOURNALS + "/{reversed_earn}/refund", {"points": 1}, "journal_already_reversed"
        ),
        "reverse-fully-refunded": refuse(
            JOURNALS + "/{refunded_redeem}/reverse", {}, "nothing_left_to_reverse"
        ),
        # programs and enrollment
        "program-code-taken": refuse(
            "/programs", {"code": "bonus", "name": "Again", "currency": "EUR"}, "program_code_taken"
        ),
        "enroll-twice": refuse(
            "/programs/{p}/members",
            lambda ids: {"member_id": ids["anna"]},
            "member_already_enrolled",
        ),
        # an earn from the future (beyond 5 minutes of clock skew) is refused by the operation
        "earn-effective-at-in-future": refuse(
            MEMBER + "/earn",
            {"points": 5, "effective_at": "2025-01-15T13:00:00+00:00"},
            "effective_at_in_future",
        ),
    }
    for name, case in cases.items():
        yield pytest.param(case, id=name)


def input_cases() -> Iterator[Any]:
    adjust = MEMBER + "/adjustments"
    program = ENDPOINTS["create-program"][1]
    cases = {
        "transfer-to-self": reject(
            "/programs/{p}/transfers",
            lambda ids: {"from_member_id": ids["anna"], "to_member_id": ids["anna"], "points": 5},
            "same_account_transfer",
        ),
        "adjust-without-reason": reject(
            adjust, {"points": 5, "actor": "support"}, "validation_failed"
        ),
        "adjust-empty-reason": reject(
            adjust, {"points": 5, "reason": "", "actor": "support"}, "validation_failed"
        ),
        "adjust-blank-reason": reject(
            adjust, {"points": 5, "reason": "   ", "actor": "support"}, "reason_required"
        ),
        "adjust-null-reason": reject(
            adjust, {"points": 5, "reason": None, "actor": "support"}, "validation_failed"
        ),
        "adjust-without-actor": reject(
            adjust, {"points": 5, "reason": "goodwill"}, "validation_failed"
        ),
        "adjust-blank-actor": reject(
            adjust, {"points": 5, "reason": "goodwill", "actor": " \t "}, "reason_required"
        ),
        "earn-effective-at-without-offset": reject(
            MEMBER + "/earn",
            {"points": 5, "effective_at": "2025-01-15T11:00:00"},
            "validation_failed",
        ),
        "earn-effective-at-not-a-time": reject(
            MEMBER + "/earn", {"points": 5, "effective_at": "yesterday"}, "validation_failed"
        ),
        "earn-reference-too-long": reject(
            MEMBER + "/earn", {"points": 5, "reference": "x" * 201}, "validation_failed"
        ),
        "refund-reason-too-long": reject(
            JOURNALS + "/{redeem}/refund", {"points": 1, "reason": "x" * 501}, "validation_failed"
        ),
        "enroll-both-id-and-name": reject(
            "/programs/{p}/members",
            lambda ids: {"member_id": ids["ben"], "display_name": "Ben"},
            "validation_failed",
        ),
        "enroll-neither-id-nor-name": reject("/programs/{p}/members", {}, "validation_failed"),
        "enroll-bad-email": reject(
            "/programs/{p}/members",
            {"display_name": "Eva", "email": "eva at home"},
            "validation_failed",
        ),
        "enroll-empty-name": reject(
            "/programs/{p}/members", {"display_name": ""}, "validation_failed"
        ),
        "create-program-bad-code": reject(
            "/programs", {**program, "code": "Not A Code"}, "validation_failed"
        ),
        "create-program-bad-currency": reject(
            "/programs", {**program, "currency": "eur"}, "validation_failed"
        ),
        "create-program-unknown-time-zone": reject(
            "/programs", {**program, "timezone": "Mars/Olympus_Mons"}, "validation_failed"
        ),
        "create-program-unknown-expiry-kind": reject(
            "/programs", {**program, "expiry_kind": "weekly"}, "validation_failed"
        ),
        "create-program-expiring-without-value": reject(
            "/programs",
            {**program, "expiry_kind": "after_days", "expiry_value": 0},
            "validation_failed",
        ),
        "create-program-missing-name": reject(
            "/programs", {"code": "fresh", "currency": "EUR"}, "validation_failed"
        ),
    }
    for name, case in cases.items():
        yield pytest.param(case, id=name)


def key_cases() -> Iterator[Any]:
    for endpoint, (path, body) in ENDPOINTS.items():
        for name, key, code in [
            ("missing", None, "idempotency_key_missing"),
            ("empty", "", "idempotency_key_missing"),
            ("129-chars", "k" * 129, "idempotency_key_invalid"),
            ("with-space", "order 4711", "idempotency_key_invalid"),
            ("non-ascii", "schlüssel-4711".encode(), "idempotency_key_invalid"),
        ]:
            yield pytest.param(reject(path, body, code, key=key), id=f"{endpoint}-key-{name}")


def content_cases() -> Iterator[Any]:
    for endpoint in WITH_BODY:
        path = ENDPOINTS[endpoint][0]
        body = ENDPOINTS[endpoint][1]
        yield pytest.param(
            reject(path, Raw(b'{"points": 5,'), "malformed_json"), id=f"{endpoint}-malformed-json"
        )
        if endpoint == "earn":
            yield pytest.param(
                reject(path, Raw(b"{bad json}"), "malformed_json"), id=f"{endpoint}-not-json"
            )
            yield pytest.param(
                reject(path, Raw(b"\xff\xfe not json"), "malformed_json"),
                id=f"{endpoint}-not-utf8",
            )
            yield pytest.param(
                reject(path, Raw(b'"five"'), "validation_failed"), id=f"{endpoint}-json-string"
            )
        yield pytest.param(
            reject(
                path,
                Raw(b"points=5", "application/x-www-form-urlencoded"),
                "malformed_json",
            ),
            id=f"{endpoint}-form-encoded",
        )
        yield pytest.param(
            reject(path, Raw(b"[5]"), "validation_failed"), id=f"{endpoint}-json-array"
        )
        # An empty body is no JSON document at all.
        yield pytest.param(reject(path, Raw(b""), "malformed_json"), id=f"{endpoint}-empty-body")
        if callable(body):
            unknown: Body = lambda ids, body=body: {**body(ids), "pointz": 5}  # noqa: E731
        else:
            unknown = {**body, "pointz": 5}
        yield pytest.param(
            reject(path, unknown, "validation_failed"), id=f"{endpoint}-unknown-field"
        )


def path_id_cases() -> Iterator[Any]:
    for endpoint, (path, body) in ENDPOINTS.items():
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        for name in names:
            for label, value in [("0", 0), ("negative", -1), ("over-int64", INT64_OVERFLOW)]:
                bad = path.replace("{" + name + "}", str(value))
                yield pytest.param(
                    reject(bad, body, "validation_failed"), id=f"{endpoint}-{name}-id-{label}"
                )
            bad = path.replace("{" + name + "}", "abc")
            yield pytest.param(reject(bad, body, "not_found"), id=f"{endpoint}-{name}-id-text")


def auth_cases() -> Iterator[Any]:
    for endpoint, (path, body) in ENDPOINTS.items():
        yield pytest.param(
            reject(path, body, "unauthorized", authorization=None), id=f"{endpoint}-no-auth"
        )
        yield pytest.param(
            reject(path, body, "unauthorized", authorization="Bearer not-a-key"),
            id=f"{endpoint}-wrong-key",
        )
    earn_path, earn_body = ENDPOINTS["earn"]
    for name, value in [
        ("basic-scheme", f"Basic {SHOP_SECRET}"),
        ("bearer-without-key", "Bearer"),
        ("bearer-blank-key", "Bearer    "),
        ("key-without-scheme", SHOP_SECRET),
        ("key-prefix", f"Bearer {SHOP_SECRET[:-1]}"),
        ("key-with-suffix", f"Bearer {SHOP_SECRET}x"),
        ("two-keys", f"Bearer {SHOP_SECRET},{RIVAL_SECRET}"),
    ]:
        yield pytest.param(
            reject(earn_path, earn_body, "unauthorized", authorization=value),
            id=f"earn-auth-{name}",
        )
    # No key and no authorization: authentication comes first.
    yield pytest.param(
        reject(earn_path, earn_body, "unauthorized", authorization=None, key=None),
        id="earn-no-auth-no-key",
    )


def read_cases() -> Iterator[Any]:
    history = MEMBER + "/history"
    for name, query, code in [
        ("bad-cursor", "?cursor=not-a-cursor", "invalid_cursor"),
        ("cursor-of-zero", "?cursor=ajA", "invalid_cursor"),  # "j0"
        ("cursor-too-long", "?cursor=" + "a" * 65, "validation_failed"),
        ("limit-zero", "?limit=0", "validation_failed"),
        ("limit-too-big", "?limit=201", "validation_failed"),
        ("limit-not-a-number", "?limit=ten", "validation_failed"),
    ]:
        yield pytest.param(
            reject(history + query, None, code, method="GET", key=None), id=f"history-{name}"
        )
    for name, path, code in [
        ("unknown-program", "/programs/{unknown}", "program_not_found"),
        ("unknown-member", "/members/{unknown}", "member_not_found"),
        ("balance-unknown-member", "/programs/{p}/members/{unknown}/balance", "member_not_found"),
        ("balance-not-enrolled", "/programs/{p}/members/{carl}/balance", "member_not_enrolled"),
        ("unknown-journal", JOURNALS + "/{unknown}", "journal_not_found"),
        ("unknown-hold", "/programs/{p}/holds/{unknown}", "hold_not_found"),
        ("program-id-zero", "/programs/0", "validation_failed"),
        ("member-id-over-int64", f"/members/{INT64_OVERFLOW}", "validation_failed"),
    ]:
        yield pytest.param(reject(path, None, code, method="GET", key=None), id=f"get-{name}")


ALL_CASES = [
    case
    for cases in (
        amount_cases(),
        other_number_cases(),
        lookup_cases(),
        business_cases(),
        input_cases(),
        key_cases(),
        content_cases(),
        path_id_cases(),
        auth_cases(),
        read_cases(),
    )
    for case in cases
]


# --- running a case ------------------------------------------------------------------------


def _resolve(value: Any, ids: dict[str, Any]) -> Any:
    return value(ids) if callable(value) else value


def send(world: World, case: Case, key: Any) -> Any:
    ids = world.ids
    url = API + case.path.format_map(ids)
    headers: dict[str, Any] = {}
    if case.authorization is not None:
        headers["Authorization"] = case.authorization
    if key is not None:
        headers["Idempotency-Key"] = key
    body = _resolve(case.body, ids)
    client = world.stack.client
    if case.method == "GET":
        return client.get(url, headers=headers)
    if isinstance(body, Raw):
        headers["Content-Type"] = body.content_type
        return client.post(url, content=body.content, headers=headers)
    if body is None:
        return client.post(url, headers=headers)
    return client.post(url, json=body, headers=headers)


def assert_problem(response: Any, case: Case, path: str) -> dict[str, Any]:
    assert (response.status_code, response.headers.get("content-type")) == (
        case.status,
        PROBLEM_JSON,
    ), response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == case.code, body
    assert body["status"] == case.status
    assert body["type"] == f"urn:loyalty:problem:{case.code}"
    assert body["instance"] == path.split("?")[0]
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


REJECTED = [case for case in ALL_CASES if not case.values[0].stored]
REFUSED = [case for case in ALL_CASES if case.values[0].stored]


def test_every_code_of_the_cases_is_a_known_one() -> None:
    codes = {param.values[0].code for param in ALL_CASES}
    assert codes <= {str(code) for code in ErrorCode}
    assert len({param.id for param in ALL_CASES}) == len(ALL_CASES)
    # Cases that prepare something run on their own copy of the ledger.
    assert all(case.values[0].prepare is None for case in REJECTED)


def test_the_prepared_ledger_is_what_the_cases_assume(world: World) -> None:
    """Guards the cases below: the same world, and a valid request on each endpoint succeeds."""
    stack, ids = world.stack, world.ids
    assert stack.clock() == START
    hold = stack.shop.read("/programs/{p}/holds/{dora_hold}".format_map(ids))
    assert hold["status"] == "pending"
    assert stack.verify() == []
    fresh_hold = stack.shop.ok("/programs/{p}/members/{anna}/holds".format_map(ids), {"points": 1})
    for endpoint, (path, body) in ENDPOINTS.items():
        if endpoint == "release":  # the capture before it resolved the world's pending hold
            path = path.replace("{hold}", str(fresh_hold["hold"]["hold_id"]))
        response = stack.shop.post(path.format_map(ids), _resolve(body, ids))
        assert response.status_code == 201, (endpoint, response.text)
    assert stack.verify() == []


@pytest.mark.parametrize("case", REFUSED)
def test_business_refusal_is_stored_and_changes_nothing(world: World, case: Case) -> None:
    """Refused by the operation itself (on a fresh copy of the ledger): the answer is stored
    under the key, a retry replays it, and the ledger is as it was."""
    stack = world.stack
    if case.prepare is not None:
        case.prepare(world)
    before = stack.snapshot()
    keys_before = stack.idempotency_rows()
    key = stack.shop.new_key()
    path = API + case.path.format_map(world.ids)

    response = send(world, case, key)
    body = assert_problem(response, case, path)
    assert "idempotent-replayed" not in response.headers
    assert stack.snapshot() == before
    keys_after = stack.idempotency_rows()
    added = {k: v for k, v in keys_after.items() if k not in keys_before}
    assert added == {("shop", key): case.code}

    again = send(world, case, key)
    assert assert_problem(again, case, path) == body
    assert again.headers["idempotent-replayed"] == "true"
    assert stack.snapshot() == before
    assert stack.idempotency_rows() == keys_after
    assert stack.verify() == []


@pytest.mark.parametrize("case", REJECTED)
def test_bad_input_is_rejected_before_the_operation(shared_world: World, case: Case) -> None:
    """Refused before anything runs (all on one copy of the ledger): the exact problem, no
    change to the ledger, and no idempotency key stored (a corrected retry may reuse it)."""
    stack = shared_world.stack
    before = stack.snapshot()
    keys_before = stack.idempotency_rows()
    key = stack.shop.new_key() if case.key is KEYED else case.key
    path = API + case.path.format_map(shared_world.ids)

    response = send(shared_world, case, key)
    assert_problem(response, case, path)
    assert "idempotent-replayed" not in response.headers
    if case.status == 401:
        assert response.headers["www-authenticate"] == 'Bearer realm="loyalty"'
    assert stack.snapshot() == before
    assert stack.idempotency_rows() == keys_before, "a rejected request stored its key"


def test_the_shared_ledger_survived_every_bad_request(
    shared_world: World, world_template: tuple[Path, dict[str, Any]]
) -> None:
    """Runs after the rejections above: the shared copy is still the prepared ledger."""
    template, _ = world_template
    with ExitStack() as exits:
        pristine = open_stack(
            exits,
            copy_sqlite(template, template.with_name("pristine.db")),
            MutableClock(),
            merchant_ids=(shared_world.ids["shop_merchant"], shared_world.ids["rival_merchant"]),
        )
        expected, expected_keys = pristine.snapshot(), pristine.idempotency_rows()
    assert shared_world.stack.snapshot() == expected
    assert shared_world.stack.idempotency_rows() == expected_keys
    assert shared_world.stack.verify() == []
