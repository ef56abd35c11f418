"""Fixtures for the admin API tests: the app of tests/app/conftest.py plus staff users.

- ``admin`` (SQLite) and ``any_admin`` (SQLite and PostgreSQL, through ``db_url``): an
  :class:`AdminStack`, the running app with two merchants (``stack.shop``, ``stack.rival``) and
  helpers to make staff users (``add_staff``) and log them in (``login``, ``session``).
- ``page_session(role)``: a staff user signed in to the admin pages (cookie), see
  :class:`PageSession`.
- ``clock``: the app's :class:`MutableClock` (the fixture of tests/app/conftest.py).

Argon2 with its real parameters costs a third of a second per hash or login on a CI machine, so
the app here runs with cheap Argon2id parameters (``FAST_HASHER``). ``test_passwords.py`` and
the CLI tests check the real parameters.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from admin.api import ADMIN_API_PREFIX
from admin.api.auth import STAFF_COOKIE
from loyalty.db.tables import audit_log, staff_sessions, staff_users
from loyalty.services.staff import StaffDirectory, StaffView
from tests.app.conftest import MutableClock, Stack, open_stack
from tests.app.conftest import clock as clock  # the app's clock fixture, here too

#: Argon2id still, with the smallest parameters argon2-cffi accepts.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "Sonnenblumen-Brot-42"
#: The test client's own site, as a browser's Origin header names it.
SITE_ORIGIN = "http://testserver.local"
_EMAILS = itertools.count(1)


@dataclass
class StaffSession:
    """A logged-in staff user talking to the admin API."""

    client: TestClient[Litestar]
    token: str
    staff_id: int
    merchant_id: int
    email: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        return self.client.get(ADMIN_API_PREFIX + path, params=params, headers=self.headers())

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return self.client.post(ADMIN_API_PREFIX + path, json=body, headers=self.headers())

    def put(self, path: str, body: Any) -> httpx.Response:
        return self.client.put(ADMIN_API_PREFIX + path, json=body, headers=self.headers())

    def patch(self, path: str, body: Any) -> httpx.Response:
        return self.client.patch(ADMIN_API_PREFIX + path, json=body, headers=self.headers())

    def read(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self.get(path, params)
        assert response.status_code == 200, response.text
        return response.json()


@dataclass
class PageSession:
    """A staff user signed in to the admin pages: the session cookie, sent explicitly (the
    client's cookie jar stays empty, so other requests of a test stay anonymous). Writes carry
    this site's Origin, as a browser's do."""

    client: TestClient[Litestar]
    token: str
    email: str

    def headers(self, origin: str | None = SITE_ORIGIN) -> dict[str, str]:
        headers = {"Cookie": f"{STAFF_COOKIE}={self.token}"}
        if origin is not None:
            headers["Origin"] = origin
        return headers

    def page(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """A page, not following redirects (a test sees the 303 to the sign-in page)."""
        return self.client.get(path, params=params, headers=self.headers(None))

    def call(
        self, method: str, path: str, body: Any = None, *, origin: str | None = SITE_ORIGIN
    ) -> httpx.Response:
        """An admin API request as the pages' script makes it (``path`` under /api/v1/admin)."""
        return self.client.request(
            method, ADMIN_API_PREFIX + path, json=body, headers=self.headers(origin)
        )


@dataclass
class AdminStack:
    stack: Stack
    directory: StaffDirectory

    @property
    def client(self) -> TestClient[Litestar]:
        return self.stack.client

    @property
    def clock(self) -> MutableClock:
        return self.stack.clock

    @property
    def shop_id(self) -> int:
        return self.stack.shop.merchant_id

    @property
    def rival_id(self) -> int:
        return self.stack.rival.merchant_id

    def add_staff(
        self,
        role: str,
        *,
        merchant_id: int | None = None,
        email: str | None = None,
        password: str = PASSWORD,
        display_name: str | None = None,
    ) -> StaffView:
        """A staff user made by the system (as ``loyalty staff create`` makes them)."""
        number = next(_EMAILS)
        return self.stack.run(
            lambda: self.directory.provision_staff(
                merchant_id or self.shop_id,
                email=email or f"{role}-{number}@example.com",
                password=password,
                role=role,
                display_name=display_name or f"{role.title()} {number}",
            )
        )

    def login_response(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return self.client.post(
            f"{ADMIN_API_PREFIX}/login", json={"email": email, "password": password}
        )

    def login(self, email: str, password: str = PASSWORD) -> StaffSession:
        response = self.login_response(email, password)
        assert response.status_code == 200, response.text
        body = response.json()
        staff_id = body["staff"]["staff_id"]
        return StaffSession(
            client=self.client,
            token=body["token"],
            staff_id=staff_id,
            merchant_id=self.staff_row(staff_id)["merchant_id"],
            email=body["staff"]["email"],
        )

    def page_session(self, role: str, *, merchant_id: int | None = None) -> PageSession:
        """A new staff user of ``role`` signed in through the admin pages' sign-in form."""
        email = self.add_staff(role, merchant_id=merchant_id).email
        response = self.client.post(
            "/admin/session",
            data={"email": email, "password": PASSWORD, "next": "/admin"},
            headers={"Origin": SITE_ORIGIN},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        token = response.cookies[STAFF_COOKIE]
        self.client.cookies.clear()
        return PageSession(client=self.client, token=token, email=email)

    def session(self, role: str, *, merchant_id: int | None = None) -> StaffSession:
        """A new staff user of ``role`` (of the shop unless told), logged in."""
        return self.login(self.add_staff(role, merchant_id=merchant_id).email)

    def audit_rows(self) -> list[dict[str, Any]]:
        async def read(conn: AsyncConnection) -> list[dict[str, Any]]:
            rows = await conn.execute(select(audit_log).order_by(audit_log.c.id))
            return [dict(row._mapping) for row in rows]

        return self.stack.read_db(read)

    def staff_row(self, staff_id: int) -> dict[str, Any]:
        async def read(conn: AsyncConnection) -> dict[str, Any]:
            row = (
                await conn.execute(select(staff_users).where(staff_users.c.id == staff_id))
            ).one()
            return dict(row._mapping)

        return self.stack.read_db(read)

    def session_rows(self, staff_id: int) -> list[dict[str, Any]]:
        async def read(conn: AsyncConnection) -> list[dict[str, Any]]:
            rows = await conn.execute(
                select(staff_sessions)
                .where(staff_sessions.c.staff_id == staff_id)
                .order_by(staff_sessions.c.created_at)
            )
            return [dict(row._mapping) for row in rows]

        return self.stack.read_db(read)


def _open_admin(exits: ExitStack, url: str, clock: MutableClock) -> AdminStack:
    stack = open_stack(exits, url, clock)
    directory = StaffDirectory(stack.engine, clock=clock, hasher=FAST_HASHER)
    # The guard and the handlers find the directory on app.state; this one hashes cheaply.
    stack.app.state.staff_directory = directory
    return AdminStack(stack=stack, directory=directory)


@pytest.fixture
def admin(sqlite_url: str, clock: MutableClock) -> Iterator[AdminStack]:
    """The app on a fresh SQLite database, with cheap password hashing."""
    with ExitStack() as exits:
        yield _open_admin(exits, sqlite_url, clock)


@pytest.fixture
def any_admin(db_url: str, clock: MutableClock) -> Iterator[AdminStack]:
    """The app on a fresh database, once on SQLite and once on PostgreSQL."""
    with ExitStack() as exits:
        yield _open_admin(exits, db_url, clock)
