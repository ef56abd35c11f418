"""Outgoing webhooks end to end against a real receiver on loopback (``http.server`` in a
thread): events found after the fact in the ledger's own tables, queued once per endpoint,
signed, retried by the schedule (the app's clock moves through it: nothing sleeps), logged, and
never in the way of a till. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.app.settings import DEFAULT_SECRET_KEY
from loyalty.db.engine import create_engine, in_transaction
from loyalty.db.tables import (
    accounts,
    journals,
    rule_sets,
    webhook_attempts,
    webhook_cursors,
    webhook_deliveries,
    webhook_endpoints,
)
from loyalty.domain import webhooks as wh
from loyalty.services.context import Staff
from loyalty.services.expiry import run_expiry_sweep
from loyalty.services.rule_documents import (
    STARTER_RULES,
    LocalizedText,
    RuleSetDocument,
    TierLevelDocument,
    TierPolicyDocument,
)
from loyalty.services.secret_box import SecretBox
from loyalty.services.webhook_dispatch import DispatchSettings, WebhookDispatcher
from loyalty.services.webhooks import Webhooks
from tests.admin.conftest import AdminStack, _open_admin
from tests.admin.conftest import admin as admin
from tests.admin.conftest import any_admin as any_admin
from tests.app.conftest import MutableClock
from tests.app.conftest import clock as clock
from tests.support.webhook_receiver import WebhookReceiver, running_receiver

BOX = SecretBox(DEFAULT_SECRET_KEY.encode())
ALL_EVENTS = [str(t) for t in wh.SUBSCRIBABLE]


@dataclass
class World:
    """The app, an owner of the shop, the webhook services on the app's clock, a receiver."""

    stack: AdminStack
    owner: Staff
    webhooks: Webhooks
    dispatcher: WebhookDispatcher
    receiver: WebhookReceiver

    @property
    def clock(self) -> MutableClock:
        return self.stack.clock

    def endpoint(
        self, path: str, events: list[str] | None = None, program_id: int | None = None
    ) -> tuple[int, str]:
        issued = self.stack.stack.run(
            lambda: self.webhooks.create(
                self.owner,
                url=self.receiver.url(path),
                description=f"receiver {path}",
                events=events or ALL_EVENTS,
                program_id=program_id,
            )
        )
        return issued.endpoint.endpoint_id, issued.secret

    def run_once(self) -> Any:
        return self.stack.stack.run(self.dispatcher.run_once)

    def program(self, code: str = "bonus") -> int:
        program_id: int = self.stack.stack.create_program(code=code)["program_id"]
        return program_id

    def member(self, program_id: int, name: str = "Ann") -> int:
        return self.stack.stack.enroll(program_id, name)

    def earn(self, program_id: int, member_id: int, points: int) -> dict[str, Any]:
        return self.stack.stack.shop.ok(
            f"/programs/{program_id}/members/{member_id}/earn", {"points": points}
        )

    def redeem(self, program_id: int, member_id: int, points: int) -> dict[str, Any]:
        return self.stack.stack.shop.ok(
            f"/programs/{program_id}/members/{member_id}/redeem", {"points": points}
        )

    def rows(self, table: Any, *where: Any) -> list[dict[str, Any]]:
        async def read(conn: AsyncConnection) -> list[dict[str, Any]]:
            result = await conn.execute(select(table).where(*where).order_by(*table.primary_key))
            return [dict(row._mapping) for row in result]

        return self.stack.stack.read_db(read)


def _owner(stack: AdminStack) -> Staff:
    view = stack.add_staff("owner")
    return Staff(
        staff_id=view.staff_id,
        merchant_id=stack.shop_id,
        role=view.role,
        email=view.email,
        display_name=view.display_name,
    )


def _world(stack: AdminStack, receiver: WebhookReceiver, **settings: Any) -> World:
    dispatcher = WebhookDispatcher(
        stack.stack.engine,
        BOX,
        stack.clock,
        settings=DispatchSettings(**settings),
        random=lambda: 0.5,  # no jitter: the schedule's delays exactly
    )
    webhooks = Webhooks(stack.stack.engine, BOX, dispatcher, production=False, clock=stack.clock)
    return World(stack, _owner(stack), webhooks, dispatcher, receiver)


