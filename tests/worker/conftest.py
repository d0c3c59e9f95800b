"""Worker tests: anyio on asyncio, the dev stack's Region, and one local stack (`LocalStack`, as
`courier dev` assembles it) for the session, its queues emptied per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from courier_local.edge.sqs import LocalMoto
from courier_local.stack import LocalStack, StackOptions
from courier_shared.db.engine import build_engine
from courier_shared.db.store import Owner

from .stack import REGION, WorkerStack


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def dummy_aws_credentials(dummy_aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared dummy credentials (tests/conftest.py), in the dev stack's Region, where its queues are."""
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture(scope="session")
def local_stack(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local pipeline from the Pulumi program, without its event source mappings: each test
    polls the turn queue with the worker it builds."""
    options = StackOptions(
        port=0, database_url=postgres_url, state_dir=tmp_path_factory.mktemp("stack"), start_mappings=False
    )
    with LocalStack(options) as local:
        assert local.deployment is not None and local.deployment.region == REGION
        yield local


@pytest.fixture
def moto(local_stack: LocalStack) -> LocalMoto:
    moto: LocalMoto = local_stack.moto
    return moto


@pytest.fixture(scope="session")
def worker_engine(postgres_url: str) -> Iterator[Engine]:
    engine = build_engine(postgres_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture
def stack(local_stack: LocalStack, worker_engine: Engine, owner: Owner) -> Iterator[WorkerStack]:
    with WorkerStack(local_stack, engine=worker_engine, owner=owner) as running:
        yield running
