"""The streaming core: seq numbering, coalescing, frame size, listeners (fake poster, fake/real clock)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import pytest

from courier_shared.protocol import (
    MAX_FRAME_BYTES,
    Chunk,
    FinishStepPart,
    Snapshot,
    StartMetadata,
    StartPart,
    TextDeltaPart,
    TextStartPart,
    dump_frame,
    parse_server_frame,
)
from courier_worker.ports import ConnectionGone, ConnectionUnavailable
from courier_worker.streaming import Outbox, Publisher, split_text

START = StartPart(message_id="t", message_metadata=StartMetadata(model="m", attempt=1))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- Outbox (pure, fake clock)


def test_first_text_is_due_at_once_then_text_waits_one_interval() -> None:
    clock = FakeClock()
    outbox = Outbox(flush_interval_s=0.1)
    outbox.push(START)
    outbox.push(TextStartPart(id="a"))
    outbox.push_text("a", "Hel")
    assert outbox.due_at() == float("-inf")
    taken = outbox.take(clock())
    assert [f.seq for f in taken] == [0, 1, 2]
    assert taken[2].chunk_part() == TextDeltaPart(id="a", delta="Hel")

    clock.now += 0.01
    outbox.push_text("a", "lo ")
    outbox.push_text("a", "world")
    assert outbox.due_at() == pytest.approx(1000.1)  # not the first text any more: coalesce
    clock.now += 0.09
    taken = outbox.take(clock())
    assert [(f.seq, f.chunk_part()) for f in taken] == [(3, TextDeltaPart(id="a", delta="lo world"))]


def test_structural_parts_flush_pending_text_in_order_without_waiting() -> None:
    clock = FakeClock()
    outbox = Outbox(flush_interval_s=0.1)
    outbox.push_text("a", "x")
    outbox.take(clock())
    outbox.push_text("a", "y")
    outbox.push(FinishStepPart())
    assert outbox.due_at() == float("-inf")
    taken = outbox.take(clock())
    assert [f.chunk_part().type for f in taken] == ["text-delta", "finish-step"]
    assert [f.seq for f in taken] == [1, 2]


def test_seq_has_no_gaps_and_text_survives_coalescing() -> None:
    clock = FakeClock()
    outbox = Outbox(flush_interval_s=0.1)
    sent: list[int] = []
    text: list[str] = []
    words = [f"w{i} " for i in range(500)]
    for i, word in enumerate(words):
        outbox.push_text("a", word)
        if i % 37 == 0:
            outbox.push(FinishStepPart())
        clock.now += 0.01
        due = outbox.due_at()
        if due is not None and due <= clock.now:
            for frame in outbox.take(clock.now):
                sent.append(frame.seq)
                part = frame.chunk_part()
                if isinstance(part, TextDeltaPart):
                    text.append(part.delta)
    for frame in outbox.take(clock.now):
        sent.append(frame.seq)
        part = frame.chunk_part()
        if isinstance(part, TextDeltaPart):
            text.append(part.delta)
    assert sent == list(range(len(sent)))
    assert "".join(text) == "".join(words)


def test_no_frame_exceeds_32_kib_even_with_escapes_and_multibyte_text() -> None:
    outbox = Outbox(flush_interval_s=0.1)
    outbox.push_text("a", 'é"\n\x01' * 20_000)  # 2-byte chars, escapes, a control char
    outbox.push_text("a", "z" * 70_000)
    frames = outbox.take(0.0)
    assert len(frames) > 3
    turn_id = uuid.uuid4()
    rebuilt = []
    for frame in frames:
        wire = dump_frame(Chunk(turn_id=turn_id, attempt=1, seq=frame.seq, chunk=frame.chunk_part()))
        assert len(wire.encode()) <= MAX_FRAME_BYTES
        rebuilt.append(json.loads(wire)["chunk"]["delta"])
    assert "".join(rebuilt) == 'é"\n\x01' * 20_000 + "z" * 70_000


def test_split_text_never_cuts_a_character() -> None:
    pieces = split_text("😀" * 10, 8)
    assert all(p == "😀" * 2 for p in pieces)


# ---------------------------------------------------------------- Publisher (fake poster, real time)


class FakePoster:
    """Records every post; can be slow, or say a connection is gone / unreachable."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.posts: list[tuple[str, dict[str, object], float]] = []
        self.gone: set[str] = set()
        self.unavailable: set[str] = set()
        self._lock = threading.Lock()

    def post(self, endpoint_url: str, connection_id: str, data: bytes) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        if connection_id in self.gone:
            raise ConnectionGone(connection_id)
        if connection_id in self.unavailable:
            raise ConnectionUnavailable(connection_id)
        with self._lock:
            self.posts.append((connection_id, json.loads(data), time.monotonic()))

    def frames_for(self, connection_id: str) -> list[dict[str, object]]:
        return [frame for c, frame, _ in self.posts if c == connection_id]


def make_publisher(poster: FakePoster, listeners: list[str], interval: float = 0.05) -> Publisher:
    return Publisher(
        turn_id=uuid.uuid4(),
        attempt=1,
        endpoint_url="http://gw/dev",
        poster=poster,
        outbox=Outbox(flush_interval_s=interval),
        listeners=listeners,
        clock=time.monotonic,
    )


