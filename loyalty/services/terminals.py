"""Terminals and their API keys: issue, rotate without downtime, revoke, authenticate.

A key reads ``lk_<prefix>_<secret>``: the prefix finds the row, only the SHA-256 of the secret
is stored. The secret is 32 random bytes, so a fast hash is as safe as a slow one would be for
a password, and costs microseconds on the till's every request. Rotating issues a new key and
lets the older ones live for a grace period so that tills switch over without an outage.
Authentication results are cached per process for a few seconds; a revoked key stops working
within that time. ``last_used_at`` is written at most once a minute per key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from msgspec import Meta, Struct
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import merchants, programs, terminal_keys, terminals
from loyalty.domain.errors import DomainError, ErrorCode

from .audit import record_entry
from .context import Caller, Staff, utc_now

KEY_SCHEME = "lk"
#: How long an authentication stays cached in the process (revocation delay at most this).
AUTH_CACHE_SECONDS = 5.0
LAST_USED_RESOLUTION = timedelta(minutes=1)
DEFAULT_ROTATION_GRACE = timedelta(hours=24)
MAX_ROTATION_GRACE = timedelta(days=30)

TerminalCode = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]


class TerminalKeyView(Struct, frozen=True, kw_only=True):
    key_id: int
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    active: bool


class TerminalView(Struct, frozen=True, kw_only=True):
    terminal_id: int
    code: str
    location: str
    name: str
    program_id: int
    created_at: datetime
    disabled_at: datetime | None
    keys: list[TerminalKeyView]


class IssuedKey(Struct, frozen=True, kw_only=True):
    """A new key: ``api_key`` is shown this once and never again."""

    terminal_id: int
    key_id: int
    prefix: str
    api_key: str
    created_at: datetime
    #: Older keys of the terminal stay valid until then (rotation).
    older_keys_expire_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Terminal:
    """An authenticated till."""

    terminal_id: int
    merchant_id: int
    program_id: int
    code: str
    location: str
    name: str
    key_id: int | None
    #: The program's currency and the merchant's name, for the till's header.
    currency: str
    merchant_name: str

    @property
    def caller(self) -> Caller:
        # POS transaction ids are unique per merchant, not per till: a retry from another till
        # (or with a rotated key) must find the first attempt's outcome.
        return Caller(client_id=f"pos:{self.merchant_id}", merchant_id=self.merchant_id)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(api_key: str) -> tuple[str, str] | None:
    scheme, _, rest = api_key.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != KEY_SCHEME or not prefix or not secret or len(api_key) > 200:
        return None
    return prefix, secret


class Terminals:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock
        self._cache: dict[str, tuple[float, Terminal]] = {}

    # --- management (staff) ------------------------------------------------------------------

    async def create_terminal(
        self, staff: Staff, *, program_id: int, code: str, location: str, name: str
    ) -> IssuedKey:
        """A new terminal of a program with its first key."""

        async def work(conn: AsyncConnection) -> IssuedKey:
            now = self._clock()
            found = await conn.scalar(
                select(programs.c.id).where(
                    programs.c.id == program_id, programs.c.merchant_id == staff.merchant_id
                )
            )
            if found is None:
                raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program")
            try:
                async with conn.begin_nested():
                    terminal_id = await conn.scalar(
                        terminals.insert()
                        .values(
                            merchant_id=staff.merchant_id,
                            program_id=program_id,
                            code=code,
                            location=location,
                            name=name,
                            created_at=now,
                        )
                        .returning(terminals.c.id)
                    )
            except IntegrityError:
                raise DomainError(
                    ErrorCode.TERMINAL_CODE_TAKEN,
                    "a terminal with this code exists",
                    terminal_code=code,
                ) from None
            assert terminal_id is not None
            issued = await _insert_key(conn, int(terminal_id), staff, now)
            await record_entry(
                conn,
                staff.merchant_id,
                staff,
                action="terminal.create",
                entity="terminal",
                entity_id=code,
                at=now,
                after={"code": code, "location": location, "name": name},
                program_id=program_id,
            )
            return issued

        return await in_transaction(self._engine, work)

    async def list_terminals(self, staff: Staff) -> list[TerminalView]:
        async def work(conn: AsyncConnection) -> list[TerminalView]:
            now = self._clock()
            rows = (
                await conn.execute(
                    select(terminals)
                    .where(terminals.c.merchant_id == staff.merchant_id)
                    .order_by(terminals.c.code)
                )
            ).all()
            keys = (
                await conn.execute(
                    select(terminal_keys)
                    .join(terminals, terminals.c.id == terminal_keys.c.terminal_id)
                    .where(terminals.c.merchant_id == staff.merchant_id)
                    .order_by(terminal_keys.c.id)
                )
            ).all()
            by_terminal: dict[int, list[TerminalKeyView]] = {}
            for key in keys:
                by_terminal.setdefault(key.terminal_id, []).append(_key_view(key, now))
            return [
                TerminalView(
                    terminal_id=row.id,
                    code=row.code,
                    location=row.location,
                    name=row.name,
                    program_id=row.program_id,
                    created_at=row.created_at,
                    disabled_at=row.disabled_at,
                    keys=by_terminal.get(row.id, []),
                )
                for row in rows
            ]

        return await in_transaction(self._engine, work, read_only=True)

    async def rotate_key(
        self, staff: Staff, terminal_id: int, grace: timedelta = DEFAULT_ROTATION_GRACE
    ) -> IssuedKey:
        """A new key; the terminal's older keys keep working for ``grace`` (0: revoke now)."""
        if grace < timedelta(0) or grace > MAX_ROTATION_GRACE:
            raise DomainError(
                ErrorCode.VALIDATION_FAILED, "the grace period is 0 to 30 days", grace=str(grace)
            )

        async def work(conn: AsyncConnection) -> IssuedKey:
            now = self._clock()
            code = await _terminal_code(conn, staff, terminal_id)
            until = now + grace
            await conn.execute(
                update(terminal_keys)
                .where(
                    terminal_keys.c.terminal_id == terminal_id,
                    terminal_keys.c.revoked_at.is_(None),
                    or_(terminal_keys.c.expires_at.is_(None), terminal_keys.c.expires_at > until),
                )
                .values(expires_at=until)
            )
            issued = await _insert_key(conn, terminal_id, staff, now)
            await record_entry(
                conn,
                staff.merchant_id,
                staff,
                action="terminal.rotate_key",
                entity="terminal",
                entity_id=code,
                at=now,
                after={"new_key": issued.prefix, "older_keys_expire_at": until.isoformat()},
            )
            return IssuedKey(
                terminal_id=issued.terminal_id,
                key_id=issued.key_id,
                prefix=issued.prefix,
                api_key=issued.api_key,
                created_at=issued.created_at,
                older_keys_expire_at=until,
            )

        issued = await in_transaction(self._engine, work)
        self._cache.clear()
        return issued

    async def revoke_key(self, staff: Staff, terminal_id: int, key_id: int) -> TerminalKeyView:
        async def work(conn: AsyncConnection) -> TerminalKeyView:
            now = self._clock()
            code = await _terminal_code(conn, staff, terminal_id)
            row = (
                await conn.execute(
                    update(terminal_keys)
                    .where(
                        terminal_keys.c.id == key_id,
                        terminal_keys.c.terminal_id == terminal_id,
                    )
                    .values(revoked_at=now)
                    .returning(*terminal_keys.c)
                )
            ).first()
            if row is None:
                raise DomainError(ErrorCode.TERMINAL_NOT_FOUND, "no such key", key_id=key_id)
            await record_entry(
                conn,
                staff.merchant_id,
                staff,
                action="terminal.revoke_key",
                entity="terminal",
                entity_id=code,
                at=now,
                before={"key": row.prefix, "revoked": False},
                after={"key": row.prefix, "revoked": True},
            )
            return _key_view(row, now)

        view = await in_transaction(self._engine, work)
        self._cache.clear()
        return view

    # --- authentication (tills) ----------------------------------------------------------------

    async def authenticate(self, api_key: str) -> Terminal:
        """The terminal a key belongs to; UNAUTHORIZED for unknown, revoked or expired keys."""
        parts = split_key(api_key)
        if parts is None:
            raise _invalid_key()
        cached = self._cache.get(api_key)
        if cached is not None and time.monotonic() - cached[0] < AUTH_CACHE_SECONDS:
            return cached[1]
        prefix, secret = parts

        async def work(conn: AsyncConnection) -> Terminal:
            now = self._clock()
            row = (
                await conn.execute(
                    select(
                        terminal_keys.c.id.label("key_id"),
                        terminal_keys.c.secret_hash,
                        terminal_keys.c.expires_at,
                        terminal_keys.c.revoked_at,
                        terminal_keys.c.last_used_at,
                        *TERMINAL_COLUMNS,
                    )
                    .join(terminals, terminals.c.id == terminal_keys.c.terminal_id)
                    .join(programs, programs.c.id == terminals.c.program_id)
                    .join(merchants, merchants.c.id == terminals.c.merchant_id)
                    .where(terminal_keys.c.prefix == prefix)
                )
            ).first()
            if (
                row is None
                or not hmac.compare_digest(row.secret_hash, hash_secret(secret))
                or row.revoked_at is not None
                or (row.expires_at is not None and row.expires_at <= now)
                or row.disabled_at is not None
            ):
                raise _invalid_key()
            if row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION:
                await conn.execute(
                    update(terminal_keys)
                    .where(terminal_keys.c.id == row.key_id)
                    .values(last_used_at=now)
                )
            return terminal_of(row, row.key_id)

        terminal = await in_transaction(self._engine, work)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[api_key] = (time.monotonic(), terminal)
        return terminal

    async def for_staff(self, staff: Staff, code: str) -> Terminal:
        """A staff member working a till of their merchant (the cashier page's staff login)."""

        async def work(conn: AsyncConnection) -> Terminal:
            row = (
                await conn.execute(
                    select(*TERMINAL_COLUMNS)
                    .join(programs, programs.c.id == terminals.c.program_id)
                    .join(merchants, merchants.c.id == terminals.c.merchant_id)
                    .where(
                        terminals.c.merchant_id == staff.merchant_id,
                        terminals.c.code == code,
                        terminals.c.disabled_at.is_(None),
                    )
                )
            ).first()
            if row is None:
                raise DomainError(
                    ErrorCode.TERMINAL_NOT_FOUND,
                    "no such terminal at this merchant",
                    terminal_code=code,
                )
            return terminal_of(row, None)

        return await in_transaction(self._engine, work, read_only=True)


