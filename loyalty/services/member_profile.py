"""The member 360-degree view: everything support needs about one member on one page.

The profile and consents; merges the member took part in; per program the balance (posted,
held, available) with the lots that still hold points and their expiry dates, pending holds,
the tier with its history, the first page of the ledger (journals, newest first; further pages
through :meth:`MemberProfiles.ledger`, keyset by journal id), orders with their returns, reward
redemptions, adjustment requests and the program's adjustment policy; and the member's audit
trail (entries on entity ``member``, and manual tier changes on ``member_tier``).

A read model: one read-only transaction for the rows, plus the tier service's own read per
program (tier status needs the rules in force). Erased members show what is left of them: no
personal data, the ledger and the facts the books need.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import (
    adjustment_requests,
    audit_log,
    holds,
    lots,
    member_consents,
    members,
    order_returns,
    orders,
    programs,
    reward_redemptions,
    rewards,
)
from loyalty.domain.adjustments import limits_in_force
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.journals import HoldStatus

from .adjustments import AdjustmentView, view_of, view_query
from .audit import AuditEntry
from .context import Caller, Staff, utc_now
from .ledger import Ledger
from .lookups import member_accounts, require_account_id
from .member_merge import MergeView, merges_of
from .member_search import member_identity
from .queries import decode_cursor, history_fields, history_rows, next_cursor
from .results import Balance, HistoryItem
from .tiers import Tiers, TierStatusView

#: How much of each list the view shows (the ledger has further pages).
LEDGER_PAGE = 50
MAX_LEDGER_PAGE = 200
RECENT = 50
AUDIT_SHOWN = 100


class MemberRecord(msgspec.Struct, frozen=True, kw_only=True):
    member_id: int
    #: None for erased members.
    display_name: str | None
    email: str | None
    phone: str | None
    card_number: str | None
    card_number_formatted: str | None
    locale: str | None
    created_at: datetime
    email_verified_at: datetime | None
    erased: bool
    erased_at: datetime | None
    merged_into_id: int | None
    segments: list[str]
    external_ref: str | None


class ConsentView(msgspec.Struct, frozen=True, kw_only=True):
    program_id: int
    kind: str
    granted: bool
    text_version: str
    source: str
    at: datetime


class LotView(msgspec.Struct, frozen=True, kw_only=True):
    lot_id: int
    #: The journal that created the lot (an earn, an adjustment, a transfer received).
    journal_id: int
    original: int
    remaining: int
    held: int
    #: None: never expires.
    expires_at: datetime | None
    created_at: datetime


class PendingHold(msgspec.Struct, frozen=True, kw_only=True):
    hold_id: int
    points: int
    reference: str | None
    created_at: datetime
    expires_at: datetime


class LedgerItem(HistoryItem, frozen=True, kw_only=True):
    """A :class:`HistoryItem` with, for a manual operation, who made it (the staff member)."""

    actor: str | None = None


class LedgerPage(msgspec.Struct, frozen=True):
    items: list[LedgerItem]
    #: Pass as ``cursor`` for the next (older) page; None on the last page.
    next_cursor: str | None


class ReturnSummary(msgspec.Struct, frozen=True, kw_only=True):
    return_id: int
    points: int
    qualifying_spend: int
    reference: str | None
    created_at: datetime
    journal_id: int | None


class OrderSummary(msgspec.Struct, frozen=True, kw_only=True):
    order_id: int
    reference: str
    occurred_at: datetime
    #: The basket's total after line discounts, minor units of ``currency``.
    total: int
    currency: str
    qualifying_spend: int
    points: int
    tier: str | None
    journal_id: int | None
    returns: list[ReturnSummary]


class RedemptionSummary(msgspec.Struct, frozen=True, kw_only=True):
    redemption_id: int
    reward_code: str
    status: str
    points: int
    discount: int
    voucher_code: str | None
    reference: str | None
    created_at: datetime
    resolved_at: datetime | None


class AdjustmentPolicy(msgspec.Struct, frozen=True, kw_only=True):
    #: Adjustments of more points than this wait for a second person's approval.
    approval_threshold: int
    #: The most points one adjustment of each role may move (None: no limit; a role missing
    #: may not adjust).
    limits: dict[str, int | None]


class ProgramSection(msgspec.Struct, frozen=True, kw_only=True):
    program_id: int
    code: str
    name: str
    currency: str
    joined_at: datetime
    balance: Balance
    #: None: the program has no tiers.
    tier: TierStatusView | None
    lots: list[LotView]
    holds: list[PendingHold]
    ledger: LedgerPage
    orders: list[OrderSummary]
    redemptions: list[RedemptionSummary]
    adjustments: list[AdjustmentView]
    adjustment_policy: AdjustmentPolicy


class MemberProfile(msgspec.Struct, frozen=True, kw_only=True):
    member: MemberRecord
    consents: list[ConsentView]
    #: Merges this member took part in, as source or target (oldest first).
    merges: list[MergeView]
    programs: list[ProgramSection]
    #: Newest first.
    audit: list[AuditEntry]


class MemberProfiles:
    def __init__(self, ledger: Ledger, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine: AsyncEngine = ledger.engine
        self._tiers = Tiers(ledger.engine, clock=clock)

    async def profile(self, staff: Staff, member_id: int) -> MemberProfile:
        async def work(conn: AsyncConnection) -> MemberProfile:
            return await _profile(conn, staff.caller, member_id)

        profile = await in_transaction(self._engine, work, read_only=True)
        sections = []
        for section in profile.programs:
            tier = await self._tier(staff.caller, section.program_id, member_id)
            sections.append(msgspec.structs.replace(section, tier=tier))
        return msgspec.structs.replace(profile, programs=sections)

    async def ledger(
        self,
        staff: Staff,
        program_id: int,
        member_id: int,
        *,
        cursor: str | None = None,
        limit: int = LEDGER_PAGE,
    ) -> LedgerPage:
        """The member's journals in the program, newest first, ``limit`` at a time."""
        before = decode_cursor(cursor) if cursor else None
        limit = max(1, min(limit, MAX_LEDGER_PAGE))

        async def work(conn: AsyncConnection) -> LedgerPage:
            account_id = await require_account_id(conn, staff.caller, program_id, member_id)
            return await _ledger_page(conn, account_id, before, limit)

        return await in_transaction(self._engine, work, read_only=True)

    async def _tier(self, caller: Caller, program_id: int, member_id: int) -> TierStatusView | None:
        try:
            return await self._tiers.status(caller, program_id, member_id)
        except DomainError as error:
            if error.code in {ErrorCode.UNKNOWN_TIER, ErrorCode.NO_RULES_IN_FORCE}:
                return None
            raise


