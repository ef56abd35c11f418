"""The program's figures on a fixed dataset, each checked against a number worked out by hand.

The dataset is April 2025 of a bakery's program (time zone Europe/Berlin, points expire 30
days after they are earned, a point is worth half a cent, referral bonus 50 points, tiers base
0 / silver 100 / gold 1000 points per calendar year). Everything happens through the real
services with the clock set to each moment (enrollments, orders, a return, a redemption, an
expiry sweep, an erasure, manual tiers, feedback, a referral); only what has no service yet is
inserted: the merge of Finn into Ben, marketing consents and sales without a member.

The period is 1-30 April 2025 local, i.e. [2025-03-31T22:00Z, 2025-04-30T22:00Z) (CEST);
lapse window 30 days, lookback 90 days.

Who did what (times UTC; 12:00Z is 14:00 in Berlin unless said otherwise):

======  ==========  ========================================================================
member  enrolled    events
======  ==========  ========================================================================
Gert    2024-12-01  orders EUR 100 on 01-31, 02-28, 03-31 22:30Z (= 1 April local),
                    04-30 21:30Z (= 30 April 23:30 local), 04-30 22:30Z (= 1 May local);
                    adjusted -5 on 04-23
Hans    2025-01-02  orders EUR 5 on 02-01, 02-08, 02-15, 04-14; answers 0 on 03-01;
                    marketing consent granted
Dora    2025-01-05  order EUR 15 on 02-10; answers 3 "Zu teuer" on 04-02; erased 04-18
Anna    2025-01-10  orders EUR 20 on 03-01, 03-08, 03-15; redeems 10 on 03-16; marketing
                    consent granted, then withdrawn
Ben     2025-02-01  orders EUR 30 on 03-25, 40 on 04-05, 50 on 04-12, 10 on 04-26 (returned
                    04-28); dismisses the question 04-13; redeems 50 on 04-27; invites Clara
Finn    2025-03-01  order EUR 12 on 03-20; answers 9 on 04-21; merged into Ben 04-25
Clara   2025-04-10  invited by Ben; order EUR 25 + EUR 2 tax on 04-15 (referral converts: 50
                    bonus points each); answers 10 "Super Brötchen" on 04-16; manual gold
                    04-16 until 04-25
Emil    2025-04-20  no order; adjusted +25 on 04-22; manual gold 04-21 until 06-01
======  ==========  ========================================================================

The expiry sweep runs on 04-20 10:00Z; Hans gets a manual gold tier on 05-02 (after the
period: the report must still count him as base).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.db.engine import create_engine
from loyalty.db.tables import (
    accounts,
    member_consents,
    member_merges,
    members,
    non_member_sales,
    orders,
    programs,
    rule_sets,
    staff_users,
)
from loyalty.domain.analytics import BucketSize, decimal_text, median_interval
from loyalty.domain.basket import LineKind
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.analytics import (
    Analytics,
    AnalyticsQuery,
    AtRiskReport,
    ProgramAnalytics,
    RfmReport,
)
from loyalty.services.context import Staff
from loyalty.services.expiry import run_expiry_sweep
from loyalty.services.feedback import Feedback
from loyalty.services.ledger import Ledger
from loyalty.services.member_privacy import MemberPrivacy
from loyalty.services.orders import Orders
from loyalty.services.programs import Programs
from loyalty.services.quotes import BasketDocument, BasketLineDocument
from loyalty.services.referrals import invite_code_of, note_invitation
from loyalty.services.rule_documents import (
    STARTER_RULES,
    LocalizedText,
    RuleSetDocument,
    TierLevelDocument,
    TierPolicyDocument,
)
from loyalty.services.rule_sets import RuleSets
from loyalty.services.tiers import Tiers
from tests.support import services
from tests.support.scenario import new_scenario
from tests.support.services import run_async

APRIL = AnalyticsQuery(
    first=date(2025, 4, 1),
    last=date(2025, 4, 30),
    bucket=BucketSize.WEEK,
    lapse_days=30,
    lookback_days=90,
)
PERIOD_START = datetime(2025, 3, 31, 22, 0, tzinfo=UTC)
PERIOD_END = datetime(2025, 4, 30, 22, 0, tzinfo=UTC)


def utc(month: int, day: int, hour: int = 12, minute: int = 0, year: int = 2025) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = utc(11, 30, year=2024)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Figures:
    """What the tests read: the reports and who is who."""

    ids: dict[str, int]
    april: ProgramAnalytics
    dashboard: tuple[ProgramAnalytics, AtRiskReport]
    april_daily: ProgramAnalytics
    spring_monthly: ProgramAnalytics
    rfm: RfmReport
    at_risk: AtRiskReport
    errors: dict[str, DomainError]


def basket(euros: int, tax_euros: int = 0) -> BasketDocument:
    lines = [BasketLineDocument(line_id="1", sku="BROT", quantity=1, unit_price=euros * 100)]
    if tax_euros:
        lines.append(
            BasketLineDocument(
                line_id="2", sku="MWST", quantity=1, unit_price=tax_euros * 100, kind=LineKind.TAX
            )
        )
    return BasketDocument(currency="EUR", lines=lines)


async def build(url: str) -> Figures:
    engine = create_engine(url)
    try:
        return await _build(engine)
    finally:
        await engine.dispose()


async def _build(engine: AsyncEngine) -> Figures:
    clock = Clock()
    s = await new_scenario(engine, clock, members=0)
    program_id, caller = s.program_id, s.caller
    ledger = Ledger(engine, clock=clock)
    orders = Orders(ledger)
    feedback = Feedback(engine, clock=clock)
    tiers = Tiers(engine, clock=clock)
    program_service = Programs(ledger.executor)
    keys = iter(range(1_000_000))
    ids: dict[str, int] = {}

    async with engine.begin() as conn:
        await conn.execute(
            update(programs)
            .where(programs.c.id == program_id)
            .values(point_value_micros=5_000, referral_bonus_points=50)
        )
        staff_id = await conn.scalar(
            staff_users.insert()
            .values(
                merchant_id=caller.merchant_id,
                email=f"pm-{caller.merchant_id}@example.com",
                display_name="Pat Manager",
                role="program_manager",
                password_hash="not-a-hash",
                active=True,
                created_at=clock.now,
            )
            .returning(staff_users.c.id)
        )
    assert staff_id is not None
    staff = Staff(int(staff_id), caller.merchant_id, "program_manager", "pm@example.com", "Pat")

    def at(moment: datetime) -> None:
        assert moment >= clock.now, "the story is told in order"
        clock.now = moment

    async def enroll(name: str, moment: datetime) -> None:
        at(moment)
        enrolled = await program_service.enroll(
            caller, f"enroll-{name}", program_id=program_id, display_name=name
        )
        ids[name] = enrolled.result.member_id

    async def order(name: str, moment: datetime, euros: int, tax: int = 0) -> str:
        at(moment)
        reference = f"{name}-{moment:%m%d%H%M}"
        await orders.record(
            caller,
            f"order-{next(keys)}",
            program_id=program_id,
            member_id=ids[name],
            reference=reference,
            basket=basket(euros, tax),
        )
        return reference

    async def answer(name: str, moment: datetime, score: int | None, comment: str | None) -> None:
        at(moment)
        await feedback.answer(program_id, ids[name], score, comment)

    async def adjust(name: str, moment: datetime, points: int) -> None:
        at(moment)
        await ledger.adjust(
            caller,
            f"adjust-{next(keys)}",
            program_id=program_id,
            member_id=ids[name],
            points=points,
            reason="goodwill",
            actor="Pat",
        )

    async def consent(name: str, moment: datetime, granted: bool) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                member_consents.insert().values(
                    member_id=ids[name],
                    program_id=program_id,
                    kind="marketing",
                    granted=granted,
                    text_version="1",
                    source="wallet",
                    at=moment,
                )
            )

    await enroll("Gert", utc(12, 1, year=2024))
    # The tier policy, in force from mid-December on.
    at(utc(12, 15, year=2024))
    rule_sets = RuleSets(engine, clock)
    draft = await rule_sets.create_draft(staff, program_id)
    name = LocalizedText(de="Stufe", en="Level")
    await rule_sets.replace_draft(
        staff,
        program_id,
        draft.version,
        RuleSetDocument(
            earning_rules=STARTER_RULES.earning_rules,
            tiers=TierPolicyDocument(
                levels=[
                    TierLevelDocument(code="base", name=name, threshold=0),
                    TierLevelDocument(code="silver", name=name, threshold=100),
                    TierLevelDocument(code="gold", name=name, threshold=1000),
                ]
            ),
        ),
    )
    await rule_sets.publish(staff, program_id, draft.version)

    await enroll("Hans", utc(1, 2))
    await consent("Hans", utc(1, 2), True)
    await enroll("Dora", utc(1, 5))
    await enroll("Anna", utc(1, 10))
    await consent("Anna", utc(1, 10), True)
    await order("Gert", utc(1, 31), 100)
    await enroll("Ben", utc(2, 1))
    await order("Hans", utc(2, 1), 5)
    await order("Hans", utc(2, 8), 5)
    await order("Dora", utc(2, 10), 15)
    await order("Hans", utc(2, 15), 5)
    await order("Gert", utc(2, 28), 100)
    await answer("Hans", utc(3, 1, 8), 0, None)
    await enroll("Finn", utc(3, 1, 9))
    await order("Anna", utc(3, 1), 20)
    await order("Anna", utc(3, 8), 20)
    await order("Anna", utc(3, 15), 20)
    at(utc(3, 16))
    await ledger.redeem(
        caller, "redeem-anna", program_id=program_id, member_id=ids["Anna"], points=10
    )
    await consent("Anna", utc(3, 16), False)
    await order("Finn", utc(3, 20), 12)
    await order("Ben", utc(3, 25), 30)
    await order("Gert", utc(3, 31, 22, 30), 100)
    await answer("Dora", utc(4, 2), 3, "Zu teuer")
    await order("Ben", utc(4, 5), 40)
    # Ben invites Clara, who joins with his code.
    await enroll("Clara", utc(4, 10))
    async with engine.begin() as conn:
        code = await invite_code_of(conn, program_id, ids["Ben"], clock.now)
        assert await note_invitation(conn, program_id, code, ids["Clara"], clock.now)
    await order("Ben", utc(4, 12), 50)
    await answer("Ben", utc(4, 13), None, None)
    await order("Hans", utc(4, 14), 5)
    await order("Clara", utc(4, 15), 25, tax=2)
    await answer("Clara", utc(4, 16), 10, "Super Brötchen")
    at(utc(4, 16, 13))
    await tiers.assign(staff, program_id, ids["Clara"], "gold", utc(4, 25), "launch week")
    at(utc(4, 18))
    await MemberPrivacy(engine, clock).erase(ids["Dora"], caller.merchant_id, clock.now)
    at(utc(4, 20, 10))
    await run_expiry_sweep(engine, at=clock.now)
    await enroll("Emil", utc(4, 20))
    await answer("Finn", utc(4, 21), 9, None)
    at(utc(4, 21, 13))
    await tiers.assign(staff, program_id, ids["Emil"], "gold", utc(6, 1), "friend of the house")
    await adjust("Emil", utc(4, 22), 25)
    await adjust("Gert", utc(4, 23), -5)
    at(utc(4, 25))
    async with engine.begin() as conn:
        await conn.execute(
            update(members).where(members.c.id == ids["Finn"]).values(merged_into_id=ids["Ben"])
        )
        await conn.execute(
            member_merges.insert().values(
                merchant_id=caller.merchant_id,
                source_member_id=ids["Finn"],
                target_member_id=ids["Ben"],
                staff_id=staff.staff_id,
                actor=staff.label,
                reason="one person",
                moved={},
                at=clock.now,
            )
        )
        await conn.execute(
            non_member_sales.insert(),
            [
                {
                    "program_id": program_id,
                    "reference": reference,
                    "occurred_at": occurred_at,
                    "total": total,
                    "currency": "EUR",
                    "source": "import",
                    "created_at": clock.now,
                }
                for reference, occurred_at, total in (
                    ("walk-in-1", utc(3, 20), 5_000),
                    ("walk-in-2", utc(4, 3), 800),
                    ("walk-in-3", utc(4, 20), 1_200),
                )
            ],
        )
    returned = await order("Ben", utc(4, 26), 10)
    at(utc(4, 27))
    await ledger.redeem(
        caller, "redeem-ben", program_id=program_id, member_id=ids["Ben"], points=50
    )
    at(utc(4, 28))
    await orders.return_items(
        caller, "return-ben", program_id=program_id, reference=returned, quantities={"1": 1}
    )
    await order("Gert", utc(4, 30, 21, 30), 100)
    await order("Gert", utc(4, 30, 22, 30), 100)
    at(utc(5, 2))
    await tiers.assign(staff, program_id, ids["Hans"], "gold", utc(6, 1), "after the period")

    at(utc(5, 3))
    analytics = Analytics(engine, clock)
    merchant = caller.merchant_id
    errors: dict[str, DomainError] = {}
    for label, query in {
        "reversed": AnalyticsQuery(first=date(2025, 4, 2), last=date(2025, 4, 1)),
        "too_long": AnalyticsQuery(first=date(2022, 1, 1), last=date(2025, 1, 1)),
    }.items():
        try:
            await analytics.report(merchant, program_id, query)
        except DomainError as error:
            errors[label] = error
    try:
        await analytics.report(merchant + 1, program_id, APRIL)
    except DomainError as error:
        errors["other_merchant"] = error
    return Figures(
        ids=ids,
        april=await analytics.report(merchant, program_id, APRIL),
        april_daily=await analytics.report(
            merchant, program_id, replace(APRIL, bucket=BucketSize.DAY)
        ),
        spring_monthly=await analytics.report(
            merchant,
            program_id,
            replace(APRIL, first=date(2025, 3, 15), bucket=BucketSize.MONTH),
        ),
        dashboard=await analytics.dashboard(merchant, program_id, APRIL),
        rfm=await analytics.rfm(merchant, program_id, APRIL),
        at_risk=await analytics.at_risk(merchant, program_id, APRIL),
        errors=errors,
    )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def figures(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Figures:
    """The dataset built once per database engine, and its reports."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        url = services.copy_sqlite(template, tmp_path_factory.mktemp("analytics") / "loyalty.db")
    else:
        url = request.getfixturevalue("postgres_url")
        services.truncate_all_tables(url)
    return run_async(lambda: build(url))


