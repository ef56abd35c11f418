"""Rate limits per key for the terminal API (/api/v1/pos), counted in the app's store registry:
in Redis when LOYALTY_REDIS_URL is set (every app process shares the counts), else in the
process.

What is counted (fixed one-minute windows on the app's clock):

- every request with a terminal API key, against that key: ``key:<prefix>:<hash>``;
- every request with a staff session token, against that session and the till it names in
  X-Terminal: ``staff:<hash>``;
- failed authentications (answers 401), against the client's address: ``failed:<address>``.

The keys are made from the request's headers alone: no database query, and no secret (the
public key prefix and SHA-256 digests of whole credentials). A key's digest needs its secret, so
nobody can use up another till's allowance by sending its prefix with a wrong secret.

Made-up credentials would each get a fresh allowance. So a client address whose failed
authentications reach the limit in a minute is refused for the rest of that minute, except for
credentials that have authenticated in the last day (marked ``good:<...>``, renewed by their
first request of each minute): a till working behind the same address as a misconfigured or
hostile one keeps working. Requests without any credential are refused by the same count.

Why not ``litestar.middleware.rate_limit.RateLimitConfig``: its middleware reads the
request history from the store and writes it back under a lock of its own process, so app
processes sharing Redis overwrite each other's counts (concurrent requests are lost); it keeps
a list of every request's timestamp per key (600 integers written back on every request at the
default limit); it reads the wall clock; it has no way to count failed authentications, which
are known only after the terminal guard ran; and its 429 carries no Retry-After. Here Redis
counts with INCR + EXPIRE in one MULTI (one round trip per request), and the in-process store
under a lock of the app.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar import Request, Router
from litestar.datastructures import Headers, MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware.base import DefineMiddleware
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.asyncio import Redis
from redis.exceptions import RedisError

from loyalty.domain.errors import ErrorCode
from loyalty.services.terminals import KEY_SCHEME, split_key

from .problems import problem

#: What a store that cannot be reached raises (redis-py's errors are not OSErrors).
STORE_ERRORS = (RedisError, OSError)
log = logging.getLogger("loyalty.app")

#: The store of the app's registry that holds the counts (its namespace in Redis).
POS_RATE_LIMIT_STORE = "pos_rate_limits"
WINDOW_SECONDS = 60
#: A credential that authenticated within this time is not refused for its address's failures.
GOOD_SECONDS = 24 * 3600
#: Keys outlive their window by this much, so that processes whose clocks differ a little agree.
EXPIRY_SLACK_SECONDS = 5
_PREFIX = re.compile(r"[0-9A-Za-z]{1,32}")


@dataclass(frozen=True, slots=True)
class Tally:
    """The counts one request is judged by."""

    #: Requests of its credential in this window, itself included (0: no credential).
    count: int
    #: Failed authentications from its address in this window.
    failures: int
    #: Its credential authenticated within GOOD_SECONDS.
    good: bool


class RedisCounter:
    """Atomic counts in Redis, shared by every process: INCR + EXPIRE in one MULTI."""

    def __init__(self, redis: Redis, namespace: str | None) -> None:
        self._redis = redis
        self._namespace = namespace

    def _key(self, key: str) -> str:
        return f"{self._namespace}:{key}" if self._namespace else key

    async def tally(
        self, counted: str | None, failures: str, good: str | None, expires_in: int
    ) -> Tally:
        async with self._redis.pipeline(transaction=True) as pipe:
            if counted is not None:
                pipe.incr(self._key(counted))
                pipe.expire(self._key(counted), expires_in)
            pipe.get(self._key(failures))
            if good is not None:
                pipe.exists(self._key(good))
            results = await pipe.execute()
        if counted is None:
            return Tally(count=0, failures=int(results[0] or 0), good=False)
        return Tally(
            count=int(results[0]),
            failures=int(results[2] or 0),
            good=good is not None and bool(results[3]),
        )

    async def add_failure(self, failures: str, expires_in: int) -> None:
        await self.count(failures, expires_in)

    async def count(self, key: str, expires_in: int) -> int:
        """Add one to ``key`` (kept ``expires_in`` seconds); the count with it."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._key(key))
            pipe.expire(self._key(key), expires_in)
            results = await pipe.execute()
        return int(results[0])

    async def mark_good(self, good: str) -> None:
        await self._redis.set(self._key(good), b"1", ex=GOOD_SECONDS)


class StoreCounter:
    """Counts in any store, made atomic by a lock of this process: right for the in-process
    MemoryStore, which no other process sees anyway."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = asyncio.Lock()
        self._swept_window = 0

    async def _add(self, key: str, expires_in: int) -> int:
        count = int(await self._store.get(key) or 0) + 1
        await self._store.set(key, str(count), expires_in=expires_in)
        return count

    async def tally(
        self, counted: str | None, failures: str, good: str | None, expires_in: int
    ) -> Tally:
        async with self._lock:
            count = 0 if counted is None else await self._add(counted, expires_in)
            failed = int(await self._store.get(failures) or 0)
            known = good is not None and await self._store.get(good) is not None
        return Tally(count=count, failures=failed, good=known)

    async def add_failure(self, failures: str, expires_in: int) -> None:
        await self.count(failures, expires_in)

    async def count(self, key: str, expires_in: int) -> int:
        """Add one to ``key`` (kept ``expires_in`` seconds); the count with it."""
        async with self._lock:
            return await self._add(key, expires_in)

    async def mark_good(self, good: str) -> None:
        await self._store.set(good, b"1", expires_in=GOOD_SECONDS)

    async def sweep(self, window: int) -> None:
        """Forget expired counts once a window (the memory store drops them only when read)."""
        if window != self._swept_window and isinstance(self._store, MemoryStore):
            self._swept_window = window
            await self._store.delete_expired()


def counter_for(store: Store) -> RedisCounter | StoreCounter:
    if isinstance(store, RedisStore):
        # The store's own client and namespace: Store has no atomic increment.
        return RedisCounter(store._redis, store.namespace)
    return StoreCounter(store)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def credential_of(authorization: str | None, terminal: str | None) -> str | None:
    """The counted name of a request's credential, from its headers alone; None without one."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 1024:
        return None
    if token.startswith(f"{KEY_SCHEME}_"):
        parts = split_key(token)
        if parts is None:
            return None
        prefix = parts[0] if _PREFIX.fullmatch(parts[0]) else "-"
        return f"key:{prefix}:{_digest(token)}"
    if not terminal:
        return None
    return f"staff:{_digest(token, terminal)}"


