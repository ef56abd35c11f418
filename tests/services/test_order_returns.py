"""Returns against a real database: after any sequence of partial returns the member's
qualifying totals, points and promotion budget are what they would be had the returned units
never been bought; an order sent late is priced with the tier of its time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.db.engine import create_engine
from loyalty.db.tables import (
    accounts,
    promotion_awards,
    promotion_counters,
    qualifying_activity,
    staff_users,
)
from loyalty.domain.earning import CapPeriod, PromotionKind, RuleKind
from loyalty.services.context import Staff
from loyalty.services.orders import Orders
from loyalty.services.queries import Queries
from loyalty.services.quotes import BasketDocument, BasketLineDocument
from loyalty.services.rule_documents import (
    STARTER_RULES,
    CapDocument,
    EarningRuleDocument,
    LocalizedText,
    PromotionDocument,
    RuleSetDocument,
    ScopeDocument,
    TierLevelDocument,
    TierPolicyDocument,
)
from loyalty.services.rule_sets import RuleSets
from tests.support.baskets import orders_and_returns
from tests.support.scenario import Scenario, new_scenario
from tests.support.services import run_async

T0 = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)  # a Saturday
NAME = LocalizedText(de="Regel", en="Rule")


def rules(budget: int, plus_from: int = 10_000) -> RuleSetDocument:
    """Every kind of rule whose result depends on what was bought, a per-order cap, a
    budgeted promotion and a tier multiplier."""
    return RuleSetDocument(
        earning_rules=[
            *STARTER_RULES.earning_rules,
            EarningRuleDocument(
                code="per-brot",
                kind=RuleKind.ITEM,
                name=NAME,
                points=3,
                scope=ScopeDocument(skus=["BROT"]),
            ),
            EarningRuleDocument(
                code="bio",
                kind=RuleKind.MULTIPLIER,
                name=NAME,
                multiplier=Decimal("1.5"),
                scope=ScopeDocument(categories=["bio"]),
            ),
            EarningRuleDocument(
                code="big-basket",
                kind=RuleKind.MIN_SPEND_BONUS,
                name=NAME,
                points=25,
                min_spend=3000,
            ),
            EarningRuleDocument(
                code="visit",
                kind=RuleKind.VISIT,
                name=NAME,
                points=2,
                min_spend=500,
            ),
        ],
        promotions=[
            PromotionDocument(
                code="saturday",
                kind=PromotionKind.MULTIPLIER,
                name=NAME,
                starts_at=T0 - timedelta(days=1),
                ends_at=T0 + timedelta(days=1),
                multiplier=Decimal(2),
                budget_points=budget,
                per_member_limit=3,
            ),
        ],
        caps=[CapDocument(period=CapPeriod.ORDER, max_points=400)],
        tiers=TierPolicyDocument(
            levels=[
                TierLevelDocument(code="base", name=NAME, threshold=0),
                TierLevelDocument(
                    code="plus", name=NAME, threshold=plus_from, multiplier=Decimal("1.25")
                ),
            ]
        ),
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Shop:
    s: Scenario
    orders: Orders

    async def qualifying(self, member_id: int) -> tuple[int, int]:
        async with self.s.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.coalesce(func.sum(qualifying_activity.c.points), 0),
                        func.coalesce(func.sum(qualifying_activity.c.spend), 0),
                    )
                    .join(accounts, accounts.c.id == qualifying_activity.c.account_id)
                    .where(
                        accounts.c.program_id == self.s.program_id,
                        accounts.c.member_id == member_id,
                    )
                )
            ).one()
        return int(row[0]), int(row[1])

    async def budget_used(self) -> int:
        async with self.s.engine.connect() as conn:
            used = await conn.scalar(
                select(promotion_counters.c.points_used).where(
                    promotion_counters.c.program_id == self.s.program_id
                )
            )
        return int(used or 0)

    async def awards(self, member_id: int) -> int:
        async with self.s.engine.connect() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(promotion_awards)
                .join(accounts, accounts.c.id == promotion_awards.c.account_id)
                .where(accounts.c.member_id == member_id)
            )
        return int(count or 0)

    async def posted(self, member_id: int) -> int:
        view = await Queries(self.s.engine).balance(self.s.caller, self.s.program_id, member_id)
        return view.posted


async def new_shop(
    engine: AsyncEngine, clock: Clock, budget: int = 10_000, plus_from: int = 10_000
) -> Shop:
    clock.now = T0 - timedelta(days=2)
    s = await new_scenario(engine, clock, members=1)
    async with engine.begin() as conn:
        staff_id = await conn.scalar(
            staff_users.insert()
            .values(
                merchant_id=s.caller.merchant_id,
                email=f"pm-{s.caller.merchant_id}@example.com",
                display_name="Pat Manager",
                role="program_manager",
                password_hash="not-a-hash",
                active=True,
                created_at=T0,
            )
            .returning(staff_users.c.id)
        )
    assert staff_id is not None
    staff = Staff(int(staff_id), s.caller.merchant_id, "program_manager", "pm@example.com", "Pat")
    rule_sets = RuleSets(engine, clock)
    draft = await rule_sets.create_draft(staff, s.program_id)
    await rule_sets.replace_draft(staff, s.program_id, draft.version, rules(budget, plus_from))
    await rule_sets.publish(staff, s.program_id, draft.version)
    clock.now = T0
    return Shop(s, Orders(s.ledger))


def smaller(basket: BasketDocument, returned: dict[str, int]) -> BasketDocument | None:
    kept = basket.basket().returning(returned)
    if not kept.lines:
        return None
    return BasketDocument(
        currency=kept.currency,
        location=kept.location,
        lines=[
            BasketLineDocument(
                line_id=line.line_id,
                sku=line.sku,
                category=line.category,
                quantity=line.quantity,
                unit_price=line.unit_price,
                line_discount=line.line_discount,
                kind=line.kind,
            )
            for line in kept.lines
        ],
    )


@settings(max_examples=25)
@given(case=orders_and_returns(), budget=st.sampled_from([10_000, 150]))
def test_returns_leave_what_the_smaller_order_would_have(
    sqlite_url: str, case: tuple[BasketDocument, list[dict[str, int]]], budget: int
) -> None:
    basket, steps = case

    async def scenario() -> None:
        engine = create_engine(sqlite_url)
        try:
            clock = Clock()
            bought = await new_shop(engine, clock, budget)
            never = await new_shop(engine, clock, budget)
            buyer, other = bought.s.member_ids[0], never.s.member_ids[0]
            order = await bought.orders.record(
                bought.s.caller,
                f"order-{bought.s.program_id}",
                program_id=bought.s.program_id,
                member_id=buyer,
                reference="R1",
                basket=basket,
            )
            clock.now += timedelta(hours=1)
            returned: dict[str, int] = {}
            for index, step in enumerate(steps):
                await bought.orders.return_items(
                    bought.s.caller,
                    f"return-{bought.s.program_id}-{index}",
                    program_id=bought.s.program_id,
                    reference="R1",
                    quantities=step,
                )
                for line_id, units in step.items():
                    returned[line_id] = returned.get(line_id, 0) + units
            clock.now = T0
            kept = smaller(basket, returned)
            if kept is not None:
                await never.orders.record(
                    never.s.caller,
                    f"order-{never.s.program_id}",
                    program_id=never.s.program_id,
                    member_id=other,
                    reference="R1",
                    basket=kept,
                )
            assert await bought.qualifying(buyer) == await never.qualifying(other)
            assert await bought.posted(buyer) == await never.posted(other)
            assert await bought.budget_used() == await never.budget_used()
            assert await bought.awards(buyer) == await never.awards(other)
            assert await bought.posted(buyer) <= order.result.points
        finally:
            await engine.dispose()

    run_async(scenario)


async def test_an_order_sent_late_is_priced_with_the_tier_of_its_time(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        clock = Clock()
        shop = await new_shop(engine, clock, plus_from=100)
        member = shop.s.member_ids[0]
        basket = BasketDocument(
            currency="EUR",
            lines=[BasketLineDocument(line_id="1", sku="MILCH", quantity=1, unit_price=10_000)],
        )
        upgrade = await shop.orders.record(
            shop.s.caller,
            "live",
            program_id=shop.s.program_id,
            member_id=member,
            reference="LIVE",
            basket=basket,
        )
        assert upgrade.result.quote.tier == "base"
        assert [move.after for move in upgrade.result.tier_changes] == ["plus"]
        clock.now = T0 + timedelta(minutes=10)
        offline = await shop.orders.record(
            shop.s.caller,
            "offline",
            program_id=shop.s.program_id,
            member_id=member,
            reference="OFFLINE",
            basket=basket,
            occurred_at=T0 - timedelta(hours=1),
        )
        # Bought an hour before the upgrade: no plus multiplier, same points as the first.
        assert offline.result.quote.tier == "base"
        assert offline.result.points == upgrade.result.points
        after = await shop.orders.record(
            shop.s.caller,
            "later",
            program_id=shop.s.program_id,
            member_id=member,
            reference="LATER",
            basket=basket,
        )
        assert after.result.quote.tier == "plus"
        assert after.result.points > upgrade.result.points
    finally:
        await engine.dispose()
