"""Fixtures every test tier shares: fresh, migrated databases on real Postgres and on SQLite.

Postgres tests create and drop their own database on the server at TEST_DATABASE_URL. Where no
server answers they are skipped, loudly; with CI=true a skip like that fails the run instead.

Every test belongs to one tier (CONTRIBUTING.md): `unit` for tests/unit/ (sockets, subprocesses
and databases refused there: tests/unit/conftest.py), `e2e` for tests/e2e/ and tests/browser/,
`integration` for everything else; a file may mark itself with another tier explicitly.
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
from support import FakeClock

from courier_local.edge.sqs import LocalMoto
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


# ---------------------------------------------------------------- AWS: dummy credentials, one moto

DUMMY_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(autouse=True)
def dummy_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore signs every request: every test gets credentials that can reach nothing real (and
    no profile, no instance metadata), so nothing a test does can touch a real AWS account."""
    for name, value in DUMMY_AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="session")
def moto() -> Iterator[LocalMoto]:
    """One moto server over HTTP for the session (SQS, S3, Secrets Manager, Cognito...). moto's state
    is process-global anyway: tests use unique names."""
    with LocalMoto() as server:
        yield server


@pytest.fixture
def fake_clock() -> FakeClock:
    """Time that moves only when the test moves it (tests/support.py)."""
    return FakeClock()


@pytest.fixture
def owner() -> Owner:
    """A user nobody else in the test run is."""
    return Owner(tenant_id="acme", user_id=f"user-{uuid.uuid4().hex[:8]}")


TIERS = ("unit", "integration", "e2e")
TESTS = Path(__file__).resolve().parent


def _tier_by_place(path: Path) -> str:
    top = path.relative_to(TESTS).parts[0]
    return "unit" if top == "unit" else "e2e" if top in ("e2e", "browser") else "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test its tier marker, from where it lives unless it names one itself."""
    for item in items:
        path = Path(str(item.path))
        explicit = [marker.name for marker in item.iter_markers() if marker.name in TIERS]
        if "unit" in explicit and _tier_by_place(path) != "unit":
            raise pytest.UsageError(f"{item.nodeid}: a unit test lives in tests/unit/ (its guard is there)")
        if not explicit:
            item.add_marker(_tier_by_place(path))


def _postgres_skips_reported(terminalreporter: pytest.TerminalReporter) -> list[str]:
    """This process's Postgres skips, or (under pytest-xdist, where the workers skip) the reported ones."""
    if _postgres_skips:
        return _postgres_skips
    reasons = (
        str(report.longrepr[2]).removeprefix("Skipped: ")
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(getattr(report, "longrepr", None), tuple)
    )
    return [reason for reason in reasons if reason.startswith("PostgreSQL at ")]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skips = _postgres_skips_reported(terminalreporter)
    if skips:
        terminalreporter.section("POSTGRES TESTS SKIPPED", sep="!", red=True, bold=True)
        terminalreporter.line(skips[0], red=True)
        terminalreporter.line(
            "Start PostgreSQL or set TEST_DATABASE_URL to run them. CI=true refuses this skip."
        )
