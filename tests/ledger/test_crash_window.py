"""The crash window (DESIGN.md §3, invariant 4): the key row commits with the operation.

- An operation that committed but whose answer never reached the client (the client gave up and
  cancelled, the connection broke after COMMIT, the HTTP layer failed after the service returned)
  is replayed, never repeated, when retried with the same key.
- A failure before COMMIT (in the ledger writes, at the key insert, or a client cancelling
  mid-transaction) leaves no trace: no journal, no lot, no key row; the retry runs once.
- A business refusal is an answer too: stored and replayed even after the member could afford it.

On SQLite and PostgreSQL (``db_url``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.app.factory import create_app
from loyalty.app.settings import Settings, parse_api_keys
from loyalty.db.engine import create_engine
from loyalty.db.tables import idempotency_keys, journals, lot_draws, lots, merchants
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services import idempotency, ledger_writes
from loyalty.services.context import Caller
from loyalty.services.idempotency import Replayable
from loyalty.services.ledger import Ledger
from loyalty.services.programs import Programs
from loyalty.services.queries import Queries
from loyalty.services.results import Balance, OperationResult
from loyalty.services.verify import verify_ledger

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


class SimulatedCrashError(Exception):
    """What a test injects where a real process would die or a connection would break."""


@dataclass
class World:
    engine: AsyncEngine
    ledger: Ledger
    caller: Caller
    program_id: int
    member_id: int
    other_id: int

    async def earn(self, points: int, member_id: int | None = None) -> OperationResult:
        done = await self.ledger.earn(
            self.caller,
            f"earn-{uuid.uuid4().hex}",
            program_id=self.program_id,
            member_id=member_id or self.member_id,
            points=points,
        )
        return done.result

    async def balance(self, member_id: int | None = None) -> Balance:
        view = await Queries(self.engine).balance(
            self.caller, self.program_id, member_id or self.member_id
        )
        return Balance(posted=view.posted, held=view.held, available=view.available)

    async def latest_journal_id(self) -> int:
        page = await Queries(self.engine).history(
            self.caller, self.program_id, self.member_id, limit=1
        )
        return page.items[0].journal_id

    async def counts(self) -> dict[str, int]:
        """Rows that any operation of this program would have left behind."""
        async with self.engine.connect() as conn:
            found = {}
            for name, table, where in (
                ("journals", journals, journals.c.program_id == self.program_id),
                ("lots", lots, lots.c.id.is_not(None)),
                ("lot_draws", lot_draws, lot_draws.c.id.is_not(None)),
                (
                    "keys",
                    idempotency_keys,
                    idempotency_keys.c.client_id == self.caller.client_id,
                ),
            ):
                found[name] = int(
                    await conn.scalar(select(func.count()).select_from(table).where(where)) or 0
                )
        return found

    async def stored_key(self, key: str) -> Any:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    select(
                        idempotency_keys.c.outcome,
                        idempotency_keys.c.journal_id,
                    ).where(
                        idempotency_keys.c.client_id == self.caller.client_id,
                        idempotency_keys.c.key == key,
                    )
                )
            ).first()


async def make_world(engine: AsyncEngine) -> World:
    async with engine.begin() as conn:
        merchant_id = await conn.scalar(
            merchants.insert()
            .values(name="Crash-Window GmbH", created_at=NOW)
            .returning(merchants.c.id)
        )
    assert merchant_id is not None
    caller = Caller(client_id=f"client-{uuid.uuid4().hex[:8]}", merchant_id=int(merchant_id))
    ledger = Ledger(engine, clock=clock)
    programs = Programs(ledger.executor)
    program = await programs.create_program(
        caller, f"program-{uuid.uuid4().hex}", code="CW", name="Crash window", currency="PTS"
    )
    program_id = program.result.program_id
    ids = []
    for name in ("Ada", "Ben"):
        enrolled = await programs.enroll(
            caller, f"enroll-{uuid.uuid4().hex}", program_id=program_id, display_name=name
        )
        ids.append(enrolled.result.member_id)
    return World(engine, ledger, caller, program_id, ids[0], ids[1])


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url, pool_size=5)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    world = await make_world(engine)
    await world.earn(100)
    return world


# --- operations under test ---------------------------------------------------------------------

Call = Callable[[str], Awaitable[Replayable[OperationResult]]]


async def prepare(world: World, operation: str) -> tuple[Call, Balance, str]:
    """Set the stage for ``operation`` on a member holding 100 points: the call (by key), the
    member's balance once it took effect, and the journal kind it writes."""
    ledger, caller, pid, member = world.ledger, world.caller, world.program_id, world.member_id
    if operation == "earn":
        return (
            lambda key: ledger.earn(caller, key, program_id=pid, member_id=member, points=40),
            Balance(posted=140, held=0, available=140),
            "earn",
        )
    if operation == "redeem":
        return (
            lambda key: ledger.redeem(caller, key, program_id=pid, member_id=member, points=30),
            Balance(posted=70, held=0, available=70),
            "redeem",
        )
    if operation == "hold":
        return (
            lambda key: ledger.hold(caller, key, program_id=pid, member_id=member, points=30),
            Balance(posted=100, held=30, available=70),
            "hold",
        )
    if operation == "capture":
        held = await ledger.hold(caller, "setup-hold", program_id=pid, member_id=member, points=50)
        assert held.result.hold is not None
        hold_id = held.result.hold.hold_id
        return (
            lambda key: ledger.capture(caller, key, program_id=pid, hold_id=hold_id, points=20),
            Balance(posted=80, held=0, available=80),
            "capture",
        )
    if operation == "refund":
        spent = await ledger.redeem(
            caller, "setup-redeem", program_id=pid, member_id=member, points=50
        )
        journal_id = spent.result.journal_id
        return (
            lambda key: ledger.refund(
                caller, key, program_id=pid, journal_id=journal_id, points=20
            ),
            Balance(posted=70, held=0, available=70),
            "refund",
        )
    assert operation == "transfer"
    return (
        lambda key: ledger.transfer(
            caller,
            key,
            program_id=pid,
            from_member_id=member,
            to_member_id=world.other_id,
            points=30,
        ),
        Balance(posted=70, held=0, available=70),
        "transfer",
    )


