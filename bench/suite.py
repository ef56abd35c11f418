"""The benchmark suite behind ``make bench``: one run, every figure of issue 7, BENCHMARKS.md.

Not a test: it measures this machine. In one run it

1. creates a fresh PostgreSQL database ``loyalty_bench`` (an old one is dropped) and seeds a
   program with 100,000 members and a year of history through ``bench.bulk_seed``;
2. starts the app as production runs it (uvicorn with uvloop and httptools, several worker
   processes, asyncpg, Redis) on a free loopback port;
3. drives it with ``bench.load``: POS completes closed loop at rising concurrency, pgbench's
   TPC-B-like script on the same server at the same client counts as the yardstick, identify /
   preview / complete open loop at half the peak, one hot member from many tills, the wallet's
   home page, then the ledger grown to 1,000,000 members and 10,000,000 entries and its balance
   and history reads; the expiry sweep over 1,000,000 lots through ``bench.expiry_sweep``;
   the resident memory of each worker after the load;
4. prints a table and writes BENCHMARKS.md and the chart (``bench.report``).

    make bench                                  # the full run, about 10 minutes on a quiet machine
    make bench BENCH_ARGS=--quick               # small sizes and short phases, a few minutes
    .venv/bin/python -m bench.suite --help      # sizes, phases, workers, what to skip

A step that fails is reported (and the exit status is 1) but does not stop the steps after it.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import re
import secrets
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.load import (
    AccountReadWorkload,
    LatencyHistogram,
    PosWorkload,
    Target,
    WalletHomeWorkload,
    drive,
)
from bench.report import (
    BenchResults,
    HotMemberFigure,
    LoadFigure,
    Machine,
    PgbenchFigure,
    PlanText,
    ServiceReadFigure,
    SweepResult,
    WorkerMemory,
    console_table,
    render_markdown,
    write_chart,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DATABASE = "loyalty_bench"
PGBENCH_DATABASE = "loyalty_bench_pgbench"


# --- options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    members: int
    days: int
    concurrency: tuple[int, ...]
    seconds: float
    warmup: float
    hot_terminals: int
    wallet_rate: float
    wallet_sessions: int
    sweep_lots: int
    grow_members: int
    grow_entries: int
    read_samples: int
    read_rate: float


FULL = Sizes(
    members=100_000,
    days=365,
    concurrency=(1, 4, 16, 64),
    seconds=15.0,
    warmup=5.0,
    hot_terminals=32,
    wallet_rate=200.0,
    wallet_sessions=200,
    sweep_lots=1_000_000,
    grow_members=1_000_000,
    grow_entries=10_000_000,
    read_samples=5000,
    read_rate=100.0,
)
QUICK = Sizes(
    members=2_000,
    days=30,
    concurrency=(1, 4, 16),
    seconds=3.0,
    warmup=1.0,
    hot_terminals=32,
    wallet_rate=200.0,
    wallet_sessions=50,
    sweep_lots=20_000,
    grow_members=5_000,
    grow_entries=100_000,
    read_samples=500,
    read_rate=100.0,
)
STEPS = ("pgbench", "half-peak", "hot", "wallet", "sweep", "reads")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.suite", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and short phases, output under var/bench/ (trying the suite out)",
    )
    parser.add_argument("--workers", type=int, default=2, help="app worker processes [2]")
    parser.add_argument(
        "--server",
        choices=("uvicorn", "loyalty-serve"),
        default="uvicorn",
        help="uvicorn: uvicorn CLI with uvloop, httptools, no access log (default); "
        "loyalty-serve: the `loyalty serve` command as shipped",
    )
    parser.add_argument("--db-pool-size", type=int, default=10, help="per worker [10]")
    parser.add_argument("--client-processes", type=int, default=1, help="load generator [1]")
    parser.add_argument("--zipf-s", type=float, default=1.1, help="member skew exponent [1.1]")
    parser.add_argument("--members", type=int, help="members seeded [100000]")
    parser.add_argument("--days", type=int, help="days of history seeded [365]")
    parser.add_argument("--concurrency", help="closed-loop client counts [1,4,16,64]")
    parser.add_argument("--seconds", type=float, help="measured seconds per phase [15]")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per phase [5]")
    parser.add_argument("--hot-terminals", type=int, help="tills on the hot member [32]")
    parser.add_argument("--wallet-rate", type=float, help="wallet home requests/s [200]")
    parser.add_argument("--sweep-lots", type=int, help="due lots for the expiry sweep [1000000]")
    parser.add_argument("--grow-members", type=int, help="members before the reads [1000000]")
    parser.add_argument("--grow-entries", type=int, help="ledger entries before reads [10000000]")
    parser.add_argument("--read-samples", type=int, help="members timed per read [5000]")
    parser.add_argument("--read-rate", type=float, help="HTTP read requests/s [100]")
    parser.add_argument(
        "--skip", default="", help=f"comma-separated steps to leave out: {', '.join(STEPS)}"
    )
    parser.add_argument(
        "--step-timeout", type=float, default=1200.0, help="seconds a step may take [1200]"
    )
    parser.add_argument(
        "--keep-database",
        action="store_true",
        help=f"keep {DATABASE} afterwards (about 5 GB after a full run) instead of dropping it",
    )
    parser.add_argument("--postgres", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--redis-db", type=int, default=11, help="Redis database number [11]")
    parser.add_argument("--output", type=Path, help="report [BENCHMARKS.md]")
    parser.add_argument("--chart", type=Path, help="chart [docs/bench/throughput.png]")
    args = parser.parse_args(argv)
    unknown = set(filter(None, args.skip.split(","))) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps to skip: {', '.join(sorted(unknown))}")
    if args.redis_db == 9:
        parser.error("Redis database 9 belongs to the test suite")
    return args


def sizes_from(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else FULL
    concurrency = (
        tuple(int(part) for part in args.concurrency.split(","))
        if args.concurrency
        else base.concurrency
    )
    return Sizes(
        members=args.members or base.members,
        days=args.days or base.days,
        concurrency=concurrency,
        seconds=args.seconds or base.seconds,
        warmup=args.warmup if args.warmup is not None else base.warmup,
        hot_terminals=args.hot_terminals or base.hot_terminals,
        wallet_rate=args.wallet_rate or base.wallet_rate,
        wallet_sessions=base.wallet_sessions,
        sweep_lots=args.sweep_lots or base.sweep_lots,
        grow_members=args.grow_members or base.grow_members,
        grow_entries=args.grow_entries or base.grow_entries,
        read_samples=args.read_samples or base.read_samples,
        read_rate=args.read_rate or base.read_rate,
    )


# --- progress and logging ---------------------------------------------------------------------


def say(text: str) -> None:
    print(f"==> {text}", file=sys.stderr, flush=True)


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A ``(stage, done, total)`` callback that shows one rich progress bar per stage."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as progress:

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update


# --- PostgreSQL -------------------------------------------------------------------------------


def database_url(server: str, name: str) -> str:
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def libpq_dsn(server: str, name: str | None = None) -> str:
    url = make_url(server).set(drivername="postgresql")
    if name is not None:
        url = url.set(database=name)
    return url.render_as_string(hide_password=False)


async def recreate_database(server: str, name: str) -> None:
    admin = await asyncpg.connect(libpq_dsn(server))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def drop_database(server: str, name: str) -> None:
    admin = await asyncpg.connect(libpq_dsn(server))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def sql(server: str, name: str, statement: str) -> Any:
    connection = await asyncpg.connect(libpq_dsn(server, name))
    try:
        return await connection.fetchval(statement)
    finally:
        await connection.close()


# --- pgbench ----------------------------------------------------------------------------------


def pgbench_connection_args(server: str) -> list[str]:
    url = make_url(server)
    args = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    if url.username:
        args += ["-U", url.username]
    return args


def pgbench_environment(server: str) -> dict[str, str]:
    password = make_url(server).password
    return {**os.environ, **({"PGPASSWORD": str(password)} if password else {})}


def parse_pgbench_output(text: str) -> tuple[float, int, float]:
    """(tps, transactions, average latency in ms) from pgbench's summary."""
    tps = re.search(r"^tps = ([\d.]+)", text, re.MULTILINE)
    done = re.search(r"number of transactions actually processed: (\d+)", text)
    latency = re.search(r"latency average = ([\d.]+) ms", text)
    if tps is None or done is None:
        raise RuntimeError(f"pgbench printed no summary:\n{text[-2000:]}")
    return float(tps.group(1)), int(done.group(1)), float(latency.group(1)) if latency else 0.0


