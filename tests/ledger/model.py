"""An in-memory model of the points ledger, written from the rules alone (DESIGN.md section 3).

The state machine in ``test_state_machine.py`` runs every operation against this model and the
real service and asserts that both agree. The model is a second implementation on purpose: it
imports nothing from ``loyalty`` (no lot or journal functions, no error enum); codes are plain
strings, ids are the database ids the service returned, times are aware datetimes.

What it keeps:

- accounts: posted and held per (program id, member id);
- lots: original, remaining, held, expires_at and creation order (``seq``);
- holds: points, status, captured, expires_at and which lots they hold (in draw order);
- journals: kind, points, delta, held delta, the lots they took from or gave back to, the lots
  they created, refunded total and reversed flag;
- idempotency keys: per (client, key) the request signature and the stored outcome.

Every operation runs on a copy of the state and replaces it only when it succeeds, so a refusal
rolls back everything, including the release of stale holds that preceded it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

MAX_POINTS = 10**12
CLOCK_SKEW = timedelta(minutes=5)
MIN_HOLD_SECONDS = 5
MAX_HOLD_SECONDS = 7 * 24 * 3600
MAX_KEY_LENGTH = 128

REFUNDABLE = frozenset({"earn", "redeem", "capture"})
REVERSIBLE = REFUNDABLE | {"adjust", "transfer"}

#: Refusals about the key are never stored; neither are checks made before the key is looked at.
NOT_STORED = frozenset(
    {
        "idempotency_key_in_flight",
        "idempotency_key_reused",
        "idempotency_key_missing",
        "idempotency_key_invalid",
    }
)

AccountKey = tuple[int, int]  # (program id, member id)
Draw = tuple[int, int]  # (lot seq, points): positive taken from the lot, negative given back


class Refused(Exception):  # noqa: N818 - a refusal, not an error of the model
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Policy:
    """A program's rules the ledger needs: expiry after N days (None: never) and hold timeout."""

    expire_after_days: int | None
    hold_timeout_seconds: int

    def lapse(self, earned_at: datetime) -> datetime | None:
        if self.expire_after_days is None:
            return None
        return earned_at + timedelta(days=self.expire_after_days)


@dataclass
class Account:
    program_id: int
    member_id: int
    db_id: int
    posted: int = 0
    held: int = 0

    @property
    def available(self) -> int:
        return self.posted - self.held


@dataclass
class Lot:
    seq: int
    account: AccountKey
    journal: int  # seq of the journal that created the lot
    original: int
    remaining: int
    held: int
    expires_at: datetime | None

    @property
    def free(self) -> int:
        return self.remaining - self.held


@dataclass
class Hold:
    seq: int
    program_id: int
    account: AccountKey
    points: int
    expires_at: datetime
    status: str = "pending"
    captured: int = 0
    draws: list[Draw] = field(default_factory=list)
    db_id: int | None = None


@dataclass
class Journal:
    seq: int
    kind: str
    program_id: int
    account: AccountKey
    points: int
    delta: int
    created_at: datetime
    held_delta: int = 0
    counter: AccountKey | None = None
    reverses: int | None = None  # seq of the journal this one refunds or reverses
    hold: int | None = None  # seq of the hold
    draws: list[Draw] = field(default_factory=list)
    lots: list[int] = field(default_factory=list)  # seqs of the lots it created, in order
    refunded: int = 0
    reversed: bool = False
    db_id: int | None = None


@dataclass
class Expected:
    """What a successful operation must answer."""

    kind: str
    journal: int
    program_id: int
    member_id: int
    points: int
    delta: int
    balance: tuple[int, int, int]
    effective_at: datetime
    created_at: datetime
    counter_member_id: int | None = None
    counter_balance: tuple[int, int, int] | None = None
    lot_expires_at: datetime | None = None
    hold: int | None = None  # seq of the hold shown in the answer
    reverses: int | None = None  # seq of the journal undone