@pytest.fixture
def world(any_admin: AdminStack) -> Iterator[World]:
    with running_receiver(any_admin.clock) as receiver:
        yield _world(any_admin, receiver)


@pytest.fixture
def pg_admin(postgres_clean_url: str, clock: MutableClock) -> Iterator[AdminStack]:
    with ExitStack() as exits:
        yield _open_admin(exits, postgres_clean_url, clock)


@pytest.fixture
def sqlite_world(admin: AdminStack) -> Iterator[World]:
    with running_receiver(admin.clock) as receiver:
        yield _world(admin, receiver)


def _check_signature(secret: str, received: Any) -> None:
    """Both ways: the domain's verify, and HMAC-SHA256 computed here from the spec."""
    wh.verify(secret, received.headers, received.body, received.at)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{received.event_id}.{received.headers['webhook-timestamp']}.".encode()
    mac = hmac.new(key, signed + received.body, hashlib.sha256).digest()
    assert received.headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
    assert int(received.headers["webhook-timestamp"]) == int(received.at.timestamp())


# --- the demand ----------------------------------------------------------------------


def test_a_receiver_failing_twice_gets_each_event_accepted_exactly_once(world: World) -> None:
    """500, 500, then 200: three attempts per event, 30 s and 2 min apart by the schedule, one
    accepted delivery per event, every message signed."""
    world.receiver.script = lambda _path, _event, seen: 500 if seen < 2 else 200
    program = world.program()
    ann, bob = world.member(program, "Ann"), world.member(program, "Bob")
    _, secret = world.endpoint("/crm", ["points.earned"])
    first = world.earn(program, ann, 120)
    second = world.earn(program, bob, 30)
    events = {f"journal:{first['journal_id']}", f"journal:{second['journal_id']}"}

    world.run_once()
    assert Counter(r.status for r in world.receiver.received) == {500: 2}
    world.run_once()  # not due yet: nothing is sent again
    world.clock.advance(seconds=29)
    world.run_once()
    assert len(world.receiver.received) == 2
    world.clock.advance(seconds=1)
    world.run_once()
    assert Counter(r.status for r in world.receiver.received) == {500: 4}
    world.clock.advance(seconds=119)
    world.run_once()
    assert len(world.receiver.received) == 4
    world.clock.advance(seconds=1)
    world.run_once()
    world.clock.advance(days=3)
    world.run_once()

    assert world.receiver.accepted_ids() == Counter(dict.fromkeys(events, 1))
    assert len(world.receiver.received) == 6
    for received in world.receiver.received:
        _check_signature(secret, received)
    by_event = {r.event_id: r.message for r in world.receiver.accepted()}
    message = by_event[f"journal:{first['journal_id']}"]
    assert message["type"] == "points.earned"
    assert message["data"]["member_id"] == ann
    assert message["data"]["points"] == 120
    assert message["data"]["program"] == {"id": program, "code": "bonus"}

    deliveries = world.rows(webhook_deliveries)
    assert {d["event_id"] for d in deliveries} == events
    for delivery in deliveries:
        assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)
        assert delivery["last_status_code"] == 200
        assert delivery["next_attempt_at"] is None
        log = world.rows(webhook_attempts, webhook_attempts.c.delivery_id == delivery["id"])
        assert [a["status_code"] for a in log] == [500, 500, 200]
        assert [a["error"] for a in log][:2] == ["HTTP 500: receiver says no"] * 2
        assert log[1]["at"] - log[0]["at"] == timedelta(seconds=30)
        assert log[2]["at"] - log[1]["at"] == timedelta(minutes=2)


