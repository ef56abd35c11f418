"""Staff users of a merchant: accounts, roles, passwords and login sessions.

Passwords are hashed with Argon2id (argon2-cffi's ``PasswordHasher``, RFC 9106 parameters) and
rehashed at the next login when the parameters change. Hashing costs tens of milliseconds of
CPU by design, so it runs in a worker thread and never inside a transaction (SQLite admits one
writer at a time; a hash must not hold the write lock).

A login session is an opaque bearer token of 32 random bytes. The database keeps only its
SHA-256: a copy of the database logs nobody in. Sessions last 12 hours and end early at logout,
when the user is deactivated, and (all but the current one) when the password changes. Every
request reads the user's role and active flag afresh, so a role change applies at once.

Every change to a staff user writes an audit row in the same transaction; password hashes never
appear in it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import merchants, staff_sessions, staff_users
from loyalty.domain.errors import DomainError, ErrorCode

from .audit import record_change, record_entry
from .context import Staff, utc_now


class StaffRole(StrEnum):
    #: Everything, including managing staff users.
    OWNER = "owner"
    #: Program configuration: rules, tiers, rewards.
    PROGRAM_MANAGER = "program_manager"
    #: Reads everything, assigns tiers, helps members.
    SUPPORT = "support"
    #: Works the till; of the admin API only login, logout and their own account.
    CASHIER = "cashier"


SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD_LENGTH = 12
#: Argon2 digests any length, but a megabyte "password" would only cost us CPU.
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 320
MAX_DISPLAY_NAME_LENGTH = 200
#: A local part this short ("al@...") is in too many good passwords to be a useful refusal.
MIN_LOCAL_PART_CHECKED = 3
TOKEN_BYTES = 32
#: Far longer than any token we issue; longer ones are refused before they are hashed.
MAX_TOKEN_LENGTH = 256
AUDIT_ENTITY = "staff"

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_EMAIL = re.compile(EMAIL_PATTERN)

_BAD_CREDENTIALS = "the email or password is not correct"
_BAD_SESSION = "the session token is unknown, expired or logged out; log in again"


class StaffView(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A staff user as the admin API shows them (never with the password hash)."""

    staff_id: int
    email: str
    display_name: str
    role: str
    active: bool
    created_at: datetime
    updated_at: datetime | None
    last_login_at: datetime | None


class StaffLogin(msgspec.Struct, frozen=True, kw_only=True):
    """A new session: its bearer token (shown only this once), when it ends, and whose it is."""

    token: str
    expires_at: datetime
    staff: Staff
    #: The user as the admin API shows them, ``last_login_at`` being this login.
    view: StaffView


def _login_name(email: str) -> str:
    """Emails are login names: compared and stored lower-case, without surrounding blanks."""
    return email.strip().lower()


def normalize_email(email: str) -> str:
    normalized = _login_name(email)
    if len(normalized) > MAX_EMAIL_LENGTH or not _EMAIL.match(normalized):
        raise DomainError(ErrorCode.VALIDATION_FAILED, f"{email!r} is not an email address")
    return normalized


def parse_role(role: str) -> StaffRole:
    try:
        return StaffRole(role)
    except ValueError:
        known = ", ".join(StaffRole)
        raise DomainError(
            ErrorCode.VALIDATION_FAILED, f"unknown role {role!r}; one of: {known}"
        ) from None


