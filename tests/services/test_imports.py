"""CSV imports through the service, on SQLite and PostgreSQL: what a valid file leaves behind,
idempotent re-runs, reports that import nothing, skipping bad lines, matching existing members,
and transactions that leave the traces of real purchases (so that ``ledger verify`` is clean)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.db.engine import create_engine
from loyalty.db.tables import (
    accounts,
    audit_log,
    import_runs,
    journals,
    lot_draws,
    lots,
    member_consents,
    members,
    merchants,
    metadata,
    non_member_sales,
    orders,
    qualifying_activity,
    rule_sets,
    tier_changes,
    tier_states,
)
from loyalty.domain.cards import is_card_number
from loyalty.domain.csv_rows import ImportKind
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.context import Caller, Staff
from loyalty.services.demo import demo_rules
from loyalty.services.import_passes import Importer
from loyalty.services.imports import ImportOutcome, Imports
from loyalty.services.ledger import Ledger
from loyalty.services.orders import Orders
from loyalty.services.programs import Programs
from loyalty.services.queries import Queries
from loyalty.services.verify import verify_ledger

#: When the program was made (rule-set version 1 in force from then) and when imports run.
OPENED = datetime(2024, 6, 1, tzinfo=UTC)
NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
#: Version 2 (with tiers: silver from 300 points in a calendar year) in force from then.
TIERS_FROM = datetime(2024, 10, 1, tzinfo=UTC)


@dataclass
class Shop:
    engine: AsyncEngine
    imports: Imports
    ledger: Ledger
    caller: Caller
    merchant_id: int
    program_id: int
    folder: Path

    async def run(
        self, kind: ImportKind, text: str, *, name: str = "file.csv", **options: Any
    ) -> ImportOutcome:
        path = self.folder / name
        path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        return await self.imports.import_file(
            path,
            kind=kind,
            program_id=self.program_id,
            filename=name,
            merchant_id=options.pop("merchant_id", self.merchant_id),
            **options,
        )

    async def members(self, text: str, **options: Any) -> ImportOutcome:
        return await self.run(ImportKind.MEMBERS, text, **options)

    async def transactions(self, text: str, **options: Any) -> ImportOutcome:
        return await self.run(ImportKind.TRANSACTIONS, text, **options)

    async def rows(self, table: Any, *where: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(select(table).where(*where))).all())

    async def counts(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            return {
                table.name: int(await conn.scalar(select(func.count()).select_from(table)) or 0)
                for table in metadata.sorted_tables
            }

    async def member(self, external_id: str) -> Any:
        (row,) = await self.rows(members, members.c.external_ref == external_id)
        return row

    async def balance(self, external_id: str) -> int:
        member = await self.member(external_id)
        view = await Queries(self.engine).balance(self.caller, self.program_id, member.id)
        return view.posted


@pytest.fixture
async def shop(db_url: str, tmp_path: Path) -> AsyncIterator[Shop]:
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        merchant_id = int(
            await conn.scalar(
                merchants.insert()
                .values(name="Bäckerei", created_at=OPENED)
                .returning(merchants.c.id)
            )
            or 0
        )
        # Another merchant, whose members an import never touches.
        await conn.execute(merchants.insert().values(name="Konditorei", created_at=OPENED))
    caller = Caller("test", merchant_id)
    ledger = Ledger(engine, clock=lambda: OPENED)
    created = await Programs(ledger.executor).create_program(
        caller,
        "program",
        code="bonus",
        name="Bonus",
        currency="EUR",
        expiry_kind="after_days",
        expiry_value=180,
    )
    program_id = created.result.program_id
    async with engine.begin() as conn:
        await conn.execute(
            rule_sets.insert().values(
                program_id=program_id,
                version=2,
                status="published",
                document=msgspec.to_builtins(
                    msgspec.structs.replace(demo_rules(TIERS_FROM), promotions=[])
                ),
                effective_from=TIERS_FROM,
                created_at=TIERS_FROM,
                created_by="test",
                published_at=TIERS_FROM,
                published_by="test",
            )
        )
    yield Shop(
        engine=engine,
        imports=Imports(engine, clock=lambda: NOW),
        ledger=Ledger(engine, clock=lambda: NOW),
        caller=caller,
        merchant_id=merchant_id,
        program_id=program_id,
        folder=tmp_path,
    )
    await engine.dispose()


MEMBERS = (
    "external_id;display_name;email;phone;locale;joined_at;marketing_consent;opening_points\r\n"
    "K-1;Anna Berger;Anna.Berger@Example.org;0151 23456789;de;01.03.2023;ja;250\r\n"
    "K-2;Lukas Hofer;lukas@example.org;;en;2023-05-02 09:30;nein;\r\n"
    "K-3;Mia Gruber;;;;;;\r\n"
)


async def test_a_member_file_imports_members_accounts_consents_and_opening_balances(
    shop: Shop,
) -> None:
    outcome = await shop.members(MEMBERS)
    run = outcome.run
    assert (run.status, run.rows_total, run.rows_imported, run.rows_invalid) == (
        "imported",
        3,
        3,
        0,
    )
    assert run.problems == []
    assert run.run_id is not None
    assert run.finished_at is not None

    anna = await shop.member("K-1")
    assert (anna.display_name, anna.email, anna.phone, anna.locale) == (
        "Anna Berger",
        "anna.berger@example.org",
        "+4915123456789",
        "de",
    )
    assert anna.created_at == datetime(2023, 2, 28, 23, 0, tzinfo=UTC)
    assert is_card_number(anna.card_number)
    mia = await shop.member("K-3")
    assert mia.created_at == NOW
    assert is_card_number(mia.card_number)
    assert mia.card_number != anna.card_number

    (account,) = await shop.rows(accounts, accounts.c.member_id == anna.id)
    assert account.created_at == anna.created_at  # joined then, for tiers and analytics
    assert await shop.balance("K-1") == 250
    assert await shop.balance("K-3") == 0
    (opening,) = await shop.rows(journals, journals.c.account_id == account.id)
    assert (opening.kind, opening.points, opening.reason, opening.actor) == (
        "adjust",
        250,
        "import opening balance",
        "system",
    )
    (lot,) = await shop.rows(lots, lots.c.account_id == account.id)
    assert lot.expires_at == NOW + timedelta(days=180)

    consents = await shop.rows(member_consents)
    assert sorted((c.member_id, c.kind, c.granted, c.source) for c in consents) == [
        (anna.id, "marketing", True, "import"),
        ((await shop.member("K-2")).id, "marketing", False, "import"),
    ]
    (stored,) = await shop.rows(import_runs)
    assert (stored.status, stored.rows_imported, stored.kind) == ("imported", 3, "members")
    (audit,) = await shop.rows(audit_log)
    assert (audit.action, audit.entity, audit.entity_id) == (
        "import.members",
        "import_run",
        str(run.run_id),
    )
    assert audit.after["rows_imported"] == 3
    assert await verify_ledger(shop.engine) == []


async def test_a_rerun_imports_nothing_new_and_changes_no_balance(shop: Shop) -> None:
    await shop.members(MEMBERS)
    before = await shop.counts()
    again = await shop.members(MEMBERS)
    assert (again.run.status, again.run.rows_imported, again.run.rows_already_present) == (
        "imported",
        0,
        3,
    )
    after = await shop.counts()
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
        "import_runs": 1,
        "audit_log": 1,
    }
    assert await shop.balance("K-1") == 250


BAD_MEMBERS = (
    "external_id,display_name,email,opening_points\n"
    "K-1,Anna,anna@example.org,10\n"
    "K-2,Bernd,not-an-address,10\n"
    "K-3,,carla@example.org,10\n"
    "K-4,Dora,dora@example.org,zehn\n"
    "K-1,Anna again,anna2@example.org,\n"
    "K-6,Emil,emil@example.org,\n"
)


async def test_a_file_with_bad_lines_reports_them_and_imports_nothing(shop: Shop) -> None:
    before = await shop.counts()
    outcome = await shop.members(BAD_MEMBERS)
    run = outcome.run
    assert (run.status, run.rows_total, run.rows_invalid, run.rows_imported) == (
        "rejected",
        6,
        4,
        0,
    )
    assert [(p.line, p.code, p.column) for p in run.problems] == [
        (3, "invalid_email", "email"),
        (4, "required", "display_name"),
        (5, "invalid_points", "opening_points"),
        (6, "duplicate_in_file", "external_id"),
    ]
    assert "line 2" in run.problems[-1].message
    after = await shop.counts()
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
        "import_runs": 1,
        "audit_log": 1,
    }
    (stored,) = await shop.rows(import_runs)
    assert stored.status == "rejected"
    assert [p["line"] for p in stored.problems] == [3, 4, 5, 6]


async def test_with_skip_bad_lines_the_good_lines_import(shop: Shop) -> None:
    outcome = await shop.members(BAD_MEMBERS, skip_bad_lines=True)
    run = outcome.run
    assert (run.status, run.rows_imported, run.rows_invalid, run.skip_bad_lines) == (
        "imported",
        2,
        4,
        True,
    )
    names = sorted(m.display_name for m in await shop.rows(members))
    assert names == ["Anna", "Emil"]  # the first K-1 is good; its duplicate is not


async def test_a_dry_run_checks_and_writes_nothing(shop: Shop) -> None:
    before = await shop.counts()
    good = await shop.members(MEMBERS, dry_run=True)
    assert (good.run.status, good.run.run_id, good.run.dry_run) == ("valid", None, True)
    assert good.run.rows_imported == 0
    bad = await shop.members(BAD_MEMBERS, dry_run=True)
    assert bad.run.status == "rejected"
    assert len(bad.run.problems) == 4
    assert await shop.counts() == before


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty_file"),
        ("external_id,name\nK-1,Anna\n", "unknown_column"),
        ("display_name\nAnna\n", "missing_column"),
    ],
)
async def test_an_unreadable_header_rejects_even_when_skipping(
    shop: Shop, text: str, code: str
) -> None:
    outcome = await shop.members(text, skip_bad_lines=True)
    assert outcome.run.status == "rejected"
    assert outcome.run.problems[0].line == 1
    assert code in {p.code for p in outcome.run.problems}
    assert await shop.rows(members) == []


async def test_existing_members_are_matched_by_email_and_linked(shop: Shop) -> None:
    programs = Programs(shop.ledger.executor)
    enrolled = await programs.enroll(
        shop.caller,
        "e1",
        program_id=shop.program_id,
        display_name="Anna (till)",
        email="anna.berger@example.org",
    )
    outcome = await shop.members(MEMBERS)
    # Anna is there already (matched by email): linked, not made again, no opening balance.
    assert (outcome.run.rows_imported, outcome.run.rows_already_present) == (2, 1)
    anna = await shop.member("K-1")
    assert anna.id == enrolled.result.member_id
    assert anna.display_name == "Anna (till)"
    assert await shop.balance("K-1") == 0
    again = await shop.members(MEMBERS)
    assert (again.run.rows_imported, again.run.rows_already_present) == (0, 3)


async def test_contacts_of_other_members_are_problems_on_their_line(shop: Shop) -> None:
    await shop.members(MEMBERS)
    card = (await shop.member("K-2")).card_number
    clashing = (
        "external_id,display_name,email,phone,card_number\n"
        "K-9,Someone,anna.berger@example.org,,\n"  # Anna's email, but Anna is K-1
        "K-10,Other,,+49 151 23456789,\n"  # Anna's phone
        f"K-11,Third,,,{card}\n"  # Lukas's card
        "K-12,Fine,fine@example.org,,\n"
    )
    outcome = await shop.members(clashing)
    assert outcome.run.status == "rejected"
    assert [(p.line, p.code) for p in outcome.run.problems] == [
        (2, "external_id_conflict"),
        (3, "phone_taken"),
        (4, "external_id_conflict"),
    ]
    assert "K-1" in outcome.run.problems[0].message


async def test_a_card_number_of_another_merchant_is_taken(shop: Shop) -> None:
    await shop.members(MEMBERS)
    card = (await shop.member("K-1")).card_number
    async with shop.engine.begin() as conn:
        other = await conn.scalar(select(merchants.c.id).where(merchants.c.id != shop.merchant_id))
        await conn.execute(members.update().values(merchant_id=other))
    outcome = await shop.members(f"external_id,display_name,card_number\nX-1,Xaver,{card}\n")
    assert [(p.line, p.code) for p in outcome.run.problems] == [(2, "card_number_taken")]


async def test_an_import_sees_only_its_merchants_program(shop: Shop) -> None:
    async with shop.engine.connect() as conn:
        other = await conn.scalar(select(merchants.c.id).where(merchants.c.id != shop.merchant_id))
    with pytest.raises(DomainError) as refused:
        await shop.members(MEMBERS, merchant_id=other)
    assert refused.value.code is ErrorCode.PROGRAM_NOT_FOUND
    staff = Staff(1, int(other or 0), "owner", "o@example.org", "O")
    with pytest.raises(DomainError):
        await shop.imports.runs(staff, shop.program_id)


# --- Transactions ------------------------------------------------------------------------------

TRANSACTIONS = (
    "reference,occurred_at,member,total,currency,points\n"
    "T-1,2024-03-01 10:00,K-1,12.34,EUR,12\n"  # before the program: the earliest rule set
    'T-2,2024-11-20 10:00,K-1,"50,00",EUR,50\n'  # version 2 in force
    "T-3,2025-01-10T09:00:00Z,K-2,350.00,EUR,350\n"  # silver: 300 points this year
    "T-4,2025-01-11,,7.50,,\n"  # a sale without a member
    "T-5,2024-12-01,K-3,20,EUR,\n"  # no points: history only
)


async def test_transactions_leave_the_traces_of_purchases(shop: Shop) -> None:
    await shop.members(MEMBERS)
    outcome = await shop.transactions(TRANSACTIONS)
    run = outcome.run
    assert (run.status, run.rows_imported, run.rows_invalid) == ("imported", 5, 0), run
    assert outcome.lots_expired == 1  # T-1's points lapsed on 2024-08-28

    assert await verify_ledger(shop.engine) == []
    assert await shop.balance("K-1") == 250 + 50
    assert await shop.balance("K-2") == 350

    by_reference = {o.reference: o for o in await shop.rows(orders)}
    assert set(by_reference) == {"T-1", "T-2", "T-3", "T-5"}
    version = {r.id: r.version for r in await shop.rows(rule_sets)}
    assert version[by_reference["T-1"].rule_set_id] == 1
    assert version[by_reference["T-2"].rule_set_id] == 2
    t2 = by_reference["T-2"]
    assert (t2.points, t2.qualifying_spend, t2.occurred_at) == (
        50,
        5000,
        datetime(2024, 11, 20, 9, 0, tzinfo=UTC),
    )
    assert t2.basket["lines"][0]["unit_price"] == 5000
    assert t2.quote["lines"][0]["source"] == "import"
    (earn,) = await shop.rows(journals, journals.c.id == t2.journal_id)
    assert (earn.kind, earn.reference, earn.effective_at) == (
        "earn",
        "order:T-2",
        t2.occurred_at,
    )
    (lot,) = await shop.rows(lots, lots.c.journal_id == earn.id)
    assert lot.expires_at == t2.occurred_at + timedelta(days=180)
    assert by_reference["T-5"].journal_id is None

    # T-1 earned 12 points that expired 180 days later: an expire journal dated then.
    t1 = by_reference["T-1"]
    (lapsed_lot,) = await shop.rows(lots, lots.c.journal_id == t1.journal_id)
    assert (lapsed_lot.original, lapsed_lot.remaining) == (12, 0)
    (draw,) = await shop.rows(lot_draws, lot_draws.c.lot_id == lapsed_lot.id)
    (expiry,) = await shop.rows(journals, journals.c.id == draw.journal_id)
    assert (expiry.kind, expiry.points, expiry.effective_at) == (
        "expire",
        12,
        t1.occurred_at + timedelta(days=180),
    )

    activity = await shop.rows(qualifying_activity)
    assert sorted((a.points, a.spend) for a in activity) == [
        (0, 2000),
        (12, 1234),
        (50, 5000),
        (350, 35000),
    ]
    (sale,) = await shop.rows(non_member_sales)
    assert (sale.reference, sale.total, sale.currency, sale.source) == ("T-4", 750, "EUR", "import")

    # Tiers as an order would leave them: Lukas reached silver in 2025; the others are bronze.
    lukas = await shop.rows(accounts, accounts.c.member_id == (await shop.member("K-2")).id)
    (state,) = await shop.rows(tier_states, tier_states.c.account_id == lukas[0].id)
    assert state.earned == "silver"
    changes = await shop.rows(tier_changes, tier_changes.c.account_id == lukas[0].id)
    assert [(c.before, c.after, c.reason, c.qualifying_total) for c in changes] == [
        (None, "bronze", "enrolled", None),
        ("bronze", "silver", "upgrade", 350),
    ]
    assert {s.earned for s in await shop.rows(tier_states)} == {"bronze", "silver"}
    assert len(await shop.rows(tier_states)) == 3


async def test_a_transaction_rerun_imports_nothing_and_changes_no_balance(shop: Shop) -> None:
    await shop.members(MEMBERS)
    await shop.transactions(TRANSACTIONS)
    before = await shop.counts()
    balances = [await shop.balance(m) for m in ("K-1", "K-2", "K-3")]
    again = await shop.transactions(TRANSACTIONS)
    assert (again.run.rows_imported, again.run.rows_already_present) == (0, 5)
    after = await shop.counts()
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
        "import_runs": 1,
        "audit_log": 1,
    }
    assert [await shop.balance(m) for m in ("K-1", "K-2", "K-3")] == balances
    assert await verify_ledger(shop.engine) == []


async def test_transaction_problems_name_their_lines(shop: Shop) -> None:
    await shop.members(MEMBERS)
    async with shop.engine.begin() as conn:
        # Mia leaves the program: her member record stays, her account goes.
        mia = await conn.scalar(select(members.c.id).where(members.c.external_ref == "K-3"))
        await conn.execute(accounts.delete().where(accounts.c.member_id == mia))
    before = await shop.counts()
    outcome = await shop.transactions(
        "reference,occurred_at,member,total,currency,points\n"
        "T-1,2024-11-20,K-1,10,EUR,10\n"
        "T-2,2024-11-20,K-404,10,EUR,10\n"
        "T-3,2024-11-20,K-3,10,EUR,10\n"
        "T-4,2024-11-20,K-1,10,CHF,10\n"
        "T-1,2024-11-21,K-1,10,EUR,10\n"
        "T-6,2030-01-01,K-1,10,EUR,10\n"
    )
    assert outcome.run.status == "rejected"
    assert [(p.line, p.code) for p in outcome.run.problems] == [
        (3, "unknown_member"),
        (4, "member_not_enrolled"),
        (5, "currency_mismatch"),
        (6, "duplicate_in_file"),
        (7, "time_in_future"),
    ]
    after = await shop.counts()
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
        "import_runs": 1,
        "audit_log": 1,
    }

    skipped = await shop.transactions(
        "reference,occurred_at,member,total\nT-1,2024-11-20,K-1,10\nT-2,2024-11-20,K-404,10\n",
        skip_bad_lines=True,
    )
    assert (skipped.run.rows_imported, skipped.run.rows_invalid) == (1, 1)
    assert await verify_ledger(shop.engine) == []


async def test_an_imported_order_can_be_returned(shop: Shop) -> None:
    await shop.members(MEMBERS)
    await shop.transactions(TRANSACTIONS)
    returned = await Orders(shop.ledger).return_items(
        shop.caller, "return-t2", program_id=shop.program_id, reference="T-2", quantities={"1": 1}
    )
    assert returned.result.points_clawed_back == 50
    assert await shop.balance("K-1") == 250
    assert await verify_ledger(shop.engine) == []


async def test_runs_are_listed_newest_first_for_the_merchant(shop: Shop) -> None:
    await shop.members(MEMBERS)
    await shop.members(BAD_MEMBERS)
    staff = Staff(1, shop.merchant_id, "owner", "o@example.org", "Olga")
    runs = await shop.imports.runs(staff, shop.program_id)
    assert [(r.kind, r.status) for r in runs] == [("members", "rejected"), ("members", "imported")]
    one = await shop.imports.run(staff, shop.program_id, runs[0].run_id or 0)
    assert one == runs[0]
    with pytest.raises(DomainError) as missing:
        await shop.imports.run(staff, shop.program_id, 999)
    assert missing.value.code is ErrorCode.IMPORT_RUN_NOT_FOUND


async def test_progress_is_reported_per_phase(shop: Shop) -> None:
    await shop.members(MEMBERS)
    seen: list[tuple[str, int, int]] = []
    await shop.transactions(TRANSACTIONS, progress=lambda *call: seen.append(call))
    phases = [phase for phase, _, _ in seen]
    assert phases[0] == "check"
    assert "import" in phases
    assert phases[-1] == "tiers"
    assert all(done <= total for _, done, total in seen)
    assert seen[-1][1] == seen[-1][2]


async def test_the_same_members_join_a_second_program_once(shop: Shop) -> None:
    await shop.members(MEMBERS)
    second = await Programs(shop.ledger.executor).create_program(
        shop.caller, "second", code="second", name="Zweites", currency="EUR"
    )
    outcome = await shop.members(MEMBERS, name="again.csv")
    assert outcome.run.rows_already_present == 3
    into_second = await shop.imports.import_file(
        shop.folder / "again.csv",
        kind=ImportKind.MEMBERS,
        program_id=second.result.program_id,
        filename="again.csv",
        merchant_id=shop.merchant_id,
    )
    # Known by external id: enrolled in the second program, not made again.
    assert (into_second.run.rows_imported, into_second.run.rows_already_present) == (3, 0)
    assert len(await shop.rows(members)) == 3
    assert len(await shop.rows(accounts, accounts.c.member_id.is_not(None))) == 6
    assert await verify_ledger(shop.engine) == []


@pytest.mark.parametrize("skip", [False, True])
async def test_a_row_that_goes_bad_between_check_and_import(
    shop: Shop, skip: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member with one of the file's emails appears after the check found it free: without
    skipping the run fails at that batch; with skipping the row is reported and left out."""
    text = (
        "external_id,display_name,email\nK-1,Anna,anna@example.org\nK-2,Lukas,lukas@example.org\n"
    )
    programs = Programs(shop.ledger.executor)
    load = Importer.load

    async def load_after_a_till_enrollment(self: Importer, *args: Any, **kwargs: Any) -> None:
        done = await programs.enroll(
            shop.caller,
            "till",
            program_id=shop.program_id,
            display_name="Lukas (till)",
            email="lukas@example.org",
        )
        async with shop.engine.begin() as conn:  # known to the till's system by another id
            await conn.execute(
                members.update()
                .where(members.c.id == done.result.member_id)
                .values(external_ref="TILL-7")
            )
        await load(self, *args, **kwargs)

    monkeypatch.setattr(Importer, "load", load_after_a_till_enrollment)
    outcome = await shop.members(text, skip_bad_lines=skip)
    run = outcome.run
    assert [(p.line, p.code) for p in run.problems] == [(3, "external_id_conflict")]
    if skip:
        assert (run.status, run.rows_imported, run.rows_invalid) == ("imported", 1, 1)
        assert sorted(m.display_name for m in await shop.rows(members)) == ["Anna", "Lukas (till)"]
    else:
        # The batch with the row rolled back; the run is failed and finished.
        assert (run.status, run.rows_imported, run.rows_invalid) == ("failed", 0, 1)
        assert run.finished_at is not None
        assert [m.display_name for m in await shop.rows(members)] == ["Lukas (till)"]
        (stored,) = await shop.rows(import_runs)
        assert stored.status == "failed"
