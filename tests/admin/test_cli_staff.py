"""``loyalty staff create|list`` and the demo seed's staff logins."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from sqlalchemy import select

from admin.api import ADMIN_API_PREFIX
from loyalty.app.cli import STAFF_ROLES, main
from loyalty.app.factory import create_app
from loyalty.app.settings import Settings, parse_api_keys
from loyalty.db.engine import create_engine
from loyalty.db.tables import audit_log, staff_users
from loyalty.services.demo import DEMO_MANAGER, DEMO_OWNER, DEMO_SUPPORT
from loyalty.services.staff import StaffRole
from tests.app.conftest import _insert_merchants
from tests.support.services import run_async

PASSWORD = "Kaiserschmarrn-mit-Zwetschkenroester"


@pytest.fixture
def env(db_url: str) -> dict[str, str]:
    run_async(lambda: _insert_merchants(db_url, ("Bäckerei", "Konditorei")))
    return {"LOYALTY_DATABASE_URL": db_url}


def _create(env: dict[str, str], *extra: str, **kwargs: str) -> tuple[int, str]:
    args = ["staff", "create", "--merchant-id", "1", "--display-name", "Jana Huber", *extra]
    if "--email" not in extra:
        args += ["--email", "Jana@Example.com"]
    if "--role" not in extra:
        args += ["--role", "owner"]
    result = CliRunner().invoke(main, args, env=env, **kwargs)
    return result.exit_code, result.output


def test_cli_roles_are_the_services_roles() -> None:
    assert tuple(StaffRole) == STAFF_ROLES


def test_staff_create_prompts_twice_and_list_shows_it(env: dict[str, str]) -> None:
    code, output = _create(env, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0, output
    assert PASSWORD not in output  # hidden input is not echoed
    assert "created staff user 1: jana@example.com (owner) of merchant 1" in output

    listed = CliRunner().invoke(main, ["staff", "list", "--merchant-id", "1"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "jana@example.com" in listed.output
    assert "owner" in listed.output
    assert "active" in listed.output
    assert "last login: never" in listed.output

    other = CliRunner().invoke(main, ["staff", "list", "--merchant-id", "2"], env=env)
    assert other.exit_code == 0, other.output
    assert "no staff users at merchant 2" in other.output


def test_staff_create_insists_on_matching_entries(env: dict[str, str]) -> None:
    code, output = _create(
        env, input=f"{PASSWORD}\nsomething-else-entirely\n{PASSWORD}\n{PASSWORD}\n"
    )
    assert code == 0, output
    assert "do not match" in output


async def _stored_hash_and_audit(url: str) -> tuple[str, str, str]:
    """The one staff user's password hash, and the one audit entry's actor and ``after``."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(select(staff_users.c.password_hash))).scalar_one()
            entry = (await conn.execute(select(audit_log.c.actor, audit_log.c.after))).one()
    finally:
        await engine.dispose()
    return stored, entry.actor, json.dumps(entry.after)


def test_staff_create_reads_the_password_from_stdin(env: dict[str, str]) -> None:
    code, output = _create(env, "--password-stdin", "--role", "support", input=f"{PASSWORD}\n")
    assert code == 0, output
    assert "(support)" in output
    url = env["LOYALTY_DATABASE_URL"]
    stored, actor, after = run_async(lambda: _stored_hash_and_audit(url))
    assert stored.startswith("$argon2id$")
    assert actor == "system"
    assert "argon2" not in after
    assert PASSWORD not in after


@pytest.mark.parametrize(
    ("extra", "password", "message"),
    [
        ((), "too-short", "weak_password"),
        ((), "my-jana-password-is-long", "weak_password"),
        (("--merchant-id", "99"), PASSWORD, "no merchant with id 99"),
        (("--email", "not-an-email"), PASSWORD, "validation_failed"),
    ],
)
def test_staff_create_refusals_are_clean_errors(
    env: dict[str, str], extra: tuple[str, ...], password: str, message: str
) -> None:
    code, output = _create(env, "--password-stdin", *extra, input=f"{password}\n")
    assert code == 1, output
    assert message in output
    assert "Traceback" not in output


def test_staff_create_refuses_a_taken_email(env: dict[str, str]) -> None:
    assert _create(env, "--password-stdin", input=f"{PASSWORD}\n")[0] == 0
    code, output = _create(
        env, "--password-stdin", "--email", "JANA@example.com", input=f"{PASSWORD}\n"
    )
    assert code == 1
    assert "staff_email_taken" in output


def test_staff_create_refuses_an_unknown_role(env: dict[str, str]) -> None:
    code, output = _create(env, "--password-stdin", "--role", "boss", input=f"{PASSWORD}\n")
    assert code == 2
    assert "--role" in output


def test_seed_demo_makes_the_documented_logins(sqlite_url: str) -> None:
    env = {"LOYALTY_DATABASE_URL": sqlite_url}
    runner = CliRunner()
    for _ in range(2):  # safe to repeat
        seeded = runner.invoke(main, ["seed-demo", "--history-days", "0"], env=env)
        assert seeded.exit_code == 0, seeded.output
        assert "staff login (owner): owner@example.com / demo-owner-password" in seeded.output
        assert (
            "staff login (program_manager): manager@example.com / demo-manager-password"
            in seeded.output
        )
        assert "staff login (support): support@example.com / demo-support-password" in (
            seeded.output
        )
    listed = runner.invoke(main, ["staff", "list", "--merchant-id", "1"], env=env)
    assert listed.output.count("@example.com") == 3

    app = create_app(
        Settings(
            database_url=sqlite_url,
            api_clients=parse_api_keys("c=secret@1"),
            sweep_interval_seconds=0,
        )
    )
    with TestClient(app) as client:
        for email, password, _name in (DEMO_OWNER, DEMO_MANAGER, DEMO_SUPPORT):
            response = client.post(
                f"{ADMIN_API_PREFIX}/login", json={"email": email, "password": password}
            )
            assert response.status_code == 200, response.text
        client.blocking_portal.call(app.state.engine.dispose)
