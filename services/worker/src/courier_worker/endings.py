"""Endings for turns no worker is streaming: cancelled while queued, dead-lettered, abandoned.

Such an ending goes out as a new attempt: `start`, the text stored so far (if any), and the final
part. A client drops frames of older attempts, so this is the one way to end a turn cleanly for a
listener that saw an unknown part of an earlier attempt. The turn is stored (with that attempt and
the final part's seq) before anything is sent, as for every ending.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from courier_shared.db.store import Listener, Owner, TurnOutcome
from courier_shared.protocol import (
    AbortPart,
    ChunkPart,
    ErrorPart,
    FinishMetadata,
    FinishPart,
    FinishReason,
    StartMetadata,
    StartPart,
    TextEndPart,
    TextStartPart,
    Usage,
)
from courier_shared.queue import TurnRequest
from courier_shared.turn_states import TurnStatus
from courier_worker.accounting import estimate_tokens
from courier_worker.failures import FAILURES, TurnFailure
from courier_worker.observability import logger
from courier_worker.ports import ConnectionPoster, TurnStore
from courier_worker.streaming import Outbox, Publisher

# The model's stop reason → the AI SDK's finish reason (Bedrock Converse stop reasons).
FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool-calls",
    "guardrail_intervened": "content-filter",
    "content_filtered": "content-filter",
}


def finish_reason(stop_reason: str) -> FinishReason:
    return FINISH_REASONS.get(stop_reason, "other")


def aborted(status: TurnStatus, metadata: FinishMetadata) -> tuple[AbortPart, tuple[ChunkPart, ...]]:
    """A cancelled or interrupted turn's ending: `abort` for every listener and, for AI SDK ones, a
    `finish` with finishReason `interrupted` after it (ai@7 reads that; it ignores an `abort` it
    did not ask for itself)."""
    reason: Literal["cancelled", "interrupted"] = (
        "cancelled" if status is TurnStatus.CANCELLED else "interrupted"
    )
    return AbortPart(reason=reason), (FinishPart(finish_reason="interrupted", message_metadata=metadata),)


def cancelled_while_queued() -> tuple[AbortPart, tuple[ChunkPart, ...]]:
    """The ending of a turn cancelled before any model call: nothing generated, nothing used."""
    metadata = FinishMetadata(
        stop_reason="cancelled",
        usage=Usage(),
        latency_ms=None,
        time_to_first_token_ms=None,
        status=TurnStatus.CANCELLED,
    )
    return aborted(TurnStatus.CANCELLED, metadata)


def plan_ending(
    turn_id: uuid.UUID,
    conversation_id: uuid.UUID | None,
    attempt: int,
    model: str,
    text: str,
    final: ChunkPart,
    sdk_tail: tuple[ChunkPart, ...] = (),
) -> Outbox:
    """The frames of an ending attempt, numbered: `outbox.next_seq - 1` is the final part's seq."""
    outbox = Outbox(flush_interval_s=0.0)
    outbox.push(
        StartPart(
            message_id=str(turn_id),
            message_metadata=StartMetadata(
                model=model, attempt=attempt, turn_id=turn_id, conversation_id=conversation_id
            ),
        )
    )
    if text:
        outbox.push(TextStartPart(id="text-0"))
        outbox.push_text("text-0", text)
        outbox.push(TextEndPart(id="text-0"))
    outbox.push(final, sdk_tail)
    return outbox


async def send_ending(
    outbox: Outbox,
    *,
    turn_id: uuid.UUID,
    attempt: int,
    listeners: tuple[Listener, ...],
    poster: ConnectionPoster,
    endpoint_url: str,
    clock: Callable[[], float],
    stale_notice: str = "The answer ended: resume the chat to see how.",
) -> None:
    """Send an ending attempt. An AI SDK request that saw an earlier attempt cannot take it (its
    sequence is past the ending's): it gets `stale_notice` as its error instead."""
    if not listeners:
        return
    publisher = Publisher(
        turn_id=turn_id,
        attempt=attempt,
        endpoint_url=endpoint_url,
        poster=poster,
        outbox=outbox,
        listeners=listeners,
        clock=clock,
        stale_notice=stale_notice,
    )
    publisher.start()
    await publisher.close()


@dataclass(frozen=True)
class _Ended:
    outbox: Outbox
    attempt: int
    listeners: tuple[Listener, ...]
    status: TurnStatus
    notice: str  # what the turn's ending says, for an AI SDK request that cannot take the ending


