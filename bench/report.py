"""The benchmark suite's results: the figures, the targets they are held against, the printed
table, BENCHMARKS.md and the chart.

Everything here except :func:`write_chart` is pure: it turns a :class:`BenchResults` into text.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.load import LatencyHistogram, LoadResult


def _ms(seconds: float) -> float:
    return seconds * 1000.0


@dataclass(frozen=True)
class LoadFigure:
    """One load phase: what was sent, how, and what came back."""

    name: str
    #: Closed loop: the number of connections; open loop: None.
    concurrency: int | None
    #: Open loop: requests per second sent; closed loop: None.
    rate: float | None
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    answered: int
    errors: dict[str, int] = field(default_factory=dict)
    client_cpu: float = 0.0
    client_processes: int = 1
    unsent: int = 0
    #: CPU the app's worker processes used during the phase, in cores (of the machine's).
    app_cpu_cores: float = math.nan

    @classmethod
    def from_result(
        cls,
        name: str,
        result: LoadResult,
        *,
        concurrency: int | None = None,
        rate: float | None = None,
        app_cpu_cores: float = math.nan,
    ) -> LoadFigure:
        histogram = result.histogram
        return cls(
            name=name,
            concurrency=concurrency,
            rate=rate,
            seconds=result.seconds,
            per_second=result.per_second,
            p50_ms=_ms(histogram.percentile(50)),
            p99_ms=_ms(histogram.percentile(99)),
            max_ms=_ms(histogram.max_seconds),
            answered=result.answered,
            errors=result.errors,
            client_cpu=result.client_cpu_share,
            client_processes=result.processes,
            unsent=result.unsent,
            app_cpu_cores=app_cpu_cores,
        )

    @property
    def mode(self) -> str:
        if self.rate is not None:
            return f"open loop at {self.rate:.0f}/s, {self.seconds:.0f} s"
        return f"closed loop, {self.concurrency} connections, {self.seconds:.0f} s"

    @property
    def error_text(self) -> str:
        parts = [f"{status}: {count}" for status, count in self.errors.items()]
        if self.unsent:
            parts.append(f"unsent: {self.unsent}")
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class PgbenchFigure:
    """pgbench's built-in TPC-B-like script at one client count."""

    clients: int
    threads: int
    seconds: float
    tps: float
    transactions: int
    latency_average_ms: float
    p50_ms: float
    p99_ms: float
    scale: int


@dataclass(frozen=True)
class HotMemberFigure:
    """Completes on one member from many tills at once, and the ledger checked after."""

    load: LoadFigure
    terminals: int
    member_id: int
    balance_before: int
    balance_after: int
    points_reported: int
    successes: int
    orders_added: int
    journals_added: int
    journal_delta_sum: int

    @property
    def consistent(self) -> bool:
        """No lost or doubled points: the balance moved by what the answers reported, one
        order per successful complete, and the new journals add up to the same."""
        return (
            self.balance_after - self.balance_before == self.points_reported
            and self.orders_added == self.successes
            and self.journal_delta_sum == self.points_reported
        )


@dataclass(frozen=True)
class SweepResult:
    lots: int
    seconds: float
    lots_per_second: float
    conditions: str


@dataclass(frozen=True)
class ServiceReadFigure:
    """A read timed at the service level over a warm connection."""

    name: str
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    statements_p50_ms: float
    statements_p99_ms: float

    @classmethod
    def from_histograms(
        cls, name: str, calls: LatencyHistogram, statements: LatencyHistogram
    ) -> ServiceReadFigure:
        return cls(
            name=name,
            samples=calls.count,
            p50_ms=_ms(calls.percentile(50)),
            p99_ms=_ms(calls.percentile(99)),
            max_ms=_ms(calls.max_seconds),
            statements_p50_ms=_ms(statements.percentile(50)),
            statements_p99_ms=_ms(statements.percentile(99)),
        )


@dataclass(frozen=True)
class PlanText:
    name: str
    statement: str
    plan: str