class RateLimiter:
    """``per_minute`` requests per credential on the routes its middleware guards (0: no limit).
    One per app: its in-process lock must not be shared between event loops."""

    def __init__(self, store: Store, *, per_minute: int, clock: Callable[[], datetime]) -> None:
        self.per_minute = per_minute
        self.counter = counter_for(store)
        self._clock = clock
        self._warned_window = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> RateLimiter:
        # Litestar deep-copies a router when it registers it: every copy counts in this store.
        return self

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def unavailable(self, error: Exception, window: int) -> None:
        """Say once a window that requests go uncounted because the store failed."""
        if window != self._warned_window:
            self._warned_window = window
            log.warning("POS rate limits not counted, the store failed: %r", error)

    def window(self) -> tuple[int, int]:
        """The current window's number and the whole seconds until it ends (at least 1)."""
        now = self._clock().timestamp()
        number = math.floor(now / WINDOW_SECONDS)
        return number, max(1, math.ceil((number + 1) * WINDOW_SECONDS - now))

    def headers(self, tally: Tally, resets_in: int) -> dict[str, str]:
        """The RateLimit headers (IETF draft; the names Litestar's rate limiter uses)."""
        return {
            "RateLimit-Policy": f"{self.per_minute}; w={WINDOW_SECONDS}",
            "RateLimit-Limit": str(self.per_minute),
            "RateLimit-Remaining": str(max(0, self.per_minute - tally.count)),
            "RateLimit-Reset": str(resets_in),
        }


class RateLimitMiddleware:
    """Counts each request before the terminal guard runs; refuses the ones over the limit with
    429 ``rate_limited`` (they reach no handler, so they write nothing)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.limiter
        if scope["type"] != ScopeType.HTTP or not limiter.enabled:
            await self.app(scope, receive, send)
            return
        request_headers = Headers.from_scope(scope)
        credential = credential_of(
            request_headers.get("authorization"), request_headers.get("x-terminal")
        )
        client = scope.get("client")
        address = client[0] if client else "unknown"
        number, resets_in = limiter.window()
        expires_in = resets_in + EXPIRY_SLACK_SECONDS
        failures = f"failed:{address}:{number}"
        good = None if credential is None else f"good:{credential}"
        counter = limiter.counter
        try:
            if isinstance(counter, StoreCounter):
                await counter.sweep(number)
            tally = await counter.tally(
                None if credential is None else f"{credential}:{number}", failures, good, expires_in
            )
        except STORE_ERRORS as error:
            # The tills keep selling while Redis is away: the limit protects, it does not decide.
            limiter.unavailable(error, number)
            await self.app(scope, receive, send)
            return
        limit_headers = {} if credential is None else limiter.headers(tally, resets_in)
        refusal = None
        if tally.count > limiter.per_minute:
            refusal = f"this key sent more than {limiter.per_minute} requests this minute"
        elif tally.failures >= limiter.per_minute and not tally.good:
            refusal = (
                f"{tally.failures} failed authentications from this address this minute; "
                "a credential that authenticated in the last day is still served"
            )
        if refusal is not None:
            await self._refuse(scope, receive, send, refusal, resets_in, limit_headers)
            return

        status: list[int] = []

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                if limit_headers:
                    response_headers = MutableScopeHeaders(message)
                    for name, value in limit_headers.items():
                        response_headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
        try:
            if status and status[0] == 401:
                await counter.add_failure(failures, expires_in)
            elif status and status[0] < 500 and good is not None and tally.count == 1:
                await counter.mark_good(good)
        except STORE_ERRORS as error:
            limiter.unavailable(error, number)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        detail: str,
        retry_after: int,
        limit_headers: dict[str, str],
    ) -> None:
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        response = problem(
            request,
            ErrorCode.RATE_LIMITED,
            f"{detail}; retry in {retry_after} s",
            extra={"limit": self.limiter.per_minute, "retry_after": retry_after},
            headers={**limit_headers, "Retry-After": str(retry_after)},
        )
        await response.to_asgi_response(None, request)(scope, receive, send)

    @classmethod
    def define(cls, limiter: RateLimiter) -> DefineMiddleware:
        """For a router's ``middleware=[...]``."""
        return DefineMiddleware(cls, limiter=limiter)


def rate_limited(router: Router, limiter: RateLimiter) -> Router:
    """``router`` with every request counted by ``limiter``, and no other route of the app."""
    return Router(
        path="/", route_handlers=[router], middleware=[RateLimitMiddleware.define(limiter)]
    )


__all__ = [
    "POS_RATE_LIMIT_STORE",
    "RateLimitMiddleware",
    "RateLimiter",
    "credential_of",
    "rate_limited",
]
