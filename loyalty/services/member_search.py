"""Finding a member in the back office by what a customer tells support: a card number, an
email address, a phone number, a name (or the member number printed on the card).

One search box: the query is read every way it can be (:func:`search_keys`), normalised as the
members were stored (card numbers without the spaces or dashes typed; email addresses as
``loyalty.services.contacts`` stores them, lower-case; phone numbers in E.164, a national number
read as German), and a member matching any reading is found. Exact keys use the indexes of
``members``; a name matches as a case-insensitive substring (``%text%``), which reads the
merchant's members once and is therefore limited to pages of ``MAX_PAGE``. (SQLite lower-cases
ASCII letters only, so there "ÖZ" does not find "Özil"; PostgreSQL folds every letter.)

Scoped to the staff member's merchant. Erased members are listed as erased, without personal
data (they have none left; they are found by member number only). Members merged into another
are listed with ``merged_into_id``: support follows it to the record that holds the points.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, members, programs
from loyalty.domain.cards import check_card_number, format_card_number
from loyalty.domain.errors import DomainError, ErrorCode

from .contacts import normalize_email, normalize_phone
from .context import Staff

MAX_QUERY_LENGTH = 200
DEFAULT_PAGE = 20
MAX_PAGE = 100
_SEPARATORS = re.compile(r"[\s\-./()]")
_PHONE_LIKE = re.compile(r"^\+?[\d\s\-./()]{6,}$")


@dataclass(frozen=True, slots=True)
class SearchKeys:
    """Every reading of a query: what each key would match exactly, and the name text."""

    card_number: str | None = None
    email: str | None = None
    phone: str | None = None
    member_id: int | None = None
    name: str | None = None


def search_keys(query: str) -> SearchKeys:
    """Read ``query`` as card number, email, phone, member number and name, as far as it can
    be each (``0151 2345678`` is a phone number and no name; ``Anna`` a name only)."""
    text = query.strip()
    compact = _SEPARATORS.sub("", text)
    card_number = email = phone = None
    member_id = None
    if compact.isascii() and compact.isdigit():
        try:
            card_number = check_card_number(compact)
        except DomainError:
            card_number = None
    number = text.removeprefix("#")
    # A member number is typed as it is printed: digits only (a phone number has spaces);
    # 18 digits at most stay within BIGINT.
    if number.isascii() and number.isdigit() and len(number) <= 18 and int(number) > 0:
        member_id = int(number)
    if "@" in text:
        try:
            email = normalize_email(text)
        except DomainError:
            email = None
    if _PHONE_LIKE.match(text):
        try:
            phone = normalize_phone(text)
        except DomainError:
            phone = None
    name = text if any(ch.isalpha() for ch in text) and "@" not in text else None
    return SearchKeys(card_number, email, phone, member_id, name)


class AccountSummary(msgspec.Struct, frozen=True):
    program_id: int
    program_name: str
    posted: int
    held: int
    available: int


class MemberHit(msgspec.Struct, frozen=True, kw_only=True):
    member_id: int
    #: None for erased members (their personal data is gone).
    display_name: str | None
    email: str | None
    phone: str | None
    card_number: str | None
    #: The card number in groups of four, as printed.
    card_number_formatted: str | None
    created_at: datetime
    erased: bool
    erased_at: datetime | None
    #: The member this record was merged into (it holds no points any more).
    merged_into_id: int | None
    #: Which readings of the query matched: card_number, email, phone, member_id, name.
    matched_by: list[str]
    accounts: list[AccountSummary]


class MemberSearchPage(msgspec.Struct, frozen=True, kw_only=True):
    query: str
    items: list[MemberHit]
    #: Pass as ``after_id`` for the next page; None on the last page.
    next_after_id: int | None


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(keys: SearchKeys) -> dict[str, ColumnElement[bool]]:
    found: dict[str, ColumnElement[bool]] = {}
    if keys.card_number is not None:
        found["card_number"] = members.c.card_number == keys.card_number
    if keys.email is not None:
        found["email"] = func.lower(members.c.email) == keys.email
    if keys.phone is not None:
        found["phone"] = members.c.phone == keys.phone
    if keys.member_id is not None:
        found["member_id"] = members.c.id == keys.member_id
    if keys.name is not None:
        found["name"] = (
            func.lower(members.c.display_name).like(_like_pattern(keys.name), escape="\\")
            # An erased member's placeholder name is nobody's name.
            & members.c.deleted_at.is_(None)
        )
    return found


class MemberSearch:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def search(
        self, staff: Staff, query: str, *, after_id: int = 0, limit: int = DEFAULT_PAGE
    ) -> MemberSearchPage:
        text = query.strip()
        if not text or len(text) > MAX_QUERY_LENGTH:
            raise DomainError(
                ErrorCode.VALIDATION_FAILED,
                f"type 1 to {MAX_QUERY_LENGTH} characters to search for",
                field="q",
            )
        limit = max(1, min(limit, MAX_PAGE))
        conditions = _conditions(search_keys(text))

        async def work(conn: AsyncConnection) -> MemberSearchPage:
            labelled = [cond.label(f"m_{name}") for name, cond in conditions.items()]
            rows = (
                await conn.execute(
                    select(members, *labelled)
                    .where(
                        members.c.merchant_id == staff.merchant_id,
                        members.c.id > after_id,
                        or_(false(), *conditions.values()),
                    )
                    .order_by(members.c.id)
                    .limit(limit + 1)
                )
            ).all()
            page = rows[:limit]
            summaries = await account_summaries(conn, [row.id for row in page])
            items = [
                _hit(row, [name for name in conditions if row._mapping[f"m_{name}"]], summaries)
                for row in page
            ]
            more = len(rows) > limit
            return MemberSearchPage(
                query=text, items=items, next_after_id=items[-1].member_id if more else None
            )

        return await in_transaction(self._engine, work, read_only=True)


async def account_summaries(
    conn: AsyncConnection, member_ids: list[int]
) -> dict[int, list[AccountSummary]]:
    """Each member's balances per program."""
    found: dict[int, list[AccountSummary]] = {member_id: [] for member_id in member_ids}
    if not member_ids:
        return found
    rows = await conn.execute(
        select(
            accounts.c.member_id,
            accounts.c.program_id,
            accounts.c.posted,
            accounts.c.held,
            programs.c.name,
        )
        .join(programs, programs.c.id == accounts.c.program_id)
        .where(accounts.c.member_id.in_(member_ids))
        .order_by(accounts.c.program_id)
    )
    for row in rows:
        found[row.member_id].append(
            AccountSummary(
                program_id=row.program_id,
                program_name=row.name,
                posted=row.posted,
                held=row.held,
                available=row.posted - row.held,
            )
        )
    return found


def member_identity(row: Any) -> dict[str, Any]:
    """A ``members`` row's fields that a search hit and a profile share (an erased member's
    name is not shown)."""
    erased = row.deleted_at is not None
    return dict(
        member_id=row.id,
        display_name=None if erased else row.display_name,
        email=row.email,
        phone=row.phone,
        card_number=row.card_number,
        card_number_formatted=formatted_card_number(row.card_number),
        created_at=row.created_at,
        erased=erased,
        erased_at=row.deleted_at,
        merged_into_id=row.merged_into_id,
    )


def _hit(row: Any, matched_by: list[str], summaries: dict[int, list[AccountSummary]]) -> MemberHit:
    return MemberHit(
        **member_identity(row), matched_by=matched_by, accounts=summaries.get(row.id, [])
    )


def formatted_card_number(card_number: str | None) -> str | None:
    if not card_number:
        return None
    try:
        return format_card_number(card_number)
    except DomainError:
        return card_number
