"""The ledger state machine (DESIGN.md section 3): random sequences of operations against the
real ``Ledger`` service on a migrated database, on SQLite and on PostgreSQL, checked step by step
against an independent in-memory model (``tests/ledger/model.py``, which imports nothing from
``loyalty``).

Every example starts clean (SQLite: a private copy of a file migrated and populated once;
PostgreSQL: one database for the module, TRUNCATE ... RESTART IDENTITY between examples) with one
merchant, a program whose points lapse 30 days after earning (hold timeout 600 s), a program whose
points never expire (hold timeout 3600 s), three members (the third only in the first program),
two API clients and a clock the machine controls (``Ledger(clock=...)``). Each example runs on
its own event loop (``asyncio.Runner``), which creates and disposes the engine.

The rules send every write through the service:

- ``seed``: 0-2 earns per account, now or back-dated (some lots due at once);
- ``earn``: now, back-dated past expiry, slightly ahead (within the 5 min skew) or too far ahead;
- ``spend``: redeem, hold (program default or explicit timeout), capture (all, the full amount,
  part, more than held) and release, of new holds, earlier ones (pending, resolved, timed out),
  missing ones and ones named under the other program; a spend may be refunded (part, all,
  more) or reversed right away;
- ``refund_or_reverse``: refunds and reversals (also twice) of journals of every kind: earns,
  redeems, captures, adjustments, transfers, and kinds that allow neither (hold, release, hold
  expiry, expire, refund, reversal), missing journals and the other program's;
- ``adjust``: credits and debits; ``transfer``: between any two members in both directions,
  including one not enrolled;
- ``advance_clock``: by 0 s to 90 days, or exactly to (or 1 s before) the next lot expiry or
  hold timeout, then maybe the expiry sweep (``run_expiry_sweep(at=clock)``);
- ``keys_and_input``: the same key and body again, the same key with another body, the same key
  from another client, a key in flight, invalid amounts, timeouts, reasons, same-member
  transfers and invalid keys.

For every request the model predicts success (kind, points, delta, balance, the other member's
balance, hold, expiry of a new lot, effective time, what it reverses) or the exact error code,
and whether the answer is a replay; the service must answer the same.

After every step (one invariant, three concurrent reads):

- invariants 1, 2, 3, 5, 6: ``verify_ledger(engine) == []`` (journals and all accounts sum to
  zero, cached balances equal entries and lot remainders, available >= 0, lot bounds, held
  points equal pending holds and their lot draws, a hold resolves at most once and captures at
  most what it held, refunds within the original, at most one reversal);
- the database is the model: every member account's cached posted/held, ``Queries.balance`` of
  an account the step changed (posted, held, available, expiring points), every lot (owner,
  original, remaining, held, expiry), every hold (status, captured, expiry), every journal (kind,
  points, delta, held delta, accounts, what it reverses, its hold, its time), what each journal
  took from or gave back to each lot, refunded totals and reversed flags, and the stored
  idempotency keys with their outcomes.

Invariant 4 is asserted in ``keys_and_input``: a replay is the stored answer (success or
refusal) with ``replayed=True``; another body under a stored key is ``idempotency_key_reused``;
a key in flight is ``idempotency_key_in_flight`` (in-process registry; on PostgreSQL also another
transaction holding the key's advisory lock, seen by a second ``Ledger`` with its own registry);
invalid input is refused before the key is looked at; none of these changes one row (accounts
with their versions, journals, lots, holds, lot draws, keys), and a key refused in flight or for
invalid input works normally afterwards. Invariant 7 is asserted with every sweep: its counts
equal the model's, lots not due keep their remainders, due lots keep exactly their held points,
the points taken equal what it reports, and a second run at the same instant reports nothing and
changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import create_engine, in_transaction
from loyalty.db.tables import (
    accounts,
    holds,
    idempotency_keys,
    journals,
    lot_draws,
    lots,
    merchants,
    metadata,
)
from loyalty.domain.errors import DomainError
from loyalty.services.context import Caller
from loyalty.services.expiry import run_expiry_sweep
from loyalty.services.idempotency import InFlightRegistry, Replayable, _advisory_lock_id
from loyalty.services.ledger import Ledger
from loyalty.services.programs import Programs
from loyalty.services.queries import Queries
from loyalty.services.results import Balance, BalanceView, OperationResult
from loyalty.services.verify import Discrepancy, verify_ledger
from tests.ledger.model import MAX_POINTS, Expected, LedgerModel, Outcome, Policy
from tests.support import services

pytestmark = [pytest.mark.property, pytest.mark.integration]

T = TypeVar("T")

START = datetime(2025, 1, 30, 9, 0, tzinfo=UTC)
CLIENTS = ("till-a", "till-b")
SETUP_CLIENT = "setup"
MEMBERS = 3
#: Program 0: points lapse 30 days after earning; program 1: never. Member 2 is only in program 0.
PROGRAMS = (
    {"code": "P30", "expiry_kind": "after_days", "expiry_value": 30, "hold_timeout_seconds": 600},
    {"code": "PNEVER", "expiry_kind": "never", "expiry_value": 0, "hold_timeout_seconds": 3600},
)
POLICIES = (Policy(30, 600), Policy(None, 3600))
NOT_IN_PROGRAM_1 = 2
MISSING_ID = 987_654_321

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)

points_st = st.integers(1, 320).map(lambda n: MAX_POINTS if n > 318 else n)
program_st = st.integers(0, len(PROGRAMS) - 1)
member_st = st.integers(0, MEMBERS - 1)
client_st = st.sampled_from(CLIENTS)
#: How far an earn's effective_at lies from now (None: not given). +5 min is the allowed skew.
effective_st = st.one_of(
    st.none(),
    st.sampled_from(
        [
            timedelta(0),
            -SECOND,
            -DAY,
            -29 * DAY,
            -30 * DAY,
            -31 * DAY,
            timedelta(minutes=4),
            timedelta(minutes=5),
            timedelta(minutes=5, seconds=1),
            timedelta(hours=1),
        ]
    ),
    st.integers(-60 * 86400, 600).map(lambda s: timedelta(seconds=s)),
)
#: Seed earns: now, or back-dated so that some lots are (nearly) due from the start.
seed_age_st = st.sampled_from([None, -DAY, -20 * DAY, -29 * DAY, -30 * DAY, -31 * DAY, -45 * DAY])
timeout_st = st.one_of(
    st.none(),
    st.sampled_from([5, 6, 60, 600, 3600, 86400, 7 * 86400]),
    st.integers(5, 7 * 86400),
)
advance_st = st.one_of(
    st.sampled_from(
        [
            timedelta(0),
            SECOND,
            4 * SECOND,
            5 * SECOND,
            59 * SECOND,
            timedelta(minutes=10),
            timedelta(hours=1),
            DAY,
            7 * DAY,
            29 * DAY,
            30 * DAY,
            31 * DAY,
            62 * DAY,
        ]
    ),
    st.integers(1, 90 * 86400).map(lambda s: timedelta(seconds=s)),
)
reason_st = st.sampled_from([None, "customer return"])
REFUNDABLE_KINDS = frozenset({"earn", "redeem", "capture"})
REVERSIBLE_KINDS = REFUNDABLE_KINDS | {"adjust", "transfer"}
INVALID_POINTS = [0, -1, -MAX_POINTS, MAX_POINTS + 1, True]
#: An adjustment is signed: -MAX_POINTS is valid, zero and beyond the bound are not.
INVALID_ADJUSTMENTS = [0, MAX_POINTS + 1, -MAX_POINTS - 1, True]


@dataclass(frozen=True)
class Request:
    """A request whose outcome is stored under its key."""

    client: str
    key: str
    op: str
    args: tuple[tuple[str, Any], ...]

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.args)


# --- databases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """What every example starts with: the merchant, its programs, members and accounts."""

    merchant_id: int
    program_ids: tuple[int, ...]
    member_ids: tuple[int, ...]
    #: (program id, member id) -> account id
    accounts: dict[tuple[int, int], int]


async def build_world(engine: AsyncEngine) -> World:
    """One merchant (inserted directly: merchants have no API), two programs, three members;
    the last member is enrolled in the first program only."""

    async def add_merchant(conn: AsyncConnection) -> int:
        merchant_id = await conn.scalar(
            merchants.insert()
            .values(name="State machine GmbH", created_at=START)
            .returning(merchants.c.id)
        )
        assert merchant_id is not None
        return int(merchant_id)

    merchant_id = await in_transaction(engine, add_merchant)
    setup = Caller(SETUP_CLIENT, merchant_id)
    admin = Programs(Ledger(engine, clock=lambda: START).executor)
    program_ids = []
    for spec in PROGRAMS:
        created = await admin.create_program(
            setup, f"program-{spec['code']}", name=f"Program {spec['code']}", currency="EUR", **spec
        )
        program_ids.append(created.result.program_id)
    member_ids = []
    enrolled: dict[tuple[int, int], int] = {}
    for index in range(MEMBERS):
        done = await admin.enroll(
            setup, f"enroll-{index}", program_id=program_ids[0], display_name=f"Member {index}"
        )
        member_id = done.result.member_id
        member_ids.append(member_id)
        enrolled[(program_ids[0], member_id)] = done.result.account_id
        if index != NOT_IN_PROGRAM_1:
            again = await admin.enroll(
                setup, f"enroll-{index}-again", program_id=program_ids[1], member_id=member_id
            )
            enrolled[(program_ids[1], member_id)] = again.result.account_id
    return World(merchant_id, tuple(program_ids), tuple(member_ids), enrolled)


class SQLiteDatabases:
    """A private copy per example of one file, migrated and populated with the world once."""

    is_postgres = False

    def __init__(self, migrated: Path, directory: Path) -> None:
        self._directory = directory
        self._numbers = count()
        self._template = directory / "world.db"
        url = services.copy_sqlite(migrated, self._template)

        async def populate() -> World:
            engine = create_engine(url)
            try:
                return await build_world(engine)
            finally:
                await engine.dispose()

        self.world: World | None = services.run_async(populate)
        # Closing the last connection checkpointed the WAL into the file: copies are complete.
        assert not Path(f"{self._template}-wal").exists()

    def fresh(self) -> str:
        path = self._directory / f"example-{next(self._numbers)}.db"
        return services.copy_sqlite(self._template, path)

    async def reset(self, engine: AsyncEngine) -> None:
        """Nothing to do: the file is new."""

    def discard(self, url: str) -> None:
        path = Path(url.removeprefix("sqlite+aiosqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


class PostgresDatabases:
    """One database for the module, emptied (and its id sequences restarted) per example."""

    is_postgres = True
    world = None
    _TRUNCATE = "TRUNCATE TABLE {} RESTART IDENTITY CASCADE".format(
        ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    )

    def __init__(self, url: str) -> None:
        self._url = url

    def fresh(self) -> str:
        return self._url

    async def reset(self, engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(self._TRUNCATE))

    def discard(self, url: str) -> None:
        """The database stays for the next example."""


Databases = SQLiteDatabases | PostgresDatabases


# --- the machine -------------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    #: Set by the test case's fixture before Hypothesis builds machines.
    databases: ClassVar[Databases | None] = None

    def __init__(self) -> None:
        super().__init__()
        databases = type(self).databases
        assert databases is not None, "the test case's fixture sets the databases"
        self.source = databases
        self.is_postgres = databases.is_postgres
        self.now = START
        self.keys = count(1)
        self.requests: list[Request] = []
        #: The database as the last invariant check read it (= before the current step).
        self.last_read: dict[str, list[tuple[Any, ...]]] = {}
        #: Set by a step that must not change the database; checked by the next invariant run.
        self.must_not_change: str | None = None
        #: Member accounts whose balance a step changed: read back through Queries.balance.
        self.touched: set[tuple[int, int]] = set()
        self.turn = count()
        self.runner = asyncio.Runner()
        self.url = databases.fresh()
        self.engine: AsyncEngine | None = None
        try:
            self.runner.run(self._open())
        except BaseException:
            self._close()
            raise

    async def _open(self) -> None:
        self.engine = engine = create_engine(self.url, pool_size=3)
        world = self.source.world
        if world is None:
            await self.source.reset(engine)
            world = await build_world(engine)
        self.callers = {client: Caller(client, world.merchant_id) for client in CLIENTS}
        self.ledger = Ledger(engine, clock=lambda: self.now)
        # A second process, as far as idempotency goes: same database, its own registry.
        self.other_ledger = Ledger(engine, clock=lambda: self.now, registry=InFlightRegistry())
        self.queries = Queries(engine)
        self.program_ids = list(world.program_ids)
        self.member_ids = list(world.member_ids)
        self.account_keys = {account_id: key for key, account_id in world.accounts.items()}
        policies = dict(zip(self.program_ids, POLICIES, strict=True))
        self.model = LedgerModel(self.now, policies, dict(world.accounts))

    def teardown(self) -> None:
        self._close()

    def _close(self) -> None:
        try:
            if self.engine is not None:
                self.runner.run(self.engine.dispose())
        finally:
            self.runner.close()
            self.source.discard(self.url)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(work)

    # -- requests --------------------------------------------------------------------------

    def new_key(self) -> str:
        return f"sm-{next(self.keys)}"

    def call(
        self,
        client: str,
        op: str,
        args: dict[str, Any],
        *,
        key: str | None = None,
        in_flight: str | None = None,
    ) -> Outcome:
        """Send one request to the service and to the model; both must answer the same."""
        key = self.new_key() if key is None else key
        predicted = self.model.request(client, key, op, args, in_flight=in_flight is not None)
        caller = self.callers[client]
        done: Replayable[OperationResult] | None = None
        refusal: DomainError | None = None
        try:
            if in_flight == "registry":
                with self.ledger.executor._registry.claim(client, key):
                    done = self.run(getattr(self.ledger, op)(caller, key, **args))
            elif in_flight == "advisory":
                done = self.run(self._behind_advisory_lock(caller, key, op, args))
            else:
                done = self.run(getattr(self.ledger, op)(caller, key, **args))
        except DomainError as error:
            refusal = error
        what = f"{op}({args}) key={key!r} client={client}"
        if predicted.code is not None:
            assert refusal is not None, f"{what}: expected {predicted.code}, got {done}"
            assert refusal.code == predicted.code, f"{what}: expected {predicted.code}: {refusal}"
            assert refusal.replayed == predicted.replayed, f"{what}: replayed flag"
        else:
            assert refusal is None, f"{what}: expected success, got {refusal}"
            assert done is not None
            assert done.replayed == predicted.replayed, f"{what}: replayed flag"
            if predicted.replayed:
                assert done.result == predicted.stored_result, f"{what}: replay differs"
            else:
                assert predicted.expected is not None
                self.check_result(predicted.expected, done.result, what)
                self.model.remember_result(client, key, predicted.expected, done.result)
                self.touched.add((done.result.program_id, done.result.member_id))
                if done.result.counter_member_id is not None:
                    self.touched.add((done.result.program_id, done.result.counter_member_id))
        if predicted.stored:
            self.requests.append(Request(client, key, op, tuple(sorted(args.items()))))
        return predicted

    async def _behind_advisory_lock(
        self, caller: Caller, key: str, op: str, args: dict[str, Any]
    ) -> Replayable[OperationResult]:
        """Call the second ledger while another transaction holds the key's advisory lock."""
        assert self.engine is not None
        lock_id = _advisory_lock_id(caller.client_id, key)
        async with self.engine.connect() as other, other.begin():
            locked = await other.scalar(select(func.pg_try_advisory_xact_lock(lock_id)))
            assert locked is True
            result: Replayable[OperationResult] = await getattr(self.other_ledger, op)(
                caller, key, **args
            )
            return result

    def check_result(self, expected: Expected, result: OperationResult, what: str) -> None:
        s = self.model.s
        known = {j.db_id for j in s.journals if j.db_id is not None}
        assert result.journal_id not in known, f"{what}: journal id {result.journal_id} reused"
        actual = (
            result.kind,
            result.program_id,
            result.member_id,
            result.points,
            result.delta,
            result.balance,
            result.effective_at,
            result.created_at,
            result.lot_expires_at,
            result.counter_member_id,
            result.counter_balance,
            result.reverses_journal_id,
        )
        wanted = (
            expected.kind,
            expected.program_id,
            expected.member_id,
            expected.points,
            expected.delta,
            Balance(*expected.balance),
            expected.effective_at,
            expected.created_at,
            expected.lot_expires_at,
            expected.counter_member_id,
            None if expected.counter_balance is None else Balance(*expected.counter_balance),
            None if expected.reverses is None else s.journals[expected.reverses].db_id,
        )
        assert actual == wanted, f"{what}: answer differs from the model"
        if expected.hold is None:
            assert result.hold is None, what
            return
        hold = s.holds[expected.hold]
        assert result.hold is not None, what
        got = (
            result.hold.program_id,
            result.hold.member_id,
            result.hold.points,
            result.hold.captured,
            result.hold.status,
            result.hold.expires_at,
        )
        assert got == (
            hold.program_id,
            hold.account[1],
            hold.points,
            hold.captured,
            hold.status,
            hold.expires_at,
        ), f"{what}: hold differs from the model"
        if hold.db_id is not None:
            assert result.hold.hold_id == hold.db_id, what

    def unchanged(self, what: str) -> None:
        """The step so far changed no row (accounts with versions, journals, lots, holds, ...)."""
        assert self.read_database() == self.last_read, f"{what} changed the database"

    # -- picking targets -------------------------------------------------------------------

    def draw_amount(self, data: st.DataObject, limit: int, label: str) -> int:
        mode = data.draw(st.sampled_from(["part", "part", "all", "over"]), label=f"{label} amount")
        if mode == "part":
            return data.draw(st.integers(1, max(1, limit)), label=f"{label} points")
        if mode == "all":
            return max(1, limit)
        return max(0, limit) + data.draw(st.sampled_from([1, 2, 25]), label=f"{label} excess")

    def available(self, program: int, member: int) -> int:
        acct = self.model.account(self.program_ids[program], self.member_ids[member])
        return 0 if acct is None else acct.available

    def pick_hold(self, data: st.DataObject) -> tuple[int, int, int | None]:
        """(program id, hold id, hold seq or None): usually a hold the model knows."""
        holds_ = [h for h in self.model.s.holds if h.db_id is not None]
        how = data.draw(st.sampled_from(["pending", "pending", "any", "missing", "other program"]))
        pending = [h for h in holds_ if h.status == "pending"]
        pool = pending if how == "pending" and pending else holds_
        if how == "missing" or not pool:
            return self.program_ids[0], MISSING_ID, None
        hold = data.draw(st.sampled_from(pool), label="hold")
        assert hold.db_id is not None
        program_id = hold.program_id
        if how == "other program":
            program_id = next(p for p in self.program_ids if p != program_id)
        return program_id, hold.db_id, hold.seq

    def pick_journal(self, data: st.DataObject, kinds: frozenset[str]) -> tuple[int, int, int]:
        """(program id, journal id, points left to refund): usually one of ``kinds``."""
        known = [j for j in self.model.s.journals if j.db_id is not None]
        how = data.draw(
            st.sampled_from(
                ["undoable", "undoable", "undoable", "any", "any", "missing", "other program"]
            )
        )
        undoable = [j for j in known if j.kind in kinds]
        pool = undoable if how == "undoable" and undoable else known
        if how == "missing" or not pool:
            return self.program_ids[0], MISSING_ID, 1
        # A kind first, then a journal of it: rare kinds (captures, transfers) get their turn.
        kind = data.draw(st.sampled_from(sorted({j.kind for j in pool})), label="kind")
        journal = data.draw(st.sampled_from([j for j in pool if j.kind == kind]), label="journal")
        assert journal.db_id is not None
        program_id = journal.program_id
        if how == "other program":
            program_id = next(p for p in self.program_ids if p != program_id)
        return program_id, journal.db_id, journal.points - journal.refunded

    # -- operations ------------------------------------------------------------------------

    @initialize(data=st.data())
    def seed(self, data: st.DataObject) -> None:
        """Start most accounts with some points (earned now or back-dated), so that spends,
        holds and transfers mostly have something to work with."""
        for program_id, member_id in sorted(self.model.s.accounts):
            for _ in range(data.draw(st.sampled_from([1, 2, 0]), label="seed lots")):
                points = data.draw(st.integers(1, 300), label="seed points")
                effective = data.draw(seed_age_st, label="seed effective_at")
                args = {
                    "program_id": program_id,
                    "member_id": member_id,
                    "points": points,
                    "effective_at": None if effective is None else self.now + effective,
                    "reference": None,
                }
                self.call(CLIENTS[0], "earn", args)

    # Hypothesis orders rules by their number of arguments and favours the first one a little:
    # earn, which feeds every other operation, takes one argument so that it comes first.
    @rule(data=st.data())
    def earn(self, data: st.DataObject) -> None:
        """Earn now, back-dated (possibly past expiry), or ahead of the clock (within the
        allowed skew or beyond it)."""
        effective = data.draw(effective_st, label="effective_at offset")
        args = {
            "program_id": self.program_ids[data.draw(program_st, label="program")],
            "member_id": self.member_ids[data.draw(member_st, label="member")],
            "points": data.draw(points_st, label="points"),
            "effective_at": None if effective is None else self.now + effective,
            "reference": None,
        }
        self.call(data.draw(client_st, label="client"), "earn", args)

    @rule(
        client=client_st,
        action=st.sampled_from(["redeem", "hold", "capture", "release"]),
        data=st.data(),
    )
    def spend(self, client: str, action: str, data: st.DataObject) -> None:
        """Redeem (then maybe refund or reverse it); hold (program default or explicit timeout)
        and maybe resolve it at once; or capture or release a hold from earlier (pending,
        resolved, timed out, missing, other program)."""
        if action == "redeem":
            program = data.draw(program_st, label="program")
            member = data.draw(member_st, label="member")
            args = {
                "program_id": self.program_ids[program],
                "member_id": self.member_ids[member],
                "points": self.draw_amount(data, self.available(program, member), "redeem"),
                "reference": None,
            }
            self.then_undo(data, client, self.call(client, "redeem", args))
            return
        if action == "hold" or not self.model.s.holds:
            program = data.draw(program_st, label="program")
            member = data.draw(member_st, label="member")
            args = {
                "program_id": self.program_ids[program],
                "member_id": self.member_ids[member],
                "points": self.draw_amount(data, self.available(program, member), "hold"),
                "timeout_seconds": data.draw(timeout_st, label="timeout"),
                "reference": None,
            }
            outcome = self.call(client, "hold", args)
            then = data.draw(st.sampled_from(["-", "capture", "release"]), label="then")
            if outcome.expected is None or then == "-":
                return
            hold = self.model.s.holds[outcome.expected.hold or 0]
            assert hold.db_id is not None
            self.resolve(client, data, then, hold.program_id, hold.db_id, hold.points)
            return
        program_id, hold_id, seq = self.pick_hold(data)
        held = 1 if seq is None else self.model.s.holds[seq].points
        self.resolve(client, data, action, program_id, hold_id, held)

    def resolve(
        self,
        client: str,
        data: st.DataObject,
        action: str,
        program_id: int,
        hold_id: int,
        held: int,
    ) -> None:
        """Release, or capture all (no amount), the full amount, part, or more than held."""
        if action == "release":
            self.call(client, "release", {"program_id": program_id, "hold_id": hold_id})
            return
        how = data.draw(st.sampled_from(["part", "all", "full", "over"]), label="capture")
        points = {
            "all": None,
            "full": held,
            "part": data.draw(st.integers(1, held), label="captured") if how == "part" else 0,
            "over": held + 1,
        }[how]
        args = {"program_id": program_id, "hold_id": hold_id, "points": points}
        self.then_undo(data, client, self.call(client, "capture", args))

    def then_undo(self, data: st.DataObject, client: str, outcome: Outcome) -> None:
        """Right after a spend: nothing, or the customer returns (part of) what it paid for
        (a refund, usually partial), or the operation is reversed."""
        then = data.draw(st.sampled_from(["-", "refund", "reverse"]), label="then")
        if outcome.expected is None or then == "-":
            return
        journal = self.model.s.journals[outcome.expected.journal]
        assert journal.db_id is not None
        undo: dict[str, Any] = {"program_id": journal.program_id, "journal_id": journal.db_id}
        if then == "refund":
            undo["points"] = self.draw_amount(data, journal.points, "refund")
        self.call(client, then, {**undo, "reason": None})

    @rule(
        client=client_st,
        action=st.sampled_from(["refund", "reverse", "reverse twice"]),
        reason=reason_st,
        data=st.data(),
    )
    def refund_or_reverse(
        self, client: str, action: str, reason: str | None, data: st.DataObject
    ) -> None:
        """Refund part, all or more than is left of a journal, or reverse it (once or twice);
        usually one of a kind that allows it, sometimes any kind, a missing one or one named
        under the other program."""
        if action == "refund":
            program_id, journal_id, left = self.pick_journal(data, REFUNDABLE_KINDS)
            args = {
                "program_id": program_id,
                "journal_id": journal_id,
                "points": self.draw_amount(data, left, "refund"),
                "reason": reason,
            }
            self.call(client, "refund", args)
            return
        program_id, journal_id, _ = self.pick_journal(data, REVERSIBLE_KINDS)
        args = {"program_id": program_id, "journal_id": journal_id, "reason": reason}
        first = self.call(client, "reverse", args)
        if action == "reverse twice":
            second = self.call(client, "reverse", args)
            if first.code is None:
                assert second.code == "journal_already_reversed"

    @rule(
        client=client_st,
        program=program_st,
        member=member_st,
        credit=st.booleans(),
        data=st.data(),
    )
    def adjust(
        self, client: str, program: int, member: int, credit: bool, data: st.DataObject
    ) -> None:
        if credit:
            points = data.draw(points_st, label="credit")
        else:
            points = -self.draw_amount(data, self.available(program, member), "debit")
        args = {
            "program_id": self.program_ids[program],
            "member_id": self.member_ids[member],
            "points": points,
            "reason": "till miscounted",
            "actor": "ops@example.com",
        }
        self.call(client, "adjust", args)

    @rule(client=client_st, program=program_st, source=member_st, data=st.data())
    def transfer(self, client: str, program: int, source: int, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from([m for m in range(MEMBERS) if m != source]))
        points = self.draw_amount(data, self.available(program, source), "transfer")
        args = {
            "program_id": self.program_ids[program],
            "from_member_id": self.member_ids[source],
            "to_member_id": self.member_ids[target],
            "points": points,
            "reason": None,
        }
        self.then_undo(data, client, self.call(client, "transfer", args))

    # -- time and the expiry sweep (invariant 7) -------------------------------------------

    @rule(
        to=st.sampled_from(["by delta", "next deadline", "just before the next deadline"]),
        delta=advance_st,
        then=st.sampled_from(["no sweep", "sweep"]),
    )
    def advance_clock(self, to: str, delta: timedelta, then: str) -> None:
        """Move the clock by 0 s to 90 days, or exactly to (or 1 s before) the next instant a
        lot expires or a hold times out; then run the expiry sweep or not."""
        deadlines = [
            when
            for when in [lot.expires_at for lot in self.model.s.lots if lot.remaining]
            + [hold.expires_at for hold in self.model.s.holds if hold.status == "pending"]
            if when is not None and when > self.now
        ]
        if to != "by delta" and deadlines:
            delta = min(deadlines) - self.now - (SECOND if to.startswith("just") else 0 * SECOND)
        self.now += delta
        self.model.advance(delta)
        assert self.model.now == self.now
        if then == "sweep":
            self.expiry_sweep()

    def expiry_sweep(self) -> None:
        """Only free points of due lots expire, and a second run at the same instant reports
        nothing and changes nothing."""
        at = self.now
        before = self.last_read
        predicted = self.model.sweep(at)
        result = self.run(run_expiry_sweep(self._engine, at=at))
        assert result.at == at
        got = (result.accounts, result.holds_expired, result.lots_expired, result.points_expired)
        assert got == predicted, "sweep counts differ from the model"
        after = self.read_database()
        old = {row[0]: row for row in before["lots"]}
        taken = 0
        for lot_id, _, _, _, remaining, held, expires_at in after["lots"]:
            previous_remaining = old[lot_id][4]
            if expires_at is None or expires_at > at:
                assert remaining == previous_remaining, f"lot {lot_id} not due but changed"
            else:
                assert remaining == held, f"lot {lot_id} due but free points are left"
            taken += previous_remaining - remaining
        assert taken == result.points_expired
        self.touched.update(self.model.s.accounts)
        self.last_read = after
        again = self.run(run_expiry_sweep(self._engine, at=at))
        assert (again.accounts, again.holds_expired, again.lots_expired, again.points_expired) == (
            0,
            0,
            0,
            0,
        )
        self.must_not_change = "a second sweep at the same instant"

    # -- idempotency (invariant 4) ---------------------------------------------------------

    @rule(
        how=st.sampled_from(
            ["same body", "other body", "in flight", "other client", "invalid input"]
        ),
        data=st.data(),
    )
    def keys_and_input(self, how: str, data: st.DataObject) -> None:
        """A stored key again: the same request replays its stored answer; another request is
        refused as a reused key; neither changes anything. While a key is in flight (in this
        process's registry; on PostgreSQL also: another transaction holds the key's advisory
        lock, seen by a second ledger with its own registry), a request with it is refused and
        changes nothing, and afterwards the key works as before. Keys are per client: another
        client's request under the same key runs as its own. Invalid input is refused before
        the key is looked at."""
        if how == "invalid input":
            self.invalid_input(data, data.draw(client_st, label="client"))
            return
        if how == "in flight" or not self.requests:
            self.key_in_flight(data)
            return
        request = data.draw(st.sampled_from(self.requests), label="key of")
        args = request.kwargs
        if how == "same body":
            outcome = self.call(request.client, request.op, args, key=request.key)
            assert outcome.replayed
            self.must_not_change = "a replay"
        elif how == "other body":
            if "points" in args and args["points"] is not None:
                points = args["points"] + 1
                args["points"] = points if points and abs(points) <= MAX_POINTS else points - 2
            elif "points" in args:
                args["points"] = 1
            elif "hold_id" in args:
                args["hold_id"] += 1000
            else:
                args["reason"] = f"{args['reason']} (again)"
            outcome = self.call(request.client, request.op, args, key=request.key)
            assert outcome.code == "idempotency_key_reused"
            self.must_not_change = "a reused key"
        else:
            client = next(c for c in CLIENTS if c != request.client)
            args = {
                "program_id": self.program_ids[0],
                "member_id": self.member_ids[0],
                "points": data.draw(points_st, label="points"),
                "effective_at": None,
                "reference": None,
            }
            self.call(client, "earn", args, key=request.key)

    def key_in_flight(self, data: st.DataObject) -> None:
        ways = ["registry", "advisory"] if self.is_postgres else ["registry"]
        way = data.draw(st.sampled_from(ways), label="in flight via")
        if self.requests and data.draw(st.booleans(), label="stored key"):
            request = data.draw(st.sampled_from(self.requests), label="in flight")
            client, key, op, args = request.client, request.key, request.op, request.kwargs
        else:
            client, key, op = data.draw(client_st, label="client"), self.new_key(), "earn"
            args = {
                "program_id": self.program_ids[0],
                "member_id": self.member_ids[data.draw(member_st, label="member")],
                "points": data.draw(points_st, label="points"),
                "effective_at": None,
                "reference": None,
            }
        outcome = self.call(client, op, args, key=key, in_flight=way)
        assert outcome.code == "idempotency_key_in_flight"
        self.unchanged("a request whose key is in flight")
        self.call(client, op, args, key=key)

    def invalid_input(self, data: st.DataObject, client: str) -> None:
        """Invalid amounts, timeouts, reasons, same-member transfers and invalid keys are
        refused before anything is stored: nothing changes, and the key stays unused."""
        p0, m0, m1 = self.program_ids[0], self.member_ids[0], self.member_ids[1]
        bad = data.draw(st.sampled_from(INVALID_POINTS), label="bad points")
        bad_adjustment = data.draw(st.sampled_from(INVALID_ADJUSTMENTS), label="bad adjustment")
        # (operation, arguments, whether the arguments themselves are valid)
        cases: list[tuple[str, dict[str, Any], bool]] = [
            ("earn", {"program_id": p0, "member_id": m0, "points": bad, "effective_at": None,
                      "reference": None}, False),
            ("redeem", {"program_id": p0, "member_id": m0, "points": bad, "reference": None},
             False),
            ("hold", {"program_id": p0, "member_id": m0, "points": bad, "timeout_seconds": None,
                      "reference": None}, False),
            ("capture", {"program_id": p0, "hold_id": MISSING_ID, "points": bad}, False),
            ("refund", {"program_id": p0, "journal_id": MISSING_ID, "points": bad,
                        "reason": None}, False),
            ("transfer", {"program_id": p0, "from_member_id": m0, "to_member_id": m1,
                          "points": bad, "reason": None}, False),
            ("adjust", {"program_id": p0, "member_id": m0, "points": bad_adjustment,
                        "reason": "r", "actor": "a"}, False),
            ("adjust", {"program_id": p0, "member_id": m0, "points": 5, "reason": "  ",
                        "actor": "a"}, False),
            ("adjust", {"program_id": p0, "member_id": m0, "points": -5, "reason": "r",
                        "actor": ""}, False),
            ("transfer", {"program_id": p0, "from_member_id": m1, "to_member_id": m1,
                          "points": 1, "reason": None}, False),
            ("hold", {"program_id": p0, "member_id": m0, "points": 1,
                      "timeout_seconds": data.draw(st.sampled_from([0, 4, 7 * 86400 + 1])),
                      "reference": None}, False),
            ("earn", {"program_id": p0, "member_id": m0, "points": 1, "effective_at": None,
                      "reference": None}, True),
            ("reverse", {"program_id": p0, "journal_id": MISSING_ID, "reason": None}, True),
        ]  # fmt: skip
        op, args, valid = data.draw(st.sampled_from(cases), label="invalid request")
        keys = ["", " ", "with space", "tab\t", "k" * 129, "schlüssel"]
        key = data.draw(st.sampled_from(keys if valid else [None, *keys]), label="key")
        outcome = self.call(client, op, args, key=key)
        assert outcome.code is not None
        assert not outcome.stored
        self.must_not_change = "an invalid request"

    # -- checking everything after every step ----------------------------------------------

    @property
    def _engine(self) -> AsyncEngine:
        assert self.engine is not None
        return self.engine

    def read_database(self) -> dict[str, list[tuple[Any, ...]]]:
        return self.run(self._read_database())

    async def _read_database(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row the model describes, in one read transaction."""

        async def work(conn: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
            queries = {
                "accounts": select(
                    accounts.c.id,
                    accounts.c.posted,
                    accounts.c.held,
                    accounts.c.version,
                )
                .where(accounts.c.kind == "member")
                .order_by(accounts.c.id),
                "lots": select(
                    lots.c.id,
                    lots.c.account_id,
                    lots.c.journal_id,
                    lots.c.original,
                    lots.c.remaining,
                    lots.c.held,
                    lots.c.expires_at,
                ).order_by(lots.c.id),
                "holds": select(
                    holds.c.id,
                    holds.c.program_id,
                    holds.c.account_id,
                    holds.c.points,
                    holds.c.captured,
                    holds.c.status,
                    holds.c.expires_at,
                ).order_by(holds.c.id),
                "journals": select(
                    journals.c.id,
                    journals.c.kind,
                    journals.c.program_id,
                    journals.c.account_id,
                    journals.c.counter_account_id,
                    journals.c.points,
                    journals.c.delta,
                    journals.c.held_delta,
                    journals.c.reverses_id,
                    journals.c.hold_id,
                    journals.c.created_at,
                ).order_by(journals.c.id),
                "lot_draws": select(
                    lot_draws.c.journal_id, lot_draws.c.lot_id, lot_draws.c.points
                ).order_by(lot_draws.c.id),
                "keys": select(
                    idempotency_keys.c.client_id,
                    idempotency_keys.c.key,
                    idempotency_keys.c.outcome,
                    idempotency_keys.c.journal_id,
                )
                .where(idempotency_keys.c.client_id != SETUP_CLIENT)
                .order_by(idempotency_keys.c.client_id, idempotency_keys.c.key),
            }
            return {
                name: [tuple(row) for row in await conn.execute(query)]
                for name, query in queries.items()
            }

        result: dict[str, list[tuple[Any, ...]]] = await in_transaction(
            self._engine, work, read_only=True
        )
        return result

    @invariant()
    def ledger_is_consistent_and_matches_model(self) -> None:
        """After every step: ``verify_ledger`` finds nothing, and the database is the model.

        The three reads (verify, the tables, one balance) run concurrently on their own
        connections, each in its own snapshot; no write runs between steps.
        """
        model = self.model
        model.self_check()
        s = model.s
        touched = sorted(self.touched)
        balance_of = touched[next(self.turn) % len(touched)] if touched else None
        self.touched.clear()

        async def read_all() -> tuple[list[Discrepancy], dict[str, Any], BalanceView | None]:
            balance = None
            if balance_of is not None:
                balance = self.queries.balance(self.callers[CLIENTS[0]], *balance_of)
            found = await asyncio.gather(
                verify_ledger(self._engine), self._read_database(), *([balance] if balance else [])
            )
            return found[0], found[1], found[2] if balance else None

        discrepancies, db, view = self.run(read_all())
        assert discrepancies == [], [str(d) for d in discrepancies]
        if self.must_not_change is not None:
            assert db == self.last_read, f"{self.must_not_change} changed the database"
            self.must_not_change = None
        self.last_read = db

        # Accounts: every cached row; the balance query for one account the step changed.
        rows = {row[0]: row for row in db["accounts"]}
        assert set(rows) == set(self.account_keys)
        for account_id, key in self.account_keys.items():
            acct = s.accounts[key]
            assert rows[account_id][1:3] == (acct.posted, acct.held), f"account {key}"
        if view is not None:
            assert balance_of is not None
            shown = (view.posted, view.held, view.available)
            expiring = [(e.expires_at, e.points) for e in view.expiring]
            assert shown == model.balance(balance_of), balance_of
            assert expiring == model.expiring(balance_of), balance_of

        # Journals: bind the ones the service created on its own (hold expiry, expiry).
        self._bind_automatic_journals(db["journals"])
        by_db_id = {j.db_id: j for j in s.journals}
        assert None not in by_db_id, "a journal of the model is missing from the database"
        assert set(by_db_id) == {row[0] for row in db["journals"]}, "journals differ"
        account_ids = {key: account_id for account_id, key in self.account_keys.items()}
        refunded: dict[int, int] = {}
        reversed_: set[int] = set()
        for row in db["journals"]:
            journal_id, kind, points, reverses_id = row[0], row[1], row[5], row[8]
            j = by_db_id[journal_id]
            wanted = (
                j.kind,
                j.program_id,
                account_ids[j.account],
                None if j.counter is None else account_ids[j.counter],
                j.points,
                j.delta,
                j.held_delta,
                None if j.reverses is None else s.journals[j.reverses].db_id,
                None if j.hold is None else s.holds[j.hold].db_id,
                j.created_at,
            )
            assert row[1:] == wanted, f"journal {journal_id} ({kind})"
            if kind == "refund":
                refunded[reverses_id] = refunded.get(reverses_id, 0) + points
            if kind == "reversal":
                reversed_.add(reverses_id)
        for j in s.journals:
            assert refunded.get(j.db_id, 0) == j.refunded, f"refunded total of journal {j.db_id}"
            assert (j.db_id in reversed_) == j.reversed, f"reversal of journal {j.db_id}"

        # Lots: the i-th lot a journal created is the i-th lot of that journal in the database.
        lots_by_journal: dict[int, list[tuple[Any, ...]]] = {}
        for row in db["lots"]:
            lots_by_journal.setdefault(row[2], []).append(row)
        lot_seq_of: dict[int, int] = {}
        for j in s.journals:
            created = lots_by_journal.pop(j.db_id, [])  # type: ignore[arg-type]
            assert len(created) == len(j.lots), f"lots created by journal {j.db_id}"
            for row, seq in zip(created, j.lots, strict=True):
                lot = s.lots[seq]
                lot_seq_of[row[0]] = seq
                wanted = (
                    account_ids[lot.account],
                    lot.original,
                    lot.remaining,
                    lot.held,
                    lot.expires_at,
                )
                assert (row[1], *row[3:]) == wanted, f"lot {row[0]}"
        assert not lots_by_journal, "lots the model does not know"

        # What each journal took from (or gave back to) each lot.
        db_draws: dict[tuple[int, int], int] = {}
        for journal_id, lot_id, points in db["lot_draws"]:
            place = (journal_id, lot_seq_of[lot_id])
            db_draws[place] = db_draws.get(place, 0) + points
        model_draws: dict[tuple[int, int], int] = {}
        for j in s.journals:
            for seq, points in j.draws:
                assert j.db_id is not None
                model_draws[(j.db_id, seq)] = model_draws.get((j.db_id, seq), 0) + points
        assert {k: v for k, v in db_draws.items() if v} == {
            k: v for k, v in model_draws.items() if v
        }, "lot draws differ"

        # Holds.
        assert len(db["holds"]) == len(s.holds)
        for row, hold in zip(db["holds"], s.holds, strict=True):
            wanted = (
                hold.db_id,
                hold.program_id,
                account_ids[hold.account],
                hold.points,
                hold.captured,
                hold.status,
                hold.expires_at,
            )
            assert row == wanted, f"hold {row[0]}"

        # Idempotency keys and their stored outcomes.
        stored = {(client, key): outcome for client, key, outcome, _ in db["keys"]}
        assert stored == model.stored_outcomes(), "stored idempotency keys differ"

    def _bind_automatic_journals(self, rows: list[tuple[Any, ...]]) -> None:
        s = self.model.s
        bound = {j.db_id for j in s.journals if j.db_id is not None}
        for row in rows:
            journal_id, kind, _, account_id, *_rest = row
            if journal_id in bound:
                continue
            hold_id, created_at = row[9], row[10]
            key = self.account_keys[account_id]
            for j in s.journals:
                if j.db_id is not None or j.kind != kind or j.account != key:
                    continue
                if kind == "hold_expiry" and s.holds[j.hold or 0].db_id == hold_id:
                    j.db_id = journal_id
                    break
                if kind == "expire" and j.created_at == created_at:
                    j.db_id = journal_id
                    break


# --- the test cases ----------------------------------------------------------------------


class SQLiteLedgerMachine(LedgerMachine):
    pass


class PostgresLedgerMachine(LedgerMachine):
    pass


@pytest.fixture(scope="module")
def machine_postgres_url() -> Iterator[str]:
    """A database of its own on the PostgreSQL server, migrated once for this module."""
    with services.fresh_postgres_database(services.postgres_server_url()) as url:
        yield url


class TestLedgerSQLite(SQLiteLedgerMachine.TestCase):
    settings = settings(
        max_examples=50,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )

    @pytest.fixture(autouse=True)
    def _databases(self, sqlite_template: Path, tmp_path: Path) -> Iterator[None]:
        SQLiteLedgerMachine.databases = SQLiteDatabases(sqlite_template, tmp_path)
        yield
        SQLiteLedgerMachine.databases = None


@pytest.mark.postgres
class TestLedgerPostgres(PostgresLedgerMachine.TestCase):
    settings = settings(
        max_examples=25,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )

    @pytest.fixture(autouse=True)
    def _databases(self, machine_postgres_url: str) -> Iterator[None]:
        PostgresLedgerMachine.databases = PostgresDatabases(machine_postgres_url)
        yield
        PostgresLedgerMachine.databases = None
