"""CSV imports of members and of historical transactions (docs/IMPORT.md).

Two passes over the file, each streaming (a chunk of rows at a time):

1. **Check** the whole file: every row is parsed (``loyalty.domain.csv_rows``), emails and phone
   numbers normalised, values that must be unique in the file compared, and the rows matched
   against the database (members by external id, then email, then card number; transactions by
   reference). The result is the report: rows, rows already present, invalid rows and the first
   problems with their line numbers. If any row is invalid and the manager did not choose to
   skip bad lines, nothing is imported (status ``rejected``). A dry run stops here.
2. **Import** in batches, one transaction each, with multi-row inserts: the rows are matched
   again inside the batch's transaction (authoritative), so a row already present (a re-run) is
   counted as such and never imported twice.

A member transaction leaves the traces a purchase at a till leaves: an order (priced by the
published rule set in force at its time, or the earliest one), its qualifying activity (tiers),
and for points an earn journal dated at the sale with its entries and a lot expiring by the
program's policy. A lot whose expiry has already passed is expired at once, by an expire journal
dated at its expiry, so that history shows when points lapsed. Cached balances are updated once
per account per batch. Tiers of the members touched are evaluated once at the end, as an order
would. Sales without a member go to ``non_member_sales``.

Every import (not a dry run) writes an ``import_runs`` row when it starts (status ``failed``
until it finishes: a process that dies leaves it so) and an audit entry when it ends.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import import_runs
from loyalty.domain.csv_rows import ImportKind, Problem, RowSettings
from loyalty.domain.errors import DomainError, ErrorCode

from .audit import SYSTEM_ACTOR, record_entry
from .context import Staff, utc_now
from .import_members import MemberImporter
from .import_passes import (
    Importer,
    ImportProgress,
    ProgramFacts,
    Report,
    RowsWentBadError,
    program_facts,
)
from .import_transactions import TransactionImporter

__all__ = [
    "ImportOutcome",
    "ImportProblem",
    "ImportProgress",
    "ImportRunView",
    "Imports",
    "RunStatus",
]


class RunStatus(StrEnum):
    REJECTED = "rejected"
    IMPORTED = "imported"
    #: Also the state of a run still going (``finished_at`` empty) or one whose process died.
    FAILED = "failed"
    #: A dry run that found nothing wrong (never stored).
    VALID = "valid"


class ImportProblem(msgspec.Struct, frozen=True, kw_only=True):
    """Something wrong with one line of the file (line 1 is the header)."""

    line: int
    code: str
    message: str
    column: str | None = None


class ImportRunView(msgspec.Struct, frozen=True, kw_only=True):
    """An import and its report."""

    #: None for a dry run (nothing is stored).
    run_id: int | None
    kind: str
    program_id: int
    filename: str
    file_sha256: str
    #: rejected, imported or failed (a run still going, or interrupted, is failed without
    #: ``finished_at``); a dry run is valid or rejected.
    status: str
    dry_run: bool = False
    skip_bad_lines: bool
    #: Data rows in the file (the header and empty lines not counted).
    rows_total: int
    rows_imported: int
    #: Rows that matched what is there already (a re-run): left as they are.
    rows_already_present: int
    rows_invalid: int
    #: The first problems, by line (at most 200).
    problems: list[ImportProblem]
    actor: str
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What an import did, with the figures the command line and the benchmark print."""

    run: ImportRunView
    #: Seconds per phase: check, import, tiers.
    seconds: dict[str, float]
    #: Lots already past their expiry when imported (expired at once, dated at their expiry).
    lots_expired: int = 0


