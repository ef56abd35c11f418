"""Orders: quote a basket, earn on a completed order, give back points for returned items.

An order is priced by the rule-set version in force when it happened and by the member's tier,
in one transaction with its ledger earn, its qualifying activity, its promotion counters and
the tier evaluation that follows (an upgrade applies from the next order on). A return re-prices
the order as if the returned units had never been bought, with the same version, tier and member
context, and claws back the difference: so qualifying totals after a return are exactly those
of the smaller order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from msgspec import Struct
from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.engine import in_transaction, is_postgres
from loyalty.db.statements import insert_every_column
from loyalty.db.tables import accounts, order_returns, orders, programs, qualifying_activity
from loyalty.domain.basket import require_currency
from loyalty.domain.earning import quote
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.tiers import TierLevel, level

from . import ledger_writes as w
from .context import Caller
from .idempotency import Replayable, fingerprint
from .ledger import ALLOWED_CLOCK_SKEW, Ledger
from .lookups import account_row
from .quotes import (
    BasketDocument,
    ContextDocument,
    QuoteView,
    context_document,
    count_promotions,
    member_context,
    quote_view,
    uncount_promotions,
)
from .referrals import convert_on_first_purchase
from .results import Balance
from .rules_in_force import rules_by_id, rules_in_force
from .tier_status import (
    TierContext,
    apply_due,
    effective_level,
    ensure_state,
    level_at,
    member_level,
)
from .tier_status import after_qualifying_event as evaluate_tier


class TierMove(Struct, frozen=True):
    before: str | None
    after: str
    reason: str


class OrderResult(Struct, frozen=True, kw_only=True):
    order_id: int
    program_id: int
    member_id: int
    reference: str
    occurred_at: datetime
    points: int
    quote: QuoteView
    journal_id: int | None
    balance: Balance
    #: The member's tier after the order (None: the program has no tiers).
    tier: str | None
    tier_changes: list[TierMove]


class ReturnResult(Struct, frozen=True, kw_only=True):
    return_id: int
    order_id: int
    reference: str | None
    #: Qualifying points the returned units had earned (clawed back, as far as unspent).
    points: int
    #: Points actually taken from the balance (less when the member already spent them).
    points_clawed_back: int
    qualifying_spend: int
    journal_id: int | None
    balance: Balance
    order_points_now: int


class OrderView(Struct, frozen=True, kw_only=True):
    order_id: int
    program_id: int
    member_id: int
    reference: str
    occurred_at: datetime
    points: int
    points_returned: int
    qualifying_spend: int
    basket: BasketDocument
    quote: QuoteView
    journal_id: int | None


# Every sale at a till runs these: built once (see ledger_writes).
_ORDER_WITH_REFERENCE = select(orders.c.id).where(
    orders.c.program_id == bindparam("program_id"), orders.c.reference == bindparam("reference")
)
_INSERT_ORDER = orders.insert().returning(orders.c.id)
_INSERT_QUALIFYING = qualifying_activity.insert()


def _order_with_activity() -> Any:
    """PostgreSQL: the order and its qualifying activity in one round trip (a data-modifying
    CTE). Parameters: the order's columns prefixed ``order_``."""
    order = insert_every_column(orders, "order_").returning(orders.c.id).cte("new_order")
    activity = (
        insert(qualifying_activity)
        .from_select(
            ["account_id", "occurred_at", "points", "spend", "order_id"],
            select(
                bindparam("order_account_id", type_=orders.c.account_id.type),
                bindparam("order_occurred_at", type_=orders.c.occurred_at.type),
                bindparam("order_points", type_=orders.c.points.type),
                bindparam("order_qualifying_spend", type_=orders.c.qualifying_spend.type),
                order.c.id,
            ),
        )
        .cte("activity")
    )
    return select(order.c.id).add_cte(activity)


_INSERT_ORDER_WITH_ACTIVITY = _order_with_activity()