@dataclass
class Outcome:
    """The model's prediction for one request."""

    code: str | None = None  # the refusal, or None for success
    replayed: bool = False
    expected: Expected | None = None  # a success that ran now
    stored_result: Any = None  # the earlier answer, for a replayed success
    stored: bool = False  # whether the outcome was stored under the key just now


@dataclass
class State:
    now: datetime
    programs: dict[int, Policy]
    accounts: dict[AccountKey, Account]
    lots: list[Lot] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    journals: list[Journal] = field(default_factory=list)
    #: (client, key) -> (signature, outcome): ("ok", actual result) or ("refused", code)
    keys: dict[tuple[str, str], tuple[Any, tuple[str, Any]]] = field(default_factory=dict)

    def clone(self) -> State:
        """A copy to try an operation on (records copied, immutable values shared)."""
        return State(
            now=self.now,
            programs=self.programs,
            accounts={k: copy.copy(a) for k, a in self.accounts.items()},
            lots=[copy.copy(lot) for lot in self.lots],
            holds=[replace(h, draws=list(h.draws)) for h in self.holds],
            journals=[replace(j, draws=list(j.draws), lots=list(j.lots)) for j in self.journals],
            keys=dict(self.keys),
        )


def _order(lot: Lot) -> tuple[bool, datetime | int, int]:
    """Spending order: soonest expiry first, never-expiring last, then creation order."""
    if lot.expires_at is None:
        return (True, 0, lot.seq)
    return (False, lot.expires_at, lot.seq)