def pgbench_log_latencies(lines: Iterator[str], histogram: LatencyHistogram) -> None:
    """Add the latencies of a pgbench per-transaction log (``-l``: ``client transaction
    time_us script epoch epoch_us``) to ``histogram``; failed or skipped ones are not
    latencies."""
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[2].isdigit():
            histogram.record(int(fields[2]) / 1e6)


def read_pgbench_logs(directory: Path) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for log in directory.iterdir():
        with log.open() as lines:
            pgbench_log_latencies(lines, histogram)
    return histogram


async def run_command(command: list[str], env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} exited {process.returncode}:\n{text[-2000:]}")
    return text


async def pgbench_init(server: str, scale: int) -> None:
    await recreate_database(server, PGBENCH_DATABASE)
    command = ["pgbench", *pgbench_connection_args(server), "-i", "-q", "-s", str(scale)]
    await run_command([*command, PGBENCH_DATABASE], pgbench_environment(server))


async def pgbench_run(server: str, clients: int, seconds: float, scale: int) -> PgbenchFigure:
    threads = min(2, clients)
    with tempfile.TemporaryDirectory(prefix="pgbench-") as logs:
        prefix = Path(logs) / "tx"
        command = [
            "pgbench",
            *pgbench_connection_args(server),
            "-c",
            str(clients),
            "-j",
            str(threads),
            "-T",
            str(round(seconds)),
            "-M",
            "prepared",
            "-l",
            f"--log-prefix={prefix}",
            PGBENCH_DATABASE,
        ]
        output = await run_command(command, pgbench_environment(server))
        tps, transactions, average = parse_pgbench_output(output)
        histogram = read_pgbench_logs(Path(logs))
    return PgbenchFigure(
        clients=clients,
        threads=threads,
        seconds=seconds,
        tps=tps,
        transactions=transactions,
        latency_average_ms=average,
        p50_ms=histogram.percentile(50) * 1000,
        p99_ms=histogram.percentile(99) * 1000,
        scale=scale,
    )


