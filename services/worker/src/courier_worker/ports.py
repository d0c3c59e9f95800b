"""What the worker needs from the outside world, as small interfaces (no boto3 here).

Adapters (adapters.py) implement them with boto3, `courier_shared.db.store.ChatStore` the store's
over a database; tests implement them with in-memory fakes (tests/fakes.py).
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from courier_shared.db.models import Turn
from courier_shared.db.store import AbandonedTurn, Lease, Owner, ToolCallRecord, TurnControl, TurnOutcome


class ConnectionGone(Exception):
    """The WebSocket connection no longer exists (API Gateway's GoneException, HTTP 410)."""


class ConnectionUnavailable(Exception):
    """A post kept failing with a transient error after the adapter's retries; the frame is not delivered."""


class ConnectionPoster(Protocol):
    """Posts one frame to one WebSocket connection (the @connections API). Blocking; thread-safe."""

    def post(self, endpoint_url: str, connection_id: str, data: bytes) -> None:
        """Deliver `data`, retrying transient errors. Raises ConnectionGone or ConnectionUnavailable."""
        ...


class BodyStore(Protocol):
    """Keeps assistant answers too large to store inline (S3)."""

    def put_text(self, key: str, text: str) -> str:
        """Store the text; returns the reference to keep in turns.body_ref."""
        ...

    def get_text(self, ref: str) -> str: ...


class QueueVisibility(Protocol):
    """Hands a received record back to its queue early (SQS ChangeMessageVisibility)."""

    def retry_after(self, queue_arn: str, receipt_handle: str, delay_s: int) -> None:
        """The record becomes visible again in `delay_s` seconds (0..43,200)."""
        ...


class TurnRepository(Protocol):
    """The reads and writes of one unit of work the worker makes (see ChatRepository for each)."""

    def find_turn(self, owner: Owner, turn_id: uuid.UUID) -> Turn | None: ...

    def lock_turn(self, owner: Owner, turn_id: uuid.UUID) -> Turn | None: ...

    def start_attempt(
        self, owner: Owner, turn_id: uuid.UUID, model_id: str, now: datetime, lease: Lease | None = None
    ) -> Turn:
        """Raises TurnNotOpen for a finished turn, LeaseHeld while another worker's lease is live."""
        ...

    def turn_control(self, owner: Owner, turn_id: uuid.UUID) -> TurnControl: ...

    def recent_turns(self, owner: Owner, turn: Turn, window: int) -> list[Turn]: ...

    def announce_ending_once(self, owner: Owner, turn_id: uuid.UUID, attempt: int, last_seq: int) -> bool: ...

    def save_progress(
        self,
        owner: Owner,
        turn_id: uuid.UUID,
        text: str,
        last_seq: int,
        *,
        lease: Lease | None = None,
        now: datetime | None = None,
        reasoning_text: str | None = None,
    ) -> bool: ...

    def finish_turn(
        self,
        owner: Owner,
        turn_id: uuid.UUID,
        outcome: TurnOutcome,
        now: datetime,
        lease: Lease | None = None,
    ) -> None:
        """Raises TurnNotOpen when the turn is finished or another worker took it over."""
        ...

    def end_turn(self, turn: Turn, outcome: TurnOutcome, attempt: int, now: datetime) -> None: ...

    def record_tool_invocation(self, turn_id: uuid.UUID, call: ToolCallRecord) -> None: ...

    def remove_listener(self, turn_id: uuid.UUID, connection_id: str) -> None: ...

    def abandoned_turns(self, now: datetime, limit: int = 100) -> list[AbandonedTurn]: ...

    def put_session_record(
        self, turn_id: uuid.UUID, kind: str, agent_id: str, message_id: int, data: dict[str, Any]
    ) -> None: ...

    def session_record(
        self, turn_id: uuid.UUID, kind: str, agent_id: str, message_id: int
    ) -> dict[str, Any] | None: ...

    def session_messages(
        self, turn_id: uuid.UUID, agent_id: str, offset: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]: ...


class TurnStore(Protocol):
    def unit_of_work(self) -> AbstractContextManager[TurnRepository]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        ...
