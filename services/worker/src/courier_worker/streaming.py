"""The streaming core: numbers a turn's chunk parts, coalesces text, and delivers frames to listeners.

Two pieces:
- `Outbox` (pure, no I/O, explicit time): gives every part its `seq`, merges consecutive text into
  one `text-delta` (never over the frame budget) and says when the next frame is due: at once for
  the first text and for structural parts, else one flush interval after the previous take.
- `Publisher` (asyncio): one sender task that takes due frames and posts each to every listener, in
  order, waiting for a post to return before the next, so slow posts merge more text into the
  next frame instead of building a backlog. New listeners get a `snapshot` first; gone ones are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from courier_shared.protocol import (
    MAX_FRAME_BYTES,
    Chunk,
    ChunkPart,
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
    """One chunk part with its seq, ready to post (a text-delta may still grow until taken)."""

    seq: int
    part: ChunkPart | None = None
    text_id: str | None = None
    text: list[str] = field(default_factory=list)
    text_bytes: int = 0

    def chunk_part(self) -> ChunkPart:
        if self.part is not None:
            return self.part
        assert self.text_id is not None
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

    def push(self, part: ChunkPart) -> int:
        """Queue a structural part; it (and any text before it) goes out at once. Returns its seq."""
        frame = Frame(seq=self._new_seq(), part=part)
        self._pending.append(frame)
        self._urgent = True
        return frame.seq

    def push_text(self, text_id: str, delta: str) -> None:
        """Queue answer text, merged into the pending delta of the same block while it fits."""
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
                    Frame(seq=self._new_seq(), text_id=text_id, text=[piece], text_bytes=size)
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
        listeners: Iterable[str],
        clock: Callable[[], float],
        on_listener_count: ListenerCallback | None = None,
        on_gone: GoneCallback | None = None,
    ) -> None:
        self.turn_id = turn_id
        self.attempt = attempt
        self._endpoint_url = endpoint_url
        self._poster = poster
        self._outbox = outbox
        self._clock = clock
        self._on_listener_count = on_listener_count
        self._on_gone = on_gone
        self.listeners: list[str] = list(dict.fromkeys(listeners))
        self._new: list[str] = []
        self._gone: set[str] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._sent_text: list[str] = []
        self.last_sent_seq = -1
        self.frames_sent = 0  # frames taken and delivered (to however many listeners)
        self.posts = 0  # @connections calls made, successful or not
        self.post_seconds_total = 0.0  # how long those calls took, on `clock`
        self.post_seconds_max = 0.0

    # ------------------------------------------------------------ producer side (event loop thread)

    def emit(self, part: ChunkPart) -> int:
        seq = self._outbox.push(part)
        self._wake.set()
        return seq

    def emit_text(self, text_id: str, delta: str) -> None:
        self._outbox.push_text(text_id, delta)
        self._wake.set()

    def sync_listeners(self, current: Iterable[str]) -> None:
        """Reconcile with the stored listener set: new ones get a snapshot, vanished ones are dropped."""
        current = list(dict.fromkeys(current))
        known = set(self.listeners) | set(self._new)
        for connection_id in current:
            if connection_id not in known and connection_id not in self._gone:
                self._new.append(connection_id)
        stored = set(current)
        dropped = [c for c in self.listeners if c not in stored]
        if dropped:
            self.listeners = [c for c in self.listeners if c in stored]
            self._new = [c for c in self._new if c in stored]
            self._report_count()
        self._wake.set()

    @property
    def sent_text(self) -> str:
        return "".join(self._sent_text)

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
        while True:
            self._wake.clear()
            if self._new:
                await self._send_snapshots()
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
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            for frame in self._outbox.take(self._clock()):
                await self._deliver(frame)

    async def _deliver(self, frame: Frame) -> None:
        part = frame.chunk_part()
        data = dump_frame(
            Chunk(turn_id=self.turn_id, attempt=self.attempt, seq=frame.seq, chunk=part)
        ).encode()
        await self._post_all(list(self.listeners), data)
        self.last_sent_seq = frame.seq
        if frame.text_id is not None:
            self._sent_text.append(frame.delta)
        self.frames_sent += 1

    async def _send_snapshots(self) -> None:
        new, self._new = self._new, []
        snapshot = Snapshot(
            turn_id=self.turn_id,
            attempt=self.attempt,
            seq=self.last_sent_seq,
            status=TurnStatus.STREAMING,
            text=self.sent_text,
        )
        data = dump_frame(snapshot).encode()
        delivered = await self._post_all(new, data)
        self.listeners.extend(c for c in new if c in delivered)
        self._report_count()

    async def _post_all(self, connection_ids: list[str], data: bytes) -> set[str]:
        if not connection_ids:
            return set()
        outcomes = await asyncio.gather(*(self._post_one(c, data) for c in connection_ids))
        return {c for c, ok in zip(connection_ids, outcomes, strict=True) if ok}

    async def _post_one(self, connection_id: str, data: bytes) -> bool:
        self.posts += 1
        started = self._clock()
        try:
            await asyncio.to_thread(self._poster.post, self._endpoint_url, connection_id, data)
            return True
        except ConnectionGone:
            logger.info("listener gone", extra={"connection_id": connection_id})
            self._gone.add(connection_id)
            self._drop(connection_id)
            if self._on_gone is not None:
                task = asyncio.create_task(self._on_gone(connection_id))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        except ConnectionUnavailable:
            # Not known to be gone: drop it for now; the next control poll offers it again and it
            # gets a fresh snapshot, so it still ends up with gap-free text.
            logger.warning("listener unreachable", extra={"connection_id": connection_id})
            self._drop(connection_id)
        finally:
            took = self._clock() - started
            self.post_seconds_total += took
            self.post_seconds_max = max(self.post_seconds_max, took)
        return False

    def _drop(self, connection_id: str) -> None:
        if connection_id in self.listeners:
            self.listeners.remove(connection_id)
            self._report_count()

    def _report_count(self) -> None:
        if self._on_listener_count is not None:
            self._on_listener_count(self.listener_count)
