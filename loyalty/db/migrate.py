"""Run the Alembic migrations in loyalty/db/migrations without an alembic.ini.

``upgrade`` is synchronous and runs its own event loop (``asyncio.run`` in env.py), so call it
only where no event loop is running; inside one, ``await upgrade_async(url)`` runs it in a
worker thread.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic Config for our migrations; the URL travels in ``attributes`` (no escaping)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Revisions are numbered 0001, 0002, ... (see make_revision); file names follow them.
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("truncate_slug_length", "40")
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def ensure_sqlite_directory(database_url: str) -> None:
    """Create the directory of a file-based SQLite database (``./var`` for the default URL)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _refuse_running_loop(name: str) -> None:
    # env.py runs the async engine with asyncio.run, which cannot nest in a running loop.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(f"{name}() called inside an event loop: await upgrade_async() instead")


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade the database to ``revision``. Must not be called with an event loop running."""
    _refuse_running_loop("upgrade")
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Downgrade the database to ``revision`` (tests use it; production never goes back)."""
    _refuse_running_loop("downgrade")
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str) -> None:
    """``upgrade(database_url)`` for callers inside an event loop: runs it in a thread."""
    await asyncio.to_thread(upgrade, database_url)


def current_head() -> str:
    """The head revision of the migration scripts (what ``upgrade`` brings a database to)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions in {MIGRATIONS_DIR / 'versions'}")
    return head


def make_revision(database_url: str, message: str) -> str:
    """Autogenerate the next revision by comparing ``database_url`` (at head) with the tables.

    Review the file by hand before committing it. Returns the new revision id.
    """
    config = alembic_config(database_url)
    ruff = Path(sys.executable).parent / "ruff"
    if ruff.exists():  # format the new file like the rest of the code base
        config.set_main_option("hooks", "ruff_fix, ruff_format")
        for name, args in (
            ("ruff_fix", "check --fix -q REVISION_SCRIPT_FILENAME"),
            ("ruff_format", "format -q REVISION_SCRIPT_FILENAME"),
        ):
            config.set_main_option(f"{name}.type", "exec")
            config.set_main_option(f"{name}.executable", str(ruff))
            config.set_main_option(f"{name}.options", args)
    script = ScriptDirectory.from_config(config)
    next_number = len(list(script.walk_revisions())) + 1
    rev_id = f"{next_number:04d}"
    command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
    return rev_id
