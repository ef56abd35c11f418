"""Fixtures for the whole suite: migrated databases on both back ends, Redis, Hypothesis profiles.

- ``sqlite_url`` (function): ``sqlite+aiosqlite:///<tmp_path>/loyalty.db``, a private copy of a
  SQLite file migrated to head once per session.
- ``postgres_url`` (session): URL of a database ``loyalty_test_<hex>`` created on the
  LOYALTY_TEST_POSTGRES_URL server and migrated to head; dropped at session end. Tests share it.
- ``postgres_clean_url`` (function): ``postgres_url`` after TRUNCATE ... RESTART IDENTITY CASCADE
  of every table.
- ``db_url`` (function, parametrized ``sqlite`` / ``postgres``): a clean migrated URL of each.
- ``redis_url`` (function): LOYALTY_TEST_REDIS_URL (default redis://127.0.0.1:6379/9) after
  FLUSHDB.

A server that does not answer skips its tests, or fails them when LOYALTY_REQUIRE_SERVICES=1.
Markers are added from the fixtures a test uses (see ``pytest_collection_modifyitems``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support import services

# --- Hypothesis ----------------------------------------------------------------------------

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=50,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# Same health checks as ci, so a test that passes in CI does not fail locally for a fixture
# scope; examples are random and remembered in .hypothesis/ between runs.
settings.register_profile(
    "dev",
    max_examples=200,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "dev")


# --- Markers -------------------------------------------------------------------------------

_TESTS_DIR = Path(__file__).resolve().parent
_DATABASE_FIXTURES = frozenset({"sqlite_url", "postgres_url", "postgres_clean_url", "db_url"})
_POSTGRES_FIXTURES = frozenset({"postgres_url", "postgres_clean_url"})
#: Folders whose every test runs the app or the services against a real database, whether
#: through the fixtures above or through copies of databases those fixtures made.
_INTEGRATION_DIRS = ("admin", "app", "db", "ledger", "pos", "services")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixturenames = set(getattr(item, "fixturenames", ()))
        if fixturenames & _POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if fixturenames & {"redis_url", "redis_server_url"}:
            item.add_marker(pytest.mark.redis)
        path = Path(item.path).resolve()
        if fixturenames & _DATABASE_FIXTURES or any(
            path.is_relative_to(_TESTS_DIR / folder) for folder in _INTEGRATION_DIRS
        ):
            item.add_marker(pytest.mark.integration)
        if path.is_relative_to(_TESTS_DIR / "domain"):
            item.add_marker(pytest.mark.unit)


# --- SQLite --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head per session; ``sqlite_url`` copies it."""
    return services.migrate_sqlite_template(tmp_path_factory.mktemp("sqlite") / "template.db")


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh SQLite database at head, private to the test."""
    return services.copy_sqlite(sqlite_template, tmp_path / "loyalty.db")


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database created for this session on the LOYALTY_TEST_POSTGRES_URL server, at head."""
    with services.fresh_postgres_database(services.postgres_server_url()) as url:
        yield url


@pytest.fixture
def postgres_clean_url(postgres_url: str) -> str:
    """``postgres_url`` with every table emptied and every id sequence restarted."""
    services.truncate_all_tables(postgres_url)
    return postgres_url


# --- Both back ends ------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A clean migrated database URL, once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_clean_url"
    url: str = request.getfixturevalue(fixture)
    return url


# --- Redis ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The Redis URL, checked once per session (so a dead server costs one timeout)."""
    url = services.redis_server_url()
    services.check_redis(url)
    return url


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """LOYALTY_TEST_REDIS_URL with its database flushed before the test."""
    services.flush_redis(redis_server_url)
    return redis_server_url