def _invalid_key() -> DomainError:
    return DomainError(ErrorCode.UNAUTHORIZED, "the terminal API key is not valid")


#: What ``terminal_of`` reads (joined with programs and merchants).
TERMINAL_COLUMNS = (
    terminals.c.id,
    terminals.c.merchant_id,
    terminals.c.program_id,
    terminals.c.code,
    terminals.c.location,
    terminals.c.name,
    terminals.c.disabled_at,
    programs.c.currency,
    merchants.c.name.label("merchant_name"),
)


def terminal_of(row: Any, key_id: int | None) -> Terminal:
    """A ``Terminal`` from a row with the terminal's, its program's currency and its
    merchant's name (``merchant_name``) columns."""
    return Terminal(
        terminal_id=row.id,
        merchant_id=row.merchant_id,
        program_id=row.program_id,
        code=row.code,
        location=row.location,
        name=row.name,
        key_id=key_id,
        currency=row.currency,
        merchant_name=row.merchant_name,
    )


def _key_view(row: Any, now: datetime) -> TerminalKeyView:
    return TerminalKeyView(
        key_id=row.id,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        active=row.revoked_at is None and (row.expires_at is None or row.expires_at > now),
    )


async def _terminal_code(conn: AsyncConnection, staff: Staff, terminal_id: int) -> str:
    code = await conn.scalar(
        select(terminals.c.code).where(
            terminals.c.id == terminal_id, terminals.c.merchant_id == staff.merchant_id
        )
    )
    if code is None:
        raise DomainError(ErrorCode.TERMINAL_NOT_FOUND, "no such terminal", terminal_id=terminal_id)
    return str(code)


async def _insert_key(
    conn: AsyncConnection, terminal_id: int, staff: Staff, now: datetime
) -> IssuedKey:
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key_id = await conn.scalar(
        terminal_keys.insert()
        .values(
            terminal_id=terminal_id,
            prefix=prefix,
            secret_hash=hash_secret(secret),
            created_at=now,
            created_by=staff.label,
        )
        .returning(terminal_keys.c.id)
    )
    assert key_id is not None
    return IssuedKey(
        terminal_id=terminal_id,
        key_id=int(key_id),
        prefix=prefix,
        api_key=f"{KEY_SCHEME}_{prefix}_{secret}",
        created_at=now,
    )