class TurnEnder:
    """Ends turns whose worker is gone, stores them and tells their listeners."""

    def __init__(
        self,
        *,
        store: TurnStore,
        poster: ConnectionPoster,
        endpoint_url: str | None,
        model_label: str,
        wall_clock: Callable[[], datetime],
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.poster = poster
        self.endpoint_url = endpoint_url
        self.model_label = model_label
        self.wall_clock = wall_clock
        self.clock = clock

    async def end_dead_lettered(self, request: TurnRequest) -> TurnStatus | None:
        """The queue gave up on this turn's record: the turn ends `failed` (text so far kept).
        None when the turn had already ended (nothing is sent)."""
        owner = Owner(request.tenant_id, request.user_id)
        ended = await asyncio.to_thread(
            self._end, owner, request.turn_id, FAILURES["dead_lettered"], require_expired_lease=False
        )
        await self._announce(request.turn_id, ended, request.callback_url)
        return ended.status if ended is not None else None

    async def end_abandoned(self, *, limit: int = 100) -> list[uuid.UUID]:
        """End every streaming turn whose lease has expired (its worker died and no record is
        coming back for it, e.g. after the local stack was killed). Returns the turns ended."""

        def find() -> list[tuple[Owner, uuid.UUID]]:
            with self.store.unit_of_work() as repo:
                return [(t.owner, t.turn_id) for t in repo.abandoned_turns(self.wall_clock(), limit)]

        ended_ids: list[uuid.UUID] = []
        for owner, turn_id in await asyncio.to_thread(find):
            ended = await asyncio.to_thread(
                self._end, owner, turn_id, FAILURES["abandoned"], require_expired_lease=True
            )
            if ended is not None:
                logger.warning(
                    "abandoned turn ended", extra={"turn_id": str(turn_id), "status": ended.status}
                )
                ended_ids.append(turn_id)
                await self._announce(turn_id, ended, None)
        return ended_ids

    def _end(
        self, owner: Owner, turn_id: uuid.UUID, failure: TurnFailure, *, require_expired_lease: bool
    ) -> _Ended | None:
        now = self.wall_clock()
        with self.store.unit_of_work() as repo:
            turn = repo.lock_turn(owner, turn_id)
            if turn is None or turn.status.is_terminal:
                return None
            lease_live = turn.lease_expires_at is not None and turn.lease_expires_at > now
            if require_expired_lease and (turn.status is not TurnStatus.STREAMING or lease_live):
                return None  # its worker came back (or a retry took it over) since we looked
            cancelled = turn.cancel_requested_at is not None
            status = TurnStatus.CANCELLED if cancelled else TurnStatus.FAILED
            attempt = turn.attempt + 1
            text = turn.assistant_text
            output_tokens = estimate_tokens(text) if text else None
            final: ChunkPart = ErrorPart(error_text=failure.safe_text)
            sdk_tail: tuple[ChunkPart, ...] = ()
            if cancelled:
                metadata = FinishMetadata(
                    stop_reason="cancelled",
                    usage=Usage(output_tokens=output_tokens or 0),
                    latency_ms=None,
                    time_to_first_token_ms=None,
                    status=status,
                )
                final, sdk_tail = aborted(status, metadata)
            model = turn.model_id or self.model_label
            outbox = plan_ending(turn.id, turn.conversation_id, attempt, model, text, final, sdk_tail)
            outcome = TurnOutcome(
                status=status,
                assistant_text=text,
                last_seq=outbox.next_seq - 1,
                output_tokens=output_tokens,
                usage_estimated=bool(text),
                stop_reason="cancelled" if cancelled else failure.code,
                error_code=None if cancelled else failure.code,
                error_message=None if cancelled else failure.safe_text,
            )
            repo.end_turn(turn, outcome, attempt, now)
            listeners = repo.turn_control(owner, turn_id).listeners
        notice = "The answer was cancelled." if cancelled else failure.safe_text
        return _Ended(outbox, attempt, listeners, status, notice)

    async def _announce(self, turn_id: uuid.UUID, ended: _Ended | None, callback_url: str | None) -> None:
        if ended is None:
            return
        endpoint = self.endpoint_url or callback_url
        if endpoint is None:
            logger.warning("no callback URL: the turn's listeners are not told it ended")
            return
        await send_ending(
            ended.outbox,
            turn_id=turn_id,
            attempt=ended.attempt,
            listeners=ended.listeners,
            poster=self.poster,
            endpoint_url=endpoint,
            clock=self.clock,
            stale_notice=ended.notice,
        )
