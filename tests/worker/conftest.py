"""Worker tests: anyio on asyncio, dummy AWS credentials (nothing may reach real AWS)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from courier_local.edge.sqs import LocalMoto
from courier_shared.db.engine import build_engine
from courier_shared.db.store import Owner

from .stack import WorkerStack


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _dummy_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="session")
def moto() -> Iterator[LocalMoto]:
    with LocalMoto() as server:
        yield server


@pytest.fixture(scope="session")
def worker_engine(postgres_url: str) -> Iterator[Engine]:
    engine = build_engine(postgres_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture
def stack(moto: LocalMoto, worker_engine: Engine, owner: Owner) -> Iterator[WorkerStack]:
    with WorkerStack(moto=moto, engine=worker_engine, owner=owner) as running:
        yield running
