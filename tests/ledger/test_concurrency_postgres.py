"""The ledger under truly concurrent requests on PostgreSQL (DESIGN.md §3, invariants 2, 4, 5, 7).

Every test fires its requests at once with ``asyncio.gather`` over real asyncpg pools, so they
overlap inside PostgreSQL (row locks, advisory locks, READ COMMITTED). What must hold afterwards is
exact: no overdraw, no double effect, no deadlock or driver error reaching a caller, every refusal
one of the expected business codes, and ``verify_ledger() == []``.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.app.factory import create_app
from loyalty.app.settings import Settings, parse_api_keys
from loyalty.db.engine import create_engine
from loyalty.db.tables import accounts, holds, idempotency_keys, journals, merchants
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.context import Caller
from loyalty.services.expiry import SweepResult, run_expiry_sweep
from loyalty.services.idempotency import Replayable
from loyalty.services.ledger import Ledger
from loyalty.services.programs import Programs
from loyalty.services.queries import Queries
from loyalty.services.results import Balance, BalanceView, OperationResult
from loyalty.services.verify import verify_ledger

pytestmark = pytest.mark.postgres

#: The ledger's clock in every test here: fixed, so that expiry dates are exact.
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def new_key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


@dataclass
class World:
    """One merchant, one program and its API client, on one engine."""

    engine: AsyncEngine
    ledger: Ledger
    caller: Caller
    program_id: int

    async def member(self, name: str) -> int:
        enrolled = await Programs(self.ledger.executor).enroll(
            self.caller, new_key("enroll"), program_id=self.program_id, display_name=name
        )
        return enrolled.result.member_id

    async def earn(
        self, member_id: int, points: int, *, effective_at: datetime | None = None
    ) -> OperationResult:
        done = await self.ledger.earn(
            self.caller,
            new_key("earn"),
            program_id=self.program_id,
            member_id=member_id,
            points=points,
            effective_at=effective_at,
        )
        return done.result

    async def balance(self, member_id: int) -> BalanceView:
        return await Queries(self.engine).balance(self.caller, self.program_id, member_id)

    async def count_journals(self, kind: str) -> int:
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                select(func.count())
                .select_from(journals)
                .where(journals.c.program_id == self.program_id, journals.c.kind == kind)
            )
        return int(found or 0)

    async def sum_journal_points(self, kind: str) -> int:
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                select(func.coalesce(func.sum(journals.c.points), 0)).where(
                    journals.c.program_id == self.program_id, journals.c.kind == kind
                )
            )
        return int(found or 0)


async def make_world(
    engine: AsyncEngine,
    *,
    expiry_kind: str = "never",
    expiry_value: int = 0,
    hold_timeout_seconds: int = 900,
) -> World:
    async with engine.begin() as conn:
        merchant_id = await conn.scalar(
            merchants.insert()
            .values(name=f"Merchant {uuid.uuid4().hex[:6]}", created_at=NOW)
            .returning(merchants.c.id)
        )
    assert merchant_id is not None
    caller = Caller(client_id=new_key("client"), merchant_id=int(merchant_id))
    ledger = Ledger(engine, clock=clock)
    program = await Programs(ledger.executor).create_program(
        caller,
        new_key("program"),
        code=f"P{uuid.uuid4().hex[:8]}",
        name="Concurrency",
        currency="PTS",
        expiry_kind=expiry_kind,
        expiry_value=expiry_value,
        hold_timeout_seconds=hold_timeout_seconds,
    )
    return World(engine, ledger, caller, program.result.program_id)


def split(
    outcomes: Iterable[object], allowed: Iterable[ErrorCode]
) -> tuple[list[Replayable[OperationResult]], list[DomainError]]:
    """Successes and expected refusals; anything else (a DBAPIError, a deadlock, an
    unexpected code) fails the test, listed in full."""
    allowed = frozenset(allowed)
    done: list[Replayable[OperationResult]] = []
    refused: list[DomainError] = []
    unexpected: list[object] = []
    for outcome in outcomes:
        if isinstance(outcome, Replayable):
            done.append(outcome)
        elif isinstance(outcome, DomainError) and outcome.code in allowed:
            refused.append(outcome)
        else:
            unexpected.append(outcome)
    assert not unexpected, f"{len(unexpected)} unexpected outcomes, e.g. {unexpected[:3]!r}"
    return done, refused


@pytest.fixture
async def pg_engine(postgres_clean_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine with room for 40 connections (pool 20 + overflow 20)."""
    engine = create_engine(postgres_clean_url, pool_size=20)
    try:
        yield engine
    finally:
        await engine.dispose()


