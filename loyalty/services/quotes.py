"""Baskets and quotes as JSON: what tills send and what cashiers, members and managers see.

Also the member context a quote needs (segments, what the member already earned in each cap
period, promotion counters), read from the database and stored with each order so that a return
is priced exactly like the order was.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from msgspec import Meta, Struct
from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import is_postgres
from loyalty.db.tables import members, promotion_awards, promotion_counters, qualifying_activity
from loyalty.domain.basket import Basket, BasketLine, LineKind
from loyalty.domain.earning import (
    CapPeriod,
    EarningRules,
    MemberContext,
    Quote,
    period_start,
)

from .rule_documents import Label, LocalizedText

Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", examples=["EUR"])]


class BasketLineDocument(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One basket line; money in minor units (cents)."""

    line_id: Label
    sku: Label
    quantity: int
    unit_price: int
    category: Label | None = None
    line_discount: int = 0
    kind: LineKind = LineKind.MERCHANDISE


class BasketDocument(
    Struct,
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    currency: Currency
    lines: Annotated[list[BasketLineDocument], Meta(max_length=500)]
    location: Label | None = None

    def basket(self) -> Basket:
        return Basket(
            currency=self.currency,
            lines=tuple(
                BasketLine(
                    line_id=line.line_id,
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    category=line.category,
                    line_discount=line.line_discount,
                    kind=line.kind,
                )
                for line in self.lines
            ),
            location=self.location,
        )


EXAMPLE_BASKET = BasketDocument(
    currency="EUR",
    location="berlin-mitte",
    lines=[
        BasketLineDocument(
            line_id="1", sku="BROT-500", category="bread", quantity=2, unit_price=349
        ),
        BasketLineDocument(
            line_id="2", sku="GUTSCHEIN-25", quantity=1, unit_price=2500, kind=LineKind.GIFT_CARD
        ),
    ],
)


class QuoteLineView(Struct, frozen=True):
    """One reason points were given (or, for caps, cut)."""

    source: str
    code: str
    name: LocalizedText
    points: int
    basis: int
    multiplier: Decimal | None = None


class QuoteView(Struct, frozen=True):
    points: int
    lines: list[QuoteLineView]
    qualifying_spend: int
    rule_set_version: int
    tier: str | None = None


def quote_view(quote: Quote, version: int, tier: str | None) -> QuoteView:
    return QuoteView(
        points=quote.total,
        lines=[
            QuoteLineView(
                source=str(line.source),
                code=line.code,
                name=LocalizedText(de=line.name.de, en=line.name.en),
                points=line.points,
                basis=line.basis,
                multiplier=line.multiplier,
            )
            for line in quote.lines
        ],
        qualifying_spend=quote.qualifying_spend,
        rule_set_version=version,
        tier=tier,
    )


class ContextDocument(Struct, forbid_unknown_fields=True):
    """A MemberContext as stored with an order."""

    segments: list[str]
    earned_in_period: dict[str, int]
    promotion_uses: dict[str, int]
    promotion_points_used: dict[str, int]

    def context(self) -> MemberContext:
        return MemberContext(
            segments=frozenset(self.segments),
            earned_in_period={CapPeriod(k): v for k, v in self.earned_in_period.items()},
            promotion_uses=dict(self.promotion_uses),
            promotion_points_used=dict(self.promotion_points_used),
        )


def context_document(context: MemberContext) -> ContextDocument:
    return ContextDocument(
        segments=sorted(context.segments),
        earned_in_period={str(k): v for k, v in context.earned_in_period.items()},
        promotion_uses=dict(context.promotion_uses),
        promotion_points_used=dict(context.promotion_points_used),
    )


async def member_segments(conn: AsyncConnection, member_id: int) -> frozenset[str]:
    segments = await conn.scalar(select(members.c.segments).where(members.c.id == member_id))
    return frozenset(segments or ())


async def member_context(
    conn: AsyncConnection,
    *,
    program_id: int,
    account_id: int,
    member_id: int,
    rules: EarningRules,
    at: datetime,
    lock_budgets: bool,
    segments: frozenset[str] | None = None,
) -> MemberContext:
    """Everything ``quote`` needs to know about the member at ``at``. With ``lock_budgets`` the
    counters of budgeted promotions stay locked until commit (an order that will spend them).
    ``segments``: the member's, when the caller read them with the member already."""
    starts = {
        cap.period: period_start(cap.period, at, rules.timezone)
        for cap in rules.caps
        if cap.period is not CapPeriod.ORDER
    }
    earned: dict[CapPeriod, int] = {}
    if starts:
        # One query for every capped period: each sums the activity since its own start.
        points = qualifying_activity.c.points
        sums = (
            await conn.execute(
                select(
                    *(
                        func.coalesce(
                            func.sum(case((qualifying_activity.c.occurred_at >= start, points))),
                            0,
                        )
                        for start in starts.values()
                    )
                ).where(
                    qualifying_activity.c.account_id == account_id,
                    qualifying_activity.c.occurred_at >= min(starts.values()),
                )
            )
        ).one()
        earned = {period: max(0, int(total)) for period, total in zip(starts, sums, strict=True)}
    limited = [p.code for p in rules.promotions if p.per_member_limit is not None]
    uses: dict[str, int] = {}
    if limited:
        rows = await conn.execute(
            select(promotion_awards.c.promotion_code, func.count())
            .where(
                promotion_awards.c.account_id == account_id,
                promotion_awards.c.promotion_code.in_(limited),
            )
            .group_by(promotion_awards.c.promotion_code)
        )
        uses = {code: int(count) for code, count in rows}
    budgeted = sorted(p.code for p in rules.promotions if p.budget_points is not None)
    used: dict[str, int] = {}
    if budgeted:
        used = await _budget_counters(conn, program_id, budgeted, lock=lock_budgets)
    return MemberContext(
        segments=await member_segments(conn, member_id) if segments is None else segments,
        earned_in_period=earned,
        promotion_uses=uses,
        promotion_points_used=used,
    )


async def _budget_counters(
    conn: AsyncConnection, program_id: int, codes: list[str], *, lock: bool
) -> dict[str, int]:
    if lock:
        rows = [{"program_id": program_id, "promotion_code": code} for code in codes]
        statement: Any
        if is_postgres(conn):
            statement = pg_insert(promotion_counters).values(rows).on_conflict_do_nothing()
        else:
            statement = insert(promotion_counters).values(rows).prefix_with("OR IGNORE")
        await conn.execute(statement)
    query = select(promotion_counters.c.promotion_code, promotion_counters.c.points_used).where(
        promotion_counters.c.program_id == program_id,
        promotion_counters.c.promotion_code.in_(codes),
    )
    if lock:
        query = query.order_by(promotion_counters.c.promotion_code).with_for_update()
    return {code: int(points) for code, points in (await conn.execute(query))}


async def count_promotions(
    conn: AsyncConnection,
    *,
    program_id: int,
    account_id: int,
    order_id: int,
    quote: Quote,
    rules: EarningRules,
) -> None:
    """Record what each promotion gave this order: its member's trigger count and its budget."""
    budgeted = {p.code for p in rules.promotions if p.budget_points is not None}
    for code, points in sorted(quote.promotion_points.items()):
        await conn.execute(
            promotion_awards.insert().values(
                program_id=program_id,
                promotion_code=code,
                account_id=account_id,
                order_id=order_id,
                points=points,
            )
        )
        if code in budgeted:
            await conn.execute(
                promotion_counters.update()
                .where(
                    promotion_counters.c.program_id == program_id,
                    promotion_counters.c.promotion_code == code,
                )
                .values(points_used=promotion_counters.c.points_used + points)
            )


async def uncount_promotions(
    conn: AsyncConnection,
    *,
    program_id: int,
    order_id: int,
    repriced: Quote,
    rules: EarningRules,
) -> None:
    """Units of an order came back: each promotion keeps only what the smaller order earns from
    it. The difference goes back to its budget, and a promotion that no longer fires gives the
    member's trigger back (as if the returned units had never been bought)."""
    budgeted = {p.code for p in rules.promotions if p.budget_points is not None}
    awards = (
        await conn.execute(
            select(
                promotion_awards.c.id, promotion_awards.c.promotion_code, promotion_awards.c.points
            )
            .where(promotion_awards.c.order_id == order_id)
            .order_by(promotion_awards.c.promotion_code)
        )
    ).all()
    for award in awards:
        kept = min(award.points, repriced.promotion_points.get(award.promotion_code, 0))
        if kept == award.points:
            continue
        if kept == 0:
            await conn.execute(delete(promotion_awards).where(promotion_awards.c.id == award.id))
        else:
            await conn.execute(
                promotion_awards.update()
                .where(promotion_awards.c.id == award.id)
                .values(points=kept)
            )
        if award.promotion_code in budgeted:
            await conn.execute(
                promotion_counters.update()
                .where(
                    promotion_counters.c.program_id == program_id,
                    promotion_counters.c.promotion_code == award.promotion_code,
                )
                .values(points_used=promotion_counters.c.points_used - (award.points - kept))
            )
