"""Rule-set versions: a manager edits a draft, previews it, simulates it against the last days of
real orders, then publishes it from a date. Published versions never change and are never
published for a moment already past, so no order is ever re-priced by a later decision.

Every change is audited in the transaction that makes it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
from msgspec import Struct
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import orders, programs, rule_sets
from loyalty.domain.earning import MemberContext, quote
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.tiers import level

from .audit import record_change
from .context import Staff, utc_now
from .lookups import require_program
from .quotes import BasketDocument, ContextDocument, QuoteView, quote_view
from .rule_documents import (
    STARTER_RULES,
    CompiledRules,
    RuleProblem,
    RuleSetDocument,
    compile_rules,
    document_from_builtins,
    problems_of,
)
from .rules_in_force import find_rules_in_force

#: A publication may name "now" as sent by a client whose clock is a little behind.
PUBLISH_CLOCK_SKEW = timedelta(minutes=1)
MAX_SIMULATION_DAYS = 366
#: Orders re-priced per query page while simulating (bounded memory).
SIMULATION_PAGE = 1000


class RuleSetSummary(Struct, frozen=True, kw_only=True):
    version: int
    status: str
    effective_from: datetime | None
    based_on: int | None
    created_at: datetime
    created_by: str
    updated_at: datetime | None
    published_at: datetime | None
    published_by: str | None


class RuleSetView(Struct, frozen=True, kw_only=True):
    program_id: int
    version: int
    status: str
    effective_from: datetime | None
    based_on: int | None
    created_at: datetime
    created_by: str
    updated_at: datetime | None
    published_at: datetime | None
    published_by: str | None
    document: RuleSetDocument
    #: What stops this draft from being published (empty: it can be published).
    problems: list[RuleProblem]


class SampleOrder(Struct, forbid_unknown_fields=True, kw_only=True):
    basket: BasketDocument
    #: A tier code of the draft's policy (None: no tier).
    tier: str | None = None
    segments: list[str] = msgspec.field(default_factory=list)
    #: When the order happens (None: now); decides promotions' windows, days and hours.
    at: datetime | None = None


class PreviewItem(Struct, frozen=True, kw_only=True):
    draft: QuoteView
    #: The same order under the rules in force at its time (None: none are).
    current: QuoteView | None
    difference: int


class PreviewResult(Struct, frozen=True):
    items: list[PreviewItem]


class RuleImpact(Struct, frozen=True):
    source: str
    code: str
    points_now: int
    points_with_draft: int


class SimulationResult(Struct, frozen=True, kw_only=True):
    version: int
    since: datetime
    until: datetime
    orders: int
    members: int
    points_issued: int
    points_with_draft: int
    difference: int
    orders_earning_more: int
    orders_earning_less: int
    #: Points per rule, promotion, tier bonus and cap, as issued and as the draft would issue.
    by_line: list[RuleImpact]
    #: What the draft would cost in money at the program's point value (minor units).
    liability_difference_minor: int


class RuleSets:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    async def list_versions(self, staff: Staff, program_id: int) -> list[RuleSetSummary]:
        async def work(conn: AsyncConnection) -> list[RuleSetSummary]:
            await require_program(conn, staff.caller, program_id)
            rows = await conn.execute(
                select(rule_sets)
                .where(rule_sets.c.program_id == program_id)
                .order_by(rule_sets.c.version.desc())
            )
            return [_summary(row) for row in rows]

        return await in_transaction(self._engine, work, read_only=True)

    async def get(self, staff: Staff, program_id: int, version: int) -> RuleSetView:
        async def work(conn: AsyncConnection) -> RuleSetView:
            return _view(await _row(conn, staff, program_id, version))

        return await in_transaction(self._engine, work, read_only=True)

    async def create_draft(
        self, staff: Staff, program_id: int, based_on: int | None = None
    ) -> RuleSetView:
        """A new draft, copied from ``based_on`` or else from the version in force now."""

        async def work(conn: AsyncConnection) -> RuleSetView:
            now = self._clock()
            await require_program(conn, staff.caller, program_id)
            if based_on is not None:
                source = await _row(conn, staff, program_id, based_on)
                document, origin = source.document, source.version
            else:
                found = await find_rules_in_force(conn, program_id, now)
                if found is None:
                    document, origin = msgspec.to_builtins(RuleSetDocument()), None
                else:
                    source = await _row(conn, staff, program_id, found.version)
                    document, origin = source.document, found.version
            version = await _next_version(conn, program_id)
            await conn.execute(
                rule_sets.insert().values(
                    program_id=program_id,
                    version=version,
                    status="draft",
                    document=document,
                    based_on=origin,
                    created_at=now,
                    created_by=staff.label,
                )
            )
            view = _view(await _row(conn, staff, program_id, version))
            await record_change(
                conn,
                staff,
                action="rule_set.create_draft",
                entity="rule_set",
                entity_id=f"{program_id}/{version}",
                after=view.document,
                program_id=program_id,
                at=now,
            )
            return view

        return await in_transaction(self._engine, work)

    async def replace_draft(
        self, staff: Staff, program_id: int, version: int, document: RuleSetDocument
    ) -> RuleSetView:
        return await self.edit_draft(
            staff, program_id, version, "rule_set.replace", lambda _old: document
        )

    async def edit_draft(
        self,
        staff: Staff,
        program_id: int,
        version: int,
        action: str,
        change: Callable[[RuleSetDocument], RuleSetDocument],
    ) -> RuleSetView:
        """Apply ``change`` to a draft; refuses published versions (rule_set_not_draft)."""

        async def work(conn: AsyncConnection) -> RuleSetView:
            now = self._clock()
            row = await _row(conn, staff, program_id, version, for_update=True)
            _require_draft(row)
            before = document_from_builtins(row.document)
            after = change(before)
            await conn.execute(
                rule_sets.update()
                .where(rule_sets.c.id == row.id)
                .values(document=msgspec.to_builtins(after), updated_at=now)
            )
            await record_change(
                conn,
                staff,
                action=action,
                entity="rule_set",
                entity_id=f"{program_id}/{version}",
                before=before,
                after=after,
                program_id=program_id,
                at=now,
            )
            return _view(await _row(conn, staff, program_id, version))

        return await in_transaction(self._engine, work)

    async def delete_draft(self, staff: Staff, program_id: int, version: int) -> None:
        async def work(conn: AsyncConnection) -> None:
            now = self._clock()
            row = await _row(conn, staff, program_id, version, for_update=True)
            _require_draft(row)
            await conn.execute(delete(rule_sets).where(rule_sets.c.id == row.id))
            await record_change(
                conn,
                staff,
                action="rule_set.delete_draft",
                entity="rule_set",
                entity_id=f"{program_id}/{version}",
                before=row.document,
                program_id=program_id,
                at=now,
            )

        await in_transaction(self._engine, work)

    async def publish(
        self,
        staff: Staff,
        program_id: int,
        version: int,
        effective_from: datetime | None = None,
    ) -> RuleSetView:
        """Make a valid draft the rules from ``effective_from`` (default: now) on."""

        async def work(conn: AsyncConnection) -> RuleSetView:
            now = self._clock()
            start = effective_from or now
            if start.tzinfo is None:
                raise DomainError(ErrorCode.VALIDATION_FAILED, "effective_from needs a time zone")
            if start < now - PUBLISH_CLOCK_SKEW:
                raise DomainError(
                    ErrorCode.EFFECTIVE_FROM_IN_PAST,
                    "a version can only take effect from now on: publishing never re-prices "
                    "orders already made",
                    now=now.isoformat(),
                )
            row = await _row(conn, staff, program_id, version, for_update=True)
            _require_draft(row)
            document = document_from_builtins(row.document)
            problems = problems_of(document, row.timezone, row.rounding)
            if problems:
                raise DomainError(
                    ErrorCode.RULE_SET_INVALID,
                    f"the draft cannot be published: {problems[0].detail}",
                    problems=[msgspec.to_builtins(p) for p in problems],
                )
            await conn.execute(
                rule_sets.update()
                .where(rule_sets.c.id == row.id)
                .values(
                    status="published",
                    # The version keeps the rounding it was published with: a later change of
                    # the program's default must not re-price its orders (returns, simulations).
                    document=msgspec.to_builtins(
                        msgspec.structs.replace(
                            document, rounding=document.rounding or row.rounding
                        )
                    ),
                    effective_from=max(start, now),
                    published_at=now,
                    published_by=staff.label,
                )
            )
            view = _view(await _row(conn, staff, program_id, version))
            await record_change(
                conn,
                staff,
                action="rule_set.publish",
                entity="rule_set",
                entity_id=f"{program_id}/{version}",
                after={"effective_from": view.effective_from, "document": view.document},
                program_id=program_id,
                at=now,
            )
            return view

        return await in_transaction(self._engine, work)

    async def preview(
        self, staff: Staff, program_id: int, version: int, samples: list[SampleOrder]
    ) -> PreviewResult:
        """Price sample baskets with the draft and with the rules in force at their time."""

        async def work(conn: AsyncConnection) -> PreviewResult:
            now = self._clock()
            row = await _row(conn, staff, program_id, version)
            draft = _compiled(row)
            items = []
            for sample in samples:
                at = sample.at or now
                basket = sample.basket.basket()
                context = MemberContext(segments=frozenset(sample.segments))
                draft_view = _priced(draft, version, basket, sample.tier, at, context)
                current = await find_rules_in_force(conn, program_id, at)
                current_view = None
                if current is not None:
                    tier = sample.tier if _has_tier(current.rules, sample.tier) else None
                    current_view = _priced(
                        current.rules, current.version, basket, tier, at, context
                    )
                items.append(
                    PreviewItem(
                        draft=draft_view,
                        current=current_view,
                        difference=draft_view.points
                        - (0 if current_view is None else current_view.points),
                    )
                )
            return PreviewResult(items=items)

        return await in_transaction(self._engine, work, read_only=True)

    async def simulate(
        self, staff: Staff, program_id: int, version: int, days: int = 30
    ) -> SimulationResult:
        """Re-price every order of the last ``days`` days with the version (with each order's
        own tier, member context and time) and compare with what was issued."""
        if not 1 <= days <= MAX_SIMULATION_DAYS:
            raise DomainError(
                ErrorCode.VALIDATION_FAILED, f"days must be between 1 and {MAX_SIMULATION_DAYS}"
            )

        async def work(conn: AsyncConnection) -> SimulationResult:
            now = self._clock()
            since = now - timedelta(days=days)
            row = await _row(conn, staff, program_id, version)
            draft = _compiled(row)
            totals = _SimulationTotals()
            after_id = 0
            while True:
                page = (
                    await conn.execute(
                        select(
                            orders.c.id,
                            orders.c.account_id,
                            orders.c.occurred_at,
                            orders.c.tier,
                            orders.c.basket,
                            orders.c.context,
                            orders.c.quote,
                            orders.c.points,
                        )
                        .where(
                            orders.c.program_id == program_id,
                            orders.c.occurred_at >= since,
                            orders.c.id > after_id,
                        )
                        .order_by(orders.c.id)
                        .limit(SIMULATION_PAGE)
                    )
                ).all()
                if not page:
                    break
                for order in page:
                    basket = msgspec.convert(order.basket, BasketDocument).basket()
                    context = msgspec.convert(order.context, ContextDocument).context()
                    tier = order.tier if _has_tier(draft, order.tier) else None
                    new = _priced(draft, version, basket, tier, order.occurred_at, context)
                    totals.add(order, msgspec.convert(order.quote, QuoteView), new)
                after_id = page[-1].id
            return totals.result(version, since, now, row.point_value_micros)

        return await in_transaction(self._engine, work, read_only=True)


class _SimulationTotals:
    def __init__(self) -> None:
        self.orders = 0
        self.members: set[int] = set()
        self.issued = 0
        self.with_draft = 0
        self.more = 0
        self.less = 0
        self.by_line: dict[tuple[str, str], list[int]] = {}

    def add(self, order: Any, old: QuoteView, new: QuoteView) -> None:
        self.orders += 1
        self.members.add(order.account_id)
        self.issued += order.points
        self.with_draft += new.points
        self.more += new.points > order.points
        self.less += new.points < order.points
        for index, view in ((0, old), (1, new)):
            for line in view.lines:
                self.by_line.setdefault((line.source, line.code), [0, 0])[index] += line.points

    def result(
        self, version: int, since: datetime, until: datetime, point_value_micros: int
    ) -> SimulationResult:
        difference = self.with_draft - self.issued
        return SimulationResult(
            version=version,
            since=since,
            until=until,
            orders=self.orders,
            members=len(self.members),
            points_issued=self.issued,
            points_with_draft=self.with_draft,
            difference=difference,
            orders_earning_more=self.more,
            orders_earning_less=self.less,
            by_line=[
                RuleImpact(source, code, now, draft)
                for (source, code), (now, draft) in sorted(self.by_line.items())
            ],
            # micros per point / 10_000 = minor units (cents) per point
            liability_difference_minor=difference * point_value_micros // 10_000,
        )


def _priced(
    rules: CompiledRules,
    version: int,
    basket: Any,
    tier_code: str | None,
    at: datetime,
    context: MemberContext,
) -> QuoteView:
    tier = None
    if tier_code is not None:
        if rules.tiers is None:
            raise DomainError(ErrorCode.UNKNOWN_TIER, "these rules define no tiers")
        tier = level(rules.tiers, tier_code)
    return quote_view(quote(basket, rules.earning, tier, at, context), version, tier_code)


def _has_tier(rules: CompiledRules, code: str | None) -> bool:
    return (
        code is not None
        and rules.tiers is not None
        and any(known.code == code for known in rules.tiers.levels)
    )


def _compiled(row: Any) -> CompiledRules:
    """A version's rules for pricing (``row`` from ``_row``); a draft with problems cannot price
    anything."""
    try:
        return compile_rules(document_from_builtins(row.document), row.timezone, row.rounding)
    except DomainError as error:
        raise DomainError(
            ErrorCode.RULE_SET_INVALID,
            f"the draft cannot price orders: {error.detail}",
            problems=[{"code": str(error.code), "detail": error.detail}],
        ) from None


async def _row(
    conn: AsyncConnection, staff: Staff, program_id: int, version: int, *, for_update: bool = False
) -> Any:
    """The version with its program's time zone, rounding and point value (merchant-scoped)."""
    query = (
        select(rule_sets, programs.c.timezone, programs.c.rounding, programs.c.point_value_micros)
        .join(programs, programs.c.id == rule_sets.c.program_id)
        .where(
            rule_sets.c.program_id == program_id,
            rule_sets.c.version == version,
            programs.c.merchant_id == staff.merchant_id,
        )
    )
    if for_update:
        query = query.with_for_update(of=rule_sets)
    row = (await conn.execute(query)).first()
    if row is None:
        await require_program(conn, staff.caller, program_id)
        raise DomainError(
            ErrorCode.RULE_SET_NOT_FOUND,
            f"program {program_id} has no rule-set version {version}",
            version=version,
        )
    return row


