"""Members enroll themselves in the wallet, or a cashier enrolls them at the till.

Self enrollment takes a name, an email address, an optional phone number and the consents:
the program terms (required) and marketing (optional, withdrawable on its own). Each consent is
stored with its time, the version of the text the member saw and where it was given. Email and
phone are normalised first; an enrollment that matches a member of the merchant by either is
not a new member: the existing one gets a sign-in mail (enrolled in the program if they were
not), and the answer is the same as for a new member, so that enrollment never tells whether
an address is known.

At the till a cashier enrolls a customer with their email address alone; the member completes
the profile later from the mailed link (purpose ``complete_profile``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from msgspec import Struct
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, member_consents, members, programs
from loyalty.domain.errors import DomainError, ErrorCode

from .contacts import normalize_email, normalize_phone
from .context import utc_now
from .member_sign_in import COMPLETE_PROFILE, SIGN_IN, MemberSignIn, recipients
from .membership import create_member, open_account
from .referrals import note_invitation

TERMS = "terms"
MARKETING = "marketing"
CONSENT_KINDS = (TERMS, MARKETING)


class ConsentState(Struct, frozen=True, kw_only=True):
    kind: str
    granted: bool
    text_version: str
    source: str
    at: datetime


class EnrolledAtTill(Struct, frozen=True, kw_only=True):
    member_id: int
    display_name: str
    card_number: str
    #: False when the address belonged to a member already (nothing new was made).
    created: bool


class Enrollment:
    def __init__(
        self,
        engine: AsyncEngine,
        sign_in: MemberSignIn,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._engine = engine
        self._sign_in = sign_in
        self._clock = clock

    async def enroll_self(
        self,
        program_id: int,
        *,
        display_name: str,
        email: str,
        phone: str | None,
        terms_version: str,
        terms_accepted: bool,
        marketing: bool,
        locale: str | None,
        link_base: str,
        invite: str | None = None,
    ) -> None:
        """Enroll from the wallet and mail a sign-in code (see the module docs). ``invite``:
        the invitation code of the link the person followed (a referral)."""
        name = display_name.strip()
        if not name:
            raise DomainError(ErrorCode.VALIDATION_FAILED, "a name is required", field="name")
        address = normalize_email(email)
        number = normalize_phone(phone) if phone and phone.strip() else None
        if not terms_accepted:
            raise DomainError(
                ErrorCode.CONSENT_REQUIRED,
                "the program terms must be accepted to join",
                field="terms",
            )

        async def work(conn: AsyncConnection) -> None:
            now = self._clock()
            program = await _program(conn, program_id)
            existing = await _matching_member(conn, program.merchant_id, address, number)
            if existing is None:
                member_id = await create_member(
                    conn,
                    program.merchant_id,
                    display_name=name,
                    email=address,
                    phone=number,
                    locale=locale,
                    at=now,
                )
            else:
                member_id = existing.id
            enrolled = await _is_enrolled(conn, program_id, member_id)
            if not enrolled:
                await open_account(conn, program_id, member_id, now)
                await record_consent(conn, member_id, program_id, TERMS, True, terms_version, now)
                await record_consent(
                    conn, member_id, program_id, MARKETING, marketing, terms_version, now
                )
                await note_invitation(conn, program_id, invite, member_id, now)
            member = await _mail_view(conn, member_id, program_id)
            if member.email is not None:
                await self._sign_in.issue_code(conn, member, program_id, link_base, now, SIGN_IN)

        await in_transaction(self._engine, work)

    async def enroll_at_till(
        self,
        program_id: int,
        merchant_id: int,
        *,
        email: str,
        display_name: str | None,
        link_base: str,
    ) -> EnrolledAtTill:
        """A cashier enrolls a customer by email; the member completes the profile and gives
        the consents from the mailed link. An address already known is that member."""
        address = normalize_email(email)

        async def work(conn: AsyncConnection) -> EnrolledAtTill:
            now = self._clock()
            program = await _program(conn, program_id)
            if program.merchant_id != merchant_id:
                raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program")
            existing = await _matching_member(conn, merchant_id, address, None)
            created = existing is None
            if existing is None:
                member_id = await create_member(
                    conn,
                    merchant_id,
                    display_name=(display_name or "").strip() or address.partition("@")[0],
                    email=address,
                    at=now,
                )
            else:
                member_id = existing.id
            if not await _is_enrolled(conn, program_id, member_id):
                await open_account(conn, program_id, member_id, now)
            member = await _mail_view(conn, member_id, program_id)
            purpose = COMPLETE_PROFILE if created else SIGN_IN
            await self._sign_in.issue_code(conn, member, program_id, link_base, now, purpose)
            return EnrolledAtTill(
                member_id=member_id,
                display_name=member.display_name,
                card_number=member.card_number,
                created=created,
            )

        return await in_transaction(self._engine, work)

    async def consents(self, member_id: int, program_id: int) -> list[ConsentState]:
        async def work(conn: AsyncConnection) -> list[ConsentState]:
            return await current_consents(conn, member_id, program_id)

        return await in_transaction(self._engine, work, read_only=True)

    async def set_consent(
        self, member_id: int, program_id: int, kind: str, granted: bool, text_version: str
    ) -> list[ConsentState]:
        """Give or withdraw a consent from the wallet. The terms cannot be withdrawn here:
        leaving the program is deleting the account."""
        if kind not in CONSENT_KINDS:
            raise DomainError(ErrorCode.VALIDATION_FAILED, f"no consent {kind!r}", field="kind")
        if kind == TERMS and not granted:
            raise DomainError(
                ErrorCode.CONSENT_REQUIRED,
                "the program terms cannot be withdrawn; delete the account to leave",
                field="terms",
            )

        async def work(conn: AsyncConnection) -> list[ConsentState]:
            now = self._clock()
            await record_consent(conn, member_id, program_id, kind, granted, text_version, now)
            return await current_consents(conn, member_id, program_id)

        return await in_transaction(self._engine, work)


async def record_consent(
    conn: AsyncConnection,
    member_id: int,
    program_id: int,
    kind: str,
    granted: bool,
    text_version: str,
    at: datetime,
    source: str = "wallet",
) -> None:
    await conn.execute(
        member_consents.insert().values(
            member_id=member_id,
            program_id=program_id,
            kind=kind,
            granted=granted,
            text_version=text_version,
            source=source,
            at=at,
        )
    )


async def current_consents(
    conn: AsyncConnection, member_id: int, program_id: int
) -> list[ConsentState]:
    """The latest consent of each kind."""
    rows = await conn.execute(
        select(member_consents)
        .where(member_consents.c.member_id == member_id, member_consents.c.program_id == program_id)
        .order_by(member_consents.c.id)
    )
    latest: dict[str, ConsentState] = {}
    for row in rows:
        latest[row.kind] = ConsentState(
            kind=row.kind,
            granted=row.granted,
            text_version=row.text_version,
            source=row.source,
            at=row.at,
        )
    return [latest[kind] for kind in CONSENT_KINDS if kind in latest]


async def _program(conn: AsyncConnection, program_id: int) -> Any:
    row = (
        await conn.execute(
            select(programs.c.id, programs.c.merchant_id).where(programs.c.id == program_id)
        )
    ).first()
    if row is None:
        raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program")
    return row


async def _matching_member(
    conn: AsyncConnection, merchant_id: int, address: str, phone: str | None
) -> Any | None:
    same = [func.lower(members.c.email) == address]
    if phone is not None:
        same.append(members.c.phone == phone)
    return (
        await conn.execute(
            select(members.c.id)
            .where(
                members.c.merchant_id == merchant_id,
                members.c.deleted_at.is_(None),
                members.c.merged_into_id.is_(None),
                or_(*same),
            )
            .order_by(members.c.id)
            .limit(1)
        )
    ).first()


async def _is_enrolled(conn: AsyncConnection, program_id: int, member_id: int) -> bool:
    found = await conn.scalar(
        select(accounts.c.id).where(
            accounts.c.program_id == program_id, accounts.c.member_id == member_id
        )
    )
    return found is not None


async def _mail_view(conn: AsyncConnection, member_id: int, program_id: int) -> Any:
    """The member (just enrolled in the program) as a mail to them needs it."""
    return (await conn.execute(recipients(program_id).where(members.c.id == member_id))).one()
