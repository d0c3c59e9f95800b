"""The streaming core: numbers a turn's chunk parts, coalesces text, and delivers frames to listeners.

Two pieces:
- `Outbox` (pure, no I/O, explicit time): gives every part its `seq`, merges consecutive text into
  one `text-delta` (never over the frame budget) and says when the next frame is due: at once for
  the first text and for structural parts, else one flush interval after the previous take.
- `Publisher` (asyncio): one sender task that takes due frames and posts each to every listener, in
  order, waiting for a post to return before the next, so slow posts merge more text into the
  next frame instead of building a backlog. New listeners get a `snapshot` first; gone ones are dropped.

Two kinds of listener (docs/protocol.md): a Courier client gets `chunk` frames numbered by `seq`
and a `snapshot` when it joins mid-turn; an AI SDK chat request (`Listener.request_id`) gets the
transport's frames (`chunk` with `sequence`, then `end`), and when it joins mid-turn a replay of the
attempt's parts from its `start` with the same numbers, so a repeat is dropped by the transport as a
duplicate. Its `sequence` is the part's `seq`; an ending may add parts only the SDK reads (`sdk_tail`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from courier_shared.db.store import Listener
from courier_shared.protocol import (
    MAX_FRAME_BYTES,
    AbortPart,
    ChatChunk,
    ChatEnd,
    ChatError,
    Chunk,
    ChunkPart,
    ErrorPart,
    FinishPart,
    ReasoningDeltaPart,
    Snapshot,
    TextDeltaPart,
    TurnStatus,
    dump_frame,
)
from courier_worker.observability import logger
from courier_worker.ports import ConnectionGone, ConnectionPoster, ConnectionUnavailable

# Room kept for the frame's envelope (type, turnId, attempt, seq, part type and id) around a delta.
ENVELOPE_BYTES = 512


def escaped_size(text: str) -> int:
    """Bytes `text` takes inside a JSON string (escapes included, quotes excluded)."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def split_text(text: str, max_bytes: int) -> list[str]:
    """Cut `text` into pieces of at most `max_bytes` escaped JSON bytes each, never inside a character."""
    if escaped_size(text) <= max_bytes:
        return [text]
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        char_size = escaped_size(char)
        if size + char_size > max_bytes and current:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += char_size
    if current:
        pieces.append("".join(current))
    return pieces


@dataclass
class Frame:
    """One chunk part with its seq, ready to post (a text-delta or reasoning-delta may still grow
    until taken)."""

    seq: int
    part: ChunkPart | None = None
    sdk_tail: tuple[ChunkPart, ...] = ()  # more parts after this one, for AI SDK listeners only
    text_id: str | None = None
    text: list[str] = field(default_factory=list)
    text_bytes: int = 0
    reasoning: bool = False  # a reasoning-delta: streamed like text, never part of the answer

    def chunk_part(self) -> ChunkPart:
        if self.part is not None:
            return self.part
        assert self.text_id is not None
        if self.reasoning:
            return ReasoningDeltaPart(id=self.text_id, delta="".join(self.text))
        return TextDeltaPart(id=self.text_id, delta="".join(self.text))

    @property
    def delta(self) -> str:
        return "".join(self.text)


