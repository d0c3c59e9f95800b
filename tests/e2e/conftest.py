"""Fixtures of the end-to-end tests: one `courier dev` subprocess shared by the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.devstack import DevStack, start_dev_stack


@pytest.fixture(scope="session")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """One stack for the e2e and browser tests: offline model at 40 tokens/s, 1 s listener grace."""
    stack = start_dev_stack(tmp_path_factory.mktemp("courier-dev"), "--token-rate", "40", "--grace", "1")
    yield stack
    code = stack.stop()
    assert code == 0, f"`courier dev` exited with {code} on SIGINT\n{stack.logs()}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