async def _require_member(conn: AsyncConnection, caller: Caller, member_id: int) -> Any:
    row = (
        await conn.execute(
            select(members).where(
                members.c.id == member_id, members.c.merchant_id == caller.merchant_id
            )
        )
    ).first()
    if row is None:
        raise DomainError(ErrorCode.MEMBER_NOT_FOUND, "no such member", member_id=member_id)
    return row


async def _profile(conn: AsyncConnection, caller: Caller, member_id: int) -> MemberProfile:
    row = await _require_member(conn, caller, member_id)
    account_rows = (
        await conn.execute(
            member_accounts(
                member_id,
                caller.merchant_id,
                programs.c.adjustment_approval_threshold,
                programs.c.adjustment_limits,
            )
        )
    ).all()
    sections = [await _section(conn, account, member_id) for account in account_rows]
    return MemberProfile(
        member=_record(row),
        consents=await _consents(conn, member_id),
        merges=await merges_of(conn, member_id),
        programs=sections,
        audit=await _audit_trail(
            conn, caller.merchant_id, member_id, [a.program_id for a in account_rows]
        ),
    )


def _record(row: Any) -> MemberRecord:
    return MemberRecord(
        **member_identity(row),
        locale=row.locale,
        email_verified_at=row.email_verified_at,
        segments=list(row.segments or []),
        external_ref=row.external_ref,
    )


async def _consents(conn: AsyncConnection, member_id: int) -> list[ConsentView]:
    rows = await conn.execute(
        select(member_consents)
        .where(member_consents.c.member_id == member_id)
        .order_by(member_consents.c.id.desc())
        .limit(RECENT)
    )
    return [
        ConsentView(
            program_id=r.program_id,
            kind=r.kind,
            granted=r.granted,
            text_version=r.text_version,
            source=r.source,
            at=r.at,
        )
        for r in rows
    ]


async def _section(conn: AsyncConnection, account: Any, member_id: int) -> ProgramSection:
    return ProgramSection(
        program_id=account.program_id,
        code=account.code,
        name=account.name,
        currency=account.currency,
        joined_at=account.created_at,
        balance=Balance(
            posted=account.posted, held=account.held, available=account.posted - account.held
        ),
        tier=None,
        lots=await _lots(conn, account.id),
        holds=await _holds(conn, account.id),
        ledger=await _ledger_page(conn, account.id, None, LEDGER_PAGE),
        orders=await _orders(conn, account.id),
        redemptions=await _redemptions(conn, account.id),
        adjustments=await _adjustments(conn, account.program_id, member_id),
        adjustment_policy=AdjustmentPolicy(
            approval_threshold=account.adjustment_approval_threshold,
            limits=limits_in_force(account.adjustment_limits),
        ),
    )