# --- 1. concurrent redeems never overdraw ------------------------------------------------------

BALANCE = 1000
PRICE = 7
REDEEMS = 200


async def test_concurrent_redeems_take_exactly_what_the_balance_allows(
    pg_engine: AsyncEngine,
) -> None:
    world = await make_world(pg_engine)
    member = await world.member("Redeemer")
    await world.earn(member, BALANCE)

    outcomes = await asyncio.gather(
        *(
            world.ledger.redeem(
                world.caller,
                f"redeem-{i}",
                program_id=world.program_id,
                member_id=member,
                points=PRICE,
            )
            for i in range(REDEEMS)
        ),
        return_exceptions=True,
    )

    done, refused = split(outcomes, {ErrorCode.INSUFFICIENT_POINTS})
    wins = BALANCE // PRICE  # 142
    left = BALANCE - wins * PRICE  # 6
    assert (len(done), len(refused)) == (wins, REDEEMS - wins)
    assert not any(outcome.replayed for outcome in done)
    assert not any(error.replayed for error in refused)
    # Serialized on the account row: each success saw exactly the balance the one before left.
    assert sorted(o.result.balance.posted for o in done) == [
        BALANCE - k * PRICE for k in range(wins, 0, -1)
    ]
    assert len({o.result.journal_id for o in done}) == wins
    # A refusal can only happen once the balance is down to what no redeem can take.
    assert all(error.extra == {"requested": PRICE, "available": left} for error in refused)

    balance = await world.balance(member)
    assert (balance.posted, balance.held, balance.available) == (left, 0, left)
    assert await world.count_journals("redeem") == wins
    async with pg_engine.connect() as conn:
        stored = dict(
            (
                await conn.execute(
                    select(idempotency_keys.c.outcome, func.count())
                    .where(
                        idempotency_keys.c.client_id == world.caller.client_id,
                        idempotency_keys.c.key.like("redeem-%"),
                    )
                    .group_by(idempotency_keys.c.outcome)
                )
            ).all()
        )
    assert stored == {"ok": wins, "insufficient_points": REDEEMS - wins}
    assert await verify_ledger(pg_engine) == []


async def test_concurrent_redeems_over_http_take_exactly_what_the_balance_allows(
    pg_engine: AsyncEngine, postgres_clean_url: str
) -> None:
    """The same race through the API, in one event loop (httpx ASGI transport), so the
    requests overlap: 201 for exactly floor(B/X) of them, 422 insufficient_points for the rest."""
    balance_before, requests = 200, 60
    world = await make_world(pg_engine)
    member = await world.member("HTTP redeemer")
    await world.earn(member, balance_before)
    secret = uuid.uuid4().hex
    app = create_app(
        Settings(
            database_url=postgres_clean_url,
            api_clients=parse_api_keys(f"pos={secret}@{world.caller.merchant_id}"),
            sweep_interval_seconds=0,
            db_pool_size=20,
        ),
        clock=clock,
    )
    path = f"/api/v1/programs/{world.program_id}/members/{member}/redeem"
    try:
        async with (
            app.lifespan(),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client,
        ):
            responses = await asyncio.gather(
                *(
                    client.post(
                        path,
                        json={"points": PRICE},
                        headers={
                            "Authorization": f"Bearer {secret}",
                            "Idempotency-Key": f"http-redeem-{i}",
                        },
                    )
                    for i in range(requests)
                )
            )
    finally:
        await app.state.engine.dispose()

    wins = balance_before // PRICE  # 28
    left = balance_before - wins * PRICE  # 4
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * wins + [422] * (requests - wins), [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 422} == {"insufficient_points"}
    assert sorted(r.json()["balance"]["posted"] for r in responses if r.status_code == 201) == [
        balance_before - k * PRICE for k in range(wins, 0, -1)
    ]
    assert not any("idempotent-replayed" in r.headers for r in responses)
    balance = await world.balance(member)
    assert (balance.posted, balance.held, balance.available) == (left, 0, left)
    assert await world.count_journals("redeem") == wins
    assert await verify_ledger(pg_engine) == []


