"""The unit tier's guard itself: a test that reaches the network, a database or a subprocess fails."""

from __future__ import annotations

import socket
import sqlite3
import subprocess

import pytest
from pytest_socket import SocketBlockedError

from .conftest import NotInTheUnitTier


def test_a_unit_test_cannot_open_a_tcp_connection() -> None:
    with pytest.raises(SocketBlockedError):
        socket.create_connection(("127.0.0.1", 5432), timeout=1)


def test_a_unit_test_cannot_open_a_database_or_start_a_process() -> None:
    with pytest.raises(NotInTheUnitTier):
        sqlite3.connect(":memory:")
    with pytest.raises(NotInTheUnitTier):
        subprocess.run(["true"], check=False)