async def _lots(conn: AsyncConnection, account_id: int) -> list[LotView]:
    rows = await conn.execute(
        select(lots)
        .where(lots.c.account_id == account_id, lots.c.remaining > 0)
        # Soonest expiry first (the order points are spent in); lots that never expire last.
        .order_by(lots.c.expires_at.is_(None), lots.c.expires_at, lots.c.id)
    )
    return [
        LotView(
            lot_id=r.id,
            journal_id=r.journal_id,
            original=r.original,
            remaining=r.remaining,
            held=r.held,
            expires_at=r.expires_at,
            created_at=r.created_at,
        )
        for r in rows
    ]


async def _holds(conn: AsyncConnection, account_id: int) -> list[PendingHold]:
    rows = await conn.execute(
        select(holds)
        .where(holds.c.account_id == account_id, holds.c.status == str(HoldStatus.PENDING))
        .order_by(holds.c.id)
    )
    return [
        PendingHold(
            hold_id=r.id,
            points=r.points,
            reference=r.reference,
            created_at=r.created_at,
            expires_at=r.expires_at,
        )
        for r in rows
    ]


async def _ledger_page(
    conn: AsyncConnection, account_id: int, before: int | None, limit: int
) -> LedgerPage:
    rows = await history_rows(conn, account_id, before, limit)
    return LedgerPage(
        items=[
            LedgerItem(**history_fields(row, account_id), actor=row.actor) for row in rows[:limit]
        ],
        next_cursor=next_cursor(rows, limit),
    )


async def _orders(conn: AsyncConnection, account_id: int) -> list[OrderSummary]:
    rows = (
        await conn.execute(
            select(orders)
            .where(orders.c.account_id == account_id)
            .order_by(orders.c.id.desc())
            .limit(RECENT)
        )
    ).all()
    returns: dict[int, list[ReturnSummary]] = {row.id: [] for row in rows}
    if rows:
        for r in await conn.execute(
            select(order_returns)
            .where(order_returns.c.order_id.in_(list(returns)))
            .order_by(order_returns.c.id)
        ):
            returns[r.order_id].append(
                ReturnSummary(
                    return_id=r.id,
                    points=r.points,
                    qualifying_spend=r.qualifying_spend,
                    reference=r.reference,
                    created_at=r.created_at,
                    journal_id=r.journal_id,
                )
            )
    return [
        OrderSummary(
            order_id=row.id,
            reference=row.reference,
            occurred_at=row.occurred_at,
            total=_basket_total(row.basket),
            currency=str((row.basket or {}).get("currency", "")),
            qualifying_spend=row.qualifying_spend,
            points=row.points,
            tier=row.tier,
            journal_id=row.journal_id,
            returns=returns[row.id],
        )
        for row in rows
    ]


def _basket_total(basket: Any) -> int:
    total = 0
    for line in (basket or {}).get("lines", []):
        total += int(line.get("quantity", 0)) * int(line.get("unit_price", 0))
        total -= int(line.get("line_discount", 0))
    return total


async def _redemptions(conn: AsyncConnection, account_id: int) -> list[RedemptionSummary]:
    rows = await conn.execute(
        select(reward_redemptions, rewards.c.code.label("reward_code"))
        .join(rewards, rewards.c.id == reward_redemptions.c.reward_id)
        .where(reward_redemptions.c.account_id == account_id)
        .order_by(reward_redemptions.c.id.desc())
        .limit(RECENT)
    )
    return [
        RedemptionSummary(
            redemption_id=r.id,
            reward_code=r.reward_code,
            status=r.status,
            points=r.points,
            discount=r.discount,
            voucher_code=r.voucher_code,
            reference=r.reference,
            created_at=r.created_at,
            resolved_at=r.resolved_at,
        )
        for r in rows
    ]


async def _adjustments(
    conn: AsyncConnection, program_id: int, member_id: int
) -> list[AdjustmentView]:
    rows = await conn.execute(
        view_query()
        .where(
            adjustment_requests.c.program_id == program_id,
            adjustment_requests.c.member_id == member_id,
        )
        .order_by(adjustment_requests.c.id.desc())
        .limit(RECENT)
    )
    return [view_of(row) for row in rows]


async def _audit_trail(
    conn: AsyncConnection, merchant_id: int, member_id: int, program_ids: list[int]
) -> list[AuditEntry]:
    about_member = and_(audit_log.c.entity == "member", audit_log.c.entity_id == str(member_id))
    tier_ids = [f"{program_id}/{member_id}" for program_id in program_ids]
    about_tiers = and_(audit_log.c.entity == "member_tier", audit_log.c.entity_id.in_(tier_ids))
    rows = await conn.execute(
        select(*(audit_log.c[name] for name in AuditEntry.__struct_fields__))
        .where(
            audit_log.c.merchant_id == merchant_id,
            or_(about_member, about_tiers) if tier_ids else about_member,
        )
        .order_by(audit_log.c.id.desc())
        .limit(AUDIT_SHOWN)
    )
    return [AuditEntry(**row._mapping) for row in rows]