def test_the_period_is_april_in_berlin(figures: Figures) -> None:
    period = figures.april.period
    assert (period.first, period.last, period.days) == (date(2025, 4, 1), date(2025, 4, 30), 30)
    # Local midnights in summer time (UTC+2).
    assert (period.starts_at, period.ends_at) == (PERIOD_START, PERIOD_END)
    assert (period.bucket, period.lapse_days, period.lookback_days) == ("week", 30, 90)


def test_members_retention_and_churn(figures: Figures) -> None:
    members = figures.april.members
    # At the start: Gert, Hans, Dora, Anna, Ben, Finn (6). New: Clara, Emil (2). Left: Dora
    # (erased 04-18) and Finn (merged 04-25). At the end: 6 + 2 - 2 = 6.
    assert (members.at_start, members.new, members.left, members.at_end) == (6, 2, 2, 6)
    assert (members.erased, members.merged) == (1, 1)
    # Retention = (6 - 2) / 6 x 100 = 66.666... ; churn = 100 - retention = 33.333...
    assert (members.retention_percent, members.churn_percent) == ("66.7", "33.3")
    # Active: Ben, Clara, Gert (his order at 03-31 22:30Z is 1 April in Berlin), Hans.
    assert members.active == 4
    # Tenure at the end (2025-04-30T22:00Z) in days, members at the end:
    # Gert 150.417 (since 2024-12-01 12:00Z), Hans 118.417, Anna 110.417, Ben 88.417,
    # Clara 20.417, Emil 10.417: sum 498.5 / 6 = 83.08 -> 83.
    assert members.average_tenure_days == 83


