"""The ``loyalty`` command line: serve, migrate, seed demo data, verify and expire the ledger,
create and list staff users, import members and transactions from CSV files.

Every command reads its configuration from the environment (:class:`Settings.from_env`); the
service modules are imported inside the commands so that ``loyalty --help`` stays fast and a
broken service cannot stop ``loyalty migrate`` from working.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
from sqlalchemy.engine import make_url

from loyalty.app.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

#: Progress callbacks of the long-running services: ``(done, total)``.
Progress = Callable[[int, int], None]
#: The values of ``loyalty.services.staff.StaffRole``, spelled out so that ``--help`` does not
#: import the services (tests/admin/test_cli_staff.py keeps the two equal).
STAFF_ROLES = ("owner", "program_manager", "support", "cashier")
#: How long ``loyalty serve`` lets open responses finish when told to stop.
GRACEFUL_SHUTDOWN_SECONDS = 10


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as error:
        raise click.ClickException(f"bad configuration: {error}") from error


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _with_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``work(engine)`` in a fresh event loop and dispose the engine afterwards."""
    from loyalty.db.engine import create_engine

    async def run() -> T:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@contextmanager
def _progress_bar(description: str) -> Iterator[Progress]:
    """A rich progress bar on stderr, driven by a ``(done, total)`` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _parse_aware_datetime(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> datetime | None:
    """An ISO 8601 timestamp with a UTC offset (``2025-01-31T00:00:00+01:00`` or ``...Z``)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset (add Z or +01:00)")
    return parsed


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loyalty")
def main() -> None:
    """loyalty: a ledger-based loyalty points platform.

    Configuration comes from LOYALTY_* environment variables (see README.md); without any,
    everything runs on the embedded SQLite database ./var/loyalty.db.
    """


