"""The two passes of a CSV import, shared by members and transactions (docs/IMPORT.md).

``Importer.check`` reads the whole file, a chunk of rows at a time: every row parsed, values
that must be unique in the file compared, the rows matched against the database; the result is
the report (``Report``). ``Importer.load`` reads it again and writes batches, one transaction
each, skipping the lines the check found bad. The kinds (``import_members``,
``import_transactions``) say how to parse, match and write their rows.
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.balance_changes import BalanceChange, record
from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, programs, rule_sets
from loyalty.domain.csv_rows import (
    FirstLines,
    Header,
    ImportKind,
    MemberRow,
    Problem,
    ProblemCode,
    Record,
    RowSettings,
    TransactionRow,
    empty_file_problem,
    read_header,
    read_records,
)
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.domain.expiry import ExpiryKind, ExpiryPolicy
from loyalty.domain.journals import JournalKind

#: Problems kept in a run's report (``rows_invalid`` counts them all).
MAX_PROBLEMS = 200
#: Rows matched against the database per query round in the check.
CHECK_CHUNK = 2000

#: ``(phase, done, total)``: check (bytes of the file read), import (rows), tiers (members).
ImportProgress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class ProgramFacts:
    id: int
    merchant_id: int
    currency: str
    timezone: str
    expiry: ExpiryPolicy
    #: Published rule sets: (effective_from, id, version), in effective order.
    rule_sets: tuple[tuple[datetime, int, int], ...]

    def rule_set_at(self, at: datetime) -> tuple[int, int]:
        """The published rule set in force at ``at``, or the earliest one before it all began:
        (id, version)."""
        position = bisect.bisect_right(self.rule_sets, at, key=lambda r: r[0]) - 1
        _, rule_set_id, version = self.rule_sets[max(position, 0)]
        return rule_set_id, version


@dataclass(slots=True)
class Report:
    rows_total: int = 0
    rows_present: int = 0
    invalid_lines: set[int] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    #: A header problem: nothing could be read.
    unreadable: bool = False

    def add(self, found: Sequence[Problem]) -> None:
        for problem in sorted(found, key=lambda p: p.line):
            if problem.line > 1:
                self.invalid_lines.add(problem.line)
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(problem)

    @property
    def rows_invalid(self) -> int:
        return len(self.invalid_lines)


class RowsWentBadError(Exception):
    """A row went bad between the check and the import, and bad lines are not skipped."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems[0].message)
        self.problems = problems


# --- The two passes, shared by both kinds ------------------------------------------------------


