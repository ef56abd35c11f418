"""A member's tier: the stored state, the journal of its changes, evaluation after each
qualifying event, period-end reviews and manual assignment.

The pure rules live in ``loyalty.domain.tiers``; here they meet the database. Qualifying totals
are sums of ``qualifying_activity`` (signed: returns subtract) over the policy's windows. Every
change is a ``tier_changes`` row with its reason. Reviews run in ``loyalty tiers recalc`` and,
lazily, before a member's next order, so a downgrade never waits for a cron job and never comes
early. The caller holds the member's account lock (orders do; recalc takes it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import qualifying_activity, tier_changes, tier_states
from loyalty.domain import tiers as t
from loyalty.domain.tiers import TierBasis, TierChange, TierLevel, TierPolicy, TierState

from . import ledger_writes as w
from .ledger_writes import Account
from .rules_in_force import RulesInForce, find_rules_in_force

#: Accounts reviewed per transaction by ``recalc_tiers``.
RECALC_BATCH = 200
#: A moment before the end of a manual grant, to name the level it gave.
_TICK = timedelta(microseconds=1)


async def qualifying_total(
    conn: AsyncConnection, account_id: int, basis: TierBasis, window: tuple[datetime, datetime]
) -> int:
    column = (
        qualifying_activity.c.points if basis is TierBasis.POINTS else qualifying_activity.c.spend
    )
    total = await conn.scalar(
        select(func.coalesce(func.sum(column), 0)).where(
            qualifying_activity.c.account_id == account_id,
            qualifying_activity.c.occurred_at >= window[0],
            qualifying_activity.c.occurred_at < window[1],
        )
    )
    return int(total or 0)


async def load_state(conn: AsyncConnection, account_id: int) -> TierState | None:
    row = (
        await conn.execute(select(tier_states).where(tier_states.c.account_id == account_id))
    ).first()
    if row is None:
        return None
    return TierState(
        earned=row.earned,
        since=row.since,
        review_at=row.review_at,
        manual=row.manual,
        manual_until=row.manual_until,
    )


def known_state(policy: TierPolicy, state: TierState) -> TierState:
    """A state whose codes the policy knows: a version that dropped a level moves its members
    to the base level (earned) and ends manual grants of the vanished level."""
    codes = {level.code for level in policy.levels}
    earned = state.earned if state.earned in codes else policy.levels[0].code
    manual_known = state.manual in codes
    if earned == state.earned and (state.manual is None or manual_known):
        return state
    return TierState(
        earned=earned,
        since=state.since,
        review_at=state.review_at,
        manual=state.manual if manual_known else None,
        manual_until=state.manual_until if manual_known else None,
    )


def effective_level(policy: TierPolicy, state: TierState, at: datetime) -> TierLevel:
    return t.effective(policy, known_state(policy, state), at)


async def level_at(
    conn: AsyncConnection, policy: TierPolicy, account_id: int, state: TierState, at: datetime
) -> TierLevel:
    """The member's level at ``at``, which may lie before changes already journaled: an order
    captured offline and sent later is priced with the tier the member had when it happened.
    The first change after ``at`` names the level the member had until then."""
    before = (
        await conn.execute(
            select(tier_changes.c.before)
            .where(tier_changes.c.account_id == account_id, tier_changes.c.at > at)
            .order_by(tier_changes.c.at, tier_changes.c.id)
            .limit(1)
        )
    ).first()
    if before is None:
        return effective_level(policy, state, at)
    levels = {level.code: level for level in policy.levels}
    return levels.get(before.before or "", policy.levels[0])


async def member_level(
    conn: AsyncConnection, policy: TierPolicy, account_id: int, at: datetime
) -> TierLevel:
    """The member's level at ``at`` under ``policy`` (the base level before any tier state)."""
    state = await load_state(conn, account_id)
    return policy.levels[0] if state is None else effective_level(policy, state, at)


