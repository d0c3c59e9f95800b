"""Fair use: how many frames one connection, and one user over all their connections, may send.

Token buckets, kept in memory: checked before a frame is parsed further or reaches the database, so
a flood is refused for the cost of a dictionary lookup. In AWS each Lambda container keeps its own
buckets (a connection's frames may be spread over several containers), so there the limits bound
what one container serves one client, and the stage's per-route throttles bound the total
(docs/protocol.md, "Fair use").
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from courier_shared.db.store import Owner


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int


@dataclass
class _Bucket:
    tokens: float
    updated: float


class _Buckets:
    """Token buckets by key, the least recently used dropped beyond `max_keys` (memory stays bounded;
    a dropped bucket comes back full, which only ever lets an idle client through)."""

    def __init__(self, rate: Rate, max_keys: int) -> None:
        self._rate = rate
        self._max_keys = max_keys
        self._buckets: OrderedDict[object, _Bucket] = OrderedDict()

    def level(self, key: object, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self._rate.burst), now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self._rate.burst), bucket.tokens + elapsed * self._rate.per_second)
            bucket.updated = now
        return bucket

    def wait_s(self, bucket: _Bucket) -> float:
        return (1.0 - bucket.tokens) / self._rate.per_second


class FrameRateLimiter:
    """Admits a frame if both its connection's and its user's bucket hold a token, and takes one from each."""

    def __init__(
        self,
        *,
        per_connection: Rate,
        per_user: Rate,
        clock: Callable[[], float],
        max_keys: int = 10_000,
    ) -> None:
        self._connections = _Buckets(per_connection, max_keys)
        self._users = _Buckets(per_user, max_keys)
        self.per_connection = per_connection
        self.per_user = per_user
        self._clock = clock
        self._lock = threading.Lock()  # the local stack calls one gateway from many threads

    def admit(self, connection_id: str, owner: Owner) -> Refusal | None:
        """None when the frame may go on; otherwise which limit it hit and how long to wait."""
        with self._lock:
            now = self._clock()
            connection = self._connections.level(connection_id, now)
            user = self._users.level(owner, now)
            if connection.tokens < 1.0:
                return Refusal("connection", self._connections.wait_s(connection))
            if user.tokens < 1.0:
                return Refusal("user", self._users.wait_s(user))
            connection.tokens -= 1.0
            user.tokens -= 1.0
            return None


@dataclass(frozen=True)
class Refusal:
    limit: str  # "connection" or "user"
    wait_s: float
