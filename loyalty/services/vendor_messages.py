"""The log of vendor messages: each vendor message id once per connection, with its answer and
what it did.

A vendor retries a message with the same id (Toast: the ``Toast-Transaction-GUID`` after a
timeout; Shopify: a duplicate delivery with the same ``X-Shopify-Event-Id``). The first
answer is stored and replayed to the retry, so the vendor sees one consistent outcome. The
effects on points do not depend on this log: every service call beneath it is keyed by the
vendor's own transaction, order or refund id, so a retry that runs again (its first attempt
crashed before the answer was stored) still counts once.

``effects`` records what a message did (the sale, the redemptions it placed): a Toast reverse
names an earlier message and undoes exactly that.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from msgspec import Struct
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import vendor_messages
from loyalty.domain.errors import DomainError, ErrorCode

from .context import utc_now


class StoredAnswer(Struct, frozen=True, kw_only=True):
    status_code: int
    body: bytes


class EarlierMessage(Struct, frozen=True, kw_only=True):
    message_type: str
    transaction_id: str | None
    effects: dict[str, Any]


class VendorMessages:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    async def begin(
        self,
        connection_id: int,
        key: str,
        *,
        message_type: str,
        request_hash: str,
    ) -> StoredAnswer | None:
        """Record the message; the stored answer when it was answered before (a retry).
        ``idempotency_key_reused`` when the id came before with another request."""

        async def work(conn: AsyncConnection) -> StoredAnswer | None:
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        vendor_messages.insert().values(
                            connection_id=connection_id,
                            message_key=key,
                            message_type=message_type,
                            request_hash=request_hash,
                            created_at=self._clock(),
                        )
                    )
                return None
            except IntegrityError:
                pass
            row = (
                await conn.execute(
                    select(
                        vendor_messages.c.request_hash,
                        vendor_messages.c.status_code,
                        vendor_messages.c.response,
                    ).where(
                        vendor_messages.c.connection_id == connection_id,
                        vendor_messages.c.message_key == key,
                    )
                )
            ).one()
            if row.request_hash != request_hash:
                raise DomainError(
                    ErrorCode.IDEMPOTENCY_KEY_REUSED,
                    "this vendor message id came before with another request",
                )
            if row.status_code is None:
                return None  # never answered (the first attempt failed): run it again
            return StoredAnswer(status_code=row.status_code, body=bytes(row.response))

        return await in_transaction(self._engine, work)

    async def answer(
        self,
        connection_id: int,
        key: str,
        *,
        status_code: int,
        body: bytes,
        transaction_id: str | None,
        effects: dict[str, Any],
    ) -> None:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                update(vendor_messages)
                .where(
                    vendor_messages.c.connection_id == connection_id,
                    vendor_messages.c.message_key == key,
                )
                .values(
                    status_code=status_code,
                    response=body,
                    transaction_id=transaction_id,
                    effects=effects or None,
                    answered_at=self._clock(),
                )
            )

        await in_transaction(self._engine, work)

    async def earlier(self, connection_id: int, key: str) -> EarlierMessage | None:
        """What an earlier message of the connection did; None when it never came or was
        never answered with success."""

        async def work(conn: AsyncConnection) -> EarlierMessage | None:
            row = (
                await conn.execute(
                    select(
                        vendor_messages.c.message_type,
                        vendor_messages.c.transaction_id,
                        vendor_messages.c.effects,
                        vendor_messages.c.status_code,
                    ).where(
                        vendor_messages.c.connection_id == connection_id,
                        vendor_messages.c.message_key == key,
                    )
                )
            ).first()
            if row is None or row.status_code is None or row.status_code >= 300:
                return None
            return EarlierMessage(
                message_type=row.message_type,
                transaction_id=row.transaction_id,
                effects=dict(row.effects or {}),
            )

        return await in_transaction(self._engine, work, read_only=True)