class Imports:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    # --- reading the runs ------------------------------------------------------------------

    async def runs(
        self, staff: Staff, program_id: int, *, before_id: int | None = None, limit: int = 50
    ) -> list[ImportRunView]:
        """The program's imports, newest first."""

        async def read(conn: AsyncConnection) -> list[ImportRunView]:
            await program_facts(conn, staff.merchant_id, program_id)
            query = (
                select(import_runs)
                .where(
                    import_runs.c.merchant_id == staff.merchant_id,
                    import_runs.c.program_id == program_id,
                )
                .order_by(import_runs.c.id.desc())
                .limit(max(1, min(limit, 200)))
            )
            if before_id is not None:
                query = query.where(import_runs.c.id < before_id)
            return [_run_view(row) for row in await conn.execute(query)]

        return await in_transaction(self._engine, read, read_only=True)

    async def run(self, staff: Staff, program_id: int, run_id: int) -> ImportRunView:
        async def read(conn: AsyncConnection) -> ImportRunView:
            row = (
                await conn.execute(
                    select(import_runs).where(
                        import_runs.c.id == run_id,
                        import_runs.c.merchant_id == staff.merchant_id,
                        import_runs.c.program_id == program_id,
                    )
                )
            ).first()
            if row is None:
                raise DomainError(
                    ErrorCode.IMPORT_RUN_NOT_FOUND, "no such import", import_run_id=run_id
                )
            return _run_view(row)

        return await in_transaction(self._engine, read, read_only=True)

    # --- importing ---------------------------------------------------------------------------

    async def import_file(
        self,
        path: Path,
        *,
        kind: ImportKind,
        program_id: int,
        filename: str,
        staff: Staff | None = None,
        merchant_id: int | None = None,
        skip_bad_lines: bool = False,
        dry_run: bool = False,
        progress: ImportProgress | None = None,
    ) -> ImportOutcome:
        """Check the file at ``path`` and, unless it is rejected or this is a dry run, import it.

        ``staff`` imports into their merchant's program; without (the command line) the
        program's merchant is used, or ``merchant_id`` must be it."""
        scope = staff.merchant_id if staff is not None else merchant_id
        actor = SYSTEM_ACTOR if staff is None else staff.label
        now = self._clock()
        program = await in_transaction(
            self._engine, lambda conn: program_facts(conn, scope, program_id), read_only=True
        )
        digest = _sha256(path)
        started = time.monotonic()
        seconds: dict[str, float] = {}
        base = _RunStart(
            kind=kind,
            program=program,
            filename=filename[:255] or "upload.csv",
            file_sha256=digest,
            skip_bad_lines=skip_bad_lines,
            actor=actor,
            created_at=now,
        )
        run_id = None if dry_run else await self._start_run(base)
        settings = RowSettings(program.timezone, program.currency, now)
        importer: Importer = (
            MemberImporter(self._engine, program, settings, now, actor, run_id)
            if kind is ImportKind.MEMBERS
            else TransactionImporter(self._engine, program, settings, now, actor, run_id)
        )
        importer.skip_bad_lines = skip_bad_lines
        report = Report()
        try:
            report = await importer.check(path, progress)
            seconds["check"] = time.monotonic() - started
            rejected = report.unreadable or (report.rows_invalid > 0 and not skip_bad_lines)
            if run_id is None:
                status = RunStatus.REJECTED if rejected else RunStatus.VALID
                view = base.view(None, status, report, imported=0, present=report.rows_present)
                return ImportOutcome(view, seconds)
            if rejected:
                view = await self._finish(
                    base, run_id, RunStatus.REJECTED, report, 0, report.rows_present, staff
                )
                return ImportOutcome(view, seconds)
            status = await _load(importer, path, report, progress, seconds)
        except Exception:
            if run_id is not None:
                await self._finish(
                    base,
                    run_id,
                    RunStatus.FAILED,
                    report,
                    importer.imported,
                    importer.present,
                    staff,
                )
            raise
        view = await self._finish(
            base, run_id, status, report, importer.imported, importer.present, staff
        )
        return ImportOutcome(view, seconds, importer.lots_expired)

    async def _start_run(self, base: _RunStart) -> int:
        async def start(conn: AsyncConnection) -> int:
            run_id = await conn.scalar(
                import_runs.insert()
                .values(
                    merchant_id=base.program.merchant_id,
                    program_id=base.program.id,
                    kind=str(base.kind),
                    filename=base.filename,
                    file_sha256=base.file_sha256,
                    status=str(RunStatus.FAILED),
                    skip_bad_lines=base.skip_bad_lines,
                    problems=[],
                    actor=base.actor,
                    created_at=base.created_at,
                )
                .returning(import_runs.c.id)
            )
            assert run_id is not None
            return int(run_id)

        return await in_transaction(self._engine, start)

    async def _finish(
        self,
        base: _RunStart,
        run_id: int,
        status: RunStatus,
        report: Report,
        imported: int,
        present: int,
        staff: Staff | None,
    ) -> ImportRunView:
        finished_at = self._clock()
        view = base.view(run_id, status, report, imported=imported, present=present)
        view = msgspec.structs.replace(view, finished_at=finished_at)

        async def finish(conn: AsyncConnection) -> None:
            await conn.execute(
                update(import_runs)
                .where(import_runs.c.id == run_id)
                .values(
                    status=str(status),
                    rows_total=view.rows_total,
                    rows_imported=view.rows_imported,
                    rows_already_present=view.rows_already_present,
                    rows_invalid=view.rows_invalid,
                    problems=msgspec.to_builtins(view.problems),
                    finished_at=finished_at,
                )
            )
            await record_entry(
                conn,
                base.program.merchant_id,
                staff,
                action=f"import.{base.kind}",
                entity="import_run",
                entity_id=run_id,
                at=finished_at,
                after={
                    "filename": view.filename,
                    "file_sha256": view.file_sha256,
                    "status": view.status,
                    "skip_bad_lines": view.skip_bad_lines,
                    "rows_total": view.rows_total,
                    "rows_imported": view.rows_imported,
                    "rows_already_present": view.rows_already_present,
                    "rows_invalid": view.rows_invalid,
                },
                program_id=base.program.id,
            )

        await in_transaction(self._engine, finish)
        return view