@main.command()
@click.option("--host", default=None, help="Interface to bind [default: LOYALTY_HOST or 127.0.0.1]")
@click.option("--port", type=int, default=None, help="Port [default: LOYALTY_PORT or 8000]")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--reload", is_flag=True, help="Restart on code changes (development only).")
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log a line per request (uvicorn's access log; off spares its cost under load).",
)
def serve(host: str | None, port: int | None, workers: int, reload: bool, access_log: bool) -> None:
    """Serve the HTTP API (uvicorn with uvloop and httptools, app factory
    loyalty.app.factory:create_app). Each worker is a process of its own with its own
    connection pool (LOYALTY_DB_POOL_SIZE); run about one worker per core."""
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "loyalty.app.factory:create_app",
        factory=True,
        host=host or settings.host,
        port=port if port is not None else settings.port,
        workers=None if reload else workers,
        reload=reload,
        # uvicorn would fall back to the pure-Python loop and parser silently: ask for the fast
        # ones (both are installed with uvicorn[standard]).
        loop="uvloop",
        http="httptools",
        access_log=access_log,
        # A wallet's live balance stream never ends by itself: without a bound a stopping
        # worker waits for it forever. Cut, the browser reconnects (behind a load balancer, to
        # another process).
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (alembic upgrade head)."""
    from loyalty.db.migrate import current_head, ensure_sqlite_directory, upgrade

    settings = _settings()
    ensure_sqlite_directory(settings.database_url)
    upgrade(settings.database_url)
    click.echo(f"{_safe_url(settings.database_url)}: schema at revision {current_head()} (head)")


@main.command("seed-demo")
@click.option(
    "--history-days",
    type=click.IntRange(min=0, max=3650),
    default=None,
    help="Days of simulated history a new demo program gets [default: about 14 months].",
)
def seed_demo(history_days: int | None) -> None:
    """Create the demo merchant, program, members and history (safe to run again)."""
    from loyalty.services.demo import DEMO_TERMINAL
    from loyalty.services.demo import seed_demo as seed
    from loyalty.services.demo_history import HISTORY_DAYS

    settings = _settings()
    days = HISTORY_DAYS if history_days is None else history_days
    with _progress_bar("seeding demo data") as progress:
        summary = _with_engine(
            settings, lambda engine: seed(engine, progress=progress, history_days=days)
        )
    click.echo(str(summary))
    base = settings.base_url
    click.echo(f"wallet: {base}/wallet/{summary.program_id} (sign-in codes: {base}/admin/outbox)")
    click.echo(
        f"cashier page: {base}/pos (a staff login above, terminal code {DEMO_TERMINAL['code']})"
    )


@main.group()
def ledger() -> None:
    """Ledger maintenance: verification and the expiry sweep."""


@ledger.command()
def verify() -> None:
    """Check every ledger invariant against the stored data; exit 1 on any difference."""
    from loyalty.services.verify import verify_ledger

    settings = _settings()
    discrepancies = _with_engine(settings, verify_ledger)
    if not discrepancies:
        click.echo("ledger verified: no differences")
        return
    for discrepancy in discrepancies:
        click.echo(str(discrepancy))
    raise click.exceptions.Exit(1)


@ledger.command()
@click.option(
    "--at",
    metavar="ISO8601",
    default=None,
    callback=_parse_aware_datetime,
    help="Expire as of this instant (ISO 8601 with offset) [default: the database clock].",
)
def expire(at: datetime | None) -> None:
    """Expire the points of every lot whose time has come (running it twice changes nothing)."""
    from loyalty.services.expiry import run_expiry_sweep

    settings = _settings()
    with _progress_bar("expiring points") as progress:
        result = _with_engine(
            settings, lambda engine: run_expiry_sweep(engine, at=at, progress=progress)
        )
    click.echo(str(result))


@main.group()
def tiers() -> None:
    """Tier maintenance: period-end reviews."""


@tiers.command()
@click.option(
    "--at",
    metavar="ISO8601",
    default=None,
    callback=_parse_aware_datetime,
    help="Review as of this instant (ISO 8601 with offset) [default: now].",
)
def recalc(at: datetime | None) -> None:
    """Apply every period-end tier review (downgrades by the policy) and every end of a manual
    assignment that is due; running it twice changes nothing."""
    from loyalty.services.context import utc_now
    from loyalty.services.tier_status import recalc_tiers

    settings = _settings()
    when = at or utc_now()
    with _progress_bar("reviewing tiers") as progress:
        result = _with_engine(settings, lambda engine: recalc_tiers(engine, when, progress))
    click.echo(str(result))


@main.command("make-migration")
@click.argument("message")
def make_migration(message: str) -> None:
    """Autogenerate the next Alembic revision from loyalty/db/tables.py (review it by hand!)."""
    from loyalty.db.migrate import make_revision, upgrade

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'head.db'}"
        upgrade(url)
        rev_id = make_revision(url, message)
    click.echo(f"created revision {rev_id}; review it, then run the migration tests")


@main.group()
def staff() -> None:
    """Staff users: the logins of the admin API (/api/v1/admin)."""


@staff.command("create")
@click.option("--merchant-id", type=click.IntRange(min=1), required=True)
@click.option("--email", required=True, help="The login name (stored lower-case).")
@click.option("--role", type=click.Choice(STAFF_ROLES), required=True)
@click.option("--display-name", required=True)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of stdin (scripts) instead of prompting.",
)
def create_staff(
    merchant_id: int, email: str, role: str, display_name: str, password_stdin: bool
) -> None:
    """Create a staff user of a merchant; the audit log names "system" as the actor.

    The password is asked for twice without echo, never taken as an argument (it would end up
    in the shell history and the process list).
    """
    from loyalty.domain.errors import DomainError
    from loyalty.services.staff import StaffDirectory

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = _settings()
    try:
        created = _with_engine(
            settings,
            lambda engine: StaffDirectory(engine).provision_staff(
                merchant_id,
                email=email,
                password=password,
                role=role,
                display_name=display_name,
            ),
        )
    except DomainError as error:
        raise click.ClickException(f"{error.code}: {error.detail}") from None
    click.echo(
        f"created staff user {created.staff_id}: {created.email} ({created.role}) "
        f"of merchant {merchant_id}"
    )


@staff.command("list")
@click.option("--merchant-id", type=click.IntRange(min=1), required=True)
def list_staff(merchant_id: int) -> None:
    """List a merchant's staff users: id, email, role, active, name, last login."""
    from loyalty.services.staff import StaffDirectory

    settings = _settings()
    users = _with_engine(settings, lambda engine: StaffDirectory(engine).list_staff(merchant_id))
    if not users:
        click.echo(f"no staff users at merchant {merchant_id}")
        return
    for user in users:
        state = "active" if user.active else "inactive"
        last_login = user.last_login_at.isoformat() if user.last_login_at else "never"
        click.echo(
            f"{user.staff_id:>5}  {user.email:<32}  {user.role:<15}  {state:<8}  "
            f"{user.display_name}  (last login: {last_login})"
        )


@main.group()
def webhooks() -> None:
    """Outgoing webhooks (the app sends them by itself; these commands are for operators)."""