class Orders:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def quote(
        self,
        caller: Caller,
        *,
        program_id: int,
        member_id: int,
        basket: BasketDocument,
        at: datetime | None = None,
    ) -> QuoteView:
        """What the basket would earn (nothing is written): the till's and the wallet's preview."""

        async def work(conn: AsyncConnection) -> QuoteView:
            return await self.quote_within(
                conn,
                at or self._ledger.clock(),
                caller,
                program_id=program_id,
                member_id=member_id,
                basket=basket,
            )

        return await in_transaction(self._ledger.engine, work, read_only=True)

    async def quote_within(
        self,
        conn: AsyncConnection,
        when: datetime,
        caller: Caller,
        *,
        program_id: int,
        member_id: int,
        basket: BasketDocument,
        segments: frozenset[str] | None = None,
    ) -> QuoteView:
        """``quote`` inside the caller's transaction (``segments``: the member's, if the caller
        has read them already)."""
        priced = basket.basket()
        account = await account_row(conn, caller, program_id, member_id)
        require_currency(basket.currency, account.currency)
        found = await rules_in_force(conn, program_id, when)
        tier = None
        if found.rules.tiers is not None:
            tier = await member_level(conn, found.rules.tiers, account.id, when)
        context = await member_context(
            conn,
            program_id=program_id,
            account_id=account.id,
            member_id=member_id,
            rules=found.rules.earning,
            at=when,
            lock_budgets=False,
            segments=segments,
        )
        result = quote(priced, found.rules.earning, tier, when, context)
        return quote_view(result, found.version, None if tier is None else tier.code)

    async def record(
        self,
        caller: Caller,
        key: str,
        *,
        program_id: int,
        member_id: int,
        reference: str,
        basket: BasketDocument,
        occurred_at: datetime | None = None,
    ) -> Replayable[OrderResult]:
        async def work(conn: AsyncConnection) -> OrderResult:
            return await self.record_within(
                conn,
                self._ledger.clock(),
                caller,
                program_id=program_id,
                member_id=member_id,
                reference=reference,
                basket=basket,
                occurred_at=occurred_at,
            )

        body = (program_id, member_id, reference, basket, occurred_at)
        return await self._ledger.executor.run(
            client_id=caller.client_id,
            key=key,
            request_hash=fingerprint("order", *body),
            result_type=OrderResult,
            work=work,
            journal_id_of=lambda result: result.journal_id,
        )

    async def return_items(
        self,
        caller: Caller,
        key: str,
        *,
        program_id: int,
        reference: str,
        quantities: dict[str, int],
        return_reference: str | None = None,
    ) -> Replayable[ReturnResult]:
        """Units of an order came back: re-price the order without them and claw back the
        difference (as far as the member still has the points; never below zero)."""

        async def work(conn: AsyncConnection) -> ReturnResult:
            return await self.return_within(
                conn,
                self._ledger.clock(),
                caller,
                program_id=program_id,
                reference=reference,
                quantities=quantities,
                return_reference=return_reference,
            )

        body = (program_id, reference, sorted(quantities.items()), return_reference)
        return await self._ledger.executor.run(
            client_id=caller.client_id,
            key=key,
            request_hash=fingerprint("order-return", *body),
            result_type=ReturnResult,
            work=work,
            journal_id_of=lambda result: result.journal_id,
        )

    async def record_within(
        self,
        conn: AsyncConnection,
        now: datetime,
        caller: Caller,
        *,
        program_id: int,
        member_id: int,
        reference: str,
        basket: BasketDocument,
        occurred_at: datetime | None,
        segments: frozenset[str] | None = None,
    ) -> OrderResult:
        """``record`` inside the caller's transaction (the POS completes an order and captures
        its redemptions in one; ``segments``: the member's, if the caller has read them)."""
        priced = basket.basket()
        when = occurred_at or now
        if when > now + ALLOWED_CLOCK_SKEW:
            raise DomainError(ErrorCode.EFFECTIVE_AT_IN_FUTURE, "occurred_at lies in the future")
        account = await self._ledger.lock_member(conn, caller, program_id, member_id, now)
        require_currency(basket.currency, account.currency)
        taken = await conn.scalar(
            _ORDER_WITH_REFERENCE, {"program_id": program_id, "reference": reference}
        )
        if taken is not None:
            raise DomainError(
                ErrorCode.ORDER_REFERENCE_TAKEN,
                "an order with this reference was already recorded",
                reference=reference,
            )
        found = await rules_in_force(conn, program_id, when)
        policy = found.rules.tiers
        tier: TierLevel | None = None
        moves: list[TierMove] = []
        if policy is not None:
            ctx = TierContext.of(account, found)
            state = await ensure_state(conn, ctx, now)
            state, due = await apply_due(conn, ctx, state, now)
            moves += [TierMove(c.before, c.after, str(c.reason)) for c in due]
            tier = (
                effective_level(policy, state, when)
                if when >= now
                else await level_at(conn, policy, account.id, state, when)
            )
        context = await member_context(
            conn,
            program_id=program_id,
            account_id=account.id,
            member_id=member_id,
            rules=found.rules.earning,
            at=when,
            lock_budgets=True,
            segments=segments,
        )
        result = quote(priced, found.rules.earning, tier, when, context)
        tier_code = None if tier is None else tier.code
        view = quote_view(result, found.version, tier_code)
        journal_id = None
        balance = account.balance
        if result.total > 0:
            earned = await self._ledger.earn_within(
                conn,
                now,
                caller,
                account,
                result.total,
                effective_at=when,
                reference=f"order:{reference}",
            )
            journal_id, balance = earned.journal_id, earned.balance
        order = {
            "program_id": program_id,
            "account_id": account.id,
            "reference": reference,
            "occurred_at": when,
            "rule_set_id": found.rule_set_id,
            "tier": tier_code,
            "basket": msgspec.to_builtins(basket),
            "context": msgspec.to_builtins(context_document(context)),
            "quote": msgspec.to_builtins(view),
            "points": result.total,
            "qualifying_spend": result.qualifying_spend,
            "journal_id": journal_id,
            "created_at": now,
        }
        if is_postgres(conn):
            order_id = await conn.scalar(
                _INSERT_ORDER_WITH_ACTIVITY,
                {f"order_{name}": value for name, value in order.items()},
            )
        else:
            order_id = await conn.scalar(_INSERT_ORDER, order)
            await conn.execute(
                _INSERT_QUALIFYING,
                {
                    "account_id": account.id,
                    "occurred_at": when,
                    "points": result.total,
                    "spend": result.qualifying_spend,
                    "order_id": order_id,
                },
            )
        assert order_id is not None
        await count_promotions(
            conn,
            program_id=program_id,
            account_id=account.id,
            order_id=order_id,
            quote=result,
            rules=found.rules.earning,
        )
        if await convert_on_first_purchase(conn, self._ledger, caller, account, now):
            balance = account.balance
        after = tier_code
        if policy is not None:
            state, change = await evaluate_tier(conn, ctx, state, now)
            if change is not None:
                moves.append(TierMove(change.before, change.after, str(change.reason)))
            after = effective_level(policy, state, now).code
        return OrderResult(
            order_id=order_id,
            program_id=program_id,
            member_id=member_id,
            reference=reference,
            occurred_at=when,
            points=result.total,
            quote=view,
            journal_id=journal_id,
            balance=balance,
            tier=after,
            tier_changes=moves,
        )

    async def return_within(
        self,
        conn: AsyncConnection,
        now: datetime,
        caller: Caller,
        *,
        program_id: int,
        reference: str,
        quantities: dict[str, int],
        return_reference: str | None,
    ) -> ReturnResult:
        """``return_items`` inside the caller's transaction."""
        if not quantities:
            raise DomainError(ErrorCode.VALIDATION_FAILED, "name at least one returned line")
        order = await _order_row(conn, caller, program_id, reference)
        account = (await w.lock_members(conn, caller, program_id, [order.member_id]))[
            order.member_id
        ]
        earlier = (
            await conn.execute(
                select(
                    order_returns.c.quantities,
                    order_returns.c.points,
                    order_returns.c.qualifying_spend,
                ).where(order_returns.c.order_id == order.id)
            )
        ).all()
        returned: dict[str, int] = {}
        for row in earlier:
            for line_id, units in row.quantities.items():
                returned[line_id] = returned.get(line_id, 0) + units
        for line_id, units in quantities.items():
            if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
                raise DomainError(
                    ErrorCode.VALIDATION_FAILED, "returned quantities must be positive"
                )
            returned[line_id] = returned.get(line_id, 0) + units
        basket = msgspec.convert(order.basket, BasketDocument).basket()
        smaller = basket.returning(returned)
        rules = await rules_by_id(conn, order.rule_set_id)
        tier = None
        if order.tier is not None and rules.tiers is not None:
            tier = level(rules.tiers, order.tier)
        context = msgspec.convert(order.context, ContextDocument).context()
        repriced = quote(smaller, rules.earning, tier, order.occurred_at, context)
        points = max(0, order.points - repriced.total - sum(r.points for r in earlier))
        spend = max(
            0,
            order.qualifying_spend
            - repriced.qualifying_spend
            - sum(r.qualifying_spend for r in earlier),
        )
        await uncount_promotions(
            conn,
            program_id=program_id,
            order_id=order.id,
            repriced=repriced,
            rules=rules.earning,
        )
        journal_id = None
        clawed = 0
        balance = account.balance
        if points > 0 and order.journal_id is not None:
            undone = await self._ledger.undo_within(
                conn, now, caller, program_id, order.journal_id, points, "items returned"
            )
            journal_id, clawed, balance = undone.journal_id, -undone.delta, undone.balance
        return_id = await conn.scalar(
            order_returns.insert()
            .values(
                order_id=order.id,
                quantities=dict(quantities),
                points=points,
                qualifying_spend=spend,
                journal_id=journal_id,
                reference=return_reference,
                created_at=now,
            )
            .returning(order_returns.c.id)
        )
        assert return_id is not None
        if points or spend:
            # Dated like the order: the member's windows then hold what they would have
            # held had the returned units never been bought.
            await conn.execute(
                qualifying_activity.insert().values(
                    account_id=account.id,
                    occurred_at=order.occurred_at,
                    points=-points,
                    spend=-spend,
                    order_id=order.id,
                    return_id=return_id,
                )
            )
        return ReturnResult(
            return_id=return_id,
            order_id=order.id,
            reference=return_reference,
            points=points,
            points_clawed_back=clawed,
            qualifying_spend=spend,
            journal_id=journal_id,
            balance=balance,
            order_points_now=repriced.total,
        )

    async def order(self, caller: Caller, program_id: int, reference: str) -> OrderView:
        async def work(conn: AsyncConnection) -> OrderView:
            row = await _order_row(conn, caller, program_id, reference)
            returned = await conn.scalar(
                select(func.coalesce(func.sum(order_returns.c.points), 0)).where(
                    order_returns.c.order_id == row.id
                )
            )
            return OrderView(
                order_id=row.id,
                program_id=program_id,
                member_id=row.member_id,
                reference=row.reference,
                occurred_at=row.occurred_at,
                points=row.points,
                points_returned=int(returned or 0),
                qualifying_spend=row.qualifying_spend,
                basket=msgspec.convert(row.basket, BasketDocument),
                quote=msgspec.convert(row.quote, QuoteView),
                journal_id=row.journal_id,
            )

        return await in_transaction(self._ledger.engine, work, read_only=True)


async def _order_row(conn: AsyncConnection, caller: Caller, program_id: int, reference: str) -> Any:
    row = (
        await conn.execute(
            select(orders, accounts.c.member_id)
            .join(accounts, accounts.c.id == orders.c.account_id)
            .join(programs, programs.c.id == orders.c.program_id)
            .where(
                orders.c.program_id == program_id,
                orders.c.reference == reference,
                programs.c.merchant_id == caller.merchant_id,
            )
        )
    ).first()
    if row is None:
        raise DomainError(ErrorCode.ORDER_NOT_FOUND, "no such order", reference=reference)
    return row
