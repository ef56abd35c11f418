"""``loyalty seed-demo``: a small demo program so that a fresh ``make run`` has data to show.

Idempotent: every write goes through the ledger with a fixed idempotency key, so a second run
replays instead of adding (and the merchant, program and staff users are looked up before they
are made).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, merchants, programs, staff_users
from loyalty.domain.expiry import ExpiryKind

from .context import Caller, utc_now
from .ledger import Ledger
from .programs import Programs
from .staff import StaffDirectory, StaffRole

DEMO_MERCHANT = "Demo Bäckerei Sonnenschein"
DEMO_PROGRAM_CODE = "sonnenpunkte"
#: (display name, email, points earned in visits, points redeemed)
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
    engine: AsyncEngine, *, progress: Callable[[int, int], None] | None = None
) -> DemoSummary:
    total = 3 + len(DEMO_MEMBERS)
    report = progress or (lambda done, total: None)
    report(0, total)

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
    ledger = Ledger(engine)
    program_service = Programs(ledger.executor)

    async def existing_program(conn: AsyncConnection) -> int | None:
        return await conn.scalar(
            select(programs.c.id).where(
                programs.c.merchant_id == merchant_id, programs.c.code == DEMO_PROGRAM_CODE
            )
        )

    program_id = await in_transaction(engine, existing_program, read_only=True)
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

    for index, (name, email, visits, redeemed) in enumerate(DEMO_MEMBERS, start=1):
        enrolled = await program_service.enroll(
            caller, f"demo-member-{index}", program_id=program_id, display_name=name, email=email
        )
        member_id = enrolled.result.member_id
        for visit, points in enumerate(visits, start=1):
            await ledger.earn(
                caller,
                f"demo-member-{index}-visit-{visit}",
                program_id=program_id,
                member_id=member_id,
                points=points,
                reference=f"DEMO-{index:02d}-{visit:03d}",
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
        report(2 + index, total)

    async def member_count(conn: AsyncConnection) -> int:
        return int(
            await conn.scalar(
                select(func.count())
                .select_from(accounts)
                .where(accounts.c.program_id == program_id, accounts.c.kind == "member")
            )
            or 0
        )

    staff_logins = await _seed_staff(engine, merchant_id)
    report(total, total)

    return DemoSummary(
        merchant_id=merchant_id,
        program_id=program_id,
        members=await in_transaction(engine, member_count, read_only=True),
        staff_logins=staff_logins,
    )


async def _seed_staff(engine: AsyncEngine, merchant_id: int) -> tuple[tuple[str, str, str], ...]:
    """The demo owner and program manager, each made unless their email exists."""
    logins = ((StaffRole.OWNER, *DEMO_OWNER), (StaffRole.PROGRAM_MANAGER, *DEMO_MANAGER))

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