@webhooks.command("deliver")
def deliver_webhooks() -> None:
    """One pass: queue the events found since the last pass, send the deliveries that are due."""
    from loyalty.services.secret_box import SecretBox
    from loyalty.services.webhook_dispatch import WebhookDispatcher

    settings = _settings()
    box = SecretBox(settings.secret_key.encode())
    result = _with_engine(settings, lambda engine: WebhookDispatcher(engine, box).run_once())
    click.echo(str(result))


@contextmanager
def _phase_progress(filename: str) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar per phase of an import, driven by ``(phase, done, total)``."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TimeElapsedColumn

    descriptions = {
        "check": f"checking {filename}",
        "import": "importing rows",
        "tiers": "evaluating tiers",
    }
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        TaskProgressColumn(),
        "{task.fields[count]}",
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(descriptions.get(phase, phase), count="")
            count = "" if phase == "check" else f"{done}/{total}"
            progress.update(tasks[phase], completed=done, total=total, count=count)

        yield update


def _run_import(
    kind: str,
    file: Path,
    program_id: int,
    merchant_id: int | None,
    skip_bad_lines: bool,
    dry_run: bool,
) -> None:
    from loyalty.domain.csv_rows import ImportKind
    from loyalty.domain.errors import DomainError
    from loyalty.services.imports import Imports

    settings = _settings()
    try:
        with _phase_progress(file.name) as progress:
            outcome = _with_engine(
                settings,
                lambda engine: Imports(engine).import_file(
                    file,
                    kind=ImportKind(kind),
                    program_id=program_id,
                    filename=file.name,
                    merchant_id=merchant_id,
                    skip_bad_lines=skip_bad_lines,
                    dry_run=dry_run,
                    progress=progress,
                ),
            )
    except DomainError as error:
        raise click.ClickException(f"{error.code}: {error.detail}") from None
    run = outcome.run
    label = "dry run" if run.dry_run else f"import {run.run_id}"
    click.echo(
        f"{label} of {file.name} ({kind}): {run.status}; {run.rows_total} rows, "
        f"{run.rows_imported} imported, {run.rows_already_present} already present, "
        f"{run.rows_invalid} invalid"
    )
    timings = ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in outcome.seconds.items())
    click.echo(f"time: {timings}")
    if outcome.lots_expired:
        click.echo(
            f"{outcome.lots_expired} lots had expired before the import: expired at once, "
            "dated at their expiry"
        )
    for problem in run.problems:
        click.echo(f"line {problem.line}: {problem.message} [{problem.code}]")
    if run.rows_invalid > len(run.problems):
        click.echo(f"... and more: {run.rows_invalid} invalid lines in all")
    if run.status == "rejected":
        click.echo(
            "nothing was imported: correct these lines, or import the others with --skip-bad-lines",
            err=True,
        )
        raise click.exceptions.Exit(1)
    if run.status == "failed":
        click.echo("the import failed; run it again to import the rest", err=True)
        raise click.exceptions.Exit(1)


def _import_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        (
            click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
            click.option("--program-id", type=click.IntRange(min=1), required=True),
            click.option(
                "--merchant-id",
                type=click.IntRange(min=1),
                default=None,
                help="Refuse the import unless the program belongs to this merchant.",
            ),
            click.option(
                "--skip-bad-lines",
                is_flag=True,
                help="Import the good lines of a file that has bad ones (they are reported).",
            ),
            click.option("--dry-run", is_flag=True, help="Check the file only; import nothing."),
        )
    ):
        command = option(command)
    return command


@main.group("import")
def import_group() -> None:
    """CSV imports of members and historical transactions (docs/IMPORT.md).

    The whole file is checked first; a file with bad lines imports nothing unless
    --skip-bad-lines is given. Running an import again imports nothing twice.
    """


@import_group.command("members")
@_import_options
def import_members(
    file: Path,
    program_id: int,
    merchant_id: int | None,
    skip_bad_lines: bool,
    dry_run: bool,
) -> None:
    """Import members (external_id, display_name, email, phone, card_number, locale,
    joined_at, marketing_consent, marketing_consent_at, opening_points) into a program."""
    _run_import("members", file, program_id, merchant_id, skip_bad_lines, dry_run)


@import_group.command("transactions")
@_import_options
def import_transactions(
    file: Path,
    program_id: int,
    merchant_id: int | None,
    skip_bad_lines: bool,
    dry_run: bool,
) -> None:
    """Import historical sales (reference, occurred_at, member, total, currency, points);
    sales without a member count as non-member sales."""
    _run_import("transactions", file, program_id, merchant_id, skip_bad_lines, dry_run)