def test_customers_lapse_after_thirty_days(figures: Figures) -> None:
    customers = figures.april.customers
    # Customers at the start: a purchase in [03-01 22:00Z, 03-31 22:00Z): Anna (03-08, 03-15),
    # Finn (03-20), Ben (03-25). Gert's 03-31 22:30Z order is already April.
    # At the end: a purchase in April: Ben, Clara, Gert, Hans. Retained: Ben.
    assert (customers.at_start, customers.at_end, customers.retained) == (3, 4, 1)
    assert (customers.gained, customers.lost) == (3, 2)
    # Retention = (4 - 3) / 3 = 33.3 %; churn 66.7 % (Anna lapsed, Finn merged away).
    assert (customers.retention_percent, customers.churn_percent) == ("33.3", "66.7")


def test_purchases_repeat_rate_and_order_values(figures: Figures) -> None:
    purchases = figures.april.purchases
    # April orders: Ben 3 (04-05, 04-12, 04-26), Clara 1, Gert 2 (04-01 and 04-30 local),
    # Hans 1 = 7; Gert's 04-30 22:30Z order is 1 May in Berlin.
    assert (purchases.orders, purchases.purchasing_members) == (7, 4)
    # More than one purchase: Ben and Gert: 2 / 4.
    assert (purchases.repeat_purchasers, purchases.repeat_purchase_rate_percent) == (2, "50.0")
    # Qualifying spend (tax excluded): Ben 4000 + 5000 + 1000, Clara 2500, Gert 2 x 10000,
    # Hans 500 = 33000; Ben's 04-26 order (1000) came back: 32000.
    assert (purchases.member_revenue, purchases.returned) == (32_000, 1_000)
    # 32000 / 7 = 4571.43
    assert purchases.member_average_order_value == 4_571
    # Walk-ins in April: 800 + 1200 (the one of 03-20 is outside).
    assert (purchases.non_member_sales, purchases.non_member_revenue) == (2, 2_000)
    assert purchases.non_member_average_order_value == 1_000


