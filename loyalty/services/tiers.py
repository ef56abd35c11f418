"""Tier status for members and managers: the current level with its benefits, "N to reach the
next level", "N to keep this level by <date>", the history of changes, manual assignment and
the member list with tiers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from msgspec import Struct
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, members, programs, tier_changes, tier_states
from loyalty.domain import tiers as t
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.tiers import TierPolicy, TierState

from . import ledger_writes as w
from .audit import record_change
from .context import Caller, Staff, utc_now
from .lookups import account_row
from .rule_documents import LocalizedText
from .rules_in_force import RulesInForce, find_rules_in_force
from .tier_status import (
    TierContext,
    apply_due,
    ensure_state,
    known_state,
    load_state,
    qualifying_total,
)
from .tier_status import assign_manual as assign_manual_tier

MAX_PAGE = 200


class TierLevelView(Struct, frozen=True):
    code: str
    name: LocalizedText
    threshold: int
    multiplier: Decimal
    perks: LocalizedText


class TierChangeView(Struct, frozen=True):
    at: datetime
    before: str | None
    after: str
    reason: str
    qualifying_total: int | None
    actor: str | None


class TierStatusView(Struct, frozen=True, kw_only=True):
    program_id: int
    member_id: int
    #: "points" or "spend" (minor units): what the totals and thresholds count.
    basis: str
    current: TierLevelView
    earned: str
    manual: str | None
    manual_until: datetime | None
    since: datetime
    next: TierLevelView | None
    #: Still missing for the next level (None at the top).
    to_next: int | None
    #: Still missing to keep the current level at the next review, and when that is.
    to_keep: int
    keep_by: datetime
    qualifying_total: int
    levels: list[TierLevelView]
    history: list[TierChangeView]


class MemberTierRow(Struct, frozen=True):
    member_id: int
    display_name: str
    tier: str | None
    manual: str | None
    review_at: datetime | None
    posted: int
    available: int


class MemberPage(Struct, frozen=True):
    items: list[MemberTierRow]
    next_after_id: int | None


class Tiers:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    async def status(self, caller: Caller, program_id: int, member_id: int) -> TierStatusView:
        async def work(conn: AsyncConnection) -> TierStatusView:
            now = self._clock()
            account = await account_row(conn, caller, program_id, member_id)
            policy = _tiers_of(await find_rules_in_force(conn, program_id, now))
            stored = await load_state(conn, account.id)
            if stored is None:
                state, _ = t.enrolled(policy, account.created_at, account.created_at)
            else:
                state = known_state(policy, stored)
            # Reads show what the next write will make of a review already due.
            state = _after_due_reviews(policy, state, now)
            return await _status_view(
                conn, program_id, member_id, account.id, account.created_at, policy, state, now
            )

        return await in_transaction(self._engine, work, read_only=True)

    async def assign(
        self,
        staff: Staff,
        program_id: int,
        member_id: int,
        code: str,
        until: datetime,
        reason: str,
    ) -> TierStatusView:
        """Give a member a level until a date (audited); the earned level applies again after."""
        if not reason.strip():
            raise DomainError(ErrorCode.REASON_REQUIRED, "say why the tier is assigned")

        async def work(conn: AsyncConnection) -> TierStatusView:
            now = self._clock()
            caller = staff.caller
            account = (await w.lock_members(conn, caller, program_id, [member_id]))[member_id]
            found = await find_rules_in_force(conn, program_id, now)
            policy = _tiers_of(found)
            assert found is not None
            ctx = TierContext.of(account, found, f"{staff.label}: {reason.strip()}")
            state = await ensure_state(conn, ctx, now)
            state, _ = await apply_due(conn, ctx, state, now)
            before = _state_json(state)
            state, _ = await assign_manual_tier(conn, ctx, state, code, until, now)
            await record_change(
                conn,
                staff,
                action="tier.assign",
                entity="member_tier",
                entity_id=f"{program_id}/{member_id}",
                before=before,
                after={**_state_json(state), "reason": reason.strip()},
                program_id=program_id,
                at=now,
            )
            return await _status_view(
                conn, program_id, member_id, account.id, account.joined_at, policy, state, now
            )

        return await in_transaction(self._engine, work)

    async def members(
        self,
        staff: Staff,
        program_id: int,
        *,
        tier: str | None = None,
        after_id: int = 0,
        limit: int = 50,
    ) -> MemberPage:
        """The program's members with their tiers, by member id (keyset pages)."""
        limit = max(1, min(limit, MAX_PAGE))

        async def work(conn: AsyncConnection) -> MemberPage:
            now = self._clock()
            program = await conn.scalar(
                select(programs.c.id).where(
                    programs.c.id == program_id, programs.c.merchant_id == staff.merchant_id
                )
            )
            if program is None:
                raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program")
            found = await find_rules_in_force(conn, program_id, now)
            policy = None if found is None else found.rules.tiers
            base = None if policy is None else policy.levels[0].code
            query = (
                select(
                    members.c.id,
                    members.c.display_name,
                    accounts.c.posted,
                    accounts.c.held,
                    tier_states.c.earned,
                    tier_states.c.since,
                    tier_states.c.review_at,
                    tier_states.c.manual,
                    tier_states.c.manual_until,
                )
                .join(accounts, accounts.c.member_id == members.c.id)
                .outerjoin(tier_states, tier_states.c.account_id == accounts.c.id)
                .where(accounts.c.program_id == program_id, members.c.id > after_id)
                .order_by(members.c.id)
            )
            if tier is None:
                query = query.limit(limit + 1)
            rows = (await conn.execute(query)).all()
            items = []
            for row in rows:
                code = base
                if policy is not None and row.earned is not None:
                    state = TierState(
                        row.earned, row.since, row.review_at, row.manual, row.manual_until
                    )
                    code = t.effective(policy, known_state(policy, state), now).code
                if tier is not None and code != tier:
                    continue
                items.append(
                    MemberTierRow(
                        member_id=row.id,
                        display_name=row.display_name,
                        tier=code,
                        manual=row.manual,
                        review_at=row.review_at,
                        posted=row.posted,
                        available=row.posted - row.held,
                    )
                )
                if len(items) > limit:
                    break
            more = len(items) > limit
            items = items[:limit]
            return MemberPage(items=items, next_after_id=items[-1].member_id if more else None)

        return await in_transaction(self._engine, work, read_only=True)


