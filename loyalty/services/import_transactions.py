"""Importing historical transactions (docs/IMPORT.md) so that they leave the traces of real
purchases: an order priced by the published rule set in force at its time (or the earliest one),
its qualifying activity, and for points an earn journal dated at the sale with its entries and
a lot expiring by the program's policy. A lot already past its expiry is expired at once, by an
expire journal dated at its expiry. Balances are updated once per account per batch; tiers are
evaluated once per member at the end. Sales without a member go to ``non_member_sales``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction
from loyalty.db.tables import (
    accounts,
    entries,
    journals,
    lot_draws,
    lots,
    members,
    non_member_sales,
    orders,
    qualifying_activity,
    tier_changes,
    tier_states,
)
from loyalty.domain import tiers as t
from loyalty.domain.csv_rows import (
    ORDER_REFERENCE_PREFIX,
    Header,
    ImportKind,
    Problem,
    ProblemCode,
    Record,
    TransactionRow,
    transaction_row,
)
from loyalty.domain.journals import JournalKind

from . import ledger_writes as w
from .import_passes import (
    Importer,
    ImportProgress,
    Report,
    announce_balances,
    insert_ids,
    journal_row,
    row_problem,
)
from .rules_in_force import RulesInForce, find_rules_in_force
from .tier_status import TierContext, after_qualifying_event, apply_due, ensure_state

#: Rows written per transaction.
TRANSACTION_BATCH = 5000
#: Members whose tier is evaluated per transaction after an import.
TIER_BATCH = 1000
SALE_SOURCE = "import"
#: The actor of the tier changes an import makes.
IMPORT_ACTOR = "import"
#: An imported order's quote: one line of this source with the file's points.
IMPORTED_QUOTE_SOURCE = "import"


@dataclass(frozen=True, slots=True)
class _Holder:
    """The member a transaction file names, as found."""

    account_id: int | None
    erased: bool


class TransactionImporter(Importer):
    batch_size = TRANSACTION_BATCH
    after_phase = "tiers"
    grows = (
        orders,
        non_member_sales,
        qualifying_activity,
        journals,
        entries,
        lots,
        lot_draws,
    )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.holders: dict[str, _Holder | None] = {}
        self.touched: set[int] = set()
        self.issued_account: int | None = None
        self.expired_account: int | None = None

    @property
    def kind(self) -> ImportKind:
        return ImportKind.TRANSACTIONS

    def parse(self, header: Header, record: Record) -> TransactionRow | list[Problem]:
        return transaction_row(header, record, self.settings)

    def unique_keys(self, row: TransactionRow) -> Iterator[tuple[str, str | None]]:
        yield "reference", row.reference

    async def load(
        self, path: Path, report: Report, progress: ImportProgress | None = None
    ) -> None:
        # The import finds the members again: what the check saw may have changed since.
        self.holders.clear()
        await super().load(path, report, progress)

    async def _holders(self, conn: AsyncConnection, refs: set[str]) -> None:
        """Find the members named by external id (cached for the whole import)."""
        missing = [ref for ref in refs if ref not in self.holders]
        for start in range(0, len(missing), 1000):
            part = missing[start : start + 1000]
            rows = (
                await conn.execute(
                    select(
                        members.c.id,
                        members.c.external_ref,
                        members.c.deleted_at,
                        members.c.merged_into_id,
                    ).where(
                        members.c.merchant_id == self.program.merchant_id,
                        members.c.external_ref.in_(part),
                    )
                )
            ).all()
            member_of = {row.external_ref: row for row in rows}
            # A record merged into another: its purchases belong to the member it became.
            survivors: dict[int, int] = {}
            for row in rows:
                target, hops = row.merged_into_id, 0
                while target is not None and hops < 10:
                    survivors[row.id] = target
                    target = await conn.scalar(
                        select(members.c.merged_into_id).where(members.c.id == target)
                    )
                    hops += 1
            wanted = {survivors.get(row.id, row.id) for row in rows}
            account_of = {
                account.member_id: account.id
                for account in await conn.execute(
                    select(accounts.c.id, accounts.c.member_id).where(
                        accounts.c.program_id == self.program.id,
                        accounts.c.member_id.in_(list(wanted)),
                    )
                )
            }
            for ref in part:
                named = member_of.get(ref)
                if named is None:
                    self.holders[ref] = None
                    continue
                member_id = survivors.get(named.id, named.id)
                self.holders[ref] = _Holder(account_of.get(member_id), named.deleted_at is not None)

    async def _present(self, conn: AsyncConnection, rows: list[TransactionRow]) -> set[str]:
        """References of the rows that are there already (an order or a sale without member)."""
        references = [row.reference for row in rows]
        found: set[str] = set()
        for start in range(0, len(references), 1000):
            part = references[start : start + 1000]
            for table in (orders, non_member_sales):
                found.update(
                    (
                        await conn.execute(
                            select(table.c.reference).where(
                                table.c.program_id == self.program.id,
                                table.c.reference.in_(part),
                            )
                        )
                    ).scalars()
                )
        return found

    def _holder_problem(self, row: TransactionRow) -> Problem | None:
        if row.member is None:
            return None
        holder = self.holders.get(row.member)
        if holder is None:
            return row_problem(
                row,
                ProblemCode.UNKNOWN_MEMBER,
                "member",
                f"{row.member!r} is no member's external_id (import the members first)",
            )
        if holder.erased:
            return row_problem(
                row, ProblemCode.MEMBER_ERASED, "member", f"{row.member!r} was erased"
            )
        if holder.account_id is None:
            return row_problem(
                row,
                ProblemCode.MEMBER_NOT_ENROLLED,
                "member",
                f"{row.member!r} is not enrolled in this program",
            )
        return None

    async def match(
        self, conn: AsyncConnection, rows: list[TransactionRow]
    ) -> tuple[list[Problem], int]:
        await self._holders(conn, {row.member for row in rows if row.member is not None})
        present = await self._present(conn, rows)
        problems = []
        count = 0
        for row in rows:
            if row.reference in present:
                count += 1
                continue
            problem = self._holder_problem(row)
            if problem is not None:
                problems.append(problem)
        return problems, count

    async def write(self, conn: AsyncConnection, rows: list[TransactionRow]) -> tuple[int, int]:
        await self._holders(conn, {row.member for row in rows if row.member is not None})
        present = await self._present(conn, rows)
        problems = [
            problem
            for row in rows
            if row.reference not in present and (problem := self._holder_problem(row)) is not None
        ]
        bad = self.bad_rows(problems, self.late_problems)
        fresh = [row for row in rows if row.reference not in present and row.line not in bad]
        sales = [row for row in fresh if row.member is None]
        bought = [row for row in fresh if row.member is not None]
        if sales:
            await conn.execute(
                non_member_sales.insert(),
                [
                    {
                        "program_id": self.program.id,
                        "reference": row.reference,
                        "occurred_at": row.occurred_at,
                        "total": row.total,
                        "currency": row.currency,
                        "source": SALE_SOURCE,
                        "created_at": self.now,
                    }
                    for row in sales
                ],
            )
        if bought:
            await self._orders(conn, bought)
        return len(fresh), len(present)

    async def _orders(self, conn: AsyncConnection, rows: list[TransactionRow]) -> None:
        if self.issued_account is None or self.expired_account is None:
            system = await w.system_accounts(conn, self.program.id)
            self.issued_account, self.expired_account = system["issued"], system["expired"]
        issued, expired = self.issued_account, self.expired_account
        account_of = {}
        for row in rows:
            holder = self.holders[row.member or ""]
            assert holder is not None
            assert holder.account_id is not None
            account_of[row.line] = holder.account_id
        earning = [row for row in rows if row.points > 0]
        expiry = {row.line: self.program.expiry.expires_at(row.occurred_at) for row in earning}
        lapsed = [row for row in earning if (e := expiry[row.line]) is not None and e <= self.now]
        lapsed_lines = {row.line for row in lapsed}
        # Balances first: the accounts are locked (in id order) for the rest of the batch.
        deltas: dict[int, int] = {}
        for row in earning:
            kept = 0 if row.line in lapsed_lines else row.points
            deltas[account_of[row.line]] = deltas.get(account_of[row.line], 0) + kept
        self.touched.update(account_of.values())
        if deltas:
            await conn.execute(
                update(accounts)
                .where(accounts.c.id == bindparam("account"))
                .values(
                    posted=accounts.c.posted + bindparam("delta"),
                    version=accounts.c.version + 1,
                ),
                [{"account": a, "delta": d} for a, d in sorted(deltas.items())],
            )
        earn_journals: dict[int, int] = {}
        if earning:
            plan = [
                journal_row(
                    self,
                    JournalKind.EARN,
                    account_of[row.line],
                    row.points,
                    self.now,
                    effective_at=row.occurred_at,
                    reference=ORDER_REFERENCE_PREFIX + row.reference,
                )
                for row in earning
            ] + [
                journal_row(
                    self,
                    JournalKind.EXPIRE,
                    account_of[row.line],
                    -row.points,
                    self.now,
                    effective_at=expiry[row.line],
                )
                for row in lapsed
            ]
            ids = await insert_ids(conn, journals, plan)
            journal_ids = [int(i) for i in ids]
            earn_journals = {row.line: journal_ids[i] for i, row in enumerate(earning)}
            expire_journals = {
                row.line: journal_ids[len(earning) + i] for i, row in enumerate(lapsed)
            }
            lot_ids = await insert_ids(
                conn,
                lots,
                [
                    {
                        "account_id": account_of[row.line],
                        "journal_id": earn_journals[row.line],
                        "original": row.points,
                        "remaining": 0 if row.line in expire_journals else row.points,
                        "held": 0,
                        "expires_at": expiry[row.line],
                        "created_at": self.now,
                    }
                    for row in earning
                ],
            )
            lot_of = {row.line: int(i) for row, i in zip(earning, lot_ids, strict=True)}
            moves = [
                (earn_journals[row.line], account_of[row.line], row.points, issued)
                for row in earning
            ] + [
                (expire_journals[row.line], expired, row.points, account_of[row.line])
                for row in lapsed
            ]
            await conn.execute(
                entries.insert(),
                [
                    entry
                    for journal_id, to, points, source in moves
                    for entry in (
                        {"journal_id": journal_id, "account_id": to, "amount": points},
                        {"journal_id": journal_id, "account_id": source, "amount": -points},
                    )
                ],
            )
            if lapsed:
                await conn.execute(
                    lot_draws.insert(),
                    [
                        {
                            "journal_id": expire_journals[row.line],
                            "lot_id": lot_of[row.line],
                            "points": row.points,
                        }
                        for row in lapsed
                    ],
                )
                self.lots_expired += len(lapsed)
        order_ids = await insert_ids(
            conn,
            orders,
            [self._order(row, account_of[row.line], earn_journals.get(row.line)) for row in rows],
        )
        await conn.execute(
            qualifying_activity.insert(),
            [
                {
                    "account_id": account_of[row.line],
                    "occurred_at": row.occurred_at,
                    "points": row.points,
                    "spend": row.total,
                    "order_id": int(order_id),
                }
                for row, order_id in zip(rows, order_ids, strict=True)
            ],
        )
        if deltas:
            await announce_balances(conn, list(deltas))

    def _order(
        self, row: TransactionRow, account_id: int, journal_id: int | None
    ) -> dict[str, Any]:
        rule_set_id, version = self.program.rule_set_at(row.occurred_at)
        return {
            "program_id": self.program.id,
            "account_id": account_id,
            "reference": row.reference,
            "occurred_at": row.occurred_at,
            "rule_set_id": rule_set_id,
            "tier": None,
            "basket": {
                "currency": row.currency,
                "lines": [
                    {"line_id": "1", "sku": "import", "quantity": 1, "unit_price": row.total}
                ],
            },
            "context": {
                "segments": [],
                "earned_in_period": {},
                "promotion_uses": {},
                "promotion_points_used": {},
            },
            "quote": {
                "points": row.points,
                "lines": [
                    {
                        "source": IMPORTED_QUOTE_SOURCE,
                        "code": IMPORTED_QUOTE_SOURCE,
                        "name": {"de": "Importierter Einkauf", "en": "Imported purchase"},
                        "points": row.points,
                        "basis": row.total,
                    }
                ],
                "qualifying_spend": row.total,
                "rule_set_version": version,
                "tier": None,
            },
            "points": row.points,
            "qualifying_spend": row.total,
            "journal_id": journal_id,
            "created_at": self.now,
        }

    async def after(self, progress: ImportProgress | None) -> None:
        """Evaluate the tier of every member the import touched, as an order would."""
        touched = sorted(self.touched)
        found = await in_transaction(
            self.engine,
            lambda conn: find_rules_in_force(conn, self.program.id, self.now),
            read_only=True,
        )
        if found is None or found.rules.tiers is None or not touched:
            return
        done = 0
        for start in range(0, len(touched), TIER_BATCH):
            batch = touched[start : start + TIER_BATCH]

            async def evaluate(conn: AsyncConnection, batch: list[int] = batch) -> None:
                assert found is not None
                await evaluate_tiers(conn, found, batch, self.now)

            await in_transaction(self.engine, evaluate)
            done += len(batch)
            if progress is not None:
                progress("tiers", done, len(touched))
        await self.analyze((tier_states, tier_changes))


async def evaluate_tiers(
    conn: AsyncConnection, found: RulesInForce, account_ids: list[int], now: datetime
) -> None:
    """Bring the tiers of these accounts up to date at ``now`` after their qualifying activity
    grew, as ``tier_status`` does after an order (ensure the state, apply due reviews, upgrade
    on the window's total), locking them as orders do.

    Accounts without a tier state yet (nearly all, after an import) are done together: one
    query reads their activity, the domain's rules run in memory, and their states and the
    journal of changes are written in one statement each. A new state's first review lies in
    the future, so no review is due for them. Accounts that have a state go one by one through
    ``tier_status`` itself."""
    policy = found.rules.tiers
    assert policy is not None
    locked = await w.lock_accounts(conn, account_ids)
    has_state = set(
        (
            await conn.execute(
                select(tier_states.c.account_id).where(tier_states.c.account_id.in_(list(locked)))
            )
        ).scalars()
    )
    for account_id in sorted(has_state):
        ctx = TierContext.of(locked[account_id], found, actor=IMPORT_ACTOR)
        state = await ensure_state(conn, ctx, now)
        state, _ = await apply_due(conn, ctx, state, now)
        await after_qualifying_event(conn, ctx, state, now)
    fresh = [account for account in locked.values() if account.id not in has_state]
    if not fresh:
        return
    windows = {a.id: t.qualification_window(policy, a.joined_at, now) for a in fresh}
    amount = (
        qualifying_activity.c.points
        if policy.basis is t.TierBasis.POINTS
        else qualifying_activity.c.spend
    )
    activity = await conn.execute(
        select(qualifying_activity.c.account_id, qualifying_activity.c.occurred_at, amount).where(
            qualifying_activity.c.account_id.in_(list(windows)),
            qualifying_activity.c.occurred_at >= min(w[0] for w in windows.values()),
            qualifying_activity.c.occurred_at < max(w[1] for w in windows.values()),
        )
    )
    totals = dict.fromkeys(windows, 0)
    for account_id, occurred_at, value in activity:
        start, end = windows[account_id]
        if start <= occurred_at < end:
            totals[account_id] += int(value)
    states = []
    changes: list[tuple[int, t.TierChange, int | None]] = []
    for account in fresh:
        state, enrolled = t.enrolled(policy, account.joined_at, now)
        changes.append((account.id, enrolled, None))
        state, upgrade = t.after_qualifying_event(policy, state, totals[account.id], now)
        if upgrade is not None:
            changes.append((account.id, upgrade, totals[account.id]))
        states.append(
            {
                "account_id": account.id,
                "program_id": account.program_id,
                "earned": state.earned,
                "since": state.since,
                "review_at": state.review_at,
                "review_due": t.review_due(policy, state),
                "manual": None,
                "manual_until": None,
                "updated_at": now,
            }
        )
    await conn.execute(tier_states.insert(), states)
    await conn.execute(
        tier_changes.insert(),
        [
            {
                "account_id": account_id,
                "before": change.before,
                "after": change.after,
                "reason": str(change.reason),
                "at": change.at,
                "qualifying_total": total,
                "rule_set_id": found.rule_set_id,
                "actor": IMPORT_ACTOR,
            }
            for account_id, change, total in changes
        ],
    )