async def effective_tier(
    conn: AsyncConnection, program_id: int, account_id: int, at: datetime
) -> TierLevel | None:
    """The member's tier under the rules in force at ``at`` (None: no tiers)."""
    found = await find_rules_in_force(conn, program_id, at)
    if found is None or found.rules.tiers is None:
        return None
    return await member_level(conn, found.rules.tiers, account_id, at)


async def effective_tier_code(
    conn: AsyncConnection, program_id: int, account_id: int, at: datetime
) -> str | None:
    """The member's tier code under the rules in force at ``at`` (None: no tiers)."""
    level = await effective_tier(conn, program_id, account_id, at)
    return None if level is None else level.code


@dataclass(frozen=True, slots=True)
class TierContext:
    """What every tier write needs to know about the member and the rules."""

    program_id: int
    account_id: int
    joined_at: datetime
    policy: TierPolicy
    rule_set_id: int | None
    actor: str | None = None

    @classmethod
    def of(cls, account: Account, found: RulesInForce, actor: str | None = None) -> TierContext:
        """For a locked account under rules that define tiers."""
        assert found.rules.tiers is not None
        return cls(
            account.program_id,
            account.id,
            account.joined_at,
            found.rules.tiers,
            found.rule_set_id,
            actor,
        )


async def ensure_state(conn: AsyncConnection, ctx: TierContext, at: datetime) -> TierState:
    state = await load_state(conn, ctx.account_id)
    if state is not None:
        return known_state(ctx.policy, state)
    state, change = t.enrolled(ctx.policy, ctx.joined_at, at)
    await conn.execute(
        tier_states.insert().values(
            account_id=ctx.account_id,
            program_id=ctx.program_id,
            **_state_columns(ctx.policy, state, at),
        )
    )
    await _journal(conn, ctx, change, None)
    return state


async def after_qualifying_event(
    conn: AsyncConnection, ctx: TierContext, state: TierState, at: datetime
) -> tuple[TierState, TierChange | None]:
    """Upgrade at once when the member's window total reaches a higher level."""
    window = t.qualification_window(ctx.policy, ctx.joined_at, at)
    total = await qualifying_total(conn, ctx.account_id, ctx.policy.basis, window)
    new_state, change = t.after_qualifying_event(ctx.policy, state, total, at)
    if change is not None:
        await save_state(conn, ctx, new_state, change, total, at)
    return new_state, change


async def apply_due(
    conn: AsyncConnection, ctx: TierContext, state: TierState, at: datetime
) -> tuple[TierState, list[TierChange]]:
    """Every review that fell due by ``at`` (several if periods were missed), and the end of an
    expired manual assignment. Running it again changes nothing."""
    changes: list[TierChange] = []
    if state.manual is not None and state.manual_until is not None and state.manual_until <= at:
        before = t.effective(ctx.policy, state, state.manual_until - _TICK).code
        state = TierState(state.earned, state.since, state.review_at)
        change = TierChange(
            before, t.effective(ctx.policy, state, at).code, t.TierChangeReason.MANUAL_ENDED, at
        )
        await save_state(conn, ctx, state, change, None, at)
        changes.append(change)
    while t.review_due(ctx.policy, state) <= at:
        window = t.review_window(ctx.policy, state, ctx.joined_at)
        total = await qualifying_total(conn, ctx.account_id, ctx.policy.basis, window)
        state, change = t.review(ctx.policy, state, total, ctx.joined_at)
        await save_state(conn, ctx, state, change, total, at)
        changes.append(change)
    return state, changes


async def assign_manual(
    conn: AsyncConnection,
    ctx: TierContext,
    state: TierState,
    code: str,
    until: datetime,
    at: datetime,
) -> tuple[TierState, TierChange]:
    new_state, change = t.assign_manual(ctx.policy, state, code, until, at)
    await save_state(conn, ctx, new_state, change, None, at)
    return new_state, change