def check_password_policy(password: str, email: str) -> None:
    """At least 12 characters, and not built around the user's own login name."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DomainError(
            ErrorCode.WEAK_PASSWORD,
            f"the password needs at least {MIN_PASSWORD_LENGTH} characters",
            min_length=MIN_PASSWORD_LENGTH,
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise DomainError(
            ErrorCode.VALIDATION_FAILED,
            f"the password may have at most {MAX_PASSWORD_LENGTH} characters",
        )
    local_part = email.partition("@")[0].lower()
    if len(local_part) >= MIN_LOCAL_PART_CHECKED and local_part in password.lower():
        raise DomainError(
            ErrorCode.WEAK_PASSWORD, "the password must not contain the email's name part"
        )


def _display_name(display_name: str) -> str:
    cleaned = display_name.strip()
    if not 1 <= len(cleaned) <= MAX_DISPLAY_NAME_LENGTH:
        raise DomainError(
            ErrorCode.VALIDATION_FAILED,
            f"the display name needs 1 to {MAX_DISPLAY_NAME_LENGTH} characters",
        )
    return cleaned


def token_digest(token: str) -> str:
    """What the database keeps of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _view(row: Any) -> StaffView:
    return StaffView(
        staff_id=row.id,
        email=row.email,
        display_name=row.display_name,
        role=row.role,
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_login_at=row.last_login_at,
    )


def _staff(row: Any) -> Staff:
    return Staff(
        staff_id=row.id,
        merchant_id=row.merchant_id,
        role=row.role,
        email=row.email,
        display_name=row.display_name,
    )


def _audit_state(view: StaffView) -> dict[str, Any]:
    """What the audit log keeps of a staff user: named fields only, so that no secret (the
    password hash) can slip in when a column is added."""
    return {
        "email": view.email,
        "display_name": view.display_name,
        "role": view.role,
        "active": view.active,
    }


def _require_owner(actor: Staff) -> None:
    if actor.role != StaffRole.OWNER:
        raise DomainError(ErrorCode.FORBIDDEN, "only an owner may manage staff users")


_STAFF_COLUMNS = (
    staff_users.c.id,
    staff_users.c.email,
    staff_users.c.display_name,
    staff_users.c.role,
    staff_users.c.active,
    staff_users.c.created_at,
    staff_users.c.updated_at,
    staff_users.c.last_login_at,
)