def test_customer_lifetime_value(figures: Figures) -> None:
    value = figures.april.value
    # Revenue per average customer: 32000 / ((3 + 4) / 2) = 9142.857 -> 9143.
    assert value.revenue_per_customer == 9_143
    # Lifetime = 1 / churn = 1 / (2/3) = 1.5 periods of 30 days = 45 days.
    assert (value.lifetime_periods, value.lifetime_days) == ("1.5", 45)
    # CLV = 32000 x 2/7 x 3/2 = 96000 / 7 = 13714.29 -> 13714 (rounded once, at the end).
    assert value.customer_lifetime_value == 13_714


def test_points_flows_and_liability(figures: Figures) -> None:
    points = figures.april.points
    # Earned in April: Gert 100 + 100, Ben 40 + 50 + 10, Hans 5, Clara 25, referral bonus
    # 50 + 50 = 430; the return clawed back Ben's 10: 420.
    assert points.issued == 420
    # Adjusted: Emil +25, Gert -5.
    assert points.adjusted == 20
    assert points.redeemed == 50
    # Dora's 15 forfeited at erasure; the sweep of 04-20 took Anna 50 (60 - 10 redeemed),
    # Finn 12, Hans 15 (three Feb lots), Gert 200 (Jan and Feb lots): 292.
    assert points.expired == 292
    # 50 / 420 = 11.90 %; breakage 292 / (292 + 50) = 85.38 %.
    assert (points.redemption_rate_percent, points.breakage_rate_percent) == ("11.9", "85.4")
    # Balances booked before April: Anna 60 - 10, Ben 30, Dora 15, Finn 12, Gert 200, Hans 15.
    assert points.liability_points_start == 322
    # 322 + 420 + 20 - 50 - 292 = 420 (Ben 120, Clara 75, Emil 25, Gert 195, Hans 5).
    assert points.liability_points_end == 420
    # Half a cent a point (5000 micros), rounded down.
    assert (points.liability_start, points.liability_end) == (161, 210)
    assert points.expired_value == 146