class Importer:
    """Reads a file twice: ``check`` (the report) and ``load`` (the writes). Subclasses parse
    their rows, match them against the database and write batches."""

    #: Rows written per transaction.
    batch_size = 1000
    #: Tables the import grows: their statistics are refreshed as they grow (PostgreSQL).
    grows: tuple[Table, ...] = ()

    def __init__(
        self,
        engine: AsyncEngine,
        program: ProgramFacts,
        settings: RowSettings,
        now: datetime,
        actor: str,
        run_id: int | None,
    ) -> None:
        self.engine = engine
        self.program = program
        self.settings = settings
        self.now = now
        self.actor = actor
        self.run_id = run_id
        self.imported = 0
        self.present = 0
        self.lots_expired = 0
        self.skip_bad_lines = False
        #: Rows that went bad between the check and the import (skipped).
        self.late_problems: list[Problem] = []

    # The kind's parts.

    @property
    def kind(self) -> ImportKind:
        raise NotImplementedError

    def parse(self, header: Header, record: Record) -> Any | list[Problem]:
        raise NotImplementedError

    def unique_keys(self, row: Any) -> Iterator[tuple[str, str | None]]:
        raise NotImplementedError

    async def match(self, conn: AsyncConnection, rows: list[Any]) -> tuple[list[Problem], int]:
        """Problems of rows against the database, and how many rows are there already."""
        raise NotImplementedError

    async def write(self, conn: AsyncConnection, rows: list[Any]) -> tuple[int, int]:
        """Write a batch: (rows imported, rows already present). Raises ``RowsWentBadError``
        for rows that went bad since the check when bad lines are not skipped."""
        raise NotImplementedError

    #: The name of the work once all batches are in (``after``), if there is any.
    after_phase: str | None = None

    async def after(self, progress: ImportProgress | None) -> None:
        """The work once all batches are in."""

    # The passes.

    async def check(self, path: Path, progress: ImportProgress | None) -> Report:
        report = Report()
        unique = FirstLines()
        size = file_size(path)
        with text_lines(path) as (text, raw):
            opened = self._header(read_records(text), report)
            if opened is None:
                return report
            records, header = opened
            chunk: list[Any] = []
            pending: list[Problem] = []
            for item in records:
                report.rows_total += 1
                if isinstance(item, Problem):
                    pending.append(item)
                else:
                    parsed = self.parse(header, item)
                    if isinstance(parsed, list):
                        pending += parsed
                    else:
                        duplicates = [
                            problem
                            for column, value in self.unique_keys(parsed)
                            if (problem := unique.duplicate(column, value, item.line)) is not None
                        ]
                        if duplicates:
                            pending += duplicates
                        else:
                            chunk.append(parsed)
                if len(chunk) >= CHECK_CHUNK or len(pending) >= CHECK_CHUNK:
                    await self._check_chunk(chunk, pending, report)
                    chunk, pending = [], []
                    if progress is not None:
                        progress("check", raw.tell(), size)
            await self._check_chunk(chunk, pending, report)
        if progress is not None:
            progress("check", size, size)
        return report

    async def _check_chunk(self, chunk: list[Any], pending: list[Problem], report: Report) -> None:
        if chunk:
            found, present = await in_transaction(
                self.engine, lambda conn: self.match(conn, chunk), read_only=True
            )
            pending = pending + found
            report.rows_present += present
        report.add(pending)

    def _header(
        self, records: Iterator[Record | Problem], report: Report
    ) -> tuple[Iterator[Record | Problem], Header] | None:
        first = next(records, None)
        problems: list[Problem]
        if first is None:
            problems = [empty_file_problem()]
        elif isinstance(first, Problem):
            problems = [first]
        else:
            header = read_header(self.kind, first)
            if isinstance(header, Header):
                return records, header
            problems = header
        report.unreadable = True
        report.add(problems)
        return None

    async def load(
        self, path: Path, report: Report, progress: ImportProgress | None = None
    ) -> None:
        """Import every row the check found valid (skipping the invalid lines)."""
        total = report.rows_total
        done = 0
        with text_lines(path) as (text, _):
            records = read_records(text)
            first = next(records)
            assert isinstance(first, Record)
            header = read_header(self.kind, first)
            assert isinstance(header, Header)
            batch: list[Any] = []
            batches = 0
            for item in records:
                done += 1
                if isinstance(item, Problem) or item.line in report.invalid_lines:
                    continue
                parsed = self.parse(header, item)
                if isinstance(parsed, list):  # pragma: no cover - the check passed it
                    continue
                batch.append(parsed)
                if len(batch) >= self.batch_size:
                    await self._write(batch)
                    batch = []
                    batches += 1
                    if batches & (batches - 1) == 0:  # after batch 1, 2, 4, 8, ...
                        await self.analyze()
                    if progress is not None:
                        progress("import", done, total)
            await self._write(batch)
        await self.analyze()
        if progress is not None:
            progress("import", total, total)

    async def analyze(self, tables: Sequence[Table] | None = None) -> None:
        """Refresh PostgreSQL's statistics of the tables the import grows (``grows`` unless
        told), so that its planner keeps finding rows by index while a table grows from nothing
        to a million rows faster than autovacuum looks (with stale statistics every batch's
        look-ups scan the whole table)."""
        chosen = self.grows if tables is None else tables
        if self.engine.dialect.name != "postgresql" or not chosen:
            return
        names = ", ".join(table.name for table in chosen)

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(text(f"ANALYZE {names}"))

        await in_transaction(self.engine, work)

    async def _write(self, batch: list[Any]) -> None:
        if not batch:
            return
        imported, present = await in_transaction(self.engine, lambda conn: self.write(conn, batch))
        self.imported += imported
        self.present += present

    def bad_rows(self, problems: list[Problem], report_to: list[Problem]) -> set[int]:
        """Rows that went bad since the check: skipped (and reported) when bad lines are
        skipped; otherwise the import fails."""
        if problems and not self.skip_bad_lines:
            raise RowsWentBadError(problems)
        report_to += problems
        return {problem.line for problem in problems}


