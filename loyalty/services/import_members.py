"""Importing members (docs/IMPORT.md): matched by external id, then email, then card number;
new ones made with an issued card number, enrolled with their opening balance and consents.

A row whose member is there already (by external id: a re-run) is left as it is. A member found
by email or card number who has no external id yet gets the row's, so that later files (and the
transaction import) find them by it. An email, phone number or card number of another member is
a problem on the row's line. Erased and merged-away members are never made again.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.db.tables import accounts, entries, journals, lots, member_consents, members
from loyalty.domain.cards import new_card_number
from loyalty.domain.csv_rows import (
    FieldError,
    Header,
    ImportKind,
    MemberRow,
    Problem,
    ProblemCode,
    Record,
    member_row,
)
from loyalty.domain.errors import DomainError
from loyalty.domain.journals import JournalKind

from . import ledger_writes as w
from .contacts import normalize_email, normalize_phone
from .import_passes import Importer, insert_ids, journal_row, row_problem
from .member_enrollment import MARKETING

#: Rows written per transaction.
MEMBER_BATCH = 1000
#: The consents an import records carry this as the version of the text the member saw.
IMPORT_TEXT_VERSION = "import"
CONSENT_SOURCE = "import"
OPENING_BALANCE_REASON = "import opening balance"
_CARD_ATTEMPTS = 5


class _MemberAction(StrEnum):
    CREATE = "create"
    ENROLL = "enroll"
    PRESENT = "present"


@dataclass(frozen=True, slots=True)
class _MemberPlan:
    row: MemberRow
    action: _MemberAction
    member_id: int | None = None
    #: Give the matched member the row's external id (it had none).
    link: bool = False


class MemberImporter(Importer):
    batch_size = MEMBER_BATCH
    grows = (members, accounts, member_consents, journals, entries, lots)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        #: Emails and phone numbers as written -> as stored (the valid ones).
        self.contacts: dict[str, str] = {}

    @property
    def kind(self) -> ImportKind:
        return ImportKind.MEMBERS

    def parse(self, header: Header, record: Record) -> MemberRow | list[Problem]:
        return member_row(header, record, self.settings, self._contact)

    def _contact(self, column: str, raw: str) -> str:
        """``raw`` normalised as enrollment does it. Normalising an address costs a tenth of a
        millisecond, so the check's results serve the import too (both passes see each row)."""
        known = self.contacts.get(raw)
        if known is not None:
            return known
        try:
            normal = normalize_email(raw) if column == "email" else normalize_phone(raw)
        except DomainError as error:
            code = ProblemCode.INVALID_EMAIL if column == "email" else ProblemCode.INVALID_PHONE
            raise FieldError(code, f"{raw!r} is not valid: {error.detail}") from None
        self.contacts[raw] = normal
        return normal

    def unique_keys(self, row: MemberRow) -> Iterator[tuple[str, str | None]]:
        yield "external_id", row.external_id
        yield "email", row.email
        yield "phone", row.phone
        yield "card_number", row.card_number

    async def match(
        self, conn: AsyncConnection, rows: list[MemberRow]
    ) -> tuple[list[Problem], int]:
        plans, problems = await self._plan(conn, rows)
        return problems, sum(1 for plan in plans if plan.action is _MemberAction.PRESENT)

    async def _plan(
        self, conn: AsyncConnection, rows: list[MemberRow]
    ) -> tuple[list[_MemberPlan], list[Problem]]:
        """What to do with each row, or its problems with the members already there."""
        merchant_id = self.program.merchant_id
        columns = (
            members.c.id,
            members.c.merchant_id,
            members.c.external_ref,
            members.c.deleted_at,
            members.c.merged_into_id,
            func.lower(members.c.email).label("email"),
            members.c.phone,
            members.c.card_number,
        )
        mine = members.c.merchant_id == merchant_id
        found: dict[str, dict[str, list[Any]]] = {
            "external_id": {},
            "email": {},
            "phone": {},
            "card_number": {},
        }
        lookups = (
            ("external_id", members.c.external_ref, [r.external_id for r in rows], mine),
            ("email", func.lower(members.c.email), [r.email for r in rows if r.email], mine),
            ("phone", members.c.phone, [r.phone for r in rows if r.phone], mine),
            # Card numbers are unique across the deployment, not per merchant.
            (
                "card_number",
                members.c.card_number,
                [r.card_number for r in rows if r.card_number],
                None,
            ),
        )
        by_id: dict[int, Any] = {}
        for name, column, values, scope in lookups:
            if not values:
                continue
            query = select(*columns).where(column.in_(values))
            if scope is not None:
                query = query.where(scope)
            if name != "external_id":
                query = query.where(members.c.deleted_at.is_(None))
            for row in await conn.execute(query):
                key = row.external_ref if name == "external_id" else getattr(row, name)
                found[name].setdefault(key, []).append(row)
                by_id[row.id] = row
        enrolled = set()
        if by_id:
            enrolled = set(
                (
                    await conn.execute(
                        select(accounts.c.member_id).where(
                            accounts.c.program_id == self.program.id,
                            accounts.c.member_id.in_(list(by_id)),
                        )
                    )
                ).scalars()
            )
        plans: list[_MemberPlan] = []
        problems: list[Problem] = []
        for member in rows:
            plan, trouble = self._plan_row(member, found, enrolled)
            if trouble:
                problems += trouble
            else:
                assert plan is not None
                plans.append(plan)
        return plans, problems

    def _plan_row(
        self, row: MemberRow, found: dict[str, dict[str, list[Any]]], enrolled: set[int]
    ) -> tuple[_MemberPlan | None, list[Problem]]:
        merchant_id = self.program.merchant_id
        same = found["external_id"].get(row.external_id)
        if same:
            member = same[0]
            if member.deleted_at is not None or member.merged_into_id is not None:
                # Erased or merged into another record: never made again, never changed.
                return _MemberPlan(row, _MemberAction.PRESENT, member.id), []
            action = _MemberAction.PRESENT if member.id in enrolled else _MemberAction.ENROLL
            return _MemberPlan(row, action, member.id), []
        problems: list[Problem] = []
        target = None
        with_email = found["email"].get(row.email or "", [])
        with_card = found["card_number"].get(row.card_number or "", [])
        if len(with_email) > 1:
            problems.append(
                row_problem(row, ProblemCode.EMAIL_TAKEN, "email", "belongs to several members")
            )
        elif with_email:
            target = with_email[0]
        elif with_card and with_card[0].merchant_id == merchant_id:
            target = with_card[0]
        if target is not None and target.external_ref is not None:
            problems.append(
                row_problem(
                    row,
                    ProblemCode.EXTERNAL_ID_CONFLICT,
                    "external_id",
                    f"is {row.external_id!r}, but the member with this "
                    f"{'email' if with_email else 'card number'} has the external id "
                    f"{target.external_ref!r}",
                )
            )
        target_id = None if target is None else target.id
        for name, code, value in (
            ("email", ProblemCode.EMAIL_TAKEN, row.email),
            ("phone", ProblemCode.PHONE_TAKEN, row.phone),
            ("card_number", ProblemCode.CARD_NUMBER_TAKEN, row.card_number),
        ):
            others = [m for m in found[name].get(value or "", []) if m.id != target_id]
            if others and not (name == "email" and len(with_email) > 1):
                problems.append(row_problem(row, code, name, "belongs to another member"))
        if problems:
            return None, problems
        if target is None:
            return _MemberPlan(row, _MemberAction.CREATE), []
        action = _MemberAction.PRESENT if target.id in enrolled else _MemberAction.ENROLL
        return _MemberPlan(row, action, target.id, link=True), []

    async def write(self, conn: AsyncConnection, rows: list[MemberRow]) -> tuple[int, int]:
        plans, problems = await self._plan(conn, rows)
        self.bad_rows(problems, self.late_problems)
        creates = [p for p in plans if p.action is _MemberAction.CREATE]
        created = await self._create(conn, creates)
        links = [{"member": p.member_id, "ref": p.row.external_id} for p in plans if p.link]
        if links:
            await conn.execute(
                update(members)
                .where(members.c.id == bindparam("member"))
                .values(external_ref=bindparam("ref")),
                links,
            )
        joining = [
            (p.row, p.member_id if p.member_id is not None else created[p.row.line])
            for p in plans
            if p.action is not _MemberAction.PRESENT
        ]
        await self._enroll(conn, joining)
        present = sum(1 for p in plans if p.action is _MemberAction.PRESENT)
        return len(joining), present

    async def _create(self, conn: AsyncConnection, plans: list[_MemberPlan]) -> dict[int, int]:
        """New members (with issued card numbers where the file has none): line -> member id."""
        if not plans:
            return {}
        for attempt in range(_CARD_ATTEMPTS):
            values = [
                {
                    "merchant_id": self.program.merchant_id,
                    "display_name": p.row.display_name,
                    "email": p.row.email,
                    "phone": p.row.phone,
                    "locale": p.row.locale,
                    "card_number": p.row.card_number or new_card_number(_random_digits),
                    "external_ref": p.row.external_id,
                    "created_at": p.row.joined_at or self.now,
                }
                for p in plans
            ]
            try:
                async with conn.begin_nested():
                    ids = await insert_ids(
                        conn,
                        members,
                        values,
                    )
                    return {p.row.line: int(i) for p, i in zip(plans, ids, strict=True)}
            except IntegrityError:
                # An issued card number met one drawn elsewhere (10**14 numbers: rare); or a
                # member appeared since the check, which the last attempt lets through.
                if attempt == _CARD_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _enroll(self, conn: AsyncConnection, joining: list[tuple[MemberRow, int]]) -> None:
        """Accounts with their opening balances, and the marketing consents."""
        if not joining:
            return
        account_ids = await insert_ids(
            conn,
            accounts,
            [
                {
                    "program_id": self.program.id,
                    "member_id": member_id,
                    "kind": "member",
                    "posted": row.opening_points,
                    "held": 0,
                    "version": 1 if row.opening_points else 0,
                    "created_at": row.joined_at or self.now,
                }
                for row, member_id in joining
            ],
        )
        opened = list(zip(joining, account_ids, strict=True))
        consents = [
            {
                "member_id": member_id,
                "program_id": self.program.id,
                "kind": MARKETING,
                "granted": row.marketing_consent,
                "text_version": IMPORT_TEXT_VERSION,
                "source": CONSENT_SOURCE,
                "at": row.marketing_consent_at or row.joined_at or self.now,
            }
            for (row, member_id), _ in opened
            if row.marketing_consent is not None
        ]
        if consents:
            await conn.execute(member_consents.insert(), consents)
        opening = [(row, int(account_id)) for (row, _), account_id in opened if row.opening_points]
        if not opening:
            return
        counterpart = (await w.system_accounts(conn, self.program.id))["adjustments"]
        journal_ids = await insert_ids(
            conn,
            journals,
            [
                journal_row(
                    self,
                    JournalKind.ADJUST,
                    account_id,
                    row.opening_points,
                    self.now,
                    actor=self.actor,
                    reason=OPENING_BALANCE_REASON,
                )
                for row, account_id in opening
            ],
        )
        credits = list(zip(opening, journal_ids, strict=True))
        await conn.execute(
            entries.insert(),
            [
                entry
                for (row, account_id), journal_id in credits
                for entry in (
                    {
                        "journal_id": journal_id,
                        "account_id": account_id,
                        "amount": row.opening_points,
                    },
                    {
                        "journal_id": journal_id,
                        "account_id": counterpart,
                        "amount": -row.opening_points,
                    },
                )
            ],
        )
        expires_at = self.program.expiry.expires_at(self.now)
        await conn.execute(
            lots.insert(),
            [
                {
                    "account_id": account_id,
                    "journal_id": journal_id,
                    "original": row.opening_points,
                    "remaining": row.opening_points,
                    "held": 0,
                    "expires_at": expires_at,
                    "created_at": self.now,
                }
                for (row, account_id), journal_id in credits
            ],
        )


def _random_digits(count: int) -> str:
    """``count`` random digits in one draw (``new_card_number``'s default draws each alone)."""
    return f"{secrets.randbelow(10**count):0{count}d}"