def _after_due_reviews(policy: TierPolicy, state: TierState, at: datetime) -> TierState:
    """Reads cannot sum windows cheaply for every missed review; they only drop an expired
    manual grant. The stored state is brought up to date by the next write or ``tiers recalc``."""
    if state.manual is not None and state.manual_until is not None and state.manual_until <= at:
        return TierState(state.earned, state.since, state.review_at)
    return state


async def _status_view(
    conn: AsyncConnection,
    program_id: int,
    member_id: int,
    account_id: int,
    joined_at: datetime,
    policy: TierPolicy,
    state: TierState,
    now: datetime,
) -> TierStatusView:
    window = t.qualification_window(policy, joined_at, now)
    total = await qualifying_total(conn, account_id, policy.basis, window)
    keep_window = t.review_window(policy, state, joined_at)
    keep_total = await qualifying_total(conn, account_id, policy.basis, keep_window)
    progress = t.progress(policy, state, keep_total, joined_at, now)
    current = t.level(policy, progress.current)
    upcoming = None if progress.next is None else t.level(policy, progress.next)
    # The next level is reached on the upgrade window's total, which for rolling windows
    # differs from the review window's that ``progress`` was given.
    to_next = None if upcoming is None else max(0, upcoming.threshold - total)
    history = await conn.execute(
        select(tier_changes)
        .where(tier_changes.c.account_id == account_id)
        .order_by(tier_changes.c.id.desc())
        .limit(20)
    )
    return TierStatusView(
        program_id=program_id,
        member_id=member_id,
        basis=str(policy.basis),
        current=_level_view(current),
        earned=state.earned,
        manual=state.manual,
        manual_until=state.manual_until,
        since=state.since,
        next=None if upcoming is None else _level_view(upcoming),
        to_next=to_next,
        to_keep=progress.to_keep,
        keep_by=progress.keep_by,
        qualifying_total=total,
        levels=[_level_view(level) for level in policy.levels],
        history=[
            TierChangeView(
                at=row.at,
                before=row.before,
                after=row.after,
                reason=row.reason,
                qualifying_total=row.qualifying_total,
                actor=row.actor,
            )
            for row in history
        ],
    )


def _level_view(level: t.TierLevel) -> TierLevelView:
    return TierLevelView(
        code=level.code,
        name=LocalizedText(de=level.name.de, en=level.name.en),
        threshold=level.threshold,
        multiplier=level.multiplier,
        perks=LocalizedText(de=level.perks.de, en=level.perks.en),
    )


def _state_json(state: TierState) -> dict[str, Any]:
    return {
        "earned": state.earned,
        "manual": state.manual,
        "manual_until": None if state.manual_until is None else state.manual_until.isoformat(),
        "review_at": state.review_at.isoformat(),
    }


def _tiers_of(found: RulesInForce | None) -> TierPolicy:
    if found is None or found.rules.tiers is None:
        raise DomainError(ErrorCode.UNKNOWN_TIER, "the program's rules in force define no tiers")
    return found.rules.tiers