class StaffDirectory:
    """Staff users, their passwords and sessions. One per process (it keeps no state but the
    password hasher and a dummy hash)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], datetime] = utc_now,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        # argon2-cffi's defaults are Argon2id with RFC 9106's low-memory parameters.
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    # --- staff users -------------------------------------------------------------------------

    async def create_staff(
        self, owner: Staff, *, email: str, password: str, role: str, display_name: str
    ) -> StaffView:
        """A new staff user of the owner's merchant."""
        _require_owner(owner)
        return await self._create(
            owner.merchant_id,
            owner,
            email=email,
            password=password,
            role=role,
            display_name=display_name,
        )

    async def provision_staff(
        self,
        merchant_id: int,
        *,
        email: str,
        password: str,
        role: str,
        display_name: str,
        enforce_password_policy: bool = True,
    ) -> StaffView:
        """A new staff user made by the system (command line, demo seed): no staff actor, the
        audit log says "system". ``enforce_password_policy=False`` is for the demo seed only,
        whose passwords are published in the README and fail the policy anyway."""
        return await self._create(
            merchant_id,
            None,
            email=email,
            password=password,
            role=role,
            display_name=display_name,
            enforce_password_policy=enforce_password_policy,
        )

    async def _create(
        self,
        merchant_id: int,
        actor: Staff | None,
        *,
        email: str,
        password: str,
        role: str,
        display_name: str,
        enforce_password_policy: bool = True,
    ) -> StaffView:
        email = normalize_email(email)
        known_role = parse_role(role)
        display_name = _display_name(display_name)
        if enforce_password_policy:
            check_password_policy(password, email)
        password_hash = await self._hash(password)

        async def work(conn: AsyncConnection) -> StaffView:
            now = self._clock()
            if actor is None and not await conn.scalar(
                select(exists().where(merchants.c.id == merchant_id))
            ):
                raise DomainError(ErrorCode.VALIDATION_FAILED, f"no merchant with id {merchant_id}")
            try:
                staff_id = await conn.scalar(
                    staff_users.insert()
                    .values(
                        merchant_id=merchant_id,
                        email=email,
                        display_name=display_name,
                        role=str(known_role),
                        password_hash=password_hash,
                        active=True,
                        created_at=now,
                    )
                    .returning(staff_users.c.id)
                )
            except IntegrityError:
                # Only the email can clash: the merchant exists and the role is a known one.
                raise DomainError(
                    ErrorCode.STAFF_EMAIL_TAKEN, f"a staff user with email {email} exists"
                ) from None
            assert staff_id is not None
            created = StaffView(
                staff_id=staff_id,
                email=email,
                display_name=display_name,
                role=str(known_role),
                active=True,
                created_at=now,
                updated_at=None,
                last_login_at=None,
            )
            await record_entry(
                conn,
                merchant_id,
                actor,
                action="create",
                entity=AUDIT_ENTITY,
                entity_id=staff_id,
                at=now,
                after=_audit_state(created),
            )
            return created

        return await in_transaction(self._engine, work)

    async def list_staff(self, merchant_id: int) -> list[StaffView]:
        async def read(conn: AsyncConnection) -> list[StaffView]:
            rows = await conn.execute(
                select(*_STAFF_COLUMNS)
                .where(staff_users.c.merchant_id == merchant_id)
                .order_by(staff_users.c.id)
            )
            return [_view(row) for row in rows]

        return await in_transaction(self._engine, read, read_only=True)

    async def get_staff(self, merchant_id: int, staff_id: int) -> StaffView:
        async def read(conn: AsyncConnection) -> StaffView:
            row = (
                await conn.execute(
                    select(*_STAFF_COLUMNS).where(
                        staff_users.c.id == staff_id, staff_users.c.merchant_id == merchant_id
                    )
                )
            ).one_or_none()
            if row is None:
                raise _not_found(staff_id)
            return _view(row)

        return await in_transaction(self._engine, read, read_only=True)

    async def update_staff(
        self,
        owner: Staff,
        staff_id: int,
        *,
        role: str | None = None,
        display_name: str | None = None,
        active: bool | None = None,
    ) -> StaffView:
        """Change a staff user's role, name or active flag (None: leave as it is). The merchant
        always keeps one active owner: whoever would take the last one away is refused."""
        _require_owner(owner)
        new_role = None if role is None else parse_role(role)
        new_name = None if display_name is None else _display_name(display_name)

        async def work(conn: AsyncConnection) -> StaffView:
            now = self._clock()
            # Staff changes of one merchant take turns, so that two owners demoting each other
            # at the same moment cannot both see "another owner is left" (PostgreSQL; SQLite
            # has one writer anyway). NO KEY UPDATE leaves inserts referencing the merchant be.
            await conn.execute(
                select(merchants.c.id)
                .where(merchants.c.id == owner.merchant_id)
                .with_for_update(key_share=True)
            )
            row = (
                await conn.execute(
                    select(*_STAFF_COLUMNS).where(
                        staff_users.c.id == staff_id,
                        staff_users.c.merchant_id == owner.merchant_id,
                    )
                )
            ).one_or_none()
            if row is None:
                raise _not_found(staff_id)
            before = _view(row)
            after = msgspec.structs.replace(
                before,
                role=before.role if new_role is None else str(new_role),
                display_name=before.display_name if new_name is None else new_name,
                active=before.active if active is None else active,
            )
            if _audit_state(after) == _audit_state(before):
                return before
            if _is_active_owner(before) and not _is_active_owner(after):
                await _ensure_another_active_owner(conn, owner.merchant_id, staff_id)
            after = msgspec.structs.replace(after, updated_at=now)
            await conn.execute(
                staff_users.update()
                .where(staff_users.c.id == staff_id)
                .values(
                    role=after.role,
                    display_name=after.display_name,
                    active=after.active,
                    updated_at=now,
                )
            )
            if before.active and not after.active:
                await _revoke_sessions(conn, staff_id, now)
            await record_change(
                conn,
                owner,
                action="update",
                entity=AUDIT_ENTITY,
                entity_id=staff_id,
                at=now,
                before=_audit_state(before),
                after=_audit_state(after),
            )
            return after

        return await in_transaction(self._engine, work)

    async def change_password(
        self,
        staff: Staff,
        *,
        current_password: str,
        new_password: str,
        keep_session_token: str,
    ) -> None:
        """A staff user's own password, proven by the current one. Their other sessions end
        (a stolen token stops working); ``keep_session_token``'s session, the one asking, stays.
        """

        async def read_hash(conn: AsyncConnection) -> str | None:
            return await conn.scalar(
                select(staff_users.c.password_hash).where(
                    staff_users.c.id == staff.staff_id, staff_users.c.active.is_(True)
                )
            )

        old_hash = await in_transaction(self._engine, read_hash, read_only=True)
        if old_hash is None:
            raise DomainError(ErrorCode.UNAUTHORIZED, _BAD_SESSION)
        if not await self._verify(old_hash, current_password):
            raise DomainError(ErrorCode.INVALID_CREDENTIALS, "the current password is not correct")
        check_password_policy(new_password, staff.email)
        new_hash = await self._hash(new_password)

        async def work(conn: AsyncConnection) -> None:
            now = self._clock()
            changed = await conn.execute(
                staff_users.update()
                .where(
                    staff_users.c.id == staff.staff_id,
                    # Unchanged since we verified it: a concurrent change wins, this one fails.
                    staff_users.c.password_hash == old_hash,
                )
                .values(password_hash=new_hash, updated_at=now)
            )
            if changed.rowcount != 1:
                raise DomainError(
                    ErrorCode.INVALID_CREDENTIALS, "the current password is not correct"
                )
            await _revoke_sessions(
                conn, staff.staff_id, now, keep_digest=token_digest(keep_session_token)
            )
            await record_change(
                conn,
                staff,
                action="change_password",
                entity=AUDIT_ENTITY,
                entity_id=staff.staff_id,
                at=now,
            )

        await in_transaction(self._engine, work)

    # --- sessions ----------------------------------------------------------------------------

    async def login(self, email: str, password: str) -> StaffLogin:
        """A new session. An unknown email, a wrong password and a deactivated user are refused
        alike, with the same message and (by verifying a dummy hash for unknown emails) about
        the same time."""

        async def read(conn: AsyncConnection) -> Any:
            return (
                await conn.execute(
                    select(
                        *_STAFF_COLUMNS, staff_users.c.merchant_id, staff_users.c.password_hash
                    ).where(staff_users.c.email == _login_name(email))
                )
            ).one_or_none()

        # Made before the lookup: were it made on the first unknown email only, that one
        # login would take a hash longer than any other.
        dummy_hash = await self._dummy()
        row = await in_transaction(self._engine, read, read_only=True)
        stored_hash = row.password_hash if row is not None else dummy_hash
        verified = await self._verify(stored_hash, password)
        if row is None or not verified or not row.active:
            raise DomainError(ErrorCode.INVALID_CREDENTIALS, _BAD_CREDENTIALS)
        # A verified hash is a valid one: asking whether it needs a rehash cannot fail.
        needs_rehash = self._hasher.check_needs_rehash(stored_hash)
        new_hash = await self._hash(password) if needs_rehash else stored_hash
        token = secrets.token_urlsafe(TOKEN_BYTES)

        async def work(conn: AsyncConnection) -> datetime:
            now = self._clock()
            changed = await conn.execute(
                staff_users.update()
                .where(
                    staff_users.c.id == row.id,
                    # Deactivated, or the password changed, since we read the row: no session.
                    staff_users.c.active.is_(True),
                    staff_users.c.password_hash == stored_hash,
                )
                .values(last_login_at=now, password_hash=new_hash)
            )
            if changed.rowcount != 1:
                raise DomainError(ErrorCode.INVALID_CREDENTIALS, _BAD_CREDENTIALS)
            # Ended sessions are of no further use; clearing them at login bounds the table.
            await conn.execute(
                staff_sessions.delete().where(
                    staff_sessions.c.staff_id == row.id, staff_sessions.c.expires_at <= now
                )
            )
            await conn.execute(
                staff_sessions.insert().values(
                    token_hash=token_digest(token),
                    staff_id=row.id,
                    created_at=now,
                    expires_at=now + SESSION_LIFETIME,
                )
            )
            return now

        now = await in_transaction(self._engine, work)
        return StaffLogin(
            token=token,
            expires_at=now + SESSION_LIFETIME,
            staff=_staff(row),
            view=msgspec.structs.replace(_view(row), last_login_at=now),
        )

    async def logout(self, token: str) -> None:
        """End the token's session (nothing happens for a token that is no session)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                staff_sessions.update()
                .where(
                    staff_sessions.c.token_hash == token_digest(token),
                    staff_sessions.c.revoked_at.is_(None),
                )
                .values(revoked_at=self._clock())
            )

        await in_transaction(self._engine, work)

    async def authenticate(self, token: str) -> Staff:
        """Who the session token belongs to, as they are now (role and active flag are read
        on every call)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise DomainError(ErrorCode.UNAUTHORIZED, _BAD_SESSION)
        now = self._clock()

        async def read(conn: AsyncConnection) -> Any:
            return (
                await conn.execute(
                    select(
                        staff_users.c.id,
                        staff_users.c.merchant_id,
                        staff_users.c.email,
                        staff_users.c.display_name,
                        staff_users.c.role,
                    )
                    .join(staff_users, staff_users.c.id == staff_sessions.c.staff_id)
                    .where(
                        staff_sessions.c.token_hash == token_digest(token),
                        staff_sessions.c.revoked_at.is_(None),
                        staff_sessions.c.expires_at > now,
                        staff_users.c.active.is_(True),
                    )
                )
            ).one_or_none()

        row = await in_transaction(self._engine, read, read_only=True)
        if row is None:
            raise DomainError(ErrorCode.UNAUTHORIZED, _BAD_SESSION)
        return _staff(row)

    # --- passwords ---------------------------------------------------------------------------

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        def verify() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(verify)

    async def _dummy(self) -> str:
        """A hash with the live parameters, for unknown emails to be verified against."""
        if self._dummy_hash is None:
            self._dummy_hash = await self._hash(secrets.token_urlsafe(TOKEN_BYTES))
        return self._dummy_hash


