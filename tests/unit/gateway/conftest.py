"""The gateway's actions over the in-memory store (tests/fakes.py): no database, no network."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fakes import MemoryChatStore
from gateway_client import GatewayHarness, HarnessFactory, make_gateway_harness


@pytest.fixture
def memory_store() -> MemoryChatStore:
    return MemoryChatStore()


@pytest.fixture
def make_harness(memory_store: MemoryChatStore) -> HarnessFactory:
    return lambda **settings: make_gateway_harness(memory_store, **settings)


@pytest.fixture
def harness(make_harness: HarnessFactory) -> GatewayHarness:
    return make_harness()


@pytest.fixture
def counts(memory_store: MemoryChatStore) -> Callable[[], dict[str, int]]:
    """How many rows each table holds: to prove a refused frame wrote nothing."""
    return memory_store.row_counts