@dataclass(frozen=True)
class WorkerMemory:
    pid: int
    rss_mb: float
    peak_rss_mb: float
    #: The anonymous part of the resident memory (heap: the process's own); the rest is mapped
    #: files, mostly shared libraries that the workers share.
    anonymous_mb: float = math.nan


@dataclass(frozen=True)
class Machine:
    cores: int
    cpu: str
    ram_gb: float
    postgres: str
    python: str
    system: str
    server: str


@dataclass
class BenchResults:
    """Everything one run measured. A figure left None was not measured (skipped or failed:
    ``failures`` says which)."""

    started_at: str
    command: str
    machine: Machine
    conditions: list[str] = field(default_factory=list)
    closed_loop: list[LoadFigure] = field(default_factory=list)
    pgbench: list[PgbenchFigure] = field(default_factory=list)
    half_peak: list[LoadFigure] = field(default_factory=list)
    hot_member: HotMemberFigure | None = None
    sweep: SweepResult | None = None
    wallet_home: LoadFigure | None = None
    ledger_size: str | None = None
    service_reads: list[ServiceReadFigure] = field(default_factory=list)
    http_reads: list[LoadFigure] = field(default_factory=list)
    plans: list[PlanText] = field(default_factory=list)
    memory: list[WorkerMemory] = field(default_factory=list)
    memory_when: str = ""
    #: The same workers just after the app started, before any load.
    memory_at_start: list[WorkerMemory] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    chart: str | None = None

    @property
    def measured_anything(self) -> bool:
        return bool(
            self.closed_loop
            or self.pgbench
            or self.hot_member
            or self.sweep
            or self.wallet_home
            or self.service_reads
        )

    def pgbench_at(self, clients: int) -> PgbenchFigure | None:
        return next((p for p in self.pgbench if p.clients == clients), None)

    @property
    def peak(self) -> LoadFigure | None:
        """The closed-loop complete phase with the most completes per second."""
        return max(self.closed_loop, key=lambda figure: figure.per_second, default=None)

    @property
    def pgbench_peak(self) -> PgbenchFigure | None:
        return max(self.pgbench, key=lambda figure: figure.tps, default=None)

    @property
    def peak_ratio(self) -> float | None:
        """Peak POS completes per second over peak pgbench transactions per second."""
        if self.peak is None or self.pgbench_peak is None or not self.pgbench_peak.tps:
            return None
        return self.peak.per_second / self.pgbench_peak.tps

    def half_peak_figure(self, name: str) -> LoadFigure | None:
        return next((f for f in self.half_peak if f.name == name), None)

    def service_read(self, name: str) -> ServiceReadFigure | None:
        return next((f for f in self.service_reads if f.name == name), None)


# --- targets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetRow:
    target: str
    measured: str
    #: None: not measured in this run.
    met: bool | None

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]


def _at_most(value: float | None, limit: float, unit: str) -> tuple[str, bool | None]:
    if value is None:
        return "—", None
    return f"{value:.2f} {unit}", value <= limit