def _is_active_owner(view: StaffView) -> bool:
    return view.active and view.role == StaffRole.OWNER


async def _ensure_another_active_owner(
    conn: AsyncConnection, merchant_id: int, staff_id: int
) -> None:
    others = await conn.scalar(
        select(
            exists().where(
                staff_users.c.merchant_id == merchant_id,
                staff_users.c.role == StaffRole.OWNER,
                staff_users.c.active.is_(True),
                staff_users.c.id != staff_id,
            )
        )
    )
    if not others:
        raise DomainError(
            ErrorCode.LAST_OWNER,
            "this is the merchant's last active owner; make another owner first",
            staff_id=staff_id,
        )


async def _revoke_sessions(
    conn: AsyncConnection, staff_id: int, now: datetime, *, keep_digest: str | None = None
) -> None:
    query = staff_sessions.update().where(
        staff_sessions.c.staff_id == staff_id, staff_sessions.c.revoked_at.is_(None)
    )
    if keep_digest is not None:
        query = query.where(staff_sessions.c.token_hash != keep_digest)
    await conn.execute(query.values(revoked_at=now))


def _not_found(staff_id: int) -> DomainError:
    return DomainError(ErrorCode.STAFF_NOT_FOUND, f"no staff user {staff_id} at this merchant")
