"""The gateway Lambda called with AWS's events over real databases (SQLite and Postgres).

The queue is an in-memory recorder here (the SQS adapter is exercised against moto in test_sqs.py).
The gateway's actions themselves are the unit tier's (tests/unit/gateway/, in-memory store); what is
here needs a real database: concurrency, isolation, the SQS adapter, cursors across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fakes import RecordingQueue
from gateway_client import (
    TEST_CURSOR_KEY,
    Client,
    GatewayHarness,
    HarnessFactory,
    gateway_settings,
    make_gateway_harness,
    make_owner,
)
from sqlalchemy import func, select

from courier_shared.db.models import Connection, Conversation, ToolInvocation, Turn, TurnListener
from courier_shared.db.store import ChatStore

# What the tests of this directory import from here.
__all__ = ["TEST_CURSOR_KEY", "Client", "GatewayHarness", "RecordingQueue", "gateway_settings", "make_owner"]


@pytest.fixture
def make_harness(store: ChatStore) -> HarnessFactory:
    return lambda **settings: make_gateway_harness(store, **settings)


@pytest.fixture
def harness(make_harness: HarnessFactory) -> GatewayHarness:
    return make_harness()


TABLES = (Conversation, Turn, Connection, TurnListener, ToolInvocation)


def row_counts(store: ChatStore) -> dict[str, int]:
    """How many rows each table holds: to prove a refused frame wrote nothing."""
    with store.engine.connect() as connection:
        return {
            table.__tablename__: connection.scalar(select(func.count()).select_from(table)) or 0
            for table in TABLES
        }


@pytest.fixture
def counts(store: ChatStore) -> Iterator[Callable[[], dict[str, int]]]:
    yield lambda: row_counts(store)