@dataclass(frozen=True, slots=True)
class _RunStart:
    kind: ImportKind
    program: ProgramFacts
    filename: str
    file_sha256: str
    skip_bad_lines: bool
    actor: str
    created_at: datetime

    def view(
        self, run_id: int | None, status: RunStatus, report: Report, *, imported: int, present: int
    ) -> ImportRunView:
        return ImportRunView(
            run_id=run_id,
            kind=str(self.kind),
            program_id=self.program.id,
            filename=self.filename,
            file_sha256=self.file_sha256,
            status=str(status),
            dry_run=run_id is None,
            skip_bad_lines=self.skip_bad_lines,
            rows_total=report.rows_total,
            rows_imported=imported,
            rows_already_present=present,
            rows_invalid=report.rows_invalid,
            problems=[_problem_view(p) for p in report.problems],
            actor=self.actor,
            created_at=self.created_at,
            finished_at=None,
        )


async def _load(
    importer: Importer,
    path: Path,
    report: Report,
    progress: ImportProgress | None,
    seconds: dict[str, float],
) -> RunStatus:
    """The import proper, after a check that passed: the batches, then the work after them.
    ``failed`` when a row went bad since the check (and bad lines are not skipped): the
    batches before it stay imported, a re-run imports the rest."""
    started = time.monotonic()
    try:
        await importer.load(path, report, progress)
        report.add(importer.late_problems)
        seconds["import"] = time.monotonic() - started
        if importer.after_phase is not None:
            started = time.monotonic()
            await importer.after(progress)
            seconds[importer.after_phase] = time.monotonic() - started
    except RowsWentBadError as failure:
        report.add(failure.problems)
        return RunStatus.FAILED
    return RunStatus.IMPORTED


def _problem_view(problem: Problem) -> ImportProblem:
    return ImportProblem(
        line=problem.line, code=str(problem.code), message=problem.message, column=problem.column
    )


def _run_view(row: Any) -> ImportRunView:
    return ImportRunView(
        run_id=row.id,
        kind=row.kind,
        program_id=row.program_id,
        filename=row.filename,
        file_sha256=row.file_sha256,
        status=row.status,
        skip_bad_lines=row.skip_bad_lines,
        rows_total=row.rows_total,
        rows_imported=row.rows_imported,
        rows_already_present=row.rows_already_present,
        rows_invalid=row.rows_invalid,
        problems=msgspec.convert(row.problems, list[ImportProblem]),
        actor=row.actor,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