def text_of(frames: list[dict[str, object]]) -> str:
    return "".join(
        str(f["chunk"]["delta"])  # type: ignore[index]
        for f in frames
        if f["type"] == "chunk" and f["chunk"]["type"] == "text-delta"  # type: ignore[index]
    )


@pytest.mark.anyio
async def test_every_listener_gets_every_frame_in_order_and_first_text_at_once() -> None:
    poster = FakePoster()
    publisher = make_publisher(poster, ["a", "b"], interval=0.05)
    publisher.start()
    publisher.emit(START)
    publisher.emit(TextStartPart(id="x"))
    emitted_at = time.monotonic()
    publisher.emit_text("x", "first")
    await asyncio.sleep(0.02)
    first_delta_at = next(t for c, f, t in poster.posts if c == "a" and f["chunk"]["type"] == "text-delta")  # type: ignore[index]
    assert first_delta_at - emitted_at < 0.01
    for i in range(40):
        publisher.emit_text("x", f" t{i}")
        await asyncio.sleep(0.005)
    await publisher.close()
    for listener in ("a", "b"):
        frames = poster.frames_for(listener)
        assert [f["seq"] for f in frames] == list(range(len(frames)))
        assert text_of(frames) == "first" + "".join(f" t{i}" for i in range(40))
    # 41 tokens over ~0.2 s at a 50 ms interval: a handful of text frames, not one per token.
    assert len(poster.frames_for("a")) <= 10


@pytest.mark.anyio
async def test_slow_posts_merge_text_instead_of_building_a_backlog() -> None:
    poster = FakePoster(delay_s=0.08)
    publisher = make_publisher(poster, ["a"], interval=0.02)
    publisher.start()
    publisher.emit(START)
    publisher.emit(TextStartPart(id="x"))
    for i in range(50):  # 100 tokens/s for 0.5 s
        publisher.emit_text("x", f"{i} ")
        await asyncio.sleep(0.01)
    closing = time.monotonic()
    await publisher.close()
    # Once text stops, at most one post in flight plus one carrying everything left.
    assert time.monotonic() - closing < 0.25
    frames = poster.frames_for("a")
    assert text_of(frames) == "".join(f"{i} " for i in range(50))
    assert len(frames) <= 10  # ~0.5 s / 80 ms per post


@pytest.mark.anyio
async def test_gone_listener_is_dropped_and_reported_and_others_keep_receiving() -> None:
    poster = FakePoster()
    poster.gone.add("b")
    removed: list[str] = []
    counts: list[int] = []

    async def on_gone(connection_id: str) -> None:
        removed.append(connection_id)

    publisher = Publisher(
        turn_id=uuid.uuid4(),
        attempt=1,
        endpoint_url="http://gw/dev",
        poster=poster,
        outbox=Outbox(flush_interval_s=0.01),
        listeners=["a", "b"],
        clock=time.monotonic,
        on_listener_count=counts.append,
        on_gone=on_gone,
    )
    publisher.start()
    publisher.emit(START)
    publisher.emit_text("x", "hello")
    await publisher.close()
    assert removed == ["b"]
    assert publisher.listeners == ["a"]
    assert counts[-1] == 1
    assert text_of(poster.frames_for("a")) == "hello"
    publisher.sync_listeners(["a", "b"])  # a stale read of the listener table must not re-add it
    assert publisher.listener_count == 1


@pytest.mark.anyio
async def test_new_listener_gets_a_snapshot_then_the_live_chunks_gap_free() -> None:
    poster = FakePoster()
    publisher = make_publisher(poster, ["a"], interval=0.01)
    publisher.start()
    publisher.emit(START)
    publisher.emit(TextStartPart(id="x"))
    publisher.emit_text("x", "one ")
    await publisher.drain()
    publisher.emit_text("x", "two ")
    await publisher.drain()
    publisher.sync_listeners(["a", "late"])
    await asyncio.sleep(0.01)
    publisher.emit_text("x", "three")
    await publisher.close()
    late = poster.frames_for("late")
    snapshot = parse_server_frame(json.dumps(late[0]))
    assert isinstance(snapshot, Snapshot)
    assert snapshot.text == "one two "
    later = late[1:]
    assert [f["seq"] for f in later] == list(range(snapshot.seq + 1, snapshot.seq + 1 + len(later)))
    assert snapshot.text + text_of(later) == text_of(poster.frames_for("a")) == "one two three"


@pytest.mark.anyio
async def test_unreachable_listener_is_picked_up_again_with_a_snapshot() -> None:
    poster = FakePoster()
    publisher = make_publisher(poster, ["a"], interval=0.01)
    publisher.start()
    publisher.emit(START)
    poster.unavailable.add("a")
    publisher.emit_text("x", "lost ")
    await publisher.drain()
    assert publisher.listener_count == 0
    poster.unavailable.clear()
    publisher.sync_listeners(["a"])  # the control poll still finds it in the table
    publisher.emit_text("x", "found")
    await publisher.close()
    frames = poster.frames_for("a")
    snapshot = next(f for f in frames if f["type"] == "snapshot")
    assert snapshot["text"] + text_of(frames) == "lost found"
