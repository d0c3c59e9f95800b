"""Plain helpers every tier shares (the fixtures that hand them out are in tests/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class FakeClock:
    """The one fake clock: time moves only when a test moves it, so no test depends on how fast the
    machine is.

    Called, it is a wall clock (an aware UTC datetime: the gateway, the store); `monotonic` is the
    same time in seconds on a monotonic scale (the worker, the rate limits). `advance` moves both.
    With `tick`, every wall reading is that much later than the one before, as a real clock's are.
    """

    def __init__(self, start: datetime = START, *, tick: timedelta = timedelta(0)) -> None:
        self.now = start
        self.tick = tick
        self._start = start

    def __call__(self) -> datetime:
        self.now += self.tick
        return self.now

    def monotonic(self) -> float:
        return 1000.0 + (self.now - self._start).total_seconds()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0, *, what: str = "condition") -> None:
    """Poll until `condition()` holds, for something another thread or process does; the timeout
    only bounds a failing test (it is never what a test measures)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s")
        time.sleep(0.01)