# --- Helpers -------------------------------------------------------------------------------------


async def insert_ids(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` in one statement per page and return their new ids, in row order.

    SQLite cannot tell which RETURNING row belongs to which VALUES row (SQLAlchemy would fall
    back to one statement per row), but a write transaction there holds the database's only
    write lock from its start: the ids after the largest are free, and they are what SQLite
    would give (``id`` is the rowid). PostgreSQL numbers them in one ordered statement.
    """
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        start = int(await conn.scalar(select(func.max(table.c.id))) or 0) + 1
        ids = list(range(start, start + len(rows)))
        await conn.execute(
            table.insert(), [{"id": i, **row} for i, row in zip(ids, rows, strict=True)]
        )
        return ids
    result = await conn.execute(
        table.insert().returning(table.c.id, sort_by_parameter_order=True), rows
    )
    return [int(i) for i in result.scalars()]


def journal_row(
    importer: Importer,
    kind: JournalKind,
    account_id: int,
    delta: int,
    at: datetime,
    *,
    effective_at: datetime | None = None,
    actor: str | None = None,
    reason: str | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    """A journal of the import (``held_delta`` 0, no counter account, hold or reversal)."""
    return {
        "program_id": importer.program.id,
        "kind": str(kind),
        "account_id": account_id,
        "points": abs(delta),
        "delta": delta,
        "effective_at": effective_at or at,
        "created_at": at,
        # The journals of one import are found by this.
        "client_id": f"import:{importer.run_id}",
        "actor": actor,
        "reason": reason,
        "reference": reference,
    }


async def announce_balances(conn: AsyncConnection, account_ids: list[int]) -> None:
    """Tell open wallets the new balances once the batch commits (as every ledger write does)."""
    rows = await conn.execute(
        select(
            accounts.c.program_id, accounts.c.member_id, accounts.c.posted, accounts.c.held
        ).where(accounts.c.id.in_(account_ids))
    )
    for row in rows:
        record(conn, BalanceChange(row.program_id, row.member_id, row.posted, row.held))


async def program_facts(
    conn: AsyncConnection, merchant_id: int | None, program_id: int
) -> ProgramFacts:
    query = select(programs).where(programs.c.id == program_id)
    if merchant_id is not None:
        query = query.where(programs.c.merchant_id == merchant_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program", program_id=program_id)
    published = (
        await conn.execute(
            select(rule_sets.c.effective_from, rule_sets.c.id, rule_sets.c.version)
            .where(rule_sets.c.program_id == program_id, rule_sets.c.status == "published")
            .order_by(rule_sets.c.effective_from, rule_sets.c.version)
        )
    ).all()
    if not published:
        raise DomainError(
            ErrorCode.NO_RULES_IN_FORCE,
            "the program has no published rule set; publish one first",
            program_id=program_id,
        )
    return ProgramFacts(
        id=row.id,
        merchant_id=row.merchant_id,
        currency=row.currency,
        timezone=row.timezone,
        expiry=ExpiryPolicy(ExpiryKind(row.expiry_kind), row.expiry_value, row.timezone),
        rule_sets=tuple((r.effective_from, r.id, r.version) for r in published),
    )


def row_problem(
    row: MemberRow | TransactionRow, code: ProblemCode, column: str, text: str
) -> Problem:
    return Problem(row.line, code, f"{column} {text}", column)


def file_size(path: Path) -> int:
    return max(path.stat().st_size, 1)


@contextmanager
def text_lines(path: Path) -> Iterator[tuple[io.TextIOWrapper, io.BufferedReader]]:
    """The file as text lines with their endings (bytes that are not UTF-8 become U+FFFD, which
    the reader reports at their line), and the binary file beneath (its position is progress)."""
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        try:
            yield text, raw
        finally:
            text.detach()