def test_tier_distribution_and_movements(figures: Figures) -> None:
    tiers = figures.april.tiers
    assert tiers is not None
    # At the end: Ben silver (04-12), Gert silver (01-31), Emil gold (manual until June),
    # Clara base (her manual gold ended 04-25), Anna and Hans base (Hans's gold of 05-02 is
    # after the period).
    assert [(level.code, level.members) for level in tiers.levels] == [
        ("base", 3),
        ("silver", 2),
        ("gold", 1),
    ]
    # In April: Ben base -> silver (upgrade), Clara and Emil base -> gold (manual).
    moves = [(m.before, m.after, m.direction, m.members) for m in tiers.movements]
    assert moves == [("base", "gold", "up", 2), ("base", "silver", "up", 1)]
    assert (tiers.upgrades, tiers.downgrades) == (3, 0)


def test_net_promoter_score_and_comments(figures: Figures) -> None:
    nps = figures.april.nps
    # April: Dora 3 (detractor), Clara 10 and Finn 9 (promoters); Ben dismissed; Hans's 0
    # was in March. (2 - 1) / 3 = 33.3.
    assert (nps.promoters, nps.passives, nps.detractors, nps.dismissed) == (2, 0, 1, 1)
    assert (nps.answers, nps.score) == (3, "33.3")
    # Dora's comment went with her erasure.
    assert [(c.score, c.comment) for c in nps.comments] == [(10, "Super Brötchen")]
    assert nps.comments_total == 1


