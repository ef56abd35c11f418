"""``loyalty import members|transactions``: a progress bar per phase, the report with line
numbers, a non-zero exit for a rejected file, and idempotent re-runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Table, func, select

from loyalty.app.cli import main
from loyalty.db.engine import create_engine
from loyalty.db.tables import import_runs, members, merchants, non_member_sales, orders
from loyalty.services.context import Caller
from loyalty.services.ledger import Ledger
from loyalty.services.programs import Programs
from loyalty.services.verify import verify_ledger
from tests.support.services import run_async

MEMBERS = "external_id;display_name;email;opening_points\nK-1;Anna;anna@example.org;100\n"
BAD_MEMBERS = (
    "external_id;display_name;email;opening_points\n"
    "K-1;Anna;anna@example.org;100\n"
    "K-2;;bernd@example.org;\n"
    "K-3;Carla;carla@;\n"
)
TRANSACTIONS = (
    "reference,occurred_at,member,total,points\n"
    "T-1,2024-03-01T10:00:00Z,K-1,12.50,12\n"
    "T-2,2024-03-02T10:00:00Z,,7.00,\n"
)


async def _program(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            merchant_id = int(
                await conn.scalar(
                    merchants.insert()
                    .values(name="Bäckerei", created_at=datetime(2024, 1, 1, tzinfo=UTC))
                    .returning(merchants.c.id)
                )
                or 0
            )
            await conn.execute(
                merchants.insert().values(
                    name="Konditorei", created_at=datetime(2024, 1, 1, tzinfo=UTC)
                )
            )
        created = await Programs(Ledger(engine).executor).create_program(
            Caller("cli-test", merchant_id), "p", code="bonus", name="Bonus", currency="EUR"
        )
        return merchant_id, created.result.program_id
    finally:
        await engine.dispose()


async def _count(url: str, table: Table) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        await engine.dispose()


@pytest.fixture
def env(db_url: str) -> dict[str, str]:
    return {"LOYALTY_DATABASE_URL": db_url}


@pytest.fixture
def program_id(db_url: str) -> int:
    return run_async(lambda: _program(db_url))[1]


def _import(env: dict[str, str], kind: str, file: Path, *extra: str) -> Result:
    return CliRunner().invoke(main, ["import", kind, str(file), *extra], env=env)


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_members_then_transactions_import_with_progress_bars(
    env: dict[str, str], program_id: int, tmp_path: Path
) -> None:
    members_file = _write(tmp_path, "members.csv", MEMBERS)
    result = _import(env, "members", members_file, "--program-id", str(program_id))
    assert result.exit_code == 0, result.output
    assert "checking members.csv" in result.stderr
    assert "importing rows" in result.stderr
    assert "100%" in result.stderr
    assert "imported; 1 rows, 1 imported, 0 already present, 0 invalid" in result.stdout

    sales = _write(tmp_path, "sales.csv", TRANSACTIONS)
    result = _import(env, "transactions", sales, "--program-id", str(program_id))
    assert result.exit_code == 0, result.output
    assert "time: check" in result.stdout
    assert "2 rows, 2 imported" in result.stdout
    url = env["LOYALTY_DATABASE_URL"]
    assert run_async(lambda: _count(url, orders)) == 1
    assert run_async(lambda: _count(url, non_member_sales)) == 1

    again = _import(env, "transactions", sales, "--program-id", str(program_id))
    assert again.exit_code == 0, again.output
    assert "0 imported, 2 already present" in again.stdout

    engine_url = env["LOYALTY_DATABASE_URL"]

    async def verify() -> list[object]:
        engine = create_engine(engine_url)
        try:
            return list(await verify_ledger(engine))
        finally:
            await engine.dispose()

    assert run_async(verify) == []


def test_a_rejected_file_exits_non_zero_and_imports_nothing(
    env: dict[str, str], program_id: int, tmp_path: Path
) -> None:
    bad = _write(tmp_path, "bad.csv", BAD_MEMBERS)
    result = _import(env, "members", bad, "--program-id", str(program_id))
    assert result.exit_code == 1, result.output
    assert "rejected; 3 rows, 0 imported, 0 already present, 2 invalid" in result.stdout
    assert "line 3: display_name is required [required]" in result.stdout
    assert "line 4: email" in result.stdout
    assert "nothing was imported" in result.stderr
    assert "Traceback" not in result.output
    url = env["LOYALTY_DATABASE_URL"]
    assert run_async(lambda: _count(url, members)) == 0
    assert run_async(lambda: _count(url, import_runs)) == 1

    skipped = _import(env, "members", bad, "--program-id", str(program_id), "--skip-bad-lines")
    assert skipped.exit_code == 0, skipped.output
    assert "imported; 3 rows, 1 imported, 0 already present, 2 invalid" in skipped.stdout
    assert run_async(lambda: _count(url, members)) == 1


def test_a_dry_run_only_checks(env: dict[str, str], program_id: int, tmp_path: Path) -> None:
    file = _write(tmp_path, "members.csv", MEMBERS)
    result = _import(env, "members", file, "--program-id", str(program_id), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run of members.csv (members): valid" in result.stdout
    url = env["LOYALTY_DATABASE_URL"]
    assert run_async(lambda: _count(url, members)) == 0
    assert run_async(lambda: _count(url, import_runs)) == 0


def test_another_merchants_program_is_not_found(
    env: dict[str, str], program_id: int, tmp_path: Path
) -> None:
    file = _write(tmp_path, "members.csv", MEMBERS)
    result = _import(env, "members", file, "--program-id", str(program_id), "--merchant-id", "2")
    assert result.exit_code == 1
    assert "program_not_found" in result.output
    missing = _import(env, "members", file, "--program-id", "99")
    assert missing.exit_code == 1
    assert "program_not_found" in missing.output


def test_the_file_must_exist(env: dict[str, str], tmp_path: Path) -> None:
    result = _import(env, "members", tmp_path / "nope.csv", "--program-id", "1")
    assert result.exit_code == 2
    assert "does not exist" in result.output