# --- the app ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class App:
    process: subprocess.Popen[bytes]
    target: Target
    log: Path
    description: str

    def worker_pids(self) -> list[int]:
        """The worker processes: the supervisor's children that serve (uvicorn spawns them
        through multiprocessing), or the one process itself when it has none."""
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and "spawn_main" in cmdline:
                children.append(int(entry.name))
        return sorted(children) or [self.process.pid]

    def cpu_seconds(self) -> float:
        """CPU time the worker processes have used so far (user and system)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.worker_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def app_command(server: str, workers: int, port: int) -> list[str]:
    if server == "loyalty-serve":
        loyalty = str(Path(sys.executable).with_name("loyalty"))
        address = ["--host", "127.0.0.1", "--port", str(port)]
        return [loyalty, "serve", *address, "--workers", str(workers)]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "loyalty.app.factory:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def spawn(command: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` with its output going to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        return subprocess.Popen(  # noqa: S603 (the app's own command line)
            command, env={**os.environ, **environment}, stdout=output, stderr=output, cwd=ROOT
        )


def log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def start_app(args: argparse.Namespace, environment: dict[str, str], log: Path) -> App:
    port = free_port()
    command = app_command(args.server, args.workers, port)
    process = spawn(command, environment, log)
    app = App(process, Target("127.0.0.1", port), log, shlex.join(command[1:]))
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"the app exited at start:\n{log_tail(log)}")
            try:
                ready = (await client.get(f"http://127.0.0.1:{port}/ready")).status_code == 200
            except httpx.TransportError:
                ready = False
            # Every worker must be up, not just the first to answer.
            if ready and (len(app.worker_pids()) >= args.workers or args.workers == 1):
                return app
            await asyncio.sleep(0.2)
    app.stop()
    raise RuntimeError("the app did not get ready within 60 s")


def worker_memory(pids: list[int]) -> list[WorkerMemory]:
    figures = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss, peak, anonymous = (
            int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM", "RssAnon")
        )
        figures.append(WorkerMemory(pid, rss, peak, anonymous))
    return figures


# --- machine ----------------------------------------------------------------------------------


def machine_facts(postgres_version: str, server: str) -> Machine:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text()
    total = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
    return Machine(
        cores=os.cpu_count() or 0,
        cpu=model.group(1).strip() if model else platform.processor() or "unknown",
        ram_gb=int(total.group(1)) / 1024 / 1024 if total else 0.0,
        postgres=postgres_version,
        python=platform.python_version(),
        system=platform.platform(),
        server=server,
    )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def source_revision() -> str:
    # git from PATH, with fixed arguments: only to name the source that was measured.
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return revision + (" with uncommitted changes" if dirty else "")


def command_line(argv: list[str]) -> str:
    if os.environ.get("MAKELEVEL"):
        return "make bench" + (f" BENCH_ARGS='{shlex.join(argv)}'" if argv else "")
    return shlex.join(["python", "-m", "bench.suite", *argv])


# --- the run ----------------------------------------------------------------------------------


class Run:
    """One run of the suite: its options, its results so far, and the app it drives."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.args = parse_args(argv)
        self.sizes = sizes_from(self.args)
        self.skip = set(filter(None, self.args.skip.split(",")))
        self.server = self.args.postgres
        self.url = database_url(self.server, DATABASE)
        out = ROOT / "var" / "bench" if self.args.quick else ROOT
        self.output = self.args.output or out / "BENCHMARKS.md"
        chart = out / "throughput.png" if self.args.quick else ROOT / "docs/bench/throughput.png"
        self.chart = self.args.chart or chart
        self.results: BenchResults | None = None
        self.app: App | None = None
        self.program: Any = None
        self.run_tag = secrets.token_hex(3)
        self.app_cpu_cores = math.nan

    @property
    def report(self) -> BenchResults:
        assert self.results is not None
        return self.results

    async def step(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run one step; a failure is recorded and the run goes on."""
        if name in self.skip:
            say(f"{name}: skipped")
            self.report.notes.append(f"Step {name} was skipped (--skip).")
            return
        say(name)
        started = time.monotonic()
        try:
            await asyncio.wait_for(work(), self.args.step_timeout)
        except TimeoutError:
            self.report.failures[name] = f"did not finish within {self.args.step_timeout:.0f} s"
        except Exception as error:
            traceback.print_exc()
            self.report.failures[name] = f"{type(error).__name__}: {error}".splitlines()[0]
        say(f"{name}: {time.monotonic() - started:.0f} s")

    async def run(self) -> int:
        started = time.monotonic()
        started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        await self.check_services()
        postgres = await sql(self.server, "postgres", "SHOW server_version")
        server = f"{self.args.workers} worker processes, " + (
            "uvicorn (uvloop, httptools), no access log"
            if self.args.server == "uvicorn"
            else "`loyalty serve`"
        )
        self.results = BenchResults(
            started_at=started_at,
            command=command_line(self.argv),
            machine=machine_facts(f"{postgres}", server),
        )
        load_before = load_average()
        try:
            await self.seed()
            if "pgbench" not in self.skip:
                await self.step("pgbench init", self.init_pgbench)
            await self.launch()
            await self.closed_loop()
            await self.step("half-peak", self.half_peak)
            await self.step("hot", self.hot_member)
            await self.step("wallet", self.wallet_home)
            self.snapshot_memory("after the POS and wallet load phases")
            await self.step("sweep", self.sweep)
            await self.step("reads", self.reads)
            self.snapshot_memory("after all load phases of the run")
        except Exception as error:
            traceback.print_exc()
            self.report.failures["run"] = f"{type(error).__name__}: {error}".splitlines()[0]
        finally:
            if self.app is not None:
                self.app.stop()
            if "pgbench" not in self.skip:
                await drop_database(self.server, PGBENCH_DATABASE)
            if not self.args.keep_database:
                await drop_database(self.server, DATABASE)
        report = self.report
        report.duration_seconds = time.monotonic() - started
        report.conditions += [
            f"Source: {source_revision()}.",
            f"Load average (1, 5, 15 min) at the start {load_before}, at the end "
            f"{load_average()}: other work on this machine shows up there.",
        ]
        print(console_table(report))
        if not report.measured_anything:
            say(f"nothing was measured: {self.output} and {self.chart} are left as they were")
            return 1
        self.write(report)
        say(f"wrote {self.output} and {self.chart} in {report.duration_seconds / 60:.1f} min")
        return 1 if report.failures else 0

    def write(self, report: BenchResults) -> None:
        """The chart, then BENCHMARKS.md (which links the chart relative to itself)."""
        if write_chart(report, self.chart):
            report.chart = os.path.relpath(self.chart, self.output.parent)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_text(render_markdown(report))

    async def check_services(self) -> None:
        try:
            await sql(self.server, "postgres", "SELECT 1")
        except (OSError, asyncpg.PostgresError) as error:
            raise SystemExit(f"PostgreSQL at {self.server} does not answer: {error}") from None
        from redis.asyncio import Redis

        redis = Redis.from_url(self.redis_url)
        try:
            await redis.flushdb()
        except Exception as error:
            raise SystemExit(f"Redis at {self.redis_url} does not answer: {error}") from None
        finally:
            await redis.aclose()

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:6379/{self.args.redis_db}"

    async def seed(self) -> None:
        from bench.bulk_seed import seed_program

        sizes = self.sizes
        say(f"seeding {DATABASE}: {sizes.members:,} members, {sizes.days} days of history")
        started = time.monotonic()
        await recreate_database(self.server, DATABASE)
        secret_key = secrets.token_urlsafe(32)
        with progress_bars() as progress:
            self.program = await seed_program(
                self.url,
                members=sizes.members,
                days=sizes.days,
                terminals=max(64, sizes.hot_terminals, *sizes.concurrency),
                secret_key=secret_key,
                progress=progress,
            )
        seconds = time.monotonic() - started
        entries = await sql(self.server, DATABASE, "SELECT count(*) FROM entries")
        journals = await sql(self.server, DATABASE, "SELECT count(*) FROM journals")
        self.report.conditions.append(
            f"Seeded by bench/bulk_seed.py in {seconds:.0f} s: {len(self.program.members):,} "
            f"members with {sizes.days} days of history ({journals:,} journals, {entries:,} "
            f"ledger entries), {len(self.program.terminal_keys)} tills."
        )

    async def init_pgbench(self) -> None:
        self.pgbench_scale = max(self.sizes.concurrency)
        await pgbench_init(self.server, self.pgbench_scale)

    async def launch(self) -> None:
        program = self.program
        self.api_key = secrets.token_urlsafe(24)
        environment = {
            "LOYALTY_DATABASE_URL": self.url,
            "LOYALTY_REDIS_URL": self.redis_url,
            "LOYALTY_ENV": "production",
            "LOYALTY_SECRET_KEY": program.secret_key,
            "LOYALTY_SWEEP_INTERVAL_SECONDS": "0",
            "LOYALTY_POS_RATE_LIMIT": "0",
            "LOYALTY_DB_POOL_SIZE": str(self.args.db_pool_size),
            "LOYALTY_API_KEYS": f"bench={self.api_key}@{program.merchant_id}",
        }
        log = ROOT / "var" / "bench" / "app.log"
        self.app = await start_app(self.args, environment, log)
        self.report.memory_at_start = worker_memory(self.app.worker_pids())
        sampler_share = _zipf_shares(len(program.members), self.args.zipf_s)
        self.report.conditions += [
            f"App: `{self.app.description}` on loopback (log in var/bench/app.log), "
            "LOYALTY_ENV=production, asyncpg, Redis, "
            f"LOYALTY_DB_POOL_SIZE={self.args.db_pool_size} per worker; the background sweep "
            "off (LOYALTY_SWEEP_INTERVAL_SECONDS=0) so that it does not run during the "
            "measurements.",
            "LOYALTY_POS_RATE_LIMIT=0: one load generator drives many tills, far beyond a real "
            "till's allowance of 600 requests a minute per key.",
            f"Load generator: bench/load.py, {self.args.client_processes} client process(es) "
            "on uvloop, raw HTTP/1.1 keep-alive connections (one per till, each with its own "
            "terminal key); members drawn from a Zipf distribution with s = "
            f"{self.args.zipf_s} over the seeded members (most active first: the top member "
            f"gets {sampler_share[0]:.1%} of the requests, the top 1% of members "
            f"{sampler_share[1]:.1%}), each identified by the rotating code its wallet shows; "
            "5-line basket; a fresh transaction id per complete.",
            "PostgreSQL and Redis run on the same 2 cores as the app and the load generator.",
        ]

    async def pos_phase(
        self,
        operation: str,
        *,
        connections: int,
        seconds: float,
        warmup: float,
        rate: float | None = None,
        only_member: Any = None,
        count_points: bool = False,
    ) -> Any:
        assert self.app is not None
        self.run_tag = secrets.token_hex(3)
        cpu_before, started = self.app.cpu_seconds(), time.monotonic()
        workload = PosWorkload(
            operation,
            self.program,
            zipf_s=self.args.zipf_s,
            only_member=only_member,
            run_tag=f"B{self.run_tag}",
            count_points=count_points,
        )
        result = await drive(
            self.app.target,
            workload,
            connections=connections,
            seconds=seconds,
            warmup=warmup,
            rate=rate,
            processes=self.args.client_processes,
        )
        self.app_cpu_cores = (self.app.cpu_seconds() - cpu_before) / (time.monotonic() - started)
        return result

    async def closed_loop(self) -> None:
        sizes = self.sizes
        say("warm-up: completes at 16 connections")
        await self.pos_phase("complete", connections=16, seconds=sizes.warmup * 2, warmup=0)
        for clients in sizes.concurrency:
            await sql(self.server, DATABASE, "CHECKPOINT")
            say(f"POS complete, closed loop, {clients} connections")
            result = await self.pos_phase(
                "complete", connections=clients, seconds=sizes.seconds, warmup=sizes.warmup
            )
            figure = LoadFigure.from_result(
                "complete", result, concurrency=clients, app_cpu_cores=self.app_cpu_cores
            )
            self.report.closed_loop.append(figure)
            say(
                f"  {figure.per_second:.0f}/s p99 {figure.p99_ms:.1f} ms, app CPU "
                f"{self.app_cpu_cores:.2f} cores, errors {figure.error_text}"
            )
            if "pgbench" in self.skip or "pgbench init" in self.report.failures:
                continue

            async def yardstick(clients: int = clients) -> None:
                await sql(self.server, DATABASE, "CHECKPOINT")
                measured = await pgbench_run(
                    self.server, clients, sizes.seconds, self.pgbench_scale
                )
                self.report.pgbench.append(measured)
                say(f"  pgbench {measured.tps:.0f} tps p99 {measured.p99_ms:.1f} ms")

            await self.step(f"pgbench {clients}", yardstick)

    async def half_peak(self) -> None:
        peak = self.report.peak
        if peak is None or peak.per_second <= 0:
            raise RuntimeError("no peak: the closed-loop phases measured nothing")
        rate = peak.per_second / 2
        for operation in ("identify", "preview", "complete"):
            # Like every measured phase: what pgbench or the phase before left dirty is written
            # now, not by a checkpoint in the middle of this one.
            await sql(self.server, DATABASE, "CHECKPOINT")
            say(f"{operation}, open loop at {rate:.0f}/s")
            result = await self.pos_phase(
                operation,
                connections=64,
                seconds=self.sizes.seconds,
                warmup=min(self.sizes.warmup, 2.0),
                rate=rate,
            )
            figure = LoadFigure.from_result(
                operation, result, rate=rate, app_cpu_cores=self.app_cpu_cores
            )
            self.report.half_peak.append(figure)
            say(f"  p50 {figure.p50_ms:.1f} p99 {figure.p99_ms:.1f} ms {figure.error_text}")

    async def hot_member(self) -> None:
        from loyalty.db.engine import create_engine
        from loyalty.db.tables import accounts, journals, orders

        member = self.program.members[0]
        engine = create_engine(self.url, pool_size=1)

        async def ledger_state() -> tuple[int, int, int, int]:
            async with engine.connect() as conn:
                account = (
                    await conn.execute(
                        select(accounts.c.id, accounts.c.posted).where(
                            accounts.c.program_id == self.program.program_id,
                            accounts.c.member_id == member.member_id,
                        )
                    )
                ).one()
                journal = await conn.scalar(
                    select(func.coalesce(func.max(journals.c.id), 0)).where(
                        journals.c.account_id == account.id
                    )
                )
                order = await conn.scalar(
                    select(func.coalesce(func.max(orders.c.id), 0)).where(
                        orders.c.account_id == account.id
                    )
                )
                return int(account.id), int(account.posted), int(journal or 0), int(order or 0)

        try:
            account_id, before, last_journal, last_order = await ledger_state()
            result = await self.pos_phase(
                "complete",
                connections=self.sizes.hot_terminals,
                seconds=self.sizes.seconds,
                warmup=0,
                only_member=member,
                count_points=True,
            )
            _, after, _, _ = await ledger_state()
            async with engine.connect() as conn:
                added = (
                    await conn.execute(
                        select(func.count(), func.coalesce(func.sum(journals.c.delta), 0)).where(
                            journals.c.account_id == account_id, journals.c.id > last_journal
                        )
                    )
                ).one()
                orders_added = await conn.scalar(
                    select(func.count()).where(
                        orders.c.account_id == account_id, orders.c.id > last_order
                    )
                )
        finally:
            await engine.dispose()
        figure = LoadFigure.from_result(
            "hot member complete", result, app_cpu_cores=self.app_cpu_cores
        )
        figure = LoadFigure(**{**figure.__dict__, "concurrency": self.sizes.hot_terminals})
        self.report.hot_member = HotMemberFigure(
            load=figure,
            terminals=self.sizes.hot_terminals,
            member_id=member.member_id,
            balance_before=before,
            balance_after=after,
            points_reported=int(result.tally["points_earned"]),
            successes=int(result.tally["successes"]),
            orders_added=int(orders_added or 0),
            journals_added=int(added[0]),
            journal_delta_sum=int(added[1]),
        )
        say(f"  {figure.per_second:.0f}/s consistent={self.report.hot_member.consistent}")

    async def wallet_home(self) -> None:
        from bench.wallet_load import sign_in_members
        from wallet.api import COOKIE_NAME

        assert self.app is not None
        tokens = await sign_in_members(
            self.url,
            secret_key=self.program.secret_key,
            program_id=self.program.program_id,
            count=self.sizes.wallet_sessions,
        )
        workload = WalletHomeWorkload(self.program.program_id, tokens, COOKIE_NAME)
        rate = self.sizes.wallet_rate
        result = await drive(
            self.app.target,
            workload,
            connections=64,
            seconds=self.sizes.seconds,
            warmup=min(self.sizes.warmup, 2.0),
            rate=rate,
            processes=self.args.client_processes,
        )
        self.report.wallet_home = LoadFigure.from_result("wallet home", result, rate=rate)
        self.report.notes.append(
            f"Wallet home page: {len(tokens)} members signed in through MemberSignIn "
            "(code requested, then traded for a session), each request with one of their "
            "session cookies."
        )

    async def sweep(self) -> None:
        from bench.expiry_sweep import measure_expiry_sweep

        with progress_bars() as progress:
            figure = await measure_expiry_sweep(
                self.server, lots=self.sizes.sweep_lots, progress=progress
            )
        self.report.sweep = SweepResult(
            lots=figure.lots,
            seconds=figure.seconds,
            lots_per_second=figure.lots_per_second,
            conditions=figure.conditions,
        )

    async def reads(self) -> None:
        from bench.bulk_seed import grow_ledger
        from bench.reads import measure_service_reads, member_ids

        assert self.app is not None
        sizes = self.sizes
        started = time.monotonic()
        with progress_bars() as progress:
            await grow_ledger(
                self.url,
                self.program,
                members_total=sizes.grow_members,
                entries_total=sizes.grow_entries,
                progress=progress,
            )
        grown = time.monotonic() - started
        await sql(self.server, DATABASE, "ANALYZE")
        entries = await sql(self.server, DATABASE, "SELECT count(*) FROM entries")
        journals = await sql(self.server, DATABASE, "SELECT count(*) FROM journals")
        members = await member_ids(self.url, self.program.program_id)
        self.report.ledger_size = (
            f"{len(members):,} members, {entries:,} ledger entries, {journals:,} journals"
        )
        self.report.conditions.append(
            f"Before the reads the ledger was grown by bench/bulk_seed.py in {grown:.0f} s to "
            f"{self.report.ledger_size}, then ANALYZE."
        )
        times, plans = await measure_service_reads(
            self.url,
            merchant_id=self.program.merchant_id,
            program_id=self.program.program_id,
            members=members,
            samples=sizes.read_samples,
            explain_member=self.program.members[0].member_id,
        )
        self.report.service_reads = [
            ServiceReadFigure.from_histograms(t.name, t.calls, t.statements) for t in times
        ]
        self.report.plans = [PlanText(p.name, p.statement, p.plan) for p in plans]
        for what in ("balance", "history"):
            workload = AccountReadWorkload(what, self.program.program_id, members, self.api_key)
            result = await drive(
                self.app.target,
                workload,
                connections=32,
                seconds=sizes.seconds,
                warmup=min(sizes.warmup, 2.0),
                rate=sizes.read_rate,
                processes=self.args.client_processes,
            )
            self.report.http_reads.append(
                LoadFigure.from_result(f"GET .../{what}", result, rate=sizes.read_rate)
            )

    def snapshot_memory(self, when: str) -> None:
        if self.app is None or self.app.process.poll() is not None:
            return
        self.report.memory = worker_memory(self.app.worker_pids())
        self.report.memory_when = when


def _zipf_shares(members: int, s: float) -> tuple[float, float]:
    from bench.load import ZipfSampler

    sampler = ZipfSampler(members, s)
    return sampler.share_of_top(1), sampler.share_of_top(max(1, members // 100))


def main(argv: list[str] | None = None) -> None:
    import uvloop

    run = Run(sys.argv[1:] if argv is None else argv)
    sys.exit(uvloop.run(run.run()))


if __name__ == "__main__":
    main()
