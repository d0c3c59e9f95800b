"""The database calls of one attempt. Each runs in a thread (text keeps flowing meanwhile) and is
bounded in time, so a database that hangs is treated like one that refuses: as an outage.

Per turn the database sees one write for the start, one per save interval (text so far + the lease
renewed), and one at the end with the tool invocation rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from strands.types.content import Message

from courier_shared.db.models import Turn
from courier_shared.db.store import (
    Lease,
    Listener,
    Owner,
    ToolCallRecord,
    TurnControl,
    TurnNotOpen,
    TurnOutcome,
)
from courier_shared.turn_states import TurnStatus
from courier_worker.endings import cancelled_while_queued, plan_ending
from courier_worker.failures import is_database_outage
from courier_worker.observability import logger
from courier_worker.ports import TurnRepository, TurnStore

T = TypeVar("T")
# One database call may take this long before it counts as an outage (Postgres' connect timeout is 5 s).
CALL_TIMEOUT_S = 6.0
# Waits between retries of the final write while the database is away.
FINAL_WRITE_BACKOFF_S = (0.1, 0.2, 0.5, 1.0, 2.0)


@dataclass
class StartedTurn:
    attempt: int
    user_text: str
    history: list[Message]
    listeners: tuple[Listener, ...]
    cancel_requested: bool
    history_refs: list[str] = field(default_factory=list)
    created_at: datetime | None = None  # when Courier accepted the message (time to first token's start)


@dataclass(frozen=True)
class CancelledBeforeStart:
    """The turn was cancelled while queued; its ending (attempt 1: start, abort) is ours to send."""

    listeners: tuple[Listener, ...]
    model: str


async def within(timeout_s: float, awaitable: Awaitable[T]) -> T:
    """`awaitable`, or TimeoutError after `timeout_s`. Unlike `asyncio.wait_for` on Python 3.11,
    a cancellation that arrives just as `awaitable` completes is never lost (python/cpython#86296):
    a lost one left the turn's control loop running after its turn ended, and the turn waiting for
    it forever (turns that never ended under `make load`)."""
    async with asyncio.timeout(timeout_s):
        return await awaitable


class TurnDatabase:
    def __init__(
        self,
        *,
        store: TurnStore,
        owner: Owner,
        turn_id: uuid.UUID,
        lease: Lease,
        wall_clock: Callable[[], datetime],
        clock: Callable[[], float],
        call_timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.owner = owner
        self.turn_id = turn_id
        self.lease = lease
        self.wall_clock = wall_clock
        self.clock = clock
        self.call_timeout_s = call_timeout_s
        self.writes = 0

    async def _call(self, function: Callable[[], T], timeout_s: float | None = None) -> T:
        return await within(timeout_s or self.call_timeout_s, asyncio.to_thread(function))

    async def start(self, model_id: str, history_window: int) -> StartedTurn | CancelledBeforeStart | None:
        """Take the turn for a new attempt. None: it has ended (nothing to do). Raises LeaseHeld
        while another worker holds it, and the database's errors."""

        def start() -> StartedTurn | CancelledBeforeStart | None:
            with self.store.unit_of_work() as repo:
                try:
                    turn = repo.start_attempt(
                        self.owner, self.turn_id, model_id, self.wall_clock(), self.lease
                    )
                except TurnNotOpen:
                    return self._cancelled_before_start(repo, model_id)
                control = repo.turn_control(self.owner, turn.id)
                earlier = repo.recent_turns(self.owner, turn, history_window)
                return _with_history(turn, control.listeners, control.cancel_requested, earlier)

        started = await self._call(start)
        if isinstance(started, StartedTurn):
            self.writes += 1
        return started

    def _cancelled_before_start(self, repo: TurnRepository, model_id: str) -> CancelledBeforeStart | None:
        turn = repo.find_turn(self.owner, self.turn_id)
        if turn is None or turn.status is not TurnStatus.CANCELLED or turn.attempt != 0:
            return None
        last_seq = plan_ending(self.turn_id, None, 1, model_id, "", *cancelled_while_queued()).next_seq - 1
        if not repo.announce_ending_once(self.owner, self.turn_id, 1, last_seq):
            return None
        return CancelledBeforeStart(repo.turn_control(self.owner, self.turn_id).listeners, model_id)

    async def read_control(self) -> TurnControl:
        def read() -> TurnControl:
            with self.store.unit_of_work() as repo:
                return repo.turn_control(self.owner, self.turn_id)

        return await self._call(read)

    async def save(self, text: str, last_seq: int, reasoning_text: str = "") -> bool:
        """The text (and reasoning) so far, and the lease renewed. False: the lease is lost (stop writing)."""

        def save() -> bool:
            with self.store.unit_of_work() as repo:
                return repo.save_progress(
                    self.owner,
                    self.turn_id,
                    text,
                    last_seq,
                    lease=self.lease,
                    now=self.wall_clock(),
                    reasoning_text=reasoning_text,
                )

        held = await self._call(save)
        self.writes += 1
        return held

    async def finish(
        self, outcome: TurnOutcome, tool_calls: list[ToolCallRecord], give_up_at: float
    ) -> tuple[Listener, ...] | None:
        """The end write, retried with backoff while the database is away, until `give_up_at`
        (monotonic); then the last outage error is raised. Returns the turn's listeners as of that
        write (whoever resumed since the last poll is owed the ending too); None: the turn was no
        longer ours."""
        attempt = 0
        while True:
            try:
                remaining = give_up_at - self.clock()
                listeners = await self._call(
                    lambda: self._finish(outcome, tool_calls), max(0.1, min(self.call_timeout_s, remaining))
                )
                self.writes += 1
                return listeners
            except TurnNotOpen:
                return None
            except Exception as error:
                if not is_database_outage(error):
                    raise
                pause = FINAL_WRITE_BACKOFF_S[min(attempt, len(FINAL_WRITE_BACKOFF_S) - 1)]
                if self.clock() + pause >= give_up_at:
                    raise
                if attempt == 0:
                    logger.warning("database unavailable for the final write: waiting for it")
                attempt += 1
                await asyncio.sleep(pause)

    def _finish(self, outcome: TurnOutcome, tool_calls: list[ToolCallRecord]) -> tuple[Listener, ...]:
        with self.store.unit_of_work() as repo:
            repo.finish_turn(self.owner, self.turn_id, outcome, self.wall_clock(), self.lease)
            for call in tool_calls:
                repo.record_tool_invocation(self.turn_id, call)
            # After the update, which holds the turn's row lock a resume waits on (add_listener).
            return repo.turn_control(self.owner, self.turn_id).listeners

    async def remove_listener(self, connection_id: str) -> None:
        def remove() -> None:
            with self.store.unit_of_work() as repo:
                repo.remove_listener(self.turn_id, connection_id)

        await self._call(remove)
        self.writes += 1


def _with_history(
    turn: Turn, listeners: tuple[Listener, ...], cancel_requested: bool, earlier: list[Turn]
) -> StartedTurn:
    history: list[Message] = []
    refs: list[str] = []
    for past in earlier:
        answer = past.assistant_text or "(no answer)"
        history.append({"role": "user", "content": [{"text": past.user_text}]})
        history.append({"role": "assistant", "content": [{"text": answer}]})
        refs.append(past.body_ref or "")
    return StartedTurn(
        turn.attempt, turn.user_text, history, listeners, cancel_requested, refs, turn.created_at
    )