class LedgerModel:
    def __init__(
        self,
        now: datetime,
        programs: dict[int, Policy],
        accounts: dict[AccountKey, int],
    ) -> None:
        self.s = State(
            now=now,
            programs=dict(programs),
            accounts={key: Account(key[0], key[1], db_id) for key, db_id in accounts.items()},
        )

    # -- reading ---------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.s.now

    def account(self, program_id: int, member_id: int) -> Account | None:
        return self.s.accounts.get((program_id, member_id))

    def balance(self, key: AccountKey) -> tuple[int, int, int]:
        acct = self.s.accounts[key]
        return (acct.posted, acct.held, acct.available)

    def lots_of(self, key: AccountKey) -> list[Lot]:
        return [lot for lot in self.s.lots if lot.account == key]

    def journal_by_db_id(self, journal_id: int) -> Journal | None:
        for journal in self.s.journals:
            if journal.db_id == journal_id:
                return journal
        return None

    def hold_by_db_id(self, hold_id: int) -> Hold | None:
        for hold in self.s.holds:
            if hold.db_id == hold_id:
                return hold
        return None

    def expiring(self, key: AccountKey, limit: int = 12) -> list[tuple[datetime, int]]:
        """Free points by expiry date, soonest first (what the balance lists)."""
        totals: dict[datetime, int] = {}
        for lot in self.lots_of(key):
            if lot.expires_at is not None and lot.free > 0:
                totals[lot.expires_at] = totals.get(lot.expires_at, 0) + lot.free
        return sorted(totals.items())[:limit]

    def self_check(self) -> None:
        """The model's own bookkeeping agrees with itself."""
        for key, acct in self.s.accounts.items():
            lots = self.lots_of(key)
            assert acct.posted == sum(lot.remaining for lot in lots), key
            assert acct.held == sum(lot.held for lot in lots), key
            pending = [h for h in self.s.holds if h.account == key and h.status == "pending"]
            assert acct.held == sum(h.points for h in pending), key
            assert acct.available >= 0, key
        for lot in self.s.lots:
            assert 0 <= lot.held <= lot.remaining <= lot.original, lot

    # -- time ------------------------------------------------------------------------------

    def advance(self, delta: timedelta) -> None:
        self.s.now += delta

    # -- requests --------------------------------------------------------------------------

    def request(
        self, client: str, key: str, op: str, args: dict[str, Any], *, in_flight: bool = False
    ) -> Outcome:
        """Predict one service call: checks before the key, the key, then the operation."""
        try:
            self._precheck(op, args)
            self._check_key(key)
        except Refused as refusal:
            return Outcome(code=refusal.code)
        if in_flight:
            return Outcome(code="idempotency_key_in_flight")
        signature = (op, tuple(sorted(args.items())))
        stored = self.s.keys.get((client, key))
        if stored is not None:
            if stored[0] != signature:
                return Outcome(code="idempotency_key_reused")
            kind, value = stored[1]
            if kind == "refused":
                return Outcome(code=value, replayed=True)
            return Outcome(replayed=True, stored_result=value)
        trial = self.s.clone()
        saved, self.s = self.s, trial
        try:
            expected = getattr(self, f"_{op}")(**args)
        except Refused as refusal:
            self.s = saved
            self.s.keys[(client, key)] = (signature, ("refused", refusal.code))
            return Outcome(code=refusal.code, stored=True)
        self.s.keys[(client, key)] = (signature, ("ok", None))
        return Outcome(expected=expected, stored=True)

    def remember_result(self, client: str, key: str, expected: Expected, result: Any) -> None:
        """Bind the database ids of what an operation created and keep its answer for replays."""
        signature, _ = self.s.keys[(client, key)]
        self.s.keys[(client, key)] = (signature, ("ok", result))
        self.s.journals[expected.journal].db_id = result.journal_id
        if expected.hold is not None and self.s.holds[expected.hold].db_id is None:
            self.s.holds[expected.hold].db_id = result.hold.hold_id

    def stored_outcomes(self) -> dict[tuple[str, str], str]:
        """(client, key) -> 'ok' or the stored refusal code."""
        return {k: ("ok" if v[1][0] == "ok" else v[1][1]) for k, v in self.s.keys.items()}

    @staticmethod
    def _check_key(key: str) -> None:
        if not key:
            raise Refused("idempotency_key_missing")
        if len(key) > MAX_KEY_LENGTH or any(not 33 <= ord(ch) <= 126 for ch in key):
            raise Refused("idempotency_key_invalid")

    @staticmethod
    def _positive(points: Any) -> None:
        if type(points) is not int or not 1 <= points <= MAX_POINTS:
            raise Refused("invalid_amount")

    def _precheck(self, op: str, args: dict[str, Any]) -> None:
        """What the service refuses before it looks at the key (never stored)."""
        if op in ("earn", "redeem", "hold", "refund", "transfer"):
            self._positive(args["points"])
        if op == "capture" and args["points"] is not None:
            self._positive(args["points"])
        if op == "hold":
            timeout = args["timeout_seconds"]
            if timeout is not None and not MIN_HOLD_SECONDS <= timeout <= MAX_HOLD_SECONDS:
                raise Refused("validation_failed")
        if op == "transfer" and args["from_member_id"] == args["to_member_id"]:
            raise Refused("same_account_transfer")
        if op == "adjust":
            points = args["points"]
            if type(points) is not int or points == 0:
                raise Refused("invalid_amount")
            self._positive(abs(points))
            if not args["reason"].strip() or not args["actor"].strip():
                raise Refused("reason_required")

    # -- building blocks -------------------------------------------------------------------

    def _lock(self, program_id: int, member_id: int) -> Account:
        """The member's account, after releasing its holds whose time is up."""
        acct = self.s.accounts.get((program_id, member_id))
        if acct is None:
            raise Refused("member_not_enrolled")
        self._release_stale((program_id, member_id), self.s.now)
        return acct

    def _release_stale(self, key: AccountKey, at: datetime) -> int:
        released = 0
        for hold in self.s.holds:
            if hold.account == key and hold.status == "pending" and hold.expires_at <= at:
                self._unhold(hold)
                hold.status = "expired"
                self._journal(
                    "hold_expiry",
                    hold.program_id,
                    key,
                    points=hold.points,
                    delta=0,
                    held_delta=-hold.points,
                    hold=hold.seq,
                    at=at,
                )
                released += 1
        return released

    def _unhold(self, hold: Hold) -> None:
        for lot_seq, points in hold.draws:
            self.s.lots[lot_seq].held -= points
        self.s.accounts[hold.account].held -= hold.points

    def _journal(
        self, kind: str, program_id: int, key: AccountKey, *, at: datetime | None = None, **kw: Any
    ) -> Journal:
        journal = Journal(
            seq=len(self.s.journals),
            kind=kind,
            program_id=program_id,
            account=key,
            created_at=at or self.s.now,
            **kw,
        )
        self.s.journals.append(journal)
        return journal

    def _new_lot(
        self, key: AccountKey, journal: Journal, points: int, expires_at: datetime | None
    ) -> Lot:
        lot = Lot(len(self.s.lots), key, journal.seq, points, points, 0, expires_at)
        self.s.lots.append(lot)
        journal.lots.append(lot.seq)
        self.s.accounts[key].posted += points
        return lot

    def _free_in_order(self, key: AccountKey) -> list[Lot]:
        return sorted((lot for lot in self.lots_of(key) if lot.free > 0), key=_order)

    def _take_fifo(self, key: AccountKey, points: int) -> list[Draw]:
        """Exactly ``points`` free points, soonest expiry first; refused when there are fewer."""
        lots = self._free_in_order(key)
        if sum(lot.free for lot in lots) < points:
            raise Refused("insufficient_points")
        draws: list[Draw] = []
        wanted = points
        for lot in lots:
            if wanted == 0:
                break
            n = min(wanted, lot.free)
            draws.append((lot.seq, n))
            wanted -= n
        return draws

    def _take_back(self, key: AccountKey, points: int, own: list[int]) -> list[Draw]:
        """Up to ``points`` free points, first from the lots ``own``, then FIFO; never below 0."""
        lots = self._free_in_order(key)
        ordered = [lot for lot in lots if lot.seq in own] + [
            lot for lot in lots if lot.seq not in own
        ]
        draws: list[Draw] = []
        wanted = points
        for lot in ordered:
            if wanted == 0:
                break
            n = min(wanted, lot.free)
            draws.append((lot.seq, n))
            wanted -= n
        return draws

    def _spend(self, draws: list[Draw]) -> None:
        for lot_seq, points in draws:
            lot = self.s.lots[lot_seq]
            lot.remaining -= points
            self.s.accounts[lot.account].posted -= points

    def _expected(
        self, journal: Journal, *, effective_at: datetime | None = None, **kw: Any
    ) -> Expected:
        counter = journal.counter
        return Expected(
            kind=journal.kind,
            journal=journal.seq,
            program_id=journal.account[0],
            member_id=journal.account[1],
            points=journal.points,
            delta=journal.delta,
            balance=self.balance(journal.account),
            effective_at=effective_at or self.s.now,
            created_at=self.s.now,
            counter_member_id=counter[1] if counter else None,
            counter_balance=self.balance(counter) if counter else None,
            **kw,
        )

    # -- operations (each runs on a trial copy of the state) -------------------------------

    def _earn(
        self,
        program_id: int,
        member_id: int,
        points: int,
        effective_at: datetime | None,
        reference: str | None,
    ) -> Expected:
        if effective_at is not None and effective_at > self.s.now + CLOCK_SKEW:
            raise Refused("effective_at_in_future")
        self._lock(program_id, member_id)
        key = (program_id, member_id)
        when = effective_at or self.s.now
        expires_at = self.s.programs[program_id].lapse(when)
        journal = self._journal("earn", program_id, key, points=points, delta=points)
        self._new_lot(key, journal, points, expires_at)
        return self._expected(journal, effective_at=when, lot_expires_at=expires_at)

    def _redeem(
        self, program_id: int, member_id: int, points: int, reference: str | None
    ) -> Expected:
        self._lock(program_id, member_id)
        key = (program_id, member_id)
        draws = self._take_fifo(key, points)
        journal = self._journal(
            "redeem", program_id, key, points=points, delta=-points, draws=draws
        )
        self._spend(draws)
        return self._expected(journal)

    def _hold(
        self,
        program_id: int,
        member_id: int,
        points: int,
        timeout_seconds: int | None,
        reference: str | None,
    ) -> Expected:
        acct = self._lock(program_id, member_id)
        key = (program_id, member_id)
        draws = self._take_fifo(key, points)
        seconds = timeout_seconds or self.s.programs[program_id].hold_timeout_seconds
        hold = Hold(
            seq=len(self.s.holds),
            program_id=program_id,
            account=key,
            points=points,
            expires_at=self.s.now + timedelta(seconds=seconds),
            draws=draws,
        )
        self.s.holds.append(hold)
        for lot_seq, n in draws:
            self.s.lots[lot_seq].held += n
        acct.held += points
        journal = self._journal(
            "hold",
            program_id,
            key,
            points=points,
            delta=0,
            held_delta=points,
            hold=hold.seq,
            draws=draws,
        )
        return self._expected(journal, hold=hold.seq)

    def _find_hold(self, program_id: int, hold_id: int) -> Hold:
        hold = self.hold_by_db_id(hold_id)
        if hold is None or hold.program_id != program_id:
            raise Refused("hold_not_found")
        self._lock(*hold.account)
        if hold.status != "pending":
            raise Refused(
                {
                    "captured": "hold_already_captured",
                    "released": "hold_already_released",
                    "expired": "hold_expired",
                }[hold.status]
            )
        return hold

    def _capture(self, program_id: int, hold_id: int, points: int | None) -> Expected:
        hold = self._find_hold(program_id, hold_id)
        amount = hold.points if points is None else points
        if amount > hold.points:
            raise Refused("capture_exceeds_hold")
        spent: list[Draw] = []
        wanted = amount
        for lot_seq, n in hold.draws:
            if wanted == 0:
                break
            take = min(n, wanted)
            spent.append((lot_seq, take))
            wanted -= take
        self._unhold(hold)
        self._spend(spent)
        hold.status, hold.captured = "captured", amount
        journal = self._journal(
            "capture",
            program_id,
            hold.account,
            points=amount,
            delta=-amount,
            held_delta=-hold.points,
            hold=hold.seq,
            draws=spent,
        )
        return self._expected(journal, hold=hold.seq)

    def _release(self, program_id: int, hold_id: int) -> Expected:
        hold = self._find_hold(program_id, hold_id)
        self._unhold(hold)
        hold.status = "released"
        journal = self._journal(
            "release",
            program_id,
            hold.account,
            points=hold.points,
            delta=0,
            held_delta=-hold.points,
            hold=hold.seq,
        )
        return self._expected(journal, hold=hold.seq)

    def _find_journal(self, program_id: int, journal_id: int) -> Journal:
        journal = self.journal_by_db_id(journal_id)
        if journal is None or journal.program_id != program_id:
            raise Refused("journal_not_found")
        self._lock(*journal.account)
        if journal.counter is not None:
            self._lock(*journal.counter)
        return journal

    def _refund(
        self, program_id: int, journal_id: int, points: int, reason: str | None
    ) -> Expected:
        original = self._find_journal(program_id, journal_id)
        if original.kind not in REFUNDABLE:
            raise Refused("journal_not_refundable")
        if original.reversed:
            raise Refused("journal_already_reversed")
        if points > original.points - original.refunded:
            raise Refused("refund_exceeds_original")
        expected = self._undo(original, points, "refund")
        original.refunded += points
        return expected

    def _reverse(self, program_id: int, journal_id: int, reason: str | None) -> Expected:
        original = self._find_journal(program_id, journal_id)
        if original.kind not in REVERSIBLE:
            raise Refused("journal_not_reversible")
        if original.reversed:
            raise Refused("journal_already_reversed")
        left = original.points - original.refunded
        if left <= 0:
            raise Refused("nothing_left_to_reverse")
        expected = self._undo(original, left, "reversal")
        original.reversed = True
        return expected

    def _undo(self, original: Journal, amount: int, kind: str) -> Expected:
        key = original.account
        if original.delta > 0:
            # A credit: take the points back from the member, as far as they are free.
            taken = self._take_back(key, amount, original.lots)
            moved = sum(n for _, n in taken)
            self._spend(taken)
            journal = self._journal(
                kind,
                original.program_id,
                key,
                points=amount,
                delta=-moved,
                reverses=original.seq,
                draws=taken,
            )
            return self._expected(journal, reverses=original.seq)
        # A debit: give the points back to the lots they came from, last-drawn first.
        owed: list[list[int]] = [[lot_seq, n] for lot_seq, n in original.draws]
        for other in self.s.journals:
            if other.reverses == original.seq:
                for lot_seq, n in other.draws:
                    for entry in owed:
                        if entry[0] == lot_seq:
                            entry[1] += n
                            break
        if amount > sum(n for _, n in owed):
            raise Refused("refund_exceeds_original")
        returns: list[Draw] = []
        wanted = amount
        for lot_seq, n in reversed(owed):
            if wanted == 0:
                break
            give = min(n, wanted)
            if give:
                returns.append((lot_seq, give))
            wanted -= give
        claws: list[Draw] = []
        if original.counter is not None:
            claws = self._take_back(original.counter, amount, original.lots)
            if sum(n for _, n in claws) < amount:
                raise Refused("insufficient_points")
        for lot_seq, give in returns:
            lot = self.s.lots[lot_seq]
            lot.remaining += give
            self.s.accounts[lot.account].posted += give
        self._spend(claws)
        journal = self._journal(
            kind,
            original.program_id,
            key,
            points=amount,
            delta=amount,
            reverses=original.seq,
            counter=original.counter,
            draws=[(lot_seq, -give) for lot_seq, give in returns] + claws,
        )
        return self._expected(journal, reverses=original.seq)

    def _adjust(
        self, program_id: int, member_id: int, points: int, reason: str, actor: str
    ) -> Expected:
        self._lock(program_id, member_id)
        key = (program_id, member_id)
        if points > 0:
            expires_at = self.s.programs[program_id].lapse(self.s.now)
            journal = self._journal("adjust", program_id, key, points=points, delta=points)
            self._new_lot(key, journal, points, expires_at)
            return self._expected(journal, lot_expires_at=expires_at)
        draws = self._take_fifo(key, -points)
        journal = self._journal(
            "adjust", program_id, key, points=-points, delta=points, draws=draws
        )
        self._spend(draws)
        return self._expected(journal)

    def _transfer(
        self,
        program_id: int,
        from_member_id: int,
        to_member_id: int,
        points: int,
        reason: str | None,
    ) -> Expected:
        for member_id in (from_member_id, to_member_id):
            if (program_id, member_id) not in self.s.accounts:
                raise Refused("member_not_enrolled")
        self._lock(program_id, from_member_id)
        self._lock(program_id, to_member_id)
        source, target = (program_id, from_member_id), (program_id, to_member_id)
        draws = self._take_fifo(source, points)
        journal = self._journal(
            "transfer",
            program_id,
            source,
            points=points,
            delta=-points,
            counter=target,
            draws=draws,
        )
        expiries = [self.s.lots[lot_seq].expires_at for lot_seq, _ in draws]
        self._spend(draws)
        for (_, n), expires_at in zip(draws, expiries, strict=True):
            self._new_lot(target, journal, n, expires_at)
        return self._expected(journal)

    # -- the expiry sweep ------------------------------------------------------------------

    def sweep(self, at: datetime) -> tuple[int, int, int, int]:
        """(accounts, holds released, lots expired, points expired) of a sweep at ``at``."""
        due = sorted(
            {h.account for h in self.s.holds if h.status == "pending" and h.expires_at <= at}
            | {
                lot.account
                for lot in self.s.lots
                if lot.free > 0 and lot.expires_at is not None and lot.expires_at <= at
            }
        )
        holds = lots = points = 0
        for key in due:
            holds += self._release_stale(key, at)
            draws = [
                (lot.seq, lot.free)
                for lot in self._free_in_order(key)
                if lot.expires_at is not None and lot.expires_at <= at
            ]
            total = sum(n for _, n in draws)
            if total:
                self._journal("expire", key[0], key, points=total, delta=-total, draws=draws, at=at)
                self._spend(draws)
            lots += len(draws)
            points += total
        return len(due), holds, lots, points