def test_every_kind_of_event_reaches_the_endpoints_that_subscribed(world: World) -> None:
    program = world.program("bonus")
    other = world.stack.stack.create_program(code="other", expiry_kind="never", expiry_value=0)[
        "program_id"
    ]
    _publish_tiers(world, program)
    ann = world.member(program, "Ann")
    carl = world.member(other, "Carl")
    earned_only, _ = world.endpoint("/earned-bonus", ["points.earned"], program_id=program)
    everything, _ = world.endpoint("/all")
    disabled, _ = world.endpoint("/disabled")
    world.stack.stack.run(lambda: world.webhooks.set_enabled(world.owner, disabled, False))
    rival = _rival_endpoint(world, "/rival")

    order = world.stack.stack.shop.ok(
        f"/programs/{program}/orders",
        {
            "member_id": ann,
            "reference": "A-1",
            "basket": {
                "currency": "EUR",
                "lines": [{"line_id": "1", "sku": "A", "quantity": 1, "unit_price": 50_000}],
            },
        },
    )
    assert order["tier"] == "silver"
    world.redeem(program, ann, 100)
    world.earn(other, carl, 40)
    world.run_once()

    # 20 days on, the order's points (30-day expiry) lapse within the 14-day notice period.
    world.clock.advance(days=20)
    world.run_once()
    world.run_once()  # once a day only
    world.clock.advance(days=11)
    world.stack.stack.run(lambda: run_expiry_sweep(world.stack.stack.engine, at=world.clock.now))
    world.run_once()

    all_types = Counter(r.message["type"] for r in world.receiver.at("/all"))
    assert all_types == {
        "points.earned": 2,
        "points.redeemed": 1,
        "tier.changed": 2,
        "points.expiring_soon": 1,
        "points.expired": 1,
    }
    earned = [r.message for r in world.receiver.at("/earned-bonus")]
    assert [(m["type"], m["data"]["program"]["id"]) for m in earned] == [("points.earned", program)]
    assert world.receiver.at("/disabled") == []
    assert world.receiver.at("/rival") == []
    messages = {r.message["type"]: r.message for r in world.receiver.at("/all")}
    # Deliveries go out several at a time, so they may arrive in any order: order by event id.
    tier_messages = sorted(
        (r.message for r in world.receiver.at("/all") if r.message["type"] == "tier.changed"),
        key=lambda message: int(message["id"].rsplit(":", 1)[1]),
    )
    tiers = [message["data"]["tier"] for message in tier_messages]
    assert tiers == [
        {"before": None, "after": "base", "reason": "enrolled"},
        {"before": "base", "after": "silver", "reason": "upgrade"},
    ]
    assert messages["points.redeemed"]["data"]["points"] == 100
    soon = messages["points.expiring_soon"]
    assert soon["data"]["member_id"] == ann
    assert soon["data"]["points"] == order["points"] - 100
    assert soon["id"] == f"expiring:{_account_of(world, ann)}:{soon['data']['last_valid_day']}"
    assert messages["points.expired"]["data"]["points"] == order["points"] - 100
    # No delivery was even queued for the disabled endpoint, nor for the rival's.
    queued = Counter(d["endpoint_id"] for d in world.rows(webhook_deliveries))
    assert queued[disabled] == 0
    assert queued[rival] == 0
    assert queued[earned_only] == 1
    assert queued[everything] == 7


def test_erased_members_get_no_events(world: World) -> None:
    program = world.program()
    ann, bob = world.member(program, "Ann"), world.member(program, "Bob")
    world.endpoint("/all")
    world.earn(program, ann, 10)
    world.stack.stack.run(world.dispatcher.find_events)  # queued, not sent yet
    world.earn(program, bob, 20)
    erase = world.stack.stack.app.state.member_privacy.erase
    world.stack.stack.run(erase, ann, world.stack.shop_id, world.clock.now)
    world.run_once()

    assert [r.message["data"]["member_id"] for r in world.receiver.received] == [bob]
    about_ann = [
        d for d in world.rows(webhook_deliveries) if d["payload"]["data"]["member_id"] == ann
    ]
    assert [(d["status"], d["last_error"]) for d in about_ann] == [
        ("failed", "member erased: not sent")
    ]