def targets(results: BenchResults) -> list[TargetRow]:
    """The issue's targets, each with the figure it is judged on."""
    rows = []
    ratio = results.peak_ratio
    peak, yardstick = results.peak, results.pgbench_peak
    rows.append(
        TargetRow(
            "POS complete throughput >= 1.0 x pgbench TPC-B tps (peak vs peak)",
            "—"
            if ratio is None or peak is None or yardstick is None
            else f"{ratio:.2f} x ({peak.per_second:.0f}/s vs {yardstick.tps:.0f} tps)",
            None if ratio is None else ratio >= 1.0,
        )
    )
    for name, limit in (("identify", 25.0), ("preview", 25.0), ("complete", 50.0)):
        figure = results.half_peak_figure(name)
        measured, met = _at_most(figure.p99_ms if figure else None, limit, "ms")
        if figure is not None and figure.errors:
            met = False
        rows.append(TargetRow(f"{name} p99 <= {limit:.0f} ms at half of peak", measured, met))
    hot = results.hot_member
    rows.append(
        TargetRow(
            "hot member >= 300 completes/s, no lost or doubled points",
            "—"
            if hot is None
            else f"{hot.load.per_second:.0f}/s, ledger "
            + ("consistent" if hot.consistent else "INCONSISTENT"),
            None if hot is None else hot.load.per_second >= 300 and hot.consistent,
        )
    )
    sweep = results.sweep
    rows.append(
        TargetRow(
            "expiry sweep >= 10,000 lots/s",
            "—" if sweep is None else f"{sweep.lots_per_second:,.0f} lots/s",
            None if sweep is None else sweep.lots_per_second >= 10_000,
        )
    )
    for name, limit in (("balance", 2.0), ("history", 5.0)):
        read = results.service_read(name)
        measured, met = _at_most(read.p99_ms if read else None, limit, "ms")
        rows.append(TargetRow(f"{name} read p99 <= {limit:.0f} ms (service call)", measured, met))
    largest = max((worker.rss_mb for worker in results.memory), default=None)
    measured, met = _at_most(largest, 150.0, "MB")
    rows.append(TargetRow("<= 150 MB resident memory per worker (largest)", measured, met))
    return rows


# --- the printed table ------------------------------------------------------------------------


def summary_rows(results: BenchResults) -> list[tuple[str, str, str]]:
    """(figure, value, conditions) for every figure of the run."""
    rows: list[tuple[str, str, str]] = []
    for figure in results.closed_loop:
        yardstick = results.pgbench_at(figure.concurrency or 0)
        beside = "no pgbench figure"
        if yardstick is not None and yardstick.tps:
            ratio = figure.per_second / yardstick.tps
            beside = (
                f"pgbench {yardstick.tps:.0f} tps p99 {yardstick.p99_ms:.1f} ms ({ratio:.2f} x)"
            )
        rows.append(
            (
                f"POS complete, C={figure.concurrency}",
                f"{figure.per_second:.0f}/s p50 {figure.p50_ms:.1f} p99 {figure.p99_ms:.1f} ms",
                f"{figure.mode}; errors {figure.error_text}; {beside}",
            )
        )
    peak = results.peak
    if peak is not None:
        peak_ratio = results.peak_ratio
        rows.append(
            (
                "POS complete peak",
                f"{peak.per_second:.0f}/s",
                f"at C={peak.concurrency}"
                + ("" if peak_ratio is None else f"; {peak_ratio:.2f} x pgbench peak"),
            )
        )
    for figure in results.half_peak:
        rows.append(
            (
                f"{figure.name} at half peak",
                f"p50 {figure.p50_ms:.1f} p99 {figure.p99_ms:.1f} ms",
                f"{figure.mode}; errors {figure.error_text}",
            )
        )
    hot = results.hot_member
    if hot is not None:
        rows.append(
            (
                "hot member",
                f"{hot.load.per_second:.0f} completes/s p99 {hot.load.p99_ms:.1f} ms",
                f"{hot.terminals} tills on member {hot.member_id}, {hot.load.seconds:.0f} s; "
                f"ledger {'consistent' if hot.consistent else 'INCONSISTENT'}",
            )
        )
    if results.sweep is not None:
        sweep = results.sweep
        rows.append(
            (
                "expiry sweep",
                f"{sweep.lots_per_second:,.0f} lots/s",
                f"{sweep.lots:,} lots in {sweep.seconds:.1f} s; {sweep.conditions}",
            )
        )
    if results.wallet_home is not None:
        wallet = results.wallet_home
        rows.append(
            (
                "wallet home page",
                f"p50 {wallet.p50_ms:.1f} p99 {wallet.p99_ms:.1f} ms",
                f"{wallet.mode}; errors {wallet.error_text}",
            )
        )
    for read in results.service_reads:
        rows.append(
            (
                f"{read.name} read (service)",
                f"p50 {read.p50_ms:.2f} p99 {read.p99_ms:.2f} ms",
                f"{read.samples} members drawn from {results.ledger_size or 'the ledger'}; "
                f"statements alone p99 {read.statements_p99_ms:.2f} ms",
            )
        )
    for figure in results.http_reads:
        rows.append(
            (
                f"{figure.name} (HTTP)",
                f"p50 {figure.p50_ms:.1f} p99 {figure.p99_ms:.1f} ms",
                f"{figure.mode}; errors {figure.error_text}",
            )
        )
    for worker in results.memory:
        rows.append(
            (
                f"worker {worker.pid} memory",
                f"{worker.rss_mb:.0f} MB resident",
                f"peak {worker.peak_rss_mb:.0f} MB; {results.memory_when}",
            )
        )
    return rows