def test_referrals(figures: Figures) -> None:
    referrals = figures.april.referrals
    # Clara joined with Ben's code (04-10) and converted with her first order (04-15): 50
    # bonus points each.
    assert (referrals.joined, referrals.converted, referrals.refused) == (1, 1, 0)
    assert referrals.bonus_points == 100


def test_rfm_segments_of_named_members(figures: Figures) -> None:
    rfm = figures.rfm
    names = {member_id: name for name, member_id in figures.ids.items()}
    # Lookback [01-30 22:00Z, 04-30 22:00Z); Dora (erased) and Finn (merged) are left out.
    # recency days / purchases / revenue:
    #   Gert 0 / 4 / 40000, Ben 4 / 4 / 12000, Clara 15 / 1 / 2500, Hans 16 / 4 / 2000,
    #   Anna 46 / 3 / 6000.
    # Mid-rank quintiles, score = 1 + floor(5 x (2 x worse + equal) / (2 x 5)):
    #   R: Gert 5, Ben 4, Clara 3, Hans 2, Anna 1
    #   F: Clara 1 (worse 0, equal 1), Anna 2 (1, 1), Ben/Gert/Hans 4 (2, 3)
    #   M: Hans 1, Clara 2, Anna 3, Ben 4, Gert 5
    #   FM = (F + M + 1) // 2: Gert 5, Ben 4, Clara 2, Hans 3, Anna 3
    # Grid: R5 FM5 champions, R4 FM4 loyal, R3 FM2 about to sleep, R2 FM3 at risk, R1 FM3
    # at risk.
    scores = {
        names[m.member_id]: (m.recency_days, m.frequency, m.monetary, m.r, m.f, m.m, m.segment)
        for m in rfm.members
    }
    assert scores == {
        "Gert": (0, 4, 40_000, 5, 4, 5, "champions"),
        "Ben": (4, 4, 12_000, 4, 4, 4, "loyal"),
        "Clara": (15, 1, 2_500, 3, 1, 2, "about_to_sleep"),
        "Hans": (16, 4, 2_000, 2, 4, 1, "at_risk"),
        "Anna": (46, 3, 6_000, 1, 2, 3, "at_risk"),
    }
    counts = {s.segment: s.members for s in rfm.segments if s.members}
    assert counts == {"champions": 1, "loyal": 1, "about_to_sleep": 1, "at_risk": 2}
    assert figures.april.rfm.customers == 5
    assert {s.segment: s.members for s in figures.april.rfm.segments if s.members} == counts


