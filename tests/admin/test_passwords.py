"""The staff directory below the API: Argon2id with the real parameters, rehashing at login,
the dummy hash for unknown emails, and owners who cannot both step down at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.db.engine import create_engine
from loyalty.db.tables import audit_log, merchants, staff_sessions, staff_users
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.staff import SESSION_LIFETIME, StaffDirectory, StaffRole
from tests.admin.conftest import FAST_HASHER, PASSWORD
from tests.app.conftest import MutableClock

START = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


class CountingHasher(PasswordHasher):
    """Argon2id with cheap parameters that counts its verifications."""

    def __init__(self, time_cost: int = 1) -> None:
        super().__init__(time_cost=time_cost, memory_cost=8, parallelism=1)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        for name in ("Bäckerei", "Konditorei"):
            await conn.execute(merchants.insert().values(name=name, created_at=START))
    try:
        yield engine
    finally:
        await engine.dispose()


async def _stored_hash(engine: AsyncEngine, email: str) -> str:
    async with engine.connect() as conn:
        value = await conn.scalar(
            select(staff_users.c.password_hash).where(staff_users.c.email == email)
        )
    assert isinstance(value, str)
    return value


async def test_provisioning_hashes_with_argon2id_defaults(engine: AsyncEngine) -> None:
    owner = await StaffDirectory(engine).provision_staff(
        1, email="Olga@Example.com", password=PASSWORD, role="owner", display_name="Olga Owner"
    )
    assert owner.role == "owner"
    assert owner.email == "olga@example.com"
    stored = await _stored_hash(engine, "olga@example.com")
    defaults = RFC_9106_LOW_MEMORY
    assert stored.startswith(
        f"$argon2id$v=19$m={defaults.memory_cost},t={defaults.time_cost},p={defaults.parallelism}$"
    )
    async with engine.connect() as conn:
        (entry,) = (await conn.execute(select(audit_log))).all()
    assert (entry.actor, entry.staff_id, entry.action) == ("system", None, "create")
    assert "argon2" not in str(entry.after)


async def test_login_rehashes_when_the_parameters_changed(engine: AsyncEngine) -> None:
    old = StaffDirectory(engine, hasher=CountingHasher(time_cost=1))
    await old.provision_staff(
        1, email="max@example.com", password=PASSWORD, role="support", display_name="Max"
    )
    before = await _stored_hash(engine, "max@example.com")
    assert ",t=1," in before

    stronger = StaffDirectory(engine, hasher=CountingHasher(time_cost=2))
    await stronger.login("max@example.com", PASSWORD)
    after = await _stored_hash(engine, "max@example.com")
    assert after != before
    assert after.startswith("$argon2id$")
    assert ",t=2," in after
    # The new hash works, and is not rehashed again.
    await stronger.login("max@example.com", PASSWORD)
    assert await _stored_hash(engine, "max@example.com") == after


async def test_a_wrong_password_is_not_rehashed(engine: AsyncEngine) -> None:
    await StaffDirectory(engine, hasher=CountingHasher(time_cost=1)).provision_staff(
        1, email="max@example.com", password=PASSWORD, role="support", display_name="Max"
    )
    before = await _stored_hash(engine, "max@example.com")
    with pytest.raises(DomainError) as refused:
        await StaffDirectory(engine, hasher=CountingHasher(time_cost=2)).login(
            "max@example.com", "not-the-password"
        )
    assert refused.value.code is ErrorCode.INVALID_CREDENTIALS
    assert await _stored_hash(engine, "max@example.com") == before


async def test_unknown_emails_cost_a_verification_too(engine: AsyncEngine) -> None:
    """Without it, "no such user" would answer measurably faster than "wrong password"."""
    hasher = CountingHasher()
    directory = StaffDirectory(engine, hasher=hasher)
    await directory.provision_staff(
        1, email="max@example.com", password=PASSWORD, role="support", display_name="Max"
    )
    messages = set()
    for email, password in [("nobody@example.com", PASSWORD), ("max@example.com", "wrong-pw")]:
        with pytest.raises(DomainError) as refused:
            await directory.login(email, password)
        assert refused.value.code is ErrorCode.INVALID_CREDENTIALS
        messages.add(refused.value.detail)
    assert len(messages) == 1
    dummy, real = hasher.verified
    assert dummy.startswith("$argon2id$")
    assert dummy != real
    assert real == await _stored_hash(engine, "max@example.com")


async def test_sessions_expire_by_the_directory_clock(engine: AsyncEngine) -> None:
    clock = MutableClock(START)
    directory = StaffDirectory(engine, clock=clock, hasher=FAST_HASHER)
    await directory.provision_staff(
        1, email="max@example.com", password=PASSWORD, role="cashier", display_name="Max"
    )
    login = await directory.login("max@example.com", PASSWORD)
    token, staff, expires_at = login.token, login.staff, login.expires_at
    assert expires_at == START + timedelta(hours=12)
    assert (await directory.authenticate(token)) == staff
    clock.advance(hours=12)
    with pytest.raises(DomainError) as refused:
        await directory.authenticate(token)
    assert refused.value.code is ErrorCode.UNAUTHORIZED
    # The next login clears the ended session away.
    await directory.login("max@example.com", PASSWORD)
    with pytest.raises(DomainError):
        await directory.authenticate(token)
    async with engine.connect() as conn:
        sessions = (await conn.execute(select(staff_sessions.c.expires_at))).scalars().all()
    assert sessions == [clock.now + SESSION_LIFETIME]


async def test_service_refuses_staff_management_by_non_owners(engine: AsyncEngine) -> None:
    directory = StaffDirectory(engine, hasher=FAST_HASHER)
    await directory.provision_staff(
        1, email="pm@example.com", password=PASSWORD, role="program_manager", display_name="P"
    )
    manager = (await directory.login("pm@example.com", PASSWORD)).staff
    with pytest.raises(DomainError) as refused:
        await directory.create_staff(
            manager, email="x@example.com", password=PASSWORD, role="owner", display_name="X"
        )
    assert refused.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(DomainError) as refused:
        await directory.update_staff(manager, manager.staff_id, role="owner")
    assert refused.value.code is ErrorCode.FORBIDDEN


async def test_provisioning_checks_merchant_and_role(engine: AsyncEngine) -> None:
    directory = StaffDirectory(engine, hasher=FAST_HASHER)
    for merchant_id, role, email in [
        (99, "owner", "a@example.com"),
        (1, "boss", "a@example.com"),
        (1, "owner", "not-an-email"),
    ]:
        with pytest.raises(DomainError) as refused:
            await directory.provision_staff(
                merchant_id, email=email, password=PASSWORD, role=role, display_name="A"
            )
        assert refused.value.code is ErrorCode.VALIDATION_FAILED


async def test_two_owners_cannot_both_step_down_at_once(engine: AsyncEngine) -> None:
    """Each sees the other still an owner; the merchant row lock makes the second one wait and
    then see the first one's change (PostgreSQL), SQLite has one writer anyway."""
    directory = StaffDirectory(engine, hasher=FAST_HASHER)
    for email in ("a@example.com", "b@example.com"):
        await directory.provision_staff(
            1, email=email, password=PASSWORD, role=StaffRole.OWNER, display_name=email
        )
    first = (await directory.login("a@example.com", PASSWORD)).staff
    second = (await directory.login("b@example.com", PASSWORD)).staff

    outcomes = await asyncio.gather(
        directory.update_staff(first, first.staff_id, role="support"),
        directory.update_staff(second, second.staff_id, role="support"),
        return_exceptions=True,
    )
    refused = [outcome for outcome in outcomes if isinstance(outcome, DomainError)]
    assert len(refused) == 1
    assert refused[0].code is ErrorCode.LAST_OWNER
    owners = [user for user in await directory.list_staff(1) if user.role == "owner"]
    assert len(owners) == 1