# --- 2. holds, captures, releases, redeems and the expiry sweep racing on one member -----------

HOLD_POINTS = 12
PART_CAPTURE = 5
REDEEM_POINTS = 9
SHORT_HOLD = 60  # seconds: released by a sweep at NOW + 1 day
LONG_HOLD = 7 * 24 * 3600  # outlives every sweep of the test


@dataclass
class HoldRun:
    index: int
    timeout: int
    action: str  # capture | capture_part | release | keep
    hold: Replayable[OperationResult] | DomainError
    resolution: Replayable[OperationResult] | DomainError | None = None


async def test_holds_redeems_and_sweeps_racing_on_one_member_stay_consistent(
    pg_engine: AsyncEngine,
) -> None:
    world = await make_world(pg_engine, expiry_kind="after_days", expiry_value=30)
    member = await world.member("Racer")
    # Lot A is overdue (the sweep at NOW takes its free points), lot B falls due at NOW + 12 h
    # (the sweep at NOW + 1 day takes it), lot C outlives the test.
    await world.earn(member, 300, effective_at=NOW - timedelta(days=40))
    await world.earn(member, 300, effective_at=NOW - timedelta(days=29, hours=12))
    await world.earn(member, 400)
    earned = 1000
    later = NOW + timedelta(days=1)
    rng = random.Random(20250314)
    pid, caller, ledger = world.program_id, world.caller, world.ledger

    async def hold_run(i: int, pause: float) -> HoldRun:
        timeout = SHORT_HOLD if i % 3 == 0 else LONG_HOLD
        action = ("capture", "capture_part", "release", "keep")[i % 4]
        try:
            held = await ledger.hold(
                caller,
                f"hold-{i}",
                program_id=pid,
                member_id=member,
                points=HOLD_POINTS,
                timeout_seconds=timeout,
            )
        except DomainError as error:
            return HoldRun(i, timeout, action, error)
        run = HoldRun(i, timeout, action, held)
        assert held.result.hold is not None
        hold_id = held.result.hold.hold_id
        await asyncio.sleep(pause)
        try:
            if action == "capture":
                run.resolution = await ledger.capture(
                    caller, f"capture-{i}", program_id=pid, hold_id=hold_id
                )
            elif action == "capture_part":
                run.resolution = await ledger.capture(
                    caller, f"capture-{i}", program_id=pid, hold_id=hold_id, points=PART_CAPTURE
                )
            elif action == "release":
                run.resolution = await ledger.release(
                    caller, f"release-{i}", program_id=pid, hold_id=hold_id
                )
        except DomainError as error:
            run.resolution = error
        return run

    async def redeem(i: int, pause: float) -> Replayable[OperationResult]:
        await asyncio.sleep(pause)
        return await ledger.redeem(
            caller, f"redeem-{i}", program_id=pid, member_id=member, points=REDEEM_POINTS
        )

    async def sweep(at: datetime, pause: float) -> SweepResult:
        await asyncio.sleep(pause)
        return await run_expiry_sweep(pg_engine, at=at)

    sweep_times = [NOW, later, NOW, later, later, NOW, later, NOW]
    outcomes = await asyncio.gather(
        *(hold_run(i, rng.uniform(0, 0.05)) for i in range(50)),
        *(redeem(i, rng.uniform(0, 0.1)) for i in range(50)),
        *(sweep(at, rng.uniform(0, 0.15)) for at in sweep_times),
        return_exceptions=True,
    )
    runs = outcomes[:50]
    redeems = outcomes[50:100]
    sweeps = outcomes[100:]
    unexpected = [o for o in runs if not isinstance(o, HoldRun)]
    unexpected += [o for o in sweeps if not isinstance(o, SweepResult)]
    assert not unexpected, f"{len(unexpected)} unexpected outcomes, e.g. {unexpected[:3]!r}"
    hold_runs = [run for run in runs if isinstance(run, HoldRun)]
    sweep_results = [s for s in sweeps if isinstance(s, SweepResult)]
    redeemed, _ = split(redeems, {ErrorCode.INSUFFICIENT_POINTS})
    placed = [run for run in hold_runs if isinstance(run.hold, Replayable)]
    split((run.hold for run in hold_runs), {ErrorCode.INSUFFICIENT_POINTS})
    resolved, expired_refusals = split(
        (run.resolution for run in placed if run.resolution is not None),
        {ErrorCode.HOLD_EXPIRED},
    )
    # Only a sweep at NOW + 1 day can expire a hold, and only a short one.
    assert all(
        run.timeout == SHORT_HOLD for run in placed if isinstance(run.resolution, DomainError)
    )
    assert placed, "no hold got through: the race proves nothing"
    assert len(expired_refusals) + len(resolved) == sum(run.action != "keep" for run in placed)

    # Settle what the race left due, then a sweep at the same instant finds nothing.
    final = await run_expiry_sweep(pg_engine, at=later)
    again = await run_expiry_sweep(pg_engine, at=later)
    assert again == SweepResult(
        at=later, accounts=0, holds_expired=0, lots_expired=0, points_expired=0
    )
    sweep_results.append(final)

    # Every hold ended where its story says.
    queries = Queries(pg_engine)
    expected_status: dict[int, tuple[str, int]] = {}
    for run in placed:
        assert isinstance(run.hold, Replayable)
        assert run.hold.result.hold is not None
        hold_id = run.hold.result.hold.hold_id
        if isinstance(run.resolution, Replayable):
            captured = {"capture": HOLD_POINTS, "capture_part": PART_CAPTURE}.get(run.action, 0)
            status = "released" if run.action == "release" else "captured"
            expected_status[hold_id] = (status, captured)
            assert run.resolution.result.delta == -captured
        elif isinstance(run.resolution, DomainError) or run.timeout == SHORT_HOLD:
            expected_status[hold_id] = ("expired", 0)
        else:
            expected_status[hold_id] = ("pending", 0)
    actual_status = {}
    for hold_id in expected_status:
        view = await queries.hold(caller, pid, hold_id)
        actual_status[hold_id] = (view.status, view.captured)
    assert actual_status == expected_status

    still_held = sum(status == "pending" for status, _ in expected_status.values())
    expired_holds = sum(status == "expired" for status, _ in expected_status.values())
    assert sum(s.holds_expired for s in sweep_results) == expired_holds
    points_expired = sum(s.points_expired for s in sweep_results)
    assert await world.sum_journal_points("expire") == points_expired
    assert await world.count_journals("hold_expiry") == expired_holds

    spent = sum(-o.result.delta for o in [*redeemed, *resolved])
    assert spent == REDEEM_POINTS * len(redeemed) + sum(
        captured for _, captured in expected_status.values()
    )
    posted = earned - spent - points_expired
    held = HOLD_POINTS * still_held
    balance = await world.balance(member)
    assert (balance.posted, balance.held, balance.available) == (posted, held, posted - held)
    # What lots A and B still had free is gone: only lot C's points remain to expire.
    assert all(item.expires_at > later for item in balance.expiring)
    assert sum(item.points for item in balance.expiring) == balance.available
    assert await verify_ledger(pg_engine) == []


