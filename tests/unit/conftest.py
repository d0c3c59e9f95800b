"""The unit tier: no network, no database, no subprocess (CONTRIBUTING.md).

Every test here runs with sockets refused (pytest-socket; Unix sockets stay allowed: asyncio's
event loop wakes itself through a socketpair), SQLite refused and subprocesses refused, so a test
that reaches for any of them fails at once instead of quietly becoming an integration test.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_socket import disable_socket, enable_socket


class NotInTheUnitTier(RuntimeError):
    """A unit test reached for a database or a subprocess: move it to tests/ (integration)."""


def _refuse(what: str) -> Any:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise NotInTheUnitTier(f"a unit test may not {what}")

    return refuse


@pytest.fixture(autouse=True)
def _unit_tier_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    disable_socket(allow_unix_socket=True)
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse("start a subprocess"))
    monkeypatch.setattr(sqlite3, "connect", _refuse("open a database"))
    try:
        yield
    finally:
        enable_socket()  # `make test` runs the tiers in their own sessions, but a combined run works too


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