def test_a_slow_receiver_never_holds_up_the_till(world: World) -> None:
    """While a delivery waits for the receiver's answer, a sale completes (no transaction is
    open during the request: on SQLite the write lock is free)."""
    world.receiver.hold = True
    program = world.program()
    ann = world.member(program)
    world.endpoint("/slow")
    world.earn(program, ann, 10)
    world.stack.stack.run(world.dispatcher.find_events)

    sending = world.stack.stack.client.blocking_portal.start_task_soon(world.dispatcher.send_due)
    assert world.receiver.arrived.wait(10)
    sale = world.earn(program, ann, 25)  # the till's request, while the receiver holds
    world.receiver.timeline.append("sale completed")
    world.receiver.release.set()
    sent = sending.result(timeout=30)

    assert world.receiver.timeline == ["arrived", "sale completed", "answered"]
    assert sale["points"] == 25
    assert sent.delivered == 1


def test_two_dispatchers_share_the_work_without_sending_twice(pg_admin: AdminStack) -> None:
    """Several app processes (the PostgreSQL deployment) find and send each event once."""
    any_admin = pg_admin
    with running_receiver(any_admin.clock) as receiver:
        world = _world(any_admin, receiver)
        program = world.program()
        members = [world.member(program, f"M{i}") for i in range(6)]
        world.endpoint("/shared", ["points.earned"])
        journal_ids = [world.earn(program, m, 5 + i)["journal_id"] for i, m in enumerate(members)]
        for member in members:
            world.earn(program, member, 1)
        url = any_admin.stack.url

        async def two_processes() -> list[Any]:
            engines = [create_engine(url), create_engine(url)]
            try:
                dispatchers = [
                    WebhookDispatcher(
                        engine,
                        BOX,
                        any_admin.clock,
                        settings=DispatchSettings(scan_batch=2, send_batch=3),
                    )
                    for engine in engines
                ]
                results = []
                for _ in range(4):
                    results += await asyncio.gather(*(d.run_once() for d in dispatchers))
                return results
            finally:
                for engine in engines:
                    await engine.dispose()

        results = any_admin.stack.run(two_processes)

    expected = {f"journal:{j}" for j in _journal_ids(world)}
    assert {f"journal:{j}" for j in journal_ids} < expected
    assert len(expected) == 12
    assert receiver.accepted_ids() == Counter(dict.fromkeys(expected, 1))
    assert len(receiver.received) == 12
    assert sum(r.found.queued for r in results) == 12
    assert sum(r.sent.delivered for r in results) == 12
    assert len(world.rows(webhook_deliveries)) == 12
    assert len(world.rows(webhook_attempts)) == 12


# --- finding events ---------------------------------------------------------------------------


def test_a_journal_committed_late_is_still_found(pg_admin: AdminStack) -> None:
    """PostgreSQL hands out ids before commit: a journal with a lower id may become visible
    after a higher one was read. The dispatcher reads again above its durable cursor. (SQLite
    commits one writer at a time: its ids become visible in order.)"""
    any_admin = pg_admin
    with running_receiver(any_admin.clock) as receiver:
        world = _world(any_admin, receiver)
        program = world.program()
        ann, bob = world.member(program, "Ann"), world.member(program, "Bob")
        world.endpoint("/late", ["points.earned"])
        world.run_once()
        account = _account_of(world, ann)
        url = any_admin.stack.url

        async def late_commit() -> int:
            engine = create_engine(url)
            try:
                async with engine.connect() as slow:
                    transaction = await slow.begin()
                    late_id = await slow.scalar(
                        insert(journals)
                        .values(
                            program_id=program,
                            kind="earn",
                            account_id=account,
                            points=7,
                            delta=7,
                            effective_at=world.clock.now,
                            created_at=world.clock.now,
                        )
                        .returning(journals.c.id)
                    )
                    # A higher id (another member's: no lock shared), committed first, and a
                    # pass that reads it.
                    await asyncio.to_thread(world.earn, program, bob, 11)
                    await world.dispatcher.run_once()
                    await transaction.commit()
                    assert late_id is not None
                    return int(late_id)
            finally:
                await engine.dispose()

        late_id = any_admin.stack.run(late_commit)
        assert [r.message["data"]["points"] for r in receiver.received] == [11]
        world.run_once()
        assert [r.message["data"]["points"] for r in receiver.received] == [11, 7]
        assert receiver.received[1].event_id == f"journal:{late_id}"
        world.run_once()
        assert len(receiver.received) == 2


