"""``loyalty seed-demo``: a small demo program so that a fresh ``make run`` has data to show.

Idempotent: every write goes through the ledger with a fixed idempotency key, so a second run
replays instead of adding (and the merchant, program and staff users are looked up before they
are made).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, merchants, programs, staff_users, terminals
from loyalty.domain.earning import PromotionKind, RuleKind
from loyalty.domain.expiry import ExpiryKind
from loyalty.domain.rewards import RewardKind

from .context import Caller, Staff, utc_now
from .demo_history import HISTORY_DAYS, DemoClock, seed_history
from .ledger import Ledger
from .orders import Orders
from .programs import Programs
from .quotes import BasketDocument, BasketLineDocument
from .rewards import Rewards
from .rule_documents import (
    STARTER_RULES,
    EarningRuleDocument,
    LocalizedText,
    PromotionDocument,
    RewardDefinition,
    RuleSetDocument,
    ScopeDocument,
    TierLevelDocument,
    TierPolicyDocument,
)
from .rule_sets import RuleSets
from .staff import StaffDirectory, StaffRole

DEMO_MERCHANT = "Demo Bäckerei Sonnenschein"
DEMO_PROGRAM_CODE = "sonnenpunkte"
#: (display name, email, euros spent per visit, points redeemed)
DEMO_MEMBERS = (
    ("Anna Berger", "anna.berger@example.org", (120, 80, 45), 100),
    ("Lukas Hofer", "lukas.hofer@example.org", (300, 150), 0),
    ("Sophie Wagner", "sophie.wagner@example.org", (60,), 0),
    ("Jonas Steiner", "jonas.steiner@example.org", (500, 220, 90, 40), 400),
    ("Mia Gruber", "mia.gruber@example.org", (25,), 0),
)
#: The demo's staff logins (published in README.md, so deliberately not policy-strength).
DEMO_OWNER = ("owner@example.com", "demo-owner-password", "Olga Owner")
DEMO_MANAGER = ("manager@example.com", "demo-manager-password", "Max Manager")
DEMO_SUPPORT = ("support@example.com", "demo-support-password", "Sina Support")
#: The demo's till: staff sign in to /pos with their login and this terminal code.
DEMO_TERMINAL = {"code": "theke", "location": "filiale-mitte", "name": "Theke"}


class DemoSummary(msgspec.Struct, frozen=True):
    merchant_id: int
    program_id: int
    members: int
    #: (role, email, password) of the demo's staff logins.
    staff_logins: tuple[tuple[str, str, str], ...] = ()

    def __str__(self) -> str:
        lines = [
            f"demo merchant {self.merchant_id}, program {self.program_id} "
            f"({DEMO_PROGRAM_CODE}), {self.members} members"
        ]
        lines += [
            f"staff login ({role}): {email} / {password}"
            for role, email, password in self.staff_logins
        ]
        return "\n".join(lines)


async def seed_demo(
    engine: AsyncEngine,
    *,
    progress: Callable[[int, int], None] | None = None,
    history_days: int = HISTORY_DAYS,
) -> DemoSummary:
    """The demo merchant, staff, till, program (rules, rewards) and members. A program made now
    starts ``history_days`` ago and gets that much history (see :mod:`.demo_history`); the
    hand-picked members of ``DEMO_MEMBERS`` shop today."""
    total = 3 + history_days + len(DEMO_MEMBERS)
    report = progress or (lambda done, total: None)
    report(0, total)
    today = utc_now()
    clock = DemoClock(today - timedelta(days=history_days))

    async def merchant(conn: AsyncConnection) -> int:
        found = await conn.scalar(select(merchants.c.id).where(merchants.c.name == DEMO_MERCHANT))
        if found is None:
            found = await conn.scalar(
                merchants.insert()
                .values(name=DEMO_MERCHANT, created_at=utc_now())
                .returning(merchants.c.id)
            )
        return int(found)

    merchant_id = await in_transaction(engine, merchant)
    report(1, total)
    caller = Caller(client_id="system:seed-demo", merchant_id=merchant_id)
    ledger = Ledger(engine, clock=clock)
    program_service = Programs(ledger.executor)

    async def existing_program(conn: AsyncConnection) -> int | None:
        return await conn.scalar(
            select(programs.c.id).where(
                programs.c.merchant_id == merchant_id, programs.c.code == DEMO_PROGRAM_CODE
            )
        )

    program_id = await in_transaction(engine, existing_program, read_only=True)
    new_program = program_id is None
    if program_id is None:
        created = await program_service.create_program(
            caller,
            "demo-program",
            code=DEMO_PROGRAM_CODE,
            name="Sonnenpunkte",
            currency="EUR",
            expiry_kind=ExpiryKind.END_OF_MONTH_AFTER_MONTHS,
            expiry_value=12,
        )
        program_id = created.result.program_id
    report(2, total)

    staff_logins = await _seed_staff(engine, merchant_id)
    await _seed_terminal(engine, merchant_id, program_id)
    owner = await _owner(engine, merchant_id)
    await _seed_rules(engine, program_id, owner, clock)
    await _seed_rewards(ledger, program_id, owner)
    if new_program and history_days:
        await seed_history(
            engine,
            caller=caller,
            program_id=program_id,
            clock=clock,
            ledger=ledger,
            days=history_days,
            progress=lambda done, _days: report(2 + done, total),
        )
    clock.now = today
    orders = Orders(ledger)

    for index, (name, email, visits, redeemed) in enumerate(DEMO_MEMBERS, start=1):
        enrolled = await program_service.enroll(
            caller, f"demo-member-{index}", program_id=program_id, display_name=name, email=email
        )
        member_id = enrolled.result.member_id
        for visit, euros in enumerate(visits, start=1):
            reference = f"DEMO-{index:02d}-{visit:03d}"
            await orders.record(
                caller,
                f"demo-member-{index}-order-{visit}",
                program_id=program_id,
                member_id=member_id,
                reference=reference,
                basket=_demo_basket(euros),
            )
        if redeemed:
            await ledger.redeem(
                caller,
                f"demo-member-{index}-redeem",
                program_id=program_id,
                member_id=member_id,
                points=redeemed,
                reference=f"DEMO-{index:02d}-R",
            )
        report(2 + history_days + index, total)

    async def member_count(conn: AsyncConnection) -> int:
        return int(
            await conn.scalar(
                select(func.count())
                .select_from(accounts)
                .where(accounts.c.program_id == program_id, accounts.c.kind == "member")
            )
            or 0
        )

    report(total, total)

    return DemoSummary(
        merchant_id=merchant_id,
        program_id=program_id,
        members=await in_transaction(engine, member_count, read_only=True),
        staff_logins=staff_logins,
    )


async def _seed_terminal(engine: AsyncEngine, merchant_id: int, program_id: int) -> None:
    """The demo's till, so that staff can work the cashier page at once (staff login plus its
    code); API keys for tills are issued through the admin API, not here."""

    async def work(conn: AsyncConnection) -> None:
        found = await conn.scalar(
            select(terminals.c.id).where(
                terminals.c.merchant_id == merchant_id, terminals.c.code == DEMO_TERMINAL["code"]
            )
        )
        if found is None:
            await conn.execute(
                terminals.insert().values(
                    merchant_id=merchant_id,
                    program_id=program_id,
                    created_at=utc_now(),
                    **DEMO_TERMINAL,
                )
            )

    await in_transaction(engine, work)


async def _seed_staff(engine: AsyncEngine, merchant_id: int) -> tuple[tuple[str, str, str], ...]:
    """The demo owner, program manager and support agent, each made unless their email exists
    (two back-office users besides the owner, so that four-eyes approval can be tried)."""
    logins = (
        (StaffRole.OWNER, *DEMO_OWNER),
        (StaffRole.PROGRAM_MANAGER, *DEMO_MANAGER),
        (StaffRole.SUPPORT, *DEMO_SUPPORT),
    )

    async def existing_emails(conn: AsyncConnection) -> set[str]:
        rows = await conn.execute(
            select(staff_users.c.email).where(
                staff_users.c.email.in_([email for _, email, _, _ in logins])
            )
        )
        return set(rows.scalars())

    existing = await in_transaction(engine, existing_emails, read_only=True)
    directory = StaffDirectory(engine)
    for role, email, password, name in logins:
        if email not in existing:
            await directory.provision_staff(
                merchant_id,
                email=email,
                password=password,
                role=role,
                display_name=name,
                enforce_password_policy=False,
            )
    return tuple((str(role), email, password) for role, email, password, _ in logins)


async def _owner(engine: AsyncEngine, merchant_id: int) -> Staff:
    async def read(conn: AsyncConnection) -> Staff:
        row = (
            await conn.execute(
                select(staff_users).where(
                    staff_users.c.merchant_id == merchant_id, staff_users.c.email == DEMO_OWNER[0]
                )
            )
        ).one()
        return Staff(row.id, row.merchant_id, row.role, row.email, row.display_name)

    return await in_transaction(engine, read, read_only=True)


def demo_rules(now: datetime) -> RuleSetDocument:
    """Bronze, silver and gold over the calendar year, organic bread counting double and
    double points on Saturdays for the rest of the year."""
    name = LocalizedText
    year_end = datetime(now.year + 1, 1, 1, tzinfo=UTC)
    return RuleSetDocument(
        earning_rules=[
            *STARTER_RULES.earning_rules,
            EarningRuleDocument(
                code="bio-double",
                kind=RuleKind.MULTIPLIER,
                name=name(de="Bio zählt doppelt", en="Organic counts double"),
                multiplier=Decimal(2),
                scope=ScopeDocument(categories=["bio"]),
            ),
        ],
        promotions=[
            PromotionDocument(
                code="saturday-double",
                kind=PromotionKind.MULTIPLIER,
                name=name(de="Samstag doppelt", en="Double points on Saturdays"),
                starts_at=now,
                ends_at=year_end,
                multiplier=Decimal(2),
                weekdays=[6],
            )
        ],
        tiers=TierPolicyDocument(
            levels=[
                TierLevelDocument(code="bronze", name=name(de="Bronze", en="Bronze"), threshold=0),
                TierLevelDocument(
                    code="silver",
                    name=name(de="Silber", en="Silver"),
                    threshold=300,
                    multiplier=Decimal("1.25"),
                ),
                TierLevelDocument(
                    code="gold",
                    name=name(de="Gold", en="Gold"),
                    threshold=800,
                    multiplier=Decimal("1.5"),
                    perks=name(de="Kaffee am Geburtstag", en="A coffee on your birthday"),
                ),
            ]
        ),
    )


async def _seed_rules(
    engine: AsyncEngine, program_id: int, owner: Staff, clock: Callable[[], datetime]
) -> None:
    """Version 2 with tiers and a promotion, published at once (unless a later one exists)."""
    rule_sets = RuleSets(engine, clock=clock)
    if any(v.version > 1 for v in await rule_sets.list_versions(owner, program_id)):
        return
    draft = await rule_sets.create_draft(owner, program_id)
    await rule_sets.replace_draft(owner, program_id, draft.version, demo_rules(clock()))
    await rule_sets.publish(owner, program_id, draft.version)


DEMO_REWARDS = (
    RewardDefinition(
        code="kaffee",
        kind=RewardKind.FREE_ITEM,
        name=LocalizedText(de="Kaffee gratis", en="Free coffee"),
        points_cost=150,
        sku="KAFFEE",
    ),
    RewardDefinition(
        code="fuenf-euro",
        kind=RewardKind.AMOUNT_OFF,
        name=LocalizedText(de="5 € Rabatt", en="5 € off"),
        points_cost=400,
        amount_off=500,
    ),
    RewardDefinition(
        code="punkte-als-geld",
        kind=RewardKind.POINTS_AS_MONEY,
        name=LocalizedText(de="Punkte einlösen", en="Pay with points"),
        points_per_step=100,
        money_per_step=100,
    ),
)


async def _seed_rewards(ledger: Ledger, program_id: int, owner: Staff) -> None:
    rewards = Rewards(ledger)
    existing = {
        view.code
        for view in await rewards.list_rewards(owner.caller, program_id, include_inactive=True)
    }
    for definition in DEMO_REWARDS:
        if definition.code not in existing:
            await rewards.create_reward(owner, program_id, definition)


def _demo_basket(euros: int) -> BasketDocument:
    """A bakery order of ``euros``: bread, with organic bread in every other one."""
    return BasketDocument(
        currency="EUR",
        lines=[
            BasketLineDocument(
                line_id="1",
                sku="BROT-BIO" if euros % 2 else "BROT",
                category="bio" if euros % 2 else "bread",
                quantity=1,
                unit_price=euros * 100,
            )
        ],
    )
