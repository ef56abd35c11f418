"""Members sign in to the wallet without a password: a one-time code or link sent by email.

A request makes a 6-digit code and a link token, both random; the database keeps only their
HMAC digests under the server key, so a copy of the table opens no account. A code lives 15
minutes, works once, and is burned after 5 wrong tries (the newest request replaces older
ones). Whether an address belongs to a member is never told: a request for an unknown address
answers the same and sends nothing.

A session is an opaque token of 32 random bytes in a cookie; the database keeps its SHA-256.
Sign-out ends one session, "sign out everywhere" all of the member's. An erased member has no
sessions and cannot request a code (their email is gone).

Rate limits per address and per client address are the app's (loyalty/app), in its store.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from msgspec import Struct
from sqlalchemy import Select, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, member_sessions, members, programs, sign_in_codes
from loyalty.domain.errors import DomainError, ErrorCode

from .contacts import normalize_email
from .context import utc_now
from .outbox import enqueue

CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=15)
MAX_FAILED_ATTEMPTS = 5
SESSION_LIFETIME = timedelta(days=30)
#: ``last_seen_at`` is written at most this often per session.
SEEN_RESOLUTION = timedelta(hours=1)
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 256

SIGN_IN = "sign_in"
COMPLETE_PROFILE = "complete_profile"


class MemberSession(Struct, frozen=True, kw_only=True):
    """A new session: the token (for the cookie, shown only this once) and when it ends."""

    token: str
    member_id: int
    program_id: int
    expires_at: datetime
    #: Why the member signed in: complete_profile for a member the cashier enrolled.
    purpose: str = SIGN_IN


@dataclass(frozen=True, slots=True)
class WalletMember:
    """The member a wallet request acts for."""

    member_id: int
    program_id: int
    merchant_id: int
    display_name: str
    locale: str | None
    session_digest: str


@dataclass(frozen=True, slots=True)
class MailText:
    subject: str
    body: str


#: Sign-in mail in the member's language: (code, link, program name) -> text.
MailWriter = Callable[[str, str, str, str | None, str], MailText]


def session_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _invalid() -> DomainError:
    return DomainError(
        ErrorCode.SIGN_IN_CODE_INVALID,
        "the code or link is wrong, used or expired; ask for a new one",
    )


class MemberSignIn:
    def __init__(
        self,
        engine: AsyncEngine,
        server_key: bytes,
        write_mail: MailWriter,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``write_mail(code, link, program_name, locale, purpose)``: the mail's text (the
        wallet writes it, in the member's language)."""
        self._engine = engine
        self._key = server_key
        self._write_mail = write_mail
        self._clock = clock

    def _digest(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    # --- codes ---------------------------------------------------------------------------------

    async def request_code(self, program_id: int, email: str, link_base: str) -> None:
        """Mail a code and a link to the member of the program with this address, if there is
        one. ``link_base``: the wallet URL the link's token is appended to (``...?token=``)."""
        address = normalize_email(email)

        async def work(conn: AsyncConnection) -> None:
            now = self._clock()
            member = await _member_by_email(conn, program_id, address)
            if member is None:
                return
            await self.issue_code(conn, member, program_id, link_base, now, SIGN_IN)

        await in_transaction(self._engine, work)

    async def issue_code(
        self,
        conn: AsyncConnection,
        member: Any,
        program_id: int,
        link_base: str,
        now: datetime,
        purpose: str,
    ) -> None:
        """Make a code and link for ``member`` (a row with id, email, locale, merchant_id,
        program_name) in the caller's transaction and queue the mail. Older unused codes of
        the member stop working."""
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        token = secrets.token_urlsafe(TOKEN_BYTES)
        await conn.execute(
            update(sign_in_codes)
            .where(sign_in_codes.c.member_id == member.id, sign_in_codes.c.used_at.is_(None))
            .values(used_at=now)
        )
        await conn.execute(
            sign_in_codes.insert().values(
                program_id=program_id,
                member_id=member.id,
                code_hash=self._digest("code", f"{member.id}:{code}"),
                link_hash=self._digest("link", token),
                purpose=purpose,
                created_at=now,
                expires_at=now + CODE_LIFETIME,
            )
        )
        text = self._write_mail(
            code, link_base + token, member.program_name, member.locale, purpose
        )
        await enqueue(
            conn,
            merchant_id=member.merchant_id,
            to_address=member.email,
            subject=text.subject,
            body_text=text.body,
            kind=purpose,
            at=now,
        )

    async def sign_in_with_code(self, program_id: int, email: str, code: str) -> MemberSession:
        address = normalize_email(email)
        typed = code.strip().replace(" ", "")

        async def work(conn: AsyncConnection) -> MemberSession | None:
            now = self._clock()
            member = await _member_by_email(conn, program_id, address)
            if member is None:
                return None
            row = (
                await conn.execute(
                    select(sign_in_codes)
                    .where(
                        sign_in_codes.c.member_id == member.id,
                        sign_in_codes.c.program_id == program_id,
                        sign_in_codes.c.used_at.is_(None),
                        sign_in_codes.c.expires_at > now,
                    )
                    .order_by(sign_in_codes.c.id.desc())
                    .limit(1)
                    .with_for_update()
                )
            ).first()
            if row is None:
                return None
            expected = self._digest("code", f"{member.id}:{typed}")
            if not hmac.compare_digest(row.code_hash, expected):
                failed = row.failed_attempts + 1
                await conn.execute(
                    update(sign_in_codes)
                    .where(sign_in_codes.c.id == row.id)
                    .values(
                        failed_attempts=failed,
                        used_at=now if failed >= MAX_FAILED_ATTEMPTS else None,
                    )
                )
                return None
            return await self._start_session(conn, row, now)

        # The failed try is committed (it counts) before the refusal is raised.
        session = await in_transaction(self._engine, work)
        if session is None:
            raise _invalid()
        return session

    async def sign_in_with_link(self, token: str) -> MemberSession:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise _invalid()
        digest = self._digest("link", token)

        async def work(conn: AsyncConnection) -> MemberSession | None:
            now = self._clock()
            row = (
                await conn.execute(
                    select(sign_in_codes)
                    .where(
                        sign_in_codes.c.link_hash == digest,
                        sign_in_codes.c.used_at.is_(None),
                        sign_in_codes.c.expires_at > now,
                    )
                    .with_for_update()
                )
            ).first()
            if row is None:
                return None
            return await self._start_session(conn, row, now)

        session = await in_transaction(self._engine, work)
        if session is None:
            raise _invalid()
        return session

    async def _start_session(
        self, conn: AsyncConnection, code: Any, now: datetime
    ) -> MemberSession:
        await conn.execute(
            update(sign_in_codes).where(sign_in_codes.c.id == code.id).values(used_at=now)
        )
        # The mail reached them: the address is theirs.
        await conn.execute(
            update(members)
            .where(members.c.id == code.member_id, members.c.email_verified_at.is_(None))
            .values(email_verified_at=now)
        )
        token = secrets.token_urlsafe(TOKEN_BYTES)
        expires_at = now + SESSION_LIFETIME
        await conn.execute(
            member_sessions.insert().values(
                token_hash=session_digest(token),
                member_id=code.member_id,
                program_id=code.program_id,
                created_at=now,
                expires_at=expires_at,
                last_seen_at=now,
            )
        )
        return MemberSession(
            token=token,
            member_id=code.member_id,
            program_id=code.program_id,
            expires_at=expires_at,
            purpose=code.purpose,
        )

    # --- sessions ------------------------------------------------------------------------------

    async def authenticate(self, token: str | None) -> WalletMember | None:
        """The member of a live session; None for no, unknown, expired or ended sessions."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        digest = session_digest(token)

        async def work(conn: AsyncConnection) -> WalletMember | None:
            now = self._clock()
            row = (
                await conn.execute(
                    select(
                        member_sessions.c.member_id,
                        member_sessions.c.program_id,
                        member_sessions.c.last_seen_at,
                        members.c.merchant_id,
                        members.c.display_name,
                        members.c.locale,
                    )
                    .join(members, members.c.id == member_sessions.c.member_id)
                    .where(
                        member_sessions.c.token_hash == digest,
                        member_sessions.c.revoked_at.is_(None),
                        member_sessions.c.expires_at > now,
                        members.c.deleted_at.is_(None),
                        members.c.merged_into_id.is_(None),
                    )
                )
            ).first()
            if row is None:
                return None
            if row.last_seen_at < now - SEEN_RESOLUTION:
                await conn.execute(
                    update(member_sessions)
                    .where(member_sessions.c.token_hash == digest)
                    .values(last_seen_at=now)
                )
            return WalletMember(
                member_id=row.member_id,
                program_id=row.program_id,
                merchant_id=row.merchant_id,
                display_name=row.display_name,
                locale=row.locale,
                session_digest=digest,
            )

        return await in_transaction(self._engine, work)

    async def sign_out(self, token: str | None) -> None:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return
        await self._revoke(member_sessions.c.token_hash == session_digest(token))

    async def sign_out_everywhere(self, member_id: int) -> int:
        """End every session of the member; how many were live."""
        return await self._revoke(member_sessions.c.member_id == member_id)

    async def _revoke(self, which: Any) -> int:
        now = self._clock()

        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                update(member_sessions)
                .where(which, member_sessions.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return int(result.rowcount or 0)

        return await in_transaction(self._engine, work)


def recipients(program_id: int) -> Select[Any]:
    """The program's members (enrolled, not erased, not merged into another) with what a mail
    to them needs: the caller adds which one."""
    return (
        select(
            members.c.id,
            members.c.email,
            members.c.locale,
            members.c.merchant_id,
            members.c.display_name,
            members.c.card_number,
            programs.c.name.label("program_name"),
        )
        .join(programs, programs.c.merchant_id == members.c.merchant_id)
        .join(
            accounts,
            and_(accounts.c.member_id == members.c.id, accounts.c.program_id == programs.c.id),
        )
        .where(
            programs.c.id == program_id,
            members.c.deleted_at.is_(None),
            members.c.merged_into_id.is_(None),
        )
    )


async def _member_by_email(conn: AsyncConnection, program_id: int, address: str) -> Any | None:
    """The program's member with this address."""
    query = recipients(program_id).where(func.lower(members.c.email) == address)
    return (await conn.execute(query.order_by(members.c.id).limit(1))).first()