def console_table(results: BenchResults) -> str:
    rows = summary_rows(results)
    rows += [(f"target: {row.target}", row.verdict, row.measured) for row in targets(results)]
    width_name = max((len(name) for name, _, _ in rows), default=10)
    width_value = max((len(value) for _, value, _ in rows), default=10)
    lines = [f"{name:<{width_name}}  {value:<{width_value}}  {why}" for name, value, why in rows]
    lines += [f"FAILED {step}: {error}" for step, error in results.failures.items()]
    return "\n".join(lines)


# --- BENCHMARKS.md ----------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _number(value: float, digits: int = 1) -> str:
    return "—" if math.isnan(value) else f"{value:,.{digits}f}"


def render_markdown(results: BenchResults) -> str:
    machine = results.machine
    out = [
        "# Benchmarks",
        "",
        f"Measured {results.started_at} by `{results.command}` "
        f"(the whole run took {results.duration_seconds / 60:.1f} min). "
        "Every figure below comes from that one run; see the README's "
        "[Benchmarks](README.md#benchmarks) section for what the command does.",
        "",
        "## Machine",
        "",
        *_table(
            ("what", "value"),
            [
                ("CPU", f"{machine.cores} cores, {machine.cpu}"),
                ("memory", f"{machine.ram_gb:.0f} GB"),
                ("PostgreSQL", machine.postgres),
                ("Python", machine.python),
                ("system", machine.system),
                ("app server", machine.server),
            ],
        ),
        "",
        "## Conditions",
        "",
        *[f"- {condition}" for condition in results.conditions],
        "",
        "## Targets",
        "",
        *_table(
            ("target", "measured", "verdict"),
            [(row.target, row.measured, row.verdict) for row in targets(results)],
        ),
        "",
    ]
    if results.failures:
        out += ["## Steps that failed", ""]
        out += [f"- **{step}**: {error}" for step, error in results.failures.items()]
        out.append("")
    out += ["## POS complete against pgbench", ""]
    if results.closed_loop:
        rows = []
        for figure in results.closed_loop:
            yardstick = results.pgbench_at(figure.concurrency or 0)
            rows.append(
                (
                    str(figure.concurrency),
                    _number(figure.per_second, 0),
                    _number(figure.p50_ms),
                    _number(figure.p99_ms),
                    figure.error_text,
                    _number(figure.app_cpu_cores, 2),
                    _number(yardstick.tps, 0) if yardstick else "—",
                    _number(yardstick.p99_ms) if yardstick else "—",
                    f"{figure.per_second / yardstick.tps:.2f}"
                    if yardstick and yardstick.tps
                    else "—",
                )
            )
        out += _table(
            (
                "clients",
                "completes/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "app CPU (cores)",
                "pgbench tps",
                "pgbench p99 ms",
                "POS / pgbench",
            ),
            rows,
        )
        peak, yardstick = results.peak, results.pgbench_peak
        if peak is not None:
            line = f"Peak: {peak.per_second:.0f} completes/s at {peak.concurrency} clients"
            if yardstick is not None and results.peak_ratio is not None:
                line += (
                    f"; pgbench's peak {yardstick.tps:.0f} tps at {yardstick.clients} clients; "
                    f"ratio {results.peak_ratio:.2f}."
                )
            out += ["", line]
        if results.chart:
            out += ["", f"![throughput and p99 against concurrency]({results.chart})"]
        first = results.closed_loop[0]
        out += [
            "",
            f"Closed loop: each client connection sends its next complete when the last one "
            f"was answered, {first.seconds:.0f} s measured per client count after a warm-up. "
            "App CPU: the worker processes' CPU time over the phase (warm-up included) per "
            "second, in cores; the rest of the machine's went to PostgreSQL, Redis, the load "
            "generator and whatever else ran. "
            f"Client CPU per client process: "
            + ", ".join(f"{f.client_cpu:.0%} at C={f.concurrency}" for f in results.closed_loop)
            + ".",
        ]
    if results.pgbench:
        sample = results.pgbench[0]
        out += [
            "",
            f"pgbench: built-in TPC-B-like script, scale {sample.scale}, `-M prepared`, "
            f"{sample.seconds:.0f} s per client count, `-j` = min(2, clients); p50/p99 from its "
            "per-transaction log; run in the same session right after the POS phase of the same "
            "client count, with the app idle.",
        ]
    out.append("")
    if results.half_peak:
        out += ["## Identify, preview and complete at half of peak", ""]
        out += _table(
            ("operation", "rate", "p50 ms", "p99 ms", "max ms", "errors"),
            [
                (
                    f.name,
                    f"{f.rate:.0f}/s",
                    _number(f.p50_ms),
                    _number(f.p99_ms),
                    _number(f.max_ms),
                    f.error_text,
                )
                for f in results.half_peak
            ],
        )
        out += [
            "",
            "Open loop: requests fall due at a fixed rate whatever the server does; latency "
            "counts from when each request was due, not from when it was sent (coordinated "
            "omission corrected). A CHECKPOINT precedes each operation, as it does each "
            "closed-loop phase, so that pgbench's or an earlier phase's dirty pages are not "
            "written in the middle of it.",
            "",
        ]
    hot = results.hot_member
    if hot is not None:
        out += ["## Hot member", ""]
        out += [
            f"{hot.terminals} tills complete sales for member {hot.member_id} at once, each "
            f"with its own terminal key and fresh transaction ids, closed loop for "
            f"{hot.load.seconds:.0f} s: **{hot.load.per_second:.0f} completes/s**, "
            f"p50 {hot.load.p50_ms:.1f} ms, p99 {hot.load.p99_ms:.1f} ms, "
            f"errors {hot.load.error_text}.",
            "",
            *_table(
                ("check", "value"),
                [
                    ("balance before", f"{hot.balance_before:,}"),
                    ("balance after", f"{hot.balance_after:,}"),
                    ("points the successful answers reported", f"{hot.points_reported:,}"),
                    ("successful completes", f"{hot.successes:,}"),
                    ("orders added", f"{hot.orders_added:,}"),
                    (
                        "journals added (sum of their deltas)",
                        f"{hot.journals_added:,} ({hot.journal_delta_sum:,})",
                    ),
                    ("no lost or doubled points", "yes" if hot.consistent else "NO"),
                ],
            ),
            "",
        ]
    if results.sweep is not None:
        sweep = results.sweep
        out += [
            "## Expiry sweep",
            "",
            f"**{sweep.lots_per_second:,.0f} lots/s**: {sweep.lots:,} due lots expired in "
            f"{sweep.seconds:.1f} s. {sweep.conditions}",
            "",
        ]
    if results.wallet_home is not None:
        wallet = results.wallet_home
        out += [
            "## Wallet home page",
            "",
            f"Signed-in members' home page, {wallet.mode}: p50 {wallet.p50_ms:.1f} ms, "
            f"**p99 {wallet.p99_ms:.1f} ms**, max {wallet.max_ms:.1f} ms, "
            f"errors {wallet.error_text}.",
            "",
        ]
    if results.service_reads or results.http_reads:
        out += [f"## Balance and history reads ({results.ledger_size or 'ledger'})", ""]
    if results.service_reads:
        out += _table(
            (
                "read",
                "members",
                "call p50 ms",
                "call p99 ms",
                "call max ms",
                "statements p50 ms",
                "statements p99 ms",
            ),
            [
                (
                    r.name,
                    str(r.samples),
                    _number(r.p50_ms, 2),
                    _number(r.p99_ms, 2),
                    _number(r.max_ms, 2),
                    _number(r.statements_p50_ms, 2),
                    _number(r.statements_p99_ms, 2),
                )
                for r in results.service_reads
            ],
        )
        out += [
            "",
            "Service level: `Queries.balance` and `Queries.history` (first page of 50, the "
            "API's default), the methods the JSON API calls, over one warm pooled connection, "
            "members drawn uniformly. *Call*: the whole method (pool checkout, "
            "BEGIN, statements, COMMIT, result); *statements*: the time inside its SQL "
            "statements alone.",
            "",
        ]
    if results.http_reads:
        out += _table(
            ("endpoint", "mode", "p50 ms", "p99 ms", "max ms", "errors"),
            [
                (
                    f.name,
                    f.mode,
                    _number(f.p50_ms),
                    _number(f.p99_ms),
                    _number(f.max_ms),
                    f.error_text,
                )
                for f in results.http_reads
            ],
        )
        out.append("")
    if results.plans:
        out += ["### Query plans", ""]
        for plan in results.plans:
            out += [
                f"**{plan.name}**",
                "",
                "```sql",
                plan.statement.strip(),
                "```",
                "",
                "```",
                plan.plan,
                "```",
                "",
            ]
    if results.memory:
        at_start = {worker.pid: worker.rss_mb for worker in results.memory_at_start}
        out += ["## Resident memory per worker", ""]
        out += _table(
            ("worker pid", "VmRSS MB", "VmHWM (peak) MB", "RssAnon MB", "VmRSS at start MB"),
            [
                (
                    str(w.pid),
                    f"{w.rss_mb:.0f}",
                    f"{w.peak_rss_mb:.0f}",
                    _number(w.anonymous_mb, 0),
                    f"{at_start[w.pid]:.0f}" if w.pid in at_start else "—",
                )
                for w in results.memory
            ],
        )
        out += [
            "",
            f"Read from /proc/<pid>/status {results.memory_when}; the target is held against "
            "VmRSS. RssAnon is the worker's own heap; the rest of VmRSS is mapped files "
            "(shared libraries, mostly shared between the workers).",
            "",
        ]
    if results.notes:
        out += ["## Notes", "", *[f"- {note}" for note in results.notes], ""]
    return "\n".join(out).rstrip() + "\n"