def test_the_durable_cursor_passes_ids_once_they_are_old_enough(world: World) -> None:
    program = world.program()
    ann = world.member(program)
    world.endpoint("/c", ["points.earned"])
    lagless = WebhookDispatcher(
        world.stack.stack.engine,
        BOX,
        world.clock,
        settings=DispatchSettings(lag=timedelta(0)),
        random=lambda: 0.5,
    )
    world.stack.stack.run(lagless.run_once)
    last = world.earn(program, ann, 3)["journal_id"]
    for _ in range(2):  # PostgreSQL: the first pass notes what it saw, the second passes it
        world.stack.stack.run(lagless.run_once)
    cursor = world.rows(webhook_cursors, webhook_cursors.c.source == "journals")
    assert cursor[0]["last_id"] == last
    assert len(world.receiver.received) == 1


def test_an_endpoint_gets_what_happens_from_its_creation_on(world: World) -> None:
    program = world.program()
    ann = world.member(program)
    world.earn(program, ann, 5)  # before the endpoint exists
    world.clock.advance(seconds=1)
    world.endpoint("/new")
    world.run_once()
    assert world.receiver.received == []
    world.earn(program, ann, 6)
    world.run_once()
    assert [r.message["data"]["points"] for r in world.receiver.received] == [6]


def test_a_delivery_gives_up_after_the_last_attempt(sqlite_world: World) -> None:
    world = sqlite_world
    world.receiver.script = lambda _path, _event, _seen: 503
    program = world.program()
    ann = world.member(program)
    world.endpoint("/down", ["points.earned"])
    world.earn(program, ann, 5)
    for _ in range(wh.MAX_ATTEMPTS + 2):
        world.run_once()
        world.clock.advance(days=1)
    (delivery,) = world.rows(webhook_deliveries)
    assert (delivery["status"], delivery["attempts"]) == ("failed", wh.MAX_ATTEMPTS)
    assert len(world.receiver.received) == wh.MAX_ATTEMPTS
    assert delivery["last_error"] == "HTTP 503: receiver says no"


def test_no_answer_is_a_failed_attempt_with_the_reason(sqlite_world: World) -> None:
    world = sqlite_world
    program = world.program()
    ann = world.member(program)
    endpoint, _ = world.endpoint("/gone", ["points.earned"])
    # Nothing listens on port 9 of this machine (discard): the connection is refused.
    world.stack.stack.run(
        lambda: world.webhooks.update(world.owner, endpoint, url="http://127.0.0.1:9/nobody")
    )
    world.earn(program, ann, 5)
    world.run_once()
    (delivery,) = world.rows(webhook_deliveries)
    assert delivery["status"] == "pending"
    assert delivery["last_status_code"] is None
    assert delivery["last_error"].startswith("ConnectError")
    (attempt,) = world.rows(webhook_attempts)
    assert attempt["status_code"] is None


def test_the_app_delivers_by_itself_in_the_background(sqlite_url: str) -> None:
    """The factory runs the dispatcher on its own beat (off any request)."""
    from litestar.testing import TestClient

    from loyalty.app.factory import create_app
    from loyalty.app.settings import Settings, parse_api_keys
    from loyalty.db.tables import merchants

    now = datetime.now(UTC)

    async def setup() -> None:
        engine = create_engine(sqlite_url)
        async with engine.begin() as conn:
            await conn.execute(insert(merchants).values(id=1, name="M", created_at=now))
        await engine.dispose()

    from tests.support.services import run_async

    run_async(setup)
    with running_receiver(lambda: datetime.now(UTC)) as receiver:
        settings = Settings(
            database_url=sqlite_url,
            api_clients=parse_api_keys("bg=bg-secret@1"),
            sweep_interval_seconds=0.05,
        )
        app = create_app(settings)
        headers = {"Authorization": "Bearer bg-secret"}
        with TestClient(app) as client:
            program = client.post(
                "/api/v1/programs",
                json={"code": "p", "name": "P", "currency": "EUR"},
                headers={**headers, "Idempotency-Key": "p"},
            ).json()["program_id"]
            member = client.post(
                f"/api/v1/programs/{program}/members",
                json={"display_name": "Ann"},
                headers={**headers, "Idempotency-Key": "m"},
            ).json()["member_id"]

            async def add_endpoint() -> None:
                async with app.state.engine.begin() as conn:
                    await conn.execute(
                        insert(webhook_endpoints).values(
                            merchant_id=1,
                            url=receiver.url("/bg"),
                            description="",
                            events=["points.earned"],
                            secret_sealed=BOX.seal(wh.new_secret(b"k" * 32)),
                            created_at=datetime.now(UTC),
                            updated_at=datetime.now(UTC),
                        )
                    )

            client.blocking_portal.call(add_endpoint)

            async def cursor_exists() -> bool:
                async with app.state.engine.connect() as conn:
                    found = await conn.scalar(
                        select(webhook_cursors.c.last_id).where(
                            webhook_cursors.c.source == "journals"
                        )
                    )
                    return found is not None

            # The first pass starts the cursor where the ledger stands; earn after it.
            for _ in range(200):
                if client.blocking_portal.call(cursor_exists):
                    break
                time.sleep(0.025)
            client.post(
                f"/api/v1/programs/{program}/members/{member}/earn",
                json={"points": 9},
                headers={**headers, "Idempotency-Key": "e"},
            )
            assert receiver.arrived.wait(10)
    assert [json.loads(r.body)["data"]["points"] for r in receiver.received] == [9]


