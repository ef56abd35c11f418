"""A year of history for the demo program, so that the back office's figures show a program that
lives: members join week by week, visit at their own pace, redeem, lapse; points expire at the
end of the policy's month; tiers rise and are reviewed; some members answer the Net Promoter
question; walk-in customers buy without a card.

Ledger, orders, expiry and tier reviews go through the real services with a clock walked through
the year, so ``loyalty ledger verify`` is clean and every figure is one the platform computed.
Only the feedback answers and the walk-in sales (no ledger effect) are inserted directly. The
history is drawn from a seeded random generator: the same figures on every machine.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import feedback_answers, non_member_sales
from loyalty.domain.errors import DomainError, ErrorCode

from .context import Caller
from .expiry import run_expiry_sweep
from .ledger import Ledger
from .orders import Orders
from .programs import Programs
from .quotes import BasketDocument, BasketLineDocument
from .tier_status import recalc_tiers

#: How far back the demo's program starts (a little over a year: some points have expired).
HISTORY_DAYS = 430
#: Members who join over the year (more later than earlier: the program grows).
HISTORY_MEMBERS = 140
#: Points a member redeems when they redeem (the demo's "5 € off" reward costs 400).
REDEEM_POINTS = 400

_FIRST_NAMES = (
    "Lena", "Paul", "Marie", "Felix", "Emma", "Leon", "Hannah", "Elias", "Lea", "Noah",
    "Clara", "Finn", "Laura", "Jakob", "Sarah", "Tobias", "Julia", "Moritz", "Nina", "David",
)  # fmt: skip
_LAST_NAMES = (
    "Huber", "Maier", "Schmid", "Weber", "Fischer", "Bauer", "Koch", "Richter", "Wolf",
    "Schröder", "Neumann", "Braun", "Zimmermann", "Hofmann", "Lang", "Krause", "Brandl",
)  # fmt: skip
_COMMENTS = {
    10: "Die Bio-Brötchen sind die besten der Stadt!",
    9: "Schnell an der Kasse, freundliches Team.",
    7: "Gut, aber die Prämien könnten günstiger sein.",
    4: "Meine Punkte sind verfallen, ohne dass ich es gemerkt habe.",
    2: "Samstags viel zu voll.",
}


@dataclass
class DemoClock:
    """The services' clock while the demo is seeded: walked forward through the history."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class _Customer:
    member_id: int
    #: Mean days between two visits, and euros per visit.
    interval_days: float
    basket_euros: float
    #: The day the member stops coming (lapsed customers are part of any real program).
    lapses_on: int
    next_visit: int
    points: int = 0
    visits: int = 0


@dataclass
class HistorySummary:
    members: int = 0
    orders: int = 0
    redemptions: int = 0
    walk_in_sales: int = 0
    feedback: int = 0
    expired_points: int = 0
    _answered: set[int] = field(default_factory=set)


async def seed_history(
    engine: AsyncEngine,
    *,
    caller: Caller,
    program_id: int,
    clock: DemoClock,
    ledger: Ledger,
    days: int = HISTORY_DAYS,
    members: int = HISTORY_MEMBERS,
    progress: Callable[[int, int], None] | None = None,
) -> HistorySummary:
    """Walk ``clock`` from its time through ``days`` days of a program's life."""
    rng = random.Random(2026)  # noqa: S311 (demo data, the same on every machine)
    start = clock.now.replace(hour=0, minute=0, second=0, microsecond=0)
    orders = Orders(ledger)
    program_service = Programs(ledger.executor)
    summary = HistorySummary()
    customers: list[_Customer] = []
    # Join days weighted towards the end: the program grows.
    join_days = sorted(int(days * (rng.random() ** 0.85)) for _ in range(members))
    joined = 0
    for day in range(days):
        today = start + timedelta(days=day)
        while joined < members and join_days[joined] <= day:
            joined += 1
            clock.now = today + timedelta(hours=8, minutes=rng.randrange(600))
            customers.append(await _enroll(program_service, caller, program_id, joined, day, rng))
            summary.members += 1
        for customer in customers:
            if customer.next_visit != day or day >= customer.lapses_on:
                continue
            clock.now = today + timedelta(hours=7, minutes=rng.randrange(660))
            await _visit(orders, ledger, caller, program_id, customer, rng, summary)
            customer.next_visit = day + max(1, round(rng.expovariate(1 / customer.interval_days)))
        await _walk_in_sales(engine, program_id, today, rng, summary)
        if today.day == 1:
            # The month's housekeeping, as the app's sweep and `loyalty tiers recalc` do it.
            clock.now = today + timedelta(hours=3)
            swept = await run_expiry_sweep(engine, at=clock.now)
            summary.expired_points += swept.points_expired
            await recalc_tiers(engine, clock.now, None)
        if progress is not None:
            progress(day + 1, days)
    await _feedback(engine, program_id, customers, start, days, rng, summary)
    return summary