def test_the_at_risk_list(figures: Figures) -> None:
    report = figures.at_risk
    names = {member_id: name for name, member_id in figures.ids.items()}
    found = [
        (
            names[m.member_id],
            m.purchases,
            m.revenue,
            m.points_balance,
            m.last_purchase_on,
            m.days_since_last_purchase,
            m.usual_interval_days,
            m.overdue_factor,
            m.marketing_consent,
        )
        for m in report.members
    ]
    # Anna: 3 purchases a week apart (median 7 days), none since 03-15 12:00Z: 46 days 10
    # hours > 2 x 7 days and > 14 days; 46.42 / 7 = 6.6. Her points expired. Consent withdrawn.
    # Hans: gaps 7, 7, 58 days (median 7); 16 days 10 hours since 04-14: 16.42 / 7 = 2.3.
    # Balance 5 (his February lots expired). Consent granted.
    # Ben (4 days), Gert (30 minutes) are not overdue; Clara has one purchase; Dora and Finn
    # left. Most valuable first.
    assert found == [
        ("Anna", 3, 6_000, 0, date(2025, 3, 15), 46, "7.0", "6.6", False),
        ("Hans", 4, 2_000, 5, date(2025, 4, 14), 16, "7.0", "2.3", True),
    ]
    assert figures.april.at_risk_members == 2


def test_the_dashboard_is_the_report_and_the_at_risk_list(figures: Figures) -> None:
    assert figures.dashboard == (figures.april, figures.at_risk)


def test_weekly_series(figures: Figures) -> None:
    series = [
        (
            p.first.isoformat(),
            p.last.isoformat(),
            p.members,
            p.new_members,
            p.active_members,
            p.points_issued,
            p.points_redeemed,
            p.points_expired,
        )
        for p in figures.april.series
    ]
    # ISO weeks cut to April (1 April 2025 is a Tuesday).
    # Members: 6, +Clara, +Emil -Dora, -Finn. Active: Gert (1 Apr local) and Ben | Ben | Hans
    # and Clara | Ben | Gert. Issued: 100 + 40 | 50 | 5 + 25 + 100 bonus | 10 | 100 - 10
    # clawed back. Redeemed: Ben 04-27. Expired: Dora 15 + sweep 277 (04-18, 04-20).
    assert series == [
        ("2025-04-01", "2025-04-06", 6, 0, 2, 140, 0, 0),
        ("2025-04-07", "2025-04-13", 7, 1, 1, 50, 0, 0),
        ("2025-04-14", "2025-04-20", 7, 1, 2, 130, 0, 292),
        ("2025-04-21", "2025-04-27", 6, 0, 1, 10, 50, 0),
        ("2025-04-28", "2025-04-30", 6, 0, 1, 90, 0, 0),
    ]