# --- 3. transfers in both directions at once ---------------------------------------------------

START = 20
TRANSFERS_EACH_WAY = 100


async def test_opposite_transfers_at_once_never_deadlock_and_conserve_points(
    pg_engine: AsyncEngine,
) -> None:
    world = await make_world(pg_engine)
    alice = await world.member("Alice")
    bob = await world.member("Bob")
    await world.earn(alice, START)
    await world.earn(bob, START)

    def transfer(source: int, target: int, i: int, points: int) -> Any:
        return world.ledger.transfer(
            world.caller,
            f"transfer-{source}-{target}-{i}",
            program_id=world.program_id,
            from_member_id=source,
            to_member_id=target,
            points=points,
        )

    calls = [transfer(alice, bob, i, 1 + i % 3) for i in range(TRANSFERS_EACH_WAY)]
    calls += [transfer(bob, alice, i, 1) for i in range(TRANSFERS_EACH_WAY)]
    random.Random(7).shuffle(calls)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    done, refused = split(outcomes, {ErrorCode.INSUFFICIENT_POINTS})
    assert len(done) + len(refused) == 2 * TRANSFERS_EACH_WAY
    assert all(e.extra["available"] < e.extra["requested"] for e in refused)
    to_bob = sum(o.result.points for o in done if o.result.member_id == alice)
    to_alice = sum(o.result.points for o in done if o.result.member_id == bob)
    assert all(o.result.counter_member_id in {alice, bob} - {o.result.member_id} for o in done)
    alice_balance = await world.balance(alice)
    bob_balance = await world.balance(bob)
    assert alice_balance.posted == START - to_bob + to_alice
    assert bob_balance.posted == START + to_bob - to_alice
    assert alice_balance.posted + bob_balance.posted == 2 * START
    assert (alice_balance.held, bob_balance.held) == (0, 0)
    assert await world.count_journals("transfer") == len(done)
    assert await verify_ledger(pg_engine) == []