async def save_state(
    conn: AsyncConnection,
    ctx: TierContext,
    state: TierState,
    change: TierChange,
    total: int | None,
    at: datetime,
) -> None:
    await conn.execute(
        tier_states.update()
        .where(tier_states.c.account_id == ctx.account_id)
        .values(**_state_columns(ctx.policy, state, at))
    )
    await _journal(conn, ctx, change, total)


async def _journal(
    conn: AsyncConnection, ctx: TierContext, change: TierChange, total: int | None
) -> None:
    await conn.execute(
        tier_changes.insert().values(
            account_id=ctx.account_id,
            before=change.before,
            after=change.after,
            reason=str(change.reason),
            at=change.at,
            qualifying_total=total,
            rule_set_id=ctx.rule_set_id,
            actor=ctx.actor,
        )
    )


def _state_columns(policy: TierPolicy, state: TierState, at: datetime) -> dict[str, Any]:
    return {
        "earned": state.earned,
        "since": state.since,
        "review_at": state.review_at,
        "review_due": t.review_due(policy, state),
        "manual": state.manual,
        "manual_until": state.manual_until,
        "updated_at": at,
    }


# -- the period-end job -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecalcResult:
    accounts: int
    kept: int
    downgraded: int
    manual_ended: int

    def __str__(self) -> str:
        return (
            f"reviewed {self.accounts} member(s): {self.kept} kept their tier, "
            f"{self.downgraded} moved down, {self.manual_ended} manual assignment(s) ended"
        )


async def recalc_tiers(
    engine: AsyncEngine,
    at: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> RecalcResult:
    """Apply every period-end review and manual-assignment end due by ``at``, for every program.

    Idempotent: a review advances the member's next review date, so a second run (or a run in
    another process at the same time: each member is locked while reviewed) finds nothing due.
    """

    async def due_accounts(conn: AsyncConnection) -> list[tuple[int, int]]:
        rows = await conn.execute(
            select(tier_states.c.program_id, tier_states.c.account_id)
            .where(
                or_(
                    tier_states.c.review_due <= at,
                    tier_states.c.manual_until <= at,
                )
            )
            .order_by(tier_states.c.program_id, tier_states.c.account_id)
        )
        return [(row.program_id, row.account_id) for row in rows]

    due = await in_transaction(engine, due_accounts, read_only=True)
    counts = {"kept": 0, "downgrade": 0, "manual_ended": 0}
    done = 0
    if progress is not None:
        progress(0, len(due))
    for start in range(0, len(due), RECALC_BATCH):
        batch = due[start : start + RECALC_BATCH]

        async def review_batch(
            conn: AsyncConnection, batch: list[tuple[int, int]] = batch
        ) -> list[TierChange]:
            changes: list[TierChange] = []
            rules: dict[int, RulesInForce | None] = {}
            for program_id, account_id in batch:
                if program_id not in rules:
                    rules[program_id] = await find_rules_in_force(conn, program_id, at)
                changes += await _review_one(conn, rules[program_id], account_id, at)
            return changes

        for change in await in_transaction(engine, review_batch):
            if str(change.reason) in counts:
                counts[str(change.reason)] += 1
        done += len(batch)
        if progress is not None:
            progress(done, len(due))
    return RecalcResult(
        accounts=len(due),
        kept=counts["kept"],
        downgraded=counts["downgrade"],
        manual_ended=counts["manual_ended"],
    )


async def _review_one(
    conn: AsyncConnection, found: RulesInForce | None, account_id: int, at: datetime
) -> list[TierChange]:
    if found is None or found.rules.tiers is None:
        return []
    # The account row is the member's lock, as for every ledger operation.
    account = (await w.lock_accounts(conn, [account_id]))[account_id]
    state = await load_state(conn, account_id)
    if state is None:
        return []
    ctx = TierContext.of(account, found, actor="tiers recalc")
    _, changes = await apply_due(conn, ctx, known_state(ctx.policy, state), at)
    return changes
