"""A turn's states and the moves between them: the one place that names them.

    queued ──▶ streaming ──▶ completed | failed | interrupted | cancelled
      │           ▲  │
      │           └──┘  a new attempt (a retried record takes over an expired or released lease)
      └──▶ cancelled (cancel before any attempt) | failed (dead-lettered before any attempt)

The store's SQL conditions, `TurnStatus.is_terminal` and the worker derive from `TRANSITIONS`.
A streaming turn also carries a lease (who works on it, until when): a streaming turn whose lease
has expired is not in progress, since no worker is renewing it (see `in_progress`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class TurnStatus(StrEnum):
    QUEUED = "queued"
    STREAMING = "streaming"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    def may_become(self, target: TurnStatus) -> bool:
        return target in TRANSITIONS[self]


TRANSITIONS: dict[TurnStatus, frozenset[TurnStatus]] = {
    TurnStatus.QUEUED: frozenset({TurnStatus.STREAMING, TurnStatus.CANCELLED, TurnStatus.FAILED}),
    TurnStatus.STREAMING: frozenset(
        {
            TurnStatus.STREAMING,
            TurnStatus.COMPLETED,
            TurnStatus.FAILED,
            TurnStatus.INTERRUPTED,
            TurnStatus.CANCELLED,
        }
    ),
    TurnStatus.COMPLETED: frozenset(),
    TurnStatus.FAILED: frozenset(),
    TurnStatus.INTERRUPTED: frozenset(),
    TurnStatus.CANCELLED: frozenset(),
}

OPEN: frozenset[TurnStatus] = frozenset(s for s, targets in TRANSITIONS.items() if targets)
TERMINAL: frozenset[TurnStatus] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
# Finished turns whose text the agent remembers as the conversation so far (a failed turn's
# partial text, if any, is not something the assistant said on purpose).
REMEMBERED: frozenset[TurnStatus] = frozenset(
    {TurnStatus.COMPLETED, TurnStatus.INTERRUPTED, TurnStatus.CANCELLED}
)


def sources(target: TurnStatus) -> frozenset[TurnStatus]:
    """The statuses a turn may be in to move to `target`."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def values(statuses: frozenset[TurnStatus]) -> tuple[str, ...]:
    """Stored values, in a stable order (for SQL `IN`)."""
    return tuple(sorted(s.value for s in statuses))


def in_progress(status: TurnStatus, lease_expires_at: datetime | None, now: datetime) -> bool:
    """Queued, or streaming under a live lease. A streaming turn without a live lease is abandoned:
    a redelivered record may take it over, or recovery ends it; it is not "an answer in progress"."""
    if status is TurnStatus.QUEUED:
        return True
    return status is TurnStatus.STREAMING and lease_expires_at is not None and lease_expires_at > now
