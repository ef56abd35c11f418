"""Idempotency keys (DESIGN.md invariant 4; Stripe's and the IETF draft's semantics).

- same client + key + same request: the stored outcome is replayed (success or business refusal);
- same client + key + different request: refused with ``idempotency_key_reused``;
- same client + key while the first request is still running: ``idempotency_key_in_flight``;
- a failure that rolled back (a crash, a 5xx) stores nothing, so the retry runs.

The key row is written in the same transaction as the operation's journal, so an operation that
committed but whose response was lost is replayed, never repeated. "In flight" is detected with
an in-process registry (requests of this process) plus, on PostgreSQL, a transaction-scoped
advisory lock (requests of other processes); a crashed holder releases both with its connection.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction, is_postgres
from loyalty.db.tables import idempotency_keys
from loyalty.domain.errors import DomainError, ErrorCode

R = TypeVar("R", bound=msgspec.Struct)

MAX_KEY_LENGTH = 128
OK = "ok"


class Replayable(msgspec.Struct, Generic[R], frozen=True):
    result: R
    replayed: bool


class StoredRejection(msgspec.Struct, frozen=True):
    code: str
    detail: str
    extra: dict[str, Any] = {}


def validate_key(key: str | None) -> str:
    if key is None or key == "":
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_MISSING, "the Idempotency-Key header is required"
        )
    if len(key) > MAX_KEY_LENGTH:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_INVALID,
            f"the Idempotency-Key is longer than {MAX_KEY_LENGTH} characters",
            length=len(key),
        )
    if not all("!" <= ch <= "~" for ch in key):
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_INVALID,
            "the Idempotency-Key may contain only printable ASCII characters without spaces",
        )
    return key


def fingerprint(operation: str, *parts: object) -> str:
    """A stable hash of what a request asks for: the operation, its path ids and its body."""
    digest = hashlib.sha256(operation.encode())
    for part in parts:
        digest.update(b"\x1f")
        digest.update(msgspec.json.encode(part, order="sorted"))
    return digest.hexdigest()


def _advisory_lock_id(client_id: str, key: str) -> int:
    raw = hashlib.sha256(f"{client_id}\x1f{key}".encode()).digest()[:8]
    return int.from_bytes(raw, "big", signed=True)


class InFlightRegistry:
    """Keys whose first request is still running in this process."""

    def __init__(self) -> None:
        self._running: set[tuple[str, str]] = set()

    @contextmanager
    def claim(self, client_id: str, key: str) -> Iterator[None]:
        token = (client_id, key)
        if token in self._running:
            raise _in_flight()
        self._running.add(token)
        try:
            yield
        finally:
            self._running.discard(token)


def _in_flight() -> DomainError:
    return DomainError(
        ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT,
        "a request with this Idempotency-Key is still being processed; retry later",
    )


class IdempotentExecutor:
    def __init__(
        self, engine: AsyncEngine, registry: InFlightRegistry, clock: Callable[[], datetime]
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def run(
        self,
        *,
        client_id: str,
        key: str,
        request_hash: str,
        result_type: type[R],
        work: Callable[[AsyncConnection], Awaitable[R]],
        journal_id_of: Callable[[R], int | None] = lambda _: None,
        remember_refusals: bool = True,
    ) -> Replayable[R]:
        """Run ``work`` once per (client, key). With ``remember_refusals`` False a business
        refusal leaves no trace, so that a corrected request may use the key: for keys that are
        the caller's own ids of a thing (a POS transaction id), which it cannot change."""
        key = validate_key(key)
        with self._registry.claim(client_id, key):
            for _ in range(3):
                try:
                    return await self._attempt(
                        client_id, key, request_hash, result_type, work, journal_id_of
                    )
                except DomainError as refusal:
                    if refusal.replayed or refusal.code in _NOT_STORED or not remember_refusals:
                        raise
                    await self._store_rejection(client_id, key, request_hash, refusal, result_type)
                    raise
                except IntegrityError as error:
                    # Another process stored this key between our look-up and our insert: the
                    # next attempt replays what it stored. Any other integrity error is a bug.
                    if "idempotency_keys" not in str(error):
                        raise
            raise AssertionError("idempotency key stored and missing at once")

    async def _attempt(
        self,
        client_id: str,
        key: str,
        request_hash: str,
        result_type: type[R],
        work: Callable[[AsyncConnection], Awaitable[R]],
        journal_id_of: Callable[[R], int | None],
    ) -> Replayable[R]:
        async def transaction(conn: AsyncConnection) -> Replayable[R]:
            stored = await _claim(conn, client_id, key)
            if stored is not None:
                return _replay(stored, request_hash, result_type)
            result = await work(conn)
            await self._store(
                conn,
                client_id,
                key,
                request_hash,
                OK,
                msgspec.json.encode(result),
                journal_id_of(result),
            )
            return Replayable(result=result, replayed=False)

        return await in_transaction(self._engine, transaction)

    async def _store(
        self,
        conn: AsyncConnection,
        client_id: str,
        key: str,
        request_hash: str,
        outcome: str,
        response: bytes,
        journal_id: int | None = None,
    ) -> None:
        await conn.execute(
            _STORE_KEY,
            {
                "client_id": client_id,
                "key": key,
                "request_hash": request_hash,
                "outcome": outcome,
                "response": response,
                "journal_id": journal_id,
                "created_at": self._clock(),
            },
        )

    async def _store_rejection(
        self,
        client_id: str,
        key: str,
        request_hash: str,
        refusal: DomainError,
        result_type: type[R],
    ) -> None:
        """Business refusals are answers too: store them so that a retry gets the same one."""
        body = StoredRejection(code=str(refusal.code), detail=refusal.detail, extra=refusal.extra)

        async def transaction(conn: AsyncConnection) -> None:
            stored = await _claim(conn, client_id, key)
            if stored is not None:
                # Someone stored an answer meanwhile; theirs stands (and is what a retry sees).
                return
            await self._store(
                conn, client_id, key, request_hash, str(refusal.code), msgspec.json.encode(body)
            )

        # An IntegrityError means a concurrent attempt stored its answer first: that one stands.
        with contextlib.suppress(IntegrityError):
            await in_transaction(self._engine, transaction)


