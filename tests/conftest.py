"""Fixtures every test tier shares: fresh, migrated databases on real Postgres and on SQLite.

Postgres tests create and drop their own database on the server at TEST_DATABASE_URL. Where no
server answers they are skipped, loudly; with CI=true a skip like that fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fakes import MemoryChatStore
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from courier_migrator.migrations import upgrade
from courier_shared.db.engine import build_engine
from courier_shared.db.store import ChatStore, Owner

ROOT = Path(__file__).resolve().parent.parent
# Every AWS call of the local stacks, evaluated against the declared IAM at the end of the session.
pytest_plugins = ["iam_plugin"]
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_postgres_skips: list[str] = []


def migrate(url: str) -> None:
    engine = build_engine(url)
    upgrade(ROOT, engine)
    engine.dispose()


def _postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL at {make_url(TEST_DATABASE_URL).render_as_string()} unreachable: {reason}"
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    _postgres_skips.append(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_database_factory() -> Iterator[object]:
    """Makes fresh, empty databases on the test server; drops them all at the end."""
    admin = create_engine(
        TEST_DATABASE_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure to reach the server means "no server here"
        admin.dispose()
        _postgres_unavailable(str(error).splitlines()[0])
    created: list[str] = []

    def make() -> str:
        name = f"courier_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    for name in created:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database (one per session; tests isolate by unique owners)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'courier.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def postgres_url(postgres_database_factory: object) -> str:
    """A migrated database on real Postgres only."""
    url: str = postgres_database_factory()  # type: ignore[operator]
    migrate(url)
    return url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated database on each engine (one per session; tests isolate by unique owners)."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(scope="session")
def chat_stores() -> Iterator[Callable[[str], ChatStore]]:
    """One ChatStore per database URL for the session, disposed at its end."""
    stores: dict[str, ChatStore] = {}

    def store_on(url: str) -> ChatStore:
        if url not in stores:
            stores[url] = ChatStore(build_engine(url))
        return stores[url]

    yield store_on
    for opened in stores.values():
        opened.engine.dispose()


@pytest.fixture(scope="session")
def store(database_url: str, chat_stores: Callable[[str], ChatStore]) -> ChatStore:
    return chat_stores(database_url)


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def any_store(request: pytest.FixtureRequest) -> ChatStore | MemoryChatStore:
    """The chat store on each engine and the unit tier's in-memory fake: what holds for this
    fixture holds for the fake too (tests/fakes.py)."""
    if request.param == "memory":
        return MemoryChatStore()
    url: str = request.getfixturevalue(f"{request.param}_url")
    store_on: Callable[[str], ChatStore] = request.getfixturevalue("chat_stores")
    return store_on(url)


@pytest.fixture
def owner() -> Owner:
    """A user nobody else in the test run is."""
    return Owner(tenant_id="acme", user_id=f"user-{uuid.uuid4().hex[:8]}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _postgres_skips:
        terminalreporter.section("POSTGRES TESTS SKIPPED", sep="!", red=True, bold=True)
        terminalreporter.line(_postgres_skips[0], red=True)
        terminalreporter.line(
            "Start PostgreSQL or set TEST_DATABASE_URL to run them. CI=true refuses this skip."
        )