def _require_draft(row: Any) -> None:
    if row.status != "draft":
        raise DomainError(
            ErrorCode.RULE_SET_NOT_DRAFT,
            f"version {row.version} is published and can no longer change; create a new draft",
            version=row.version,
        )


async def _next_version(conn: AsyncConnection, program_id: int) -> int:
    latest = await conn.scalar(
        select(func.max(rule_sets.c.version)).where(rule_sets.c.program_id == program_id)
    )
    return int(latest or 0) + 1


def _view(row: Any) -> RuleSetView:
    document = document_from_builtins(row.document)
    return RuleSetView(
        program_id=row.program_id,
        version=row.version,
        status=row.status,
        effective_from=row.effective_from,
        based_on=row.based_on,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        published_at=row.published_at,
        published_by=row.published_by,
        document=document,
        problems=problems_of(document, row.timezone, row.rounding) if row.status == "draft" else [],
    )


def _summary(row: Any) -> RuleSetSummary:
    return RuleSetSummary(
        version=row.version,
        status=row.status,
        effective_from=row.effective_from,
        based_on=row.based_on,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        published_at=row.published_at,
        published_by=row.published_by,
    )


async def insert_starter_rules(
    conn: AsyncConnection, program_id: int, at: datetime, actor: str, rounding: str
) -> None:
    """Version 1 of a new program: one point per unit of currency, in force at once."""
    await conn.execute(
        rule_sets.insert().values(
            program_id=program_id,
            version=1,
            status="published",
            document=msgspec.to_builtins(msgspec.structs.replace(STARTER_RULES, rounding=rounding)),
            effective_from=at,
            created_at=at,
            created_by=actor,
            published_at=at,
            published_by=actor,
        )
    )