async def _enroll(
    programs: Programs, caller: Caller, program_id: int, number: int, day: int, rng: random.Random
) -> _Customer:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    enrolled = await programs.enroll(
        caller,
        f"demo-history-member-{number}",
        program_id=program_id,
        display_name=f"{first} {last}",
        email=f"{first.lower()}.{last.lower().replace('ö', 'oe')}.{number}@example.org",
    )
    interval = rng.choice((4.0, 7.0, 10.0, 14.0, 21.0, 35.0))
    return _Customer(
        member_id=enrolled.result.member_id,
        interval_days=interval,
        basket_euros=rng.uniform(6, 38),
        lapses_on=day + int(rng.expovariate(1 / 240)) + 20,
        next_visit=day,
    )


async def _visit(
    orders: Orders,
    ledger: Ledger,
    caller: Caller,
    program_id: int,
    customer: _Customer,
    rng: random.Random,
    summary: HistorySummary,
) -> None:
    customer.visits += 1
    reference = f"DEMO-H-{customer.member_id}-{customer.visits:03d}"
    cents = max(150, round(rng.gauss(customer.basket_euros, customer.basket_euros / 3) * 100))
    recorded = await orders.record(
        caller,
        f"demo-history-order-{reference}",
        program_id=program_id,
        member_id=customer.member_id,
        reference=reference,
        basket=_basket(cents, organic=rng.random() < 0.4),
    )
    summary.orders += 1
    customer.points = recorded.result.balance.available
    if customer.points >= REDEEM_POINTS and rng.random() < 0.45:
        try:
            redeemed = await ledger.redeem(
                caller,
                f"demo-history-redeem-{reference}",
                program_id=program_id,
                member_id=customer.member_id,
                points=REDEEM_POINTS,
                reference=f"{reference}-R",
            )
        except DomainError as error:  # expired in between: the member simply does not redeem
            if error.code is not ErrorCode.INSUFFICIENT_POINTS:
                raise
            return
        customer.points = redeemed.result.balance.available
        summary.redemptions += 1


def _basket(cents: int, *, organic: bool) -> BasketDocument:
    return BasketDocument(
        currency="EUR",
        lines=[
            BasketLineDocument(
                line_id="1",
                sku="BROT-BIO" if organic else "BROT",
                category="bio" if organic else "bread",
                quantity=1,
                unit_price=cents,
            )
        ],
    )


async def _walk_in_sales(
    engine: AsyncEngine,
    program_id: int,
    today: datetime,
    rng: random.Random,
    summary: HistorySummary,
) -> None:
    """Customers without a card: smaller baskets, as a bakery sees them."""
    count = rng.randrange(2, 7)
    rows = [
        {
            "program_id": program_id,
            "reference": f"DEMO-WALKIN-{today:%Y%m%d}-{index}",
            "occurred_at": today + timedelta(hours=7, minutes=rng.randrange(660)),
            "total": max(120, round(rng.gauss(9, 4) * 100)),
            "currency": "EUR",
            "source": "demo",
            "created_at": today,
        }
        for index in range(count)
    ]

    async def insert(conn: AsyncConnection) -> None:
        await conn.execute(non_member_sales.insert(), rows)

    await in_transaction(engine, insert)
    summary.walk_in_sales += count


async def _feedback(
    engine: AsyncEngine,
    program_id: int,
    customers: list[_Customer],
    start: datetime,
    days: int,
    rng: random.Random,
    summary: HistorySummary,
) -> None:
    """About a third of the members who bought answered the wallet's question once."""
    rows = []
    for customer in customers:
        if customer.visits == 0 or rng.random() > 0.35:
            continue
        score = rng.choices(range(11), weights=(1, 1, 1, 1, 2, 3, 4, 8, 12, 14, 12))[0]
        rows.append(
            {
                "program_id": program_id,
                "member_id": customer.member_id,
                "score": score,
                "comment": _COMMENTS.get(score) if rng.random() < 0.5 else None,
                "created_at": start + timedelta(days=rng.randrange(days), hours=12),
            }
        )
    if not rows:
        return

    async def insert(conn: AsyncConnection) -> None:
        await conn.execute(feedback_answers.insert(), rows)

    await in_transaction(engine, insert)
    summary.feedback = len(rows)