# --- helpers -----------------------------------------------------------------------------------


def _publish_tiers(world: World, program_id: int) -> None:
    name = LocalizedText(de="x", en="x")
    document = RuleSetDocument(
        earning_rules=STARTER_RULES.earning_rules,
        tiers=TierPolicyDocument(
            levels=[
                TierLevelDocument(code="base", name=name, threshold=0),
                TierLevelDocument(code="silver", name=name, threshold=100),
            ]
        ),
    )
    at = world.clock.now

    async def publish(conn: AsyncConnection) -> None:
        await conn.execute(
            insert(rule_sets).values(
                program_id=program_id,
                version=2,
                status="published",
                document=msgspec.to_builtins(document),
                effective_from=at,
                created_at=at,
                created_by="test",
                published_at=at,
                published_by="test",
            )
        )

    world.stack.stack.run(in_transaction, world.stack.stack.engine, publish)


def _rival_endpoint(world: World, path: str) -> int:
    async def add(conn: AsyncConnection) -> int:
        endpoint_id = await conn.scalar(
            insert(webhook_endpoints)
            .values(
                merchant_id=world.stack.rival_id,
                url=world.receiver.url(path),
                description="rival",
                events=ALL_EVENTS,
                secret_sealed=BOX.seal(wh.new_secret(b"r" * 32)),
                created_at=world.clock.now,
                updated_at=world.clock.now,
            )
            .returning(webhook_endpoints.c.id)
        )
        assert endpoint_id is not None
        return int(endpoint_id)

    endpoint_id: int = world.stack.stack.run(in_transaction, world.stack.stack.engine, add)
    return endpoint_id


def _account_of(world: World, member_id: int) -> int:
    (row,) = world.rows(accounts, accounts.c.member_id == member_id)
    return int(row["id"])


def _journal_ids(world: World) -> list[int]:
    async def read(conn: AsyncConnection) -> list[int]:
        rows = await conn.execute(
            select(journals.c.id).where(journals.c.kind == "earn").order_by(journals.c.id)
        )
        return [row.id for row in rows]

    return world.stack.stack.read_db(read)


def test_the_command_line_runs_one_pass(sqlite_world: World) -> None:
    from click.testing import CliRunner

    from loyalty.app.cli import main

    world = sqlite_world
    program = world.program()
    ann = world.member(program)
    world.endpoint("/cli", ["points.earned"])
    world.run_once()  # the cursor exists; the next earn is news
    world.earn(program, ann, 4)
    result = CliRunner().invoke(
        main, ["webhooks", "deliver"], env={"LOYALTY_DATABASE_URL": world.stack.stack.url}
    )
    assert result.exit_code == 0, result.output
    assert "1 deliveries queued" in result.output
    assert "1 delivered" in result.output
    assert [r.message["data"]["points"] for r in world.receiver.received] == [4]
