"""Fixtures for the HTTP API tests: the app on a migrated database, via Litestar's test client.

- ``clock``: a mutable clock (starts at ``START``) handed to ``create_app(..., clock=clock)``;
  tests move time with ``clock.advance(...)``.
- ``stack`` (SQLite) and ``any_stack`` (SQLite and PostgreSQL, through ``db_url``): a running
  app with two merchants inserted directly, one API client each (``stack.shop`` for the first
  merchant, ``stack.rival`` for the second), built with ``parse_api_keys``.
- ``program``: a program of the shop (30-day expiry) created through ``POST /api/v1/programs``.
- ``stack_factory``: builds further stacks (e.g. with ``redis_url`` set) that close at test end.

``Stack.snapshot()`` reads the whole ledger (row counts of every table but the idempotency keys,
every account's cached balance and version, every lot's remainder and held points, every hold's
state) so that a test can show that a refused request changed nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.app.factory import create_app
from loyalty.app.settings import Settings, parse_api_keys
from loyalty.db.engine import create_engine, in_transaction
from loyalty.db.tables import accounts, holds, idempotency_keys, lots, merchants, metadata
from loyalty.services.verify import Discrepancy, verify_ledger
from tests.support.services import run_async

T = TypeVar("T")

START = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
API = "/api/v1"
SHOP_SECRET = "shop-secret-key"
RIVAL_SECRET = "rival-secret-key"
#: ``key=AUTO`` (the default of ``Api.post``) sends a fresh, unique Idempotency-Key.
AUTO: Any = object()
_STACK_NUMBERS = itertools.count()


class MutableClock:
    """What the app believes the time is; tests move it forward."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Api:
    """One API client (a bearer secret) talking to the app."""

    client: TestClient[Litestar]
    client_id: str
    secret: str
    merchant_id: int
    key_prefix: str = "s"
    _keys: Iterator[int] = field(default_factory=itertools.count)

    def new_key(self) -> str:
        return f"{self.client_id}-{self.key_prefix}-key-{next(self._keys)}"

    def headers(self, key: Any = AUTO, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        headers: dict[str, Any] = {"Authorization": f"Bearer {self.secret}"}
        if key is AUTO:
            key = self.new_key()
        if key is not None:
            headers["Idempotency-Key"] = key
        headers.update(extra or {})
        return headers

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        key: Any = AUTO,
        headers: dict[str, Any] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """POST ``body`` as JSON (or raw ``content``) to ``/api/v1`` + ``path``."""
        sent = self.headers(key, headers)
        if content is not None:
            sent.setdefault("Content-Type", "application/json")
            return self.client.post(API + path, content=content, headers=sent)
        if body is None:
            return self.client.post(API + path, headers=sent)
        return self.client.post(API + path, json=body, headers=sent)

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        return self.client.get(API + path, params=params, headers=self.headers(key=None))

    def ok(self, path: str, body: Any = None, *, key: Any = AUTO) -> dict[str, Any]:
        """POST and insist on 201 Created; the JSON answer."""
        response = self.post(path, body, key=key)
        assert response.status_code == 201, response.text
        assert response.headers["content-type"] == "application/json"
        assert "idempotent-replayed" not in response.headers
        data: dict[str, Any] = response.json()
        return data

    def read(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET and insist on 200 OK; the JSON answer."""
        response = self.get(path, params)
        assert response.status_code == 200, response.text
        return response.json()


@dataclass(frozen=True)
class LedgerSnapshot:
    counts: dict[str, int]
    accounts: list[tuple[int, int, int, int]]
    lots: list[tuple[int, int, int]]
    holds: list[tuple[int, str, int]]


@dataclass
class Stack:
    """A running app, its engine (for direct reads) and the two API clients."""

    app: Litestar
    client: TestClient[Litestar]
    clock: MutableClock
    url: str
    shop: Api
    rival: Api

    @property
    def engine(self) -> AsyncEngine:
        engine: AsyncEngine = self.app.state.engine
        return engine

    def run(self, work: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run async ``work(*args)`` on the app's event loop (so the app's engine works)."""
        return self.client.blocking_portal.call(work, *args)

    def read_db(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async def go() -> T:
            return await in_transaction(self.engine, work, read_only=True)

        return self.run(go)

    def snapshot(self) -> LedgerSnapshot:
        async def work(conn: AsyncConnection) -> LedgerSnapshot:
            counts = {}
            for table in metadata.sorted_tables:
                if table is idempotency_keys:
                    continue
                counts[table.name] = int(
                    await conn.scalar(select(func.count()).select_from(table)) or 0
                )
            account_rows = await conn.execute(
                select(
                    accounts.c.id, accounts.c.posted, accounts.c.held, accounts.c.version
                ).order_by(accounts.c.id)
            )
            lot_rows = await conn.execute(
                select(lots.c.id, lots.c.remaining, lots.c.held).order_by(lots.c.id)
            )
            hold_rows = await conn.execute(
                select(holds.c.id, holds.c.status, holds.c.captured).order_by(holds.c.id)
            )
            return LedgerSnapshot(
                counts=counts,
                accounts=[tuple(row) for row in account_rows],
                lots=[tuple(row) for row in lot_rows],
                holds=[tuple(row) for row in hold_rows],
            )

        return self.read_db(work)

    def idempotency_rows(self) -> dict[tuple[str, str], str]:
        """Every stored idempotency key: (client id, key) -> outcome ('ok' or an error code)."""

        async def work(conn: AsyncConnection) -> dict[tuple[str, str], str]:
            rows = await conn.execute(
                select(
                    idempotency_keys.c.client_id, idempotency_keys.c.key, idempotency_keys.c.outcome
                )
            )
            return {(row.client_id, row.key): row.outcome for row in rows}

        return self.read_db(work)

    def verify(self) -> list[Discrepancy]:
        return self.run(verify_ledger, self.engine)

    def create_program(self, api: Api | None = None, **overrides: Any) -> dict[str, Any]:
        body = {
            "code": "bonus",
            "name": "Bonuspunkte",
            "currency": "EUR",
            "expiry_kind": "after_days",
            "expiry_value": 30,
        }
        body.update(overrides)
        return (api or self.shop).ok("/programs", body)

    def enroll(self, program_id: int, name: str, api: Api | None = None) -> int:
        data = (api or self.shop).ok(f"/programs/{program_id}/members", {"display_name": name})
        member_id: int = data["member_id"]
        return member_id


async def _insert_merchants(url: str, names: tuple[str, ...]) -> list[int]:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            ids = []
            for name in names:
                merchant_id = await conn.scalar(
                    merchants.insert().values(name=name, created_at=START).returning(merchants.c.id)
                )
                assert merchant_id is not None
                ids.append(int(merchant_id))
            return ids
    finally:
        await engine.dispose()


def open_stack(
    exits: ExitStack,
    url: str,
    clock: MutableClock,
    *,
    redis_url: str | None = None,
    merchant_ids: tuple[int, int] | None = None,
) -> Stack:
    """Start the app on the migrated database at ``url``, with an API client for each of two
    merchants: ``merchant_ids`` when the database has them already, else two inserted now."""
    shop_id, rival_id = merchant_ids or run_async(
        lambda: _insert_merchants(url, ("Bäckerei Sonnenschein", "Konditorei Mond"))
    )
    settings = Settings(
        database_url=url,
        redis_url=redis_url,
        api_clients=parse_api_keys(f"shop={SHOP_SECRET}@{shop_id},rival={RIVAL_SECRET}@{rival_id}"),
        sweep_interval_seconds=0,
        db_pool_size=2,
    )
    app = create_app(settings, clock=clock)
    client = exits.enter_context(TestClient(app))
    # Close the engine's connections before the app shuts down: the app's own shutdown leaves
    # them open once more than one app was built in the process (see test_health.py,
    # test_shutdown_closes_the_database_connections), and an unclosed connection is a
    # ResourceWarning, i.e. an error, in whichever test the garbage collector runs.
    exits.callback(client.blocking_portal.call, app.state.engine.dispose)
    # Keys differ from those of any earlier stack on the same database (a copied one).
    stack_number = next(_STACK_NUMBERS)
    return Stack(
        app=app,
        client=client,
        clock=clock,
        url=url,
        shop=Api(client, "shop", SHOP_SECRET, shop_id, key_prefix=f"s{stack_number}"),
        rival=Api(client, "rival", RIVAL_SECRET, rival_id, key_prefix=f"s{stack_number}"),
    )


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock()


@pytest.fixture
def stack(sqlite_url: str, clock: MutableClock) -> Iterator[Stack]:
    """The app on a fresh SQLite database."""
    with ExitStack() as exits:
        yield open_stack(exits, sqlite_url, clock)


@pytest.fixture
def any_stack(db_url: str, clock: MutableClock) -> Iterator[Stack]:
    """The app on a fresh database, once on SQLite and once on PostgreSQL."""
    with ExitStack() as exits:
        yield open_stack(exits, db_url, clock)


@pytest.fixture
def stack_factory(clock: MutableClock) -> Iterator[Callable[..., Stack]]:
    """``stack_factory(url, redis_url=None)``: more stacks, closed at the end of the test."""
    with ExitStack() as exits:

        def factory(url: str, *, redis_url: str | None = None) -> Stack:
            return open_stack(exits, url, clock, redis_url=redis_url)

        yield factory


@pytest.fixture
def program(stack: Stack) -> dict[str, Any]:
    """The shop's program "bonus" (points expire 30 days after they are earned), via the API."""
    return stack.create_program()