# --- 4. one key, many processes ----------------------------------------------------------------


@pytest.mark.parametrize("processes", [2, 20], ids=["two-processes", "one-process-per-request"])
async def test_one_key_sent_concurrently_from_several_processes_takes_effect_once(
    postgres_clean_url: str, processes: int
) -> None:
    """Each "process" is its own engine and Ledger (so its own in-flight registry): only
    PostgreSQL's advisory lock and the key row keep the requests of different ones apart."""
    requests, points = 20, 25
    engines = [create_engine(postgres_clean_url, pool_size=2) for _ in range(processes)]
    try:
        world = await make_world(engines[0])
        member = await world.member("Once")
        ledgers = [Ledger(engine, clock=clock) for engine in engines]

        def earn(ledger: Ledger, amount: int = points) -> Any:
            return ledger.earn(
                world.caller,
                "the-one-key",
                program_id=world.program_id,
                member_id=member,
                points=amount,
            )

        async def staggered(i: int) -> Replayable[OperationResult]:
            # Half at once (in flight meets in flight), half trickling in (some meet the
            # running first request, some its committed answer).
            await asyncio.sleep(0 if i % 2 else i * 0.01)
            return await earn(ledgers[i % processes])

        outcomes = await asyncio.gather(
            *(staggered(i) for i in range(requests)), return_exceptions=True
        )
        done, refused = split(outcomes, {ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT})
        assert len(done) + len(refused) == requests
        fresh = [o for o in done if not o.replayed]
        assert len(fresh) == 1, outcomes
        first = fresh[0].result
        assert all(o.result == first for o in done)
        assert not any(error.replayed for error in refused)

        # Afterwards every process replays the one stored answer.
        for ledger in ledgers:
            retry = await earn(ledger)
            assert (retry.replayed, retry.result) == (True, first)
        with pytest.raises(DomainError) as reused:
            await earn(ledgers[-1], points + 1)
        assert reused.value.code is ErrorCode.IDEMPOTENCY_KEY_REUSED

        balance = await world.balance(member)
        assert (balance.posted, balance.held, balance.available) == (points, 0, points)
        assert first.balance == Balance(posted=points, held=0, available=points)
        assert await world.count_journals("earn") == 1
        async with engines[0].connect() as conn:
            rows = await conn.scalar(
                select(func.count())
                .select_from(idempotency_keys)
                .where(
                    idempotency_keys.c.client_id == world.caller.client_id,
                    idempotency_keys.c.key == "the-one-key",
                )
            )
            member_accounts = await conn.scalar(
                select(func.count())
                .select_from(accounts)
                .where(accounts.c.program_id == world.program_id, accounts.c.kind == "member")
            )
            pending = await conn.scalar(select(func.count()).select_from(holds))
        assert (rows, member_accounts, pending) == (1, 1, 0)
        assert await verify_ledger(engines[0]) == []
    finally:
        for engine in engines:
            await engine.dispose()