# --- the chart --------------------------------------------------------------------------------


#: The bench tools' virtualenv (``make bench`` makes it): matplotlib lives there, not in the app's.
CHART_PYTHON = Path(".venv-bench/bin/python")


def write_chart(results: BenchResults, path: Path, python: Path = CHART_PYTHON) -> bool:
    """Throughput and p99 against concurrency, POS complete beside pgbench, as a PNG drawn by
    bench/chart.py in the tools' virtualenv; False when there is nothing to draw."""
    if not results.closed_loop:
        return False
    if not python.exists():
        raise RuntimeError(f"no {python}: `make bench` makes it (matplotlib for the chart)")
    machine = results.machine
    data = {
        "clients": [f.concurrency or 0 for f in results.closed_loop],
        "per_second": [f.per_second for f in results.closed_loop],
        "p99_ms": [f.p99_ms for f in results.closed_loop],
        "pgbench_clients": [p.clients for p in results.pgbench],
        "pgbench_tps": [p.tps for p in results.pgbench],
        "pgbench_p99_ms": [p.p99_ms for p in results.pgbench],
        "title": f"{results.started_at[:10]}: {machine.cores} cores, PostgreSQL "
        f"{machine.postgres.split()[0]}, {machine.server}",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(data, file)
    try:
        chart = Path(__file__).with_name("chart.py")
        subprocess.run([str(python), str(chart), file.name, str(path)], check=True)  # noqa: S603 - our own script and interpreter
    finally:
        Path(file.name).unlink()
    return True
