"""Vendor connections: a merchant's account at a POS vendor (a Toast restaurant, a Shopify shop)
bound to one of its terminals, with the secret that authenticates the vendor's requests.

The vendor names the account in every request (Toast: ``Toast-Restaurant-External-ID``;
Shopify: ``X-Shopify-Shop-Domain``); the connection says which terminal those requests act as
(merchant, program, location) and holds the secret to check them with. For a vendor that
presents a key we issue (Toast), the platform draws the key and shows it once; for one that
signs with its own secret (Shopify's app client secret), the manager enters it. Either way the
secret is stored sealed (``SecretBox``), never in the clear, and never shown again.

Lookups are cached per process for a few seconds, like terminal keys: a disabled connection or
a replaced secret takes effect within that time.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from msgspec import Struct
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import merchants, programs, terminals, vendor_connections
from loyalty.domain.errors import DomainError, ErrorCode

from .audit import record_entry
from .context import Staff, utc_now
from .secret_box import SecretBox, UnreadableSecretError
from .terminals import (
    AUTH_CACHE_SECONDS,
    LAST_USED_RESOLUTION,
    TERMINAL_COLUMNS,
    Terminal,
    terminal_of,
)

#: Prefix of the keys the platform issues to vendors that present a key.
ISSUED_KEY_PREFIX = "vk_"
MIN_SECRET_LENGTH = 16


class VendorConnectionView(Struct, frozen=True, kw_only=True):
    connection_id: int
    vendor: str
    account: str
    terminal_id: int
    terminal_code: str
    calling_code: str | None
    #: The secret's last four characters, to tell which one is configured.
    secret_hint: str
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None
    last_used_at: datetime | None


class IssuedVendorSecret(Struct, frozen=True, kw_only=True):
    connection: VendorConnectionView
    #: The key the platform drew for the vendor to present, shown this once; None when the
    #: manager entered the vendor's own secret.
    secret: str | None = None


@dataclass(frozen=True, slots=True)
class VendorConnection:
    """A connection as the vendor route needs it: the secret in the clear and the till."""

    connection_id: int
    vendor: str
    account: str
    secret: str
    calling_code: str | None
    till: Terminal


class VendorConnections:
    def __init__(
        self,
        engine: AsyncEngine,
        box: SecretBox,
        vendors: Mapping[str, bool],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``vendors``: every vendor the platform can mount, by name -> whether the platform
        issues its key (True: the vendor presents a key we drew; False: it signs with its own
        secret, which the manager enters)."""
        self._engine = engine
        self._box = box
        self._vendors = dict(vendors)
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, VendorConnection]] = {}

    # --- management (staff) ------------------------------------------------------------------

    async def create(
        self,
        staff: Staff,
        *,
        vendor: str,
        account: str,
        terminal_id: int,
        secret: str | None,
        calling_code: str | None,
    ) -> IssuedVendorSecret:
        secret, issued = self._secret_for(vendor, secret)

        async def work(conn: AsyncConnection) -> IssuedVendorSecret:
            now = self._clock()
            await _own_terminal(conn, staff, terminal_id)
            try:
                async with conn.begin_nested():
                    connection_id = await conn.scalar(
                        vendor_connections.insert()
                        .values(
                            merchant_id=staff.merchant_id,
                            terminal_id=terminal_id,
                            vendor=vendor,
                            account=account,
                            secret_sealed=self._box.seal(secret),
                            secret_hint=secret[-4:],
                            calling_code=calling_code,
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(vendor_connections.c.id)
                    )
            except IntegrityError:
                raise DomainError(
                    ErrorCode.VENDOR_ACCOUNT_TAKEN,
                    f"this {vendor} account is already connected",
                    vendor=vendor,
                    account=account,
                ) from None
            assert connection_id is not None
            await record_entry(
                conn,
                staff.merchant_id,
                staff,
                action="vendor_connection.create",
                entity="vendor_connection",
                entity_id=str(connection_id),
                at=now,
                after={"vendor": vendor, "account": account, "terminal_id": terminal_id},
            )
            view = await _view(conn, staff, int(connection_id))
            return IssuedVendorSecret(connection=view, secret=secret if issued else None)

        return await in_transaction(self._engine, work)

    async def list_connections(self, staff: Staff) -> list[VendorConnectionView]:
        async def work(conn: AsyncConnection) -> list[VendorConnectionView]:
            rows = (
                await conn.execute(
                    _VIEW_QUERY.where(
                        vendor_connections.c.merchant_id == staff.merchant_id
                    ).order_by(vendor_connections.c.id)
                )
            ).all()
            return [_view_of(row) for row in rows]

        return await in_transaction(self._engine, work, read_only=True)

    async def replace_secret(
        self, staff: Staff, connection_id: int, secret: str | None
    ) -> IssuedVendorSecret:
        """A new secret at once (the vendor's own after it was rotated there, or a new key we
        draw): the old one stops working within the cache time."""

        async def work(conn: AsyncConnection) -> IssuedVendorSecret:
            now = self._clock()
            before = await _view(conn, staff, connection_id)
            new_secret, issued = self._secret_for(before.vendor, secret)
            await conn.execute(
                update(vendor_connections)
                .where(vendor_connections.c.id == connection_id)
                .values(
                    secret_sealed=self._box.seal(new_secret),
                    secret_hint=new_secret[-4:],
                    updated_at=now,
                )
            )
            await record_entry(
                conn,
                staff.merchant_id,
                staff,
                action="vendor_connection.replace_secret",
                entity="vendor_connection",
                entity_id=str(connection_id),
                at=now,
                before={"secret_hint": before.secret_hint},
                after={"secret_hint": new_secret[-4:]},
            )
            view = await _view(conn, staff, connection_id)
            return IssuedVendorSecret(connection=view, secret=new_secret if issued else None)

        issued = await in_transaction(self._engine, work)
        self._cache.clear()
        return issued

    async def disable(self, staff: Staff, connection_id: int) -> VendorConnectionView:
        async def work(conn: AsyncConnection) -> VendorConnectionView:
            now = self._clock()
            before = await _view(conn, staff, connection_id)
            if before.disabled_at is None:
                await conn.execute(
                    update(vendor_connections)
                    .where(vendor_connections.c.id == connection_id)
                    .values(disabled_at=now, updated_at=now)
                )
                await record_entry(
                    conn,
                    staff.merchant_id,
                    staff,
                    action="vendor_connection.disable",
                    entity="vendor_connection",
                    entity_id=str(connection_id),
                    at=now,
                    before={"vendor": before.vendor, "account": before.account},
                )
            return await _view(conn, staff, connection_id)

        view = await in_transaction(self._engine, work)
        self._cache.clear()
        return view

    # --- lookup (vendor requests) --------------------------------------------------------------

    async def find(self, vendor: str, account: str | None) -> VendorConnection:
        """The active connection of ``vendor`` for ``account``; ``unauthorized`` when there is
        none (the answer does not tell an unknown account from a disabled one)."""
        if not account or len(account) > 255:
            raise _unknown_account(vendor)
        cached = self._cache.get((vendor, account))
        if cached is not None and time.monotonic() - cached[0] < AUTH_CACHE_SECONDS:
            return cached[1]

        async def work(conn: AsyncConnection) -> VendorConnection:
            now = self._clock()
            row = (
                await conn.execute(
                    select(
                        vendor_connections.c.id.label("connection_id"),
                        vendor_connections.c.secret_sealed,
                        vendor_connections.c.calling_code,
                        vendor_connections.c.disabled_at.label("connection_disabled_at"),
                        vendor_connections.c.last_used_at,
                        *TERMINAL_COLUMNS,
                    )
                    .join(terminals, terminals.c.id == vendor_connections.c.terminal_id)
                    .join(programs, programs.c.id == terminals.c.program_id)
                    .join(merchants, merchants.c.id == terminals.c.merchant_id)
                    .where(
                        vendor_connections.c.vendor == vendor,
                        vendor_connections.c.account == account,
                    )
                )
            ).first()
            if row is None or row.connection_disabled_at is not None or row.disabled_at is not None:
                raise _unknown_account(vendor)
            try:
                secret = self._box.open(row.secret_sealed)
            except UnreadableSecretError:
                # Sealed under another server key: the manager must enter the secret again.
                raise _unknown_account(vendor) from None
            if row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION:
                await conn.execute(
                    update(vendor_connections)
                    .where(vendor_connections.c.id == row.connection_id)
                    .values(last_used_at=now)
                )
            return VendorConnection(
                connection_id=row.connection_id,
                vendor=vendor,
                account=account,
                secret=secret,
                calling_code=row.calling_code,
                till=terminal_of(row, None),
            )

        connection = await in_transaction(self._engine, work)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[(vendor, account)] = (time.monotonic(), connection)
        return connection

    # --- helpers -------------------------------------------------------------------------------

    def _secret_for(self, vendor: str, secret: str | None) -> tuple[str, bool]:
        """The secret to store and whether the platform drew it."""
        issues_key = self._vendors.get(vendor)
        if issues_key is None:
            raise DomainError(
                ErrorCode.UNKNOWN_VENDOR,
                f"no adapter for vendor {vendor!r}",
                vendor=vendor,
                known=sorted(self._vendors),
            )
        if secret is not None:
            if len(secret) < MIN_SECRET_LENGTH:
                raise DomainError(
                    ErrorCode.VALIDATION_FAILED,
                    f"a vendor secret has at least {MIN_SECRET_LENGTH} characters",
                    field="secret",
                )
            return secret, False
        if not issues_key:
            raise DomainError(
                ErrorCode.VALIDATION_FAILED,
                f"{vendor} signs with its own secret: enter it (the app's client secret)",
                field="secret",
            )
        return ISSUED_KEY_PREFIX + secrets.token_urlsafe(32), True


def _unknown_account(vendor: str) -> DomainError:
    return DomainError(
        ErrorCode.UNAUTHORIZED, f"this {vendor} account is not connected to the platform"
    )


async def _own_terminal(conn: AsyncConnection, staff: Staff, terminal_id: int) -> None:
    found = await conn.scalar(
        select(terminals.c.id).where(
            terminals.c.id == terminal_id, terminals.c.merchant_id == staff.merchant_id
        )
    )
    if found is None:
        raise DomainError(ErrorCode.TERMINAL_NOT_FOUND, "no such terminal", terminal_id=terminal_id)


_VIEW_QUERY = select(
    vendor_connections.c.id,
    vendor_connections.c.vendor,
    vendor_connections.c.account,
    vendor_connections.c.terminal_id,
    terminals.c.code.label("terminal_code"),
    vendor_connections.c.calling_code,
    vendor_connections.c.secret_hint,
    vendor_connections.c.created_at,
    vendor_connections.c.updated_at,
    vendor_connections.c.disabled_at,
    vendor_connections.c.last_used_at,
).join(terminals, terminals.c.id == vendor_connections.c.terminal_id)


def _view_of(row: Any) -> VendorConnectionView:
    return VendorConnectionView(
        connection_id=row.id,
        vendor=row.vendor,
        account=row.account,
        terminal_id=row.terminal_id,
        terminal_code=row.terminal_code,
        calling_code=row.calling_code,
        secret_hint=row.secret_hint,
        created_at=row.created_at,
        updated_at=row.updated_at,
        disabled_at=row.disabled_at,
        last_used_at=row.last_used_at,
    )


async def _view(conn: AsyncConnection, staff: Staff, connection_id: int) -> VendorConnectionView:
    row = (
        await conn.execute(
            _VIEW_QUERY.where(
                vendor_connections.c.id == connection_id,
                vendor_connections.c.merchant_id == staff.merchant_id,
            )
        )
    ).first()
    if row is None:
        raise DomainError(
            ErrorCode.VENDOR_CONNECTION_NOT_FOUND,
            "no such vendor connection",
            connection_id=connection_id,
        )
    return _view_of(row)