#: Refusals about the key itself are not answers to the request and are never stored.
_NOT_STORED = frozenset(
    {
        ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT,
        ErrorCode.IDEMPOTENCY_KEY_REUSED,
        ErrorCode.IDEMPOTENCY_KEY_MISSING,
        ErrorCode.IDEMPOTENCY_KEY_INVALID,
    }
)


# Built once: every write on the till's path runs these.
_STORE_KEY = idempotency_keys.insert()
_TRY_LOCK = select(func.pg_try_advisory_xact_lock(bindparam("lock_id")))
_STORED = select(
    idempotency_keys.c.request_hash,
    idempotency_keys.c.outcome,
    idempotency_keys.c.response,
).where(
    idempotency_keys.c.client_id == bindparam("client_id"),
    idempotency_keys.c.key == bindparam("key"),
)


async def _claim(conn: AsyncConnection, client_id: str, key: str) -> Any | None:
    """Take the cross-process lock for the key (PostgreSQL) and return its stored row, if any."""
    if is_postgres(conn):
        locked = await conn.scalar(_TRY_LOCK, {"lock_id": _advisory_lock_id(client_id, key)})
        if not locked:
            raise _in_flight()
    return (await conn.execute(_STORED, {"client_id": client_id, "key": key})).first()


def _replay(stored: Any, request_hash: str, result_type: type[R]) -> Replayable[R]:
    if stored.request_hash != request_hash:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "this Idempotency-Key was used with a different request",
        )
    if stored.outcome == OK:
        return Replayable(
            result=msgspec.json.decode(stored.response, type=result_type), replayed=True
        )
    rejection = msgspec.json.decode(stored.response, type=StoredRejection)
    error = DomainError(ErrorCode(rejection.code), rejection.detail, **rejection.extra)
    error.replayed = True
    raise error