def test_daily_series_put_boundary_orders_in_their_local_day(figures: Figures) -> None:
    daily = figures.april_daily.series
    assert len(daily) == 30
    assert [p.first for p in daily] == [date(2025, 4, 1) + timedelta(days=n) for n in range(30)]
    # 03-31 22:30Z is 1 April 00:30 in Berlin; 04-30 21:30Z is 30 April 23:30.
    assert (daily[0].active_members, daily[0].points_issued) == (1, 100)
    assert (daily[29].active_members, daily[29].points_issued) == (1, 100)
    assert sum(p.points_issued for p in daily) == figures.april.points.issued
    assert sum(p.new_members for p in daily) == figures.april.members.new
    assert daily[-1].members == figures.april.members.at_end


def test_monthly_series_cut_to_the_period(figures: Figures) -> None:
    series = [
        (p.first, p.last, p.new_members, p.points_issued, p.points_redeemed)
        for p in figures.spring_monthly.series
    ]
    # 15-31 March: Anna 20 (03-15), Finn 12, Ben 30 issued; Anna redeemed 10. April as above.
    assert series == [
        (date(2025, 3, 15), date(2025, 3, 31), 0, 62, 10),
        (date(2025, 4, 1), date(2025, 4, 30), 2, 420, 50),
    ]


def test_refusals(figures: Figures) -> None:
    assert figures.errors["reversed"].code is ErrorCode.INVALID_WINDOW
    assert "must not lie after" in figures.errors["reversed"].detail
    assert figures.errors["too_long"].code is ErrorCode.INVALID_WINDOW
    assert "at most 1096 days" in figures.errors["too_long"].detail
    assert figures.errors["other_merchant"].code is ErrorCode.PROGRAM_NOT_FOUND


def test_json_is_plain(figures: Figures) -> None:
    """Money is integers, rates are strings: nothing in the report is a float."""

    def floats(value: Any) -> Iterator[Any]:
        if isinstance(value, float):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from floats(item)
        elif isinstance(value, list):
            for item in value:
                yield from floats(item)

    assert list(floats(msgspec.to_builtins(figures.april))) == []


@settings(max_examples=15, deadline=None)
@given(gaps=st.lists(st.integers(min_value=0, max_value=40 * 86_400), min_size=2, max_size=9))
def test_the_database_finds_the_median_interval_as_the_domain_does(
    sqlite_url: str, gaps: list[int]
) -> None:
    """The SQL median of the gaps between purchases (window functions) is the domain's: every
    generated member is long gone, so at risk, and the list shows the usual interval."""
    last_day = date(2025, 5, 31)
    start = datetime(2022, 9, 1, 12, tzinfo=UTC)
    times = [start]
    for gap in gaps:
        times.append(times[-1] + timedelta(seconds=gap))

    async def scenario() -> AtRiskReport:
        engine = create_engine(sqlite_url)
        try:
            clock = Clock()
            s = await new_scenario(engine, clock, members=1)
            async with engine.begin() as conn:
                account_id = await conn.scalar(
                    select(accounts.c.id).where(accounts.c.member_id == s.member_ids[0])
                )
                rule_set_id = await conn.scalar(
                    select(rule_sets.c.id).where(rule_sets.c.program_id == s.program_id)
                )
                await conn.execute(
                    orders.insert(),
                    [
                        {
                            "program_id": s.program_id,
                            "account_id": account_id,
                            "reference": f"r{index}",
                            "occurred_at": at,
                            "rule_set_id": rule_set_id,
                            "basket": {},
                            "context": {},
                            "quote": {},
                            "points": 0,
                            "qualifying_spend": 100,
                            "created_at": at,
                        }
                        for index, at in enumerate(times)
                    ],
                )
            query = AnalyticsQuery(first=last_day, last=last_day, lookback_days=1096)
            return await Analytics(engine, clock).at_risk(s.caller.merchant_id, s.program_id, query)
        finally:
            await engine.dispose()

    report = run_async(scenario)
    usual = median_interval(times) // timedelta(microseconds=1)
    assert [m.usual_interval_days for m in report.members] == [
        decimal_text(Fraction(usual, 86_400_000_000))
    ]
    assert report.members[0].purchases == len(times)