class Outbox:
    """Pure coalescing logic with explicit time (unit-tested with a fake clock)."""

    def __init__(self, *, flush_interval_s: float, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.flush_interval_s = flush_interval_s
        self.max_delta_bytes = max_frame_bytes - ENVELOPE_BYTES
        self.next_seq = 0
        self._pending: list[Frame] = []
        self._urgent = False
        self._last_take_at: float | None = None
        self._any_text = False

    def push(self, part: ChunkPart, sdk_tail: tuple[ChunkPart, ...] = ()) -> int:
        """Queue a structural part; it (and any text before it) goes out at once. Returns its seq.
        `sdk_tail`: parts that follow it for AI SDK listeners only (an ending the SDK reads)."""
        frame = Frame(seq=self._new_seq(), part=part, sdk_tail=sdk_tail)
        self._pending.append(frame)
        self._urgent = True
        return frame.seq

    def push_text(self, text_id: str, delta: str, *, reasoning: bool = False) -> None:
        """Queue answer text (or reasoning), merged into the pending delta of the same block while it fits."""
        if not delta:
            return
        if not self._any_text:
            self._any_text = True
            self._urgent = True  # the first text of the turn goes out the moment it exists
        for piece in split_text(delta, self.max_delta_bytes):
            size = escaped_size(piece)
            tail = self._pending[-1] if self._pending else None
            if (
                tail is not None
                and tail.text_id == text_id
                and tail.text_bytes + size <= self.max_delta_bytes
            ):
                tail.text.append(piece)
                tail.text_bytes += size
            else:
                self._pending.append(
                    Frame(
                        seq=self._new_seq(),
                        text_id=text_id,
                        text=[piece],
                        text_bytes=size,
                        reasoning=reasoning,
                    )
                )

    @property
    def empty(self) -> bool:
        return not self._pending

    def flush_now(self) -> None:
        """Make whatever is pending due at once (used before the final write of a turn)."""
        if self._pending:
            self._urgent = True

    def due_at(self) -> float | None:
        """When the pending frames should be taken: None if nothing is pending."""
        if not self._pending:
            return None
        if self._urgent or self._last_take_at is None:
            return float("-inf")
        return self._last_take_at + self.flush_interval_s

    def take(self, now: float) -> list[Frame]:
        """Hand over everything pending, in seq order; the flush interval restarts at `now`."""
        frames, self._pending = self._pending, []
        self._urgent = False
        self._last_take_at = now
        return frames

    def _new_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq


# What an AI SDK request of an earlier attempt is told when a new attempt starts.
RETRY_NOTICE = "The answer was interrupted and is being retried: resume the chat to follow it."

ListenerCallback = Callable[[int], None]
GoneCallback = Callable[[str], Coroutine[Any, Any, None]]


class Publisher:
    """Delivers one attempt's frames to its listeners (async; posts run in threads)."""

    def __init__(
        self,
        *,
        turn_id: UUID,
        attempt: int,
        endpoint_url: str,
        poster: ConnectionPoster,
        outbox: Outbox,
        listeners: Iterable[Listener],
        clock: Callable[[], float],
        on_listener_count: ListenerCallback | None = None,
        on_gone: GoneCallback | None = None,
        on_first_text: Callable[[], None] | None = None,
        stale_notice: str = RETRY_NOTICE,
    ) -> None:
        self.turn_id = turn_id
        # Called once, when the attempt's first answer text has been posted (time to first token).
        self._on_first_text = on_first_text
        self.text_posted = False
        self._stale_notice = stale_notice
        self.attempt = attempt
        self._endpoint_url = endpoint_url
        self._poster = poster
        self._outbox = outbox
        self._clock = clock
        self._on_listener_count = on_listener_count
        self._on_gone = on_gone
        self.listeners: list[Listener] = []
        self._new: list[Listener] = []
        # An AI SDK request of an earlier attempt cannot follow this one (its sequence is past ours):
        # it is told to resume, which replays this attempt from its start.
        self._stale: list[Listener] = []
        for listener in dict.fromkeys(listeners):
            stale = attempt > 1 and listener.request_id is not None
            (self._stale if stale else self.listeners).append(listener)
        self._gone: set[str] = set()  # connection ids
        self._parts: list[tuple[int, ChunkPart]] = []  # (seq, part) delivered so far: what a replay sends
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._sent_text: list[str] = []
        self._sent_reasoning: list[str] = []
        self.last_sent_seq = -1
        self.frames_sent = 0  # frames taken and delivered (to however many listeners)
        self.posts = 0  # @connections calls made, successful or not
        self.post_seconds_total = 0.0  # how long those calls took, on `clock`
        self.post_seconds_max = 0.0

    # ------------------------------------------------------------ producer side (event loop thread)

    def emit(self, part: ChunkPart, sdk_tail: tuple[ChunkPart, ...] = ()) -> int:
        seq = self._outbox.push(part, sdk_tail)
        self._wake.set()
        return seq

    def emit_text(self, text_id: str, delta: str) -> None:
        self._outbox.push_text(text_id, delta)
        self._wake.set()

    def emit_reasoning(self, reasoning_id: str, delta: str) -> None:
        self._outbox.push_text(reasoning_id, delta, reasoning=True)
        self._wake.set()

    def sync_listeners(self, current: Iterable[Listener]) -> None:
        """Reconcile with the stored listener set: new ones get a snapshot (an AI SDK request: a
        replay), vanished ones are dropped."""
        current = list(dict.fromkeys(current))
        known = set(self.listeners) | set(self._new) | set(self._stale)
        for listener in current:
            if listener not in known and listener.connection_id not in self._gone:
                self._new.append(listener)
        stored = set(current)
        dropped = [c for c in self.listeners if c not in stored]
        if dropped:
            self.listeners = [c for c in self.listeners if c in stored]
            self._new = [c for c in self._new if c in stored]
            self._report_count()
        self._wake.set()

    @property
    def next_seq(self) -> int:
        """The seq the next part will get."""
        return self._outbox.next_seq

    @property
    def sent_text(self) -> str:
        return "".join(self._sent_text)

    @property
    def sent_reasoning(self) -> str:
        """The reasoning delivered so far: stored with `last_sent_seq`, as the text is."""
        return "".join(self._sent_reasoning)

    @property
    def listener_count(self) -> int:
        return len(self.listeners) + len(self._new)

    # ------------------------------------------------------------ sender task

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"publisher-{self.turn_id}")
        self._report_count()

    async def drain(self) -> None:
        """Deliver everything emitted so far, now, and wait until it has been posted."""
        self._outbox.flush_now()
        self._idle.clear()
        self._wake.set()
        assert self._task is not None
        idle = asyncio.ensure_future(self._idle.wait())
        await asyncio.wait({idle, self._task}, return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        if self._task.done():
            self._task.result()  # re-raise a sender crash here rather than hanging

    async def close(self) -> None:
        """Deliver everything still pending, then stop the sender task."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _run(self) -> None:
        await self._retire_stale()
        while True:
            self._wake.clear()
            if self._new:
                await self._welcome()
                continue
            due = self._outbox.due_at()
            if due is None:
                self._idle.set()
                if self._closing:
                    return
                await self._wake.wait()
                continue
            delay = due - self._clock()
            if delay > 0 and not self._closing:
                # Urgent parts (or close) wake us early; otherwise this is the flush interval.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):  # not wait_for: see persistence.within
                        await self._wake.wait()
                continue
            for frame in self._outbox.take(self._clock()):
                await self._deliver(frame)

    async def _deliver(self, frame: Frame) -> None:
        part = frame.chunk_part()
        legacy = [listener for listener in self.listeners if listener.request_id is None]
        sdk = [listener for listener in self.listeners if listener.request_id is not None]
        chunk = Chunk(turn_id=self.turn_id, attempt=self.attempt, seq=frame.seq, chunk=part)
        await asyncio.gather(
            self._post_all(legacy, dump_frame(chunk).encode()),
            asyncio.gather(
                *(self._post_sequence(s, self._sdk_frames(s, frame.seq, part, frame.sdk_tail)) for s in sdk)
            ),
        )
        self._parts.append((frame.seq, part))
        self.last_sent_seq = frame.seq
        if frame.text_id is not None:
            (self._sent_reasoning if frame.reasoning else self._sent_text).append(frame.delta)
            if not frame.reasoning and not self.text_posted:
                self.text_posted = True
                if self._on_first_text is not None:
                    self._on_first_text()
        self.frames_sent += 1

    def _sdk_frames(
        self, listener: Listener, seq: int, part: ChunkPart, tail: tuple[ChunkPart, ...] = ()
    ) -> list[bytes]:
        """The AI SDK transport's frames for one part: its chunk (`sequence` = `seq`), the tail,
        and `end` after an ending part."""
        request_id = listener.request_id
        assert request_id is not None
        parts = [part, *tail]
        frames = [ChatChunk(request_id=request_id, sequence=seq + i, chunk=p) for i, p in enumerate(parts)]
        data = [dump_frame(f).encode() for f in frames]
        if isinstance(part, (FinishPart, AbortPart, ErrorPart)):
            data.append(dump_frame(ChatEnd(request_id=request_id)).encode())
        return data

    async def _welcome(self) -> None:
        """New listeners join: a Courier client gets a snapshot of the text so far; an AI SDK
        request gets every part so far, from the attempt's `start`."""
        new, self._new = self._new, []
        snapshot = Snapshot(
            turn_id=self.turn_id,
            attempt=self.attempt,
            seq=self.last_sent_seq,
            status=TurnStatus.STREAMING,
            text=self.sent_text,
        )
        legacy = [listener for listener in new if listener.request_id is None]
        replays = [
            [frame for seq, part in self._parts for frame in self._sdk_frames(listener, seq, part)]
            for listener in new
            if listener.request_id is not None
        ]
        sdk = [listener for listener in new if listener.request_id is not None]
        snapshotted, replayed = await asyncio.gather(
            self._post_all(legacy, dump_frame(snapshot).encode()),
            asyncio.gather(*(self._post_sequence(s, frames) for s, frames in zip(sdk, replays, strict=True))),
        )
        delivered = snapshotted | {s for s, ok in zip(sdk, replayed, strict=True) if ok}
        self.listeners.extend(listener for listener in new if listener in delivered)
        self._report_count()

    async def _retire_stale(self) -> None:
        for listener in self._stale:  # they stay in _stale: a stale read of the table never re-adds them
            assert listener.request_id is not None
            error = ChatError(request_id=listener.request_id, error_text=self._stale_notice)
            await self._post_one(listener, dump_frame(error).encode())
            if self._on_gone is not None:
                await self._on_gone(listener.connection_id)  # its request is over: stop listening

    async def _post_all(self, listeners: list[Listener], data: bytes) -> set[Listener]:
        if not listeners:
            return set()
        outcomes = await asyncio.gather(*(self._post_one(listener, data) for listener in listeners))
        return {listener for listener, ok in zip(listeners, outcomes, strict=True) if ok}

    async def _post_sequence(self, listener: Listener, frames: list[bytes]) -> bool:
        """Post frames to one listener in order; stop at the first that fails."""
        for data in frames:
            if not await self._post_one(listener, data):
                return False
        return True

    async def _post_one(self, listener: Listener, data: bytes) -> bool:
        connection_id = listener.connection_id
        self.posts += 1
        started = self._clock()
        try:
            await asyncio.to_thread(self._poster.post, self._endpoint_url, connection_id, data)
            return True
        except ConnectionGone:
            logger.info("listener gone", extra={"connection_id": connection_id})
            self._gone.add(connection_id)
            self._drop(listener)
            if self._on_gone is not None:
                task = asyncio.create_task(self._on_gone(connection_id))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        except ConnectionUnavailable:
            # Not known to be gone: drop it for now; the next control poll offers it again and it
            # gets a fresh snapshot (or replay), so it still ends up with gap-free text.
            logger.warning("listener unreachable", extra={"connection_id": connection_id})
            self._drop(listener)
        finally:
            took = self._clock() - started
            self.post_seconds_total += took
            self.post_seconds_max = max(self.post_seconds_max, took)
        return False

    def _drop(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
            self._report_count()

    def _report_count(self) -> None:
        if self._on_listener_count is not None:
            self._on_listener_count(self.listener_count)