OPERATIONS = ["earn", "redeem", "hold", "capture", "refund", "transfer"]


async def count_kind(world: World, kind: str) -> int:
    async with world.engine.connect() as conn:
        found = await conn.scalar(
            select(func.count())
            .select_from(journals)
            .where(journals.c.program_id == world.program_id, journals.c.kind == kind)
        )
    return int(found or 0)


class AfterCommit:
    """Wraps the executor's transaction runner: once armed, the first operation that commits
    either raises (the connection broke after COMMIT) or hangs (a slow network the client gives
    up on), so its answer never reaches the caller."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, hang: bool) -> None:
        self.committed = asyncio.Event()
        self.result: Replayable[OperationResult] | None = None
        self.armed = False
        original = idempotency.in_transaction

        async def run(engine: AsyncEngine, work: Any, **kwargs: Any) -> Any:
            outcome = await original(engine, work, **kwargs)
            if self.armed and isinstance(outcome, Replayable) and not outcome.replayed:
                self.armed = False
                self.result = outcome
                self.committed.set()
                if hang:
                    await asyncio.Event().wait()
                raise SimulatedCrashError("connection lost after COMMIT")
            return outcome

        monkeypatch.setattr(idempotency, "in_transaction", run)


async def assert_replayed_once(
    world: World, call: Call, key: str, expected: Balance, kind: str, kinds_before: int
) -> None:
    assert await world.balance() == expected  # the lost operation did commit
    journal_id = await world.latest_journal_id()
    retry = await call(key)
    assert retry.replayed is True
    assert retry.result.journal_id == journal_id
    assert retry.result.balance == expected
    assert await world.balance() == expected
    assert await count_kind(world, kind) == kinds_before + 1
    stored = await world.stored_key(key)
    assert (stored.outcome, stored.journal_id) == ("ok", journal_id)
    assert await verify_ledger(world.engine) == []


# --- committed, answer lost ----------------------------------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_answer_lost_after_commit_is_replayed_not_repeated(
    world: World, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    call, expected, kind = await prepare(world, operation)
    before = await count_kind(world, kind)
    crash = AfterCommit(monkeypatch, hang=False)
    crash.armed = True
    with pytest.raises(SimulatedCrashError):
        await call("lost-answer")
    assert crash.result is not None
    await assert_replayed_once(world, call, "lost-answer", expected, kind, before)
    assert (await call("lost-answer")).result == crash.result.result


@pytest.mark.parametrize("operation", ["redeem", "transfer"])
async def test_client_that_gave_up_after_commit_gets_the_replay(
    world: World, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """The client's task is cancelled (a timeout) after COMMIT, before the answer came back."""
    call, expected, kind = await prepare(world, operation)
    before = await count_kind(world, kind)
    slow = AfterCommit(monkeypatch, hang=True)
    slow.armed = True
    task = asyncio.create_task(call("timed-out"))
    await asyncio.wait_for(slow.committed.wait(), timeout=20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_replayed_once(world, call, "timed-out", expected, kind, before)


async def test_http_500_after_commit_is_replayed_with_the_replay_header(
    world: World, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HTTP layer fails after the service committed: the client sees a 500; its retry with
    the same key gets 201, Idempotent-Replayed: true, and the same journal."""
    from loyalty.app.api import members as members_api

    original = members_api.answer
    failures = [SimulatedCrashError("response lost")]

    def answer(outcome: Any, status_code: int = 201) -> Any:
        if failures:
            raise failures.pop()
        return original(outcome, status_code)

    monkeypatch.setattr(members_api, "answer", answer)
    app = create_app(
        Settings(
            database_url=db_url,
            api_clients=parse_api_keys(f"pos=pos-secret@{world.caller.merchant_id}"),
            sweep_interval_seconds=0,
            db_pool_size=2,
        ),
        clock=clock,
    )
    path = f"/api/v1/programs/{world.program_id}/members/{world.member_id}"
    headers = {"Authorization": "Bearer pos-secret", "Idempotency-Key": "http-lost"}
    try:
        async with (
            app.lifespan(),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client,
        ):
            lost = await client.post(f"{path}/redeem", json={"points": 30}, headers=headers)
            assert (lost.status_code, lost.json()["code"]) == (500, "internal_error")
            assert await world.balance() == Balance(posted=70, held=0, available=70)
            journal_id = await world.latest_journal_id()

            retry = await client.post(f"{path}/redeem", json={"points": 30}, headers=headers)
            assert retry.status_code == 201, retry.text
            assert retry.headers.get("Idempotent-Replayed") == "true"
            assert retry.json()["journal_id"] == journal_id
            assert retry.json()["balance"] == {"posted": 70, "held": 0, "available": 70}

            # A refusal is replayed over HTTP too, with the header.
            refusal = {**headers, "Idempotency-Key": "http-too-much"}
            first = await client.post(f"{path}/redeem", json={"points": 500}, headers=refusal)
            assert (first.status_code, first.json()["code"]) == (422, "insufficient_points")
            assert "Idempotent-Replayed" not in first.headers
            await world.earn(1000)
            again = await client.post(f"{path}/redeem", json={"points": 500}, headers=refusal)
            assert (again.status_code, again.json()["code"]) == (422, "insufficient_points")
            assert again.headers.get("Idempotent-Replayed") == "true"
    finally:
        await app.state.engine.dispose()
    assert await world.balance() == Balance(posted=1070, held=0, available=1070)
    assert await count_kind(world, "redeem") == 1
    assert await verify_ledger(world.engine) == []


# --- failed before commit ------------------------------------------------------------------------


Undo = Callable[[], None]


def fail_save_account_once(
    monkeypatch: pytest.MonkeyPatch, _engine: AsyncEngine
) -> tuple[list[str], Undo]:
    """The process dies after the journal and lots were written, before the balance is saved."""
    original = ledger_writes.save_account
    failed: list[str] = []

    async def save_account(conn: Any, account: Any) -> None:
        if not failed:
            failed.append("save_account")
            raise SimulatedCrashError("died before saving the balance")
        await original(conn, account)

    monkeypatch.setattr(ledger_writes, "save_account", save_account)
    return failed, monkeypatch.undo


def fail_key_insert_once(
    _monkeypatch: pytest.MonkeyPatch, engine: AsyncEngine
) -> tuple[list[str], Undo]:
    """The database fails the key insert, the last statement before COMMIT."""
    failed: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not failed and statement.lstrip().upper().startswith("INSERT INTO IDEMPOTENCY_KEYS"):
            failed.append("idempotency_keys insert")
            raise SimulatedCrashError("died at the key insert")

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    return failed, lambda: event.remove(engine.sync_engine, "before_cursor_execute", before)


@pytest.mark.parametrize("operation", ["earn", "redeem", "transfer"])
@pytest.mark.parametrize(
    "fail", [fail_save_account_once, fail_key_insert_once], ids=["save_account", "key_insert"]
)
async def test_failure_before_commit_leaves_no_trace_and_the_retry_runs_once(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
    fail: Callable[[pytest.MonkeyPatch, AsyncEngine], tuple[list[str], Undo]],
) -> None:
    call, expected, kind = await prepare(world, operation)
    balance_before = await world.balance()
    other_before = await world.balance(world.other_id)
    counts_before = await world.counts()
    failed, undo = fail(monkeypatch, world.engine)
    try:
        with pytest.raises(SimulatedCrashError):
            await call("crashes-first")
    finally:
        undo()
    assert len(failed) == 1
    assert await world.balance() == balance_before
    assert await world.balance(world.other_id) == other_before
    assert await world.counts() == counts_before  # no journal, lot, draw or key row
    assert await world.stored_key("crashes-first") is None
    assert await verify_ledger(world.engine) == []

    first = await call("crashes-first")
    assert first.replayed is False
    assert first.result.balance == expected
    again = await call("crashes-first")
    assert (again.replayed, again.result) == (True, first.result)
    assert await world.balance() == expected
    assert await count_kind(world, kind) == (2 if kind == "earn" else 1)  # setup earned once
    assert await verify_ledger(world.engine) == []


async def test_client_cancelled_before_commit_leaves_no_trace_and_the_retry_runs(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client gives up while the transaction is open: it rolls back, and its locks (the
    SQLite write lock, PostgreSQL's row and advisory locks) go with it."""
    call, expected, _kind = await prepare(world, "redeem")
    counts_before = await world.counts()
    inside = asyncio.Event()
    original = ledger_writes.save_account
    stalls = [True]

    async def save_account(conn: Any, account: Any) -> None:
        if stalls:
            stalls.pop()
            inside.set()
            await asyncio.Event().wait()
        await original(conn, account)

    monkeypatch.setattr(ledger_writes, "save_account", save_account)
    task = asyncio.create_task(call("cancelled"))
    await asyncio.wait_for(inside.wait(), timeout=20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await world.balance() == Balance(posted=100, held=0, available=100)
    assert await world.counts() == counts_before
    retry = await asyncio.wait_for(call("cancelled"), timeout=20)
    assert (retry.replayed, retry.result.balance) == (False, expected)
    assert await count_kind(world, "redeem") == 1
    assert await verify_ledger(world.engine) == []


# --- refusals are answers ------------------------------------------------------------------------


async def test_refusal_is_stored_and_replayed_after_the_member_could_afford_it(
    world: World,
) -> None:
    ledger, caller, pid, member = world.ledger, world.caller, world.program_id, world.member_id

    def redeem(key: str) -> Awaitable[Replayable[OperationResult]]:
        return ledger.redeem(caller, key, program_id=pid, member_id=member, points=150)

    with pytest.raises(DomainError) as refused:
        await redeem("too-much")
    assert (refused.value.code, refused.value.replayed) == (ErrorCode.INSUFFICIENT_POINTS, False)
    assert refused.value.extra == {"requested": 150, "available": 100}
    stored = await world.stored_key("too-much")
    assert (stored.outcome, stored.journal_id) == ("insufficient_points", None)

    await world.earn(100)
    with pytest.raises(DomainError) as replayed:
        await redeem("too-much")
    assert (replayed.value.code, replayed.value.replayed) == (ErrorCode.INSUFFICIENT_POINTS, True)
    assert replayed.value.extra == {"requested": 150, "available": 100}
    assert await world.balance() == Balance(posted=200, held=0, available=200)
    assert await count_kind(world, "redeem") == 0

    # Same key, another request: refused as a reuse, not run.
    with pytest.raises(DomainError) as reused:
        await ledger.redeem(caller, "too-much", program_id=pid, member_id=member, points=149)
    assert reused.value.code is ErrorCode.IDEMPOTENCY_KEY_REUSED
    # A new key is a new request.
    done = await redeem("afford-it-now")
    assert (done.replayed, done.result.balance) == (False, Balance(50, 0, 50))
    assert await verify_ledger(world.engine) == []
