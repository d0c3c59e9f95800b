"""The streaming core: seq numbering, coalescing, frame size, listeners (fake poster, fake clock)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable

import pytest
from support import FakeClock

from courier_shared.db.store import Listener
from courier_shared.protocol import (
    MAX_FRAME_BYTES,
    AbortPart,
    Chunk,
    FinishMetadata,
    FinishPart,
    FinishStepPart,
    Snapshot,
    StartMetadata,
    StartPart,
    TextDeltaPart,
    TextStartPart,
    Usage,
    dump_frame,
    parse_server_frame,
)
from courier_worker.ports import ConnectionGone, ConnectionUnavailable
from courier_worker.streaming import Outbox, Publisher, split_text

START = StartPart(message_id="t", message_metadata=StartMetadata(model="m", attempt=1))
METADATA = FinishMetadata(stop_reason="end_turn", usage=Usage(), latency_ms=1, time_to_first_token_ms=1)
FINISH = FinishPart(finish_reason="stop", message_metadata=METADATA)
INTERRUPTED = FinishPart(finish_reason="interrupted", message_metadata=METADATA)


# ---------------------------------------------------------------- Outbox (pure, fake clock)


def test_first_text_is_due_at_once_then_text_waits_one_interval() -> None:
    clock = FakeClock()
    outbox = Outbox(flush_interval_s=0.1)
    outbox.push(START)
    outbox.push(TextStartPart(id="a"))
    outbox.push_text("a", "Hel")
    assert outbox.due_at() == float("-inf")
    taken = outbox.take(clock.monotonic())
    assert [f.seq for f in taken] == [0, 1, 2]
    assert taken[2].chunk_part() == TextDeltaPart(id="a", delta="Hel")

    clock.advance(0.01)
    outbox.push_text("a", "lo ")
    outbox.push_text("a", "world")
    assert outbox.due_at() == pytest.approx(1000.1)  # not the first text any more: coalesce
    clock.advance(0.09)
    taken = outbox.take(clock.monotonic())
    assert [(f.seq, f.chunk_part()) for f in taken] == [(3, TextDeltaPart(id="a", delta="lo world"))]


def test_structural_parts_flush_pending_text_in_order_without_waiting() -> None:
    clock = FakeClock()
    outbox = Outbox(flush_interval_s=0.1)
    outbox.push_text("a", "x")
    outbox.take(clock.monotonic())
    outbox.push_text("a", "y")
    outbox.push(FinishStepPart())
    assert outbox.due_at() == float("-inf")
    taken = outbox.take(clock.monotonic())
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
        clock.advance(0.01)
        due = outbox.due_at()
        if due is not None and due <= clock.monotonic():
            for frame in outbox.take(clock.monotonic()):
                sent.append(frame.seq)
                part = frame.chunk_part()
                if isinstance(part, TextDeltaPart):
                    text.append(part.delta)
    for frame in outbox.take(clock.monotonic()):
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


# ---------------------------------------------------------------- Publisher (fake poster, fake clock)
# The clock is frozen unless a test moves it, so "waits for the flush interval" means "never goes
# out until the test advances the clock": no test depends on how fast the machine is.

HANG_GUARD_S = 10.0  # only ends a test that would otherwise hang; no assertion measures time


class FakePoster:
    """Records every post; can hold posts until released, or say a connection is gone / unreachable."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, object]]] = []
        self.gone: set[str] = set()
        self.unavailable: set[str] = set()
        self.entered = 0  # posts that have started, held or not
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def post(self, endpoint_url: str, connection_id: str, data: bytes) -> None:
        with self._lock:
            self.entered += 1
        if not self._open.wait(HANG_GUARD_S):
            raise AssertionError("a held post was never released")
        if connection_id in self.gone:
            raise ConnectionGone(connection_id)
        if connection_id in self.unavailable:
            raise ConnectionUnavailable(connection_id)
        with self._lock:
            self.posts.append((connection_id, json.loads(data)))

    def frames_for(self, connection_id: str) -> list[dict[str, object]]:
        with self._lock:
            return [frame for c, frame in self.posts if c == connection_id]


async def eventually(condition: Callable[[], bool]) -> None:
    """Let the sender task and its post threads run until `condition` holds."""
    for _ in range(int(HANG_GUARD_S / 0.001)):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


def make_publisher(
    poster: FakePoster, listeners: list[str], clock: FakeClock, interval: float = 0.05
) -> Publisher:
    return Publisher(
        turn_id=uuid.uuid4(),
        attempt=1,
        endpoint_url="http://gw/dev",
        poster=poster,
        outbox=Outbox(flush_interval_s=interval),
        listeners=[Listener(c) for c in listeners],
        clock=clock.monotonic,
    )


def text_of(frames: list[dict[str, object]]) -> str:
    return "".join(
        str(f["chunk"]["delta"])  # type: ignore[index]
        for f in frames
        if f["type"] == "chunk" and f["chunk"]["type"] == "text-delta"  # type: ignore[index]
    )


def part_types(frames: list[dict[str, object]]) -> list[str]:
    return [str(f["chunk"]["type"]) for f in frames if f["type"] == "chunk"]  # type: ignore[index]


@pytest.mark.anyio
async def test_every_listener_gets_every_frame_in_order_and_first_text_at_once() -> None:
    clock = FakeClock()
    poster = FakePoster()
    publisher = make_publisher(poster, ["a", "b"], clock, interval=0.05)
    publisher.start()
    publisher.emit(START)
    publisher.emit(TextStartPart(id="x"))
    await eventually(lambda: all(part_types(poster.frames_for(c)) == ["start", "text-start"] for c in "ab"))

    # Inside the flush interval (the clock has not moved), the first text still goes out at once.
    publisher.emit_text("x", "first")
    await eventually(lambda: all(text_of(poster.frames_for(c)) == "first" for c in "ab"))

    # Later text waits for the interval, however many tokens arrive meanwhile...
    for i in range(40):
        publisher.emit_text("x", f" t{i}")
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert text_of(poster.frames_for("a")) == "first"
    # ...and goes out as one frame once it has passed.
    clock.advance(0.05)
    publisher.emit_text("x", " end")
    await publisher.close()

    expected = "first" + "".join(f" t{i}" for i in range(40)) + " end"
    for listener in ("a", "b"):
        frames = poster.frames_for(listener)
        assert [f["seq"] for f in frames] == list(range(len(frames)))
        assert part_types(frames) == ["start", "text-start", "text-delta", "text-delta"]
        assert text_of(frames) == expected


@pytest.mark.anyio
async def test_slow_posts_merge_text_instead_of_building_a_backlog() -> None:
    clock = FakeClock()
    poster = FakePoster()
    publisher = make_publisher(poster, ["a"], clock, interval=0.02)
    poster.hold()  # the first post hangs until released
    publisher.start()
    publisher.emit(START)
    publisher.emit(TextStartPart(id="x"))
    publisher.emit_text("x", "0 ")
    await eventually(lambda: poster.entered == 1)
    for i in range(1, 50):  # 100 tokens/s for half a second, all while that post is stuck
        clock.advance(0.01)
        publisher.emit_text("x", f"{i} ")
        await asyncio.sleep(0)
    poster.release()
    await publisher.close()
    frames = poster.frames_for("a")
    # The frames taken before the stall, then one frame with everything that came in meanwhile.
    assert part_types(frames) == ["start", "text-start", "text-delta", "text-delta"]
    assert frames[-1]["chunk"]["delta"] == "".join(f"{i} " for i in range(1, 50))  # type: ignore[index]
    assert [f["seq"] for f in frames] == [0, 1, 2, 3]


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
        listeners=[Listener("a"), Listener("b")],
        clock=FakeClock().monotonic,
        on_listener_count=counts.append,
        on_gone=on_gone,
    )
    publisher.start()
    publisher.emit(START)
    publisher.emit_text("x", "hello")
    await publisher.close()
    assert removed == ["b"]
    assert publisher.listeners == [Listener("a")]
    assert counts[-1] == 1
    assert text_of(poster.frames_for("a")) == "hello"
    # A stale read of the listener table must not re-add it.
    publisher.sync_listeners([Listener("a"), Listener("b")])
    assert publisher.listener_count == 1


@pytest.mark.anyio
async def test_new_listener_gets_a_snapshot_then_the_live_chunks_gap_free() -> None:
    poster = FakePoster()
    publisher = make_publisher(poster, ["a"], FakeClock(), interval=0.01)
    publisher.start()
    publisher.emit(START)
    publisher.emit(TextStartPart(id="x"))
    publisher.emit_text("x", "one ")
    await publisher.drain()
    publisher.emit_text("x", "two ")
    await publisher.drain()
    publisher.sync_listeners([Listener("a"), Listener("late")])
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
    publisher = make_publisher(poster, ["a"], FakeClock(), interval=0.01)
    publisher.start()
    publisher.emit(START)
    poster.unavailable.add("a")
    publisher.emit_text("x", "lost ")
    await publisher.drain()
    assert publisher.listener_count == 0
    poster.unavailable.clear()
    publisher.sync_listeners([Listener("a")])  # the control poll still finds it in the table
    publisher.emit_text("x", "found")
    await publisher.close()
    frames = poster.frames_for("a")
    snapshot = next(f for f in frames if f["type"] == "snapshot")
    assert snapshot["text"] + text_of(frames) == "lost found"


@pytest.mark.anyio
async def test_the_publisher_measures_its_posts_on_its_clock() -> None:
    clock = FakeClock()
    took = [0.04, 0.01]  # what each call "takes": the frames go out one after the other

    class SlowPoster(FakePoster):
        def post(self, endpoint_url: str, connection_id: str, data: bytes) -> None:
            clock.advance(took[len(self.posts)])
            super().post(endpoint_url, connection_id, data)

    publisher = make_publisher(SlowPoster(), ["a"], clock)
    publisher.start()
    publisher.emit(START)
    publisher.emit(FinishStepPart())
    await publisher.close()

    assert publisher.posts == 2
    assert publisher.post_seconds_max == pytest.approx(0.04)
    assert publisher.post_seconds_total == pytest.approx(0.05)


# ---------------------------------------------------------------- AI SDK chat requests as listeners


def sdk_publisher(poster: FakePoster, listeners: list[Listener], *, attempt: int = 1) -> Publisher:
    gone: list[str] = []

    async def on_gone(connection_id: str) -> None:
        gone.append(connection_id)

    publisher = Publisher(
        turn_id=uuid.uuid4(),
        attempt=attempt,
        endpoint_url="http://gw/dev",
        poster=poster,
        outbox=Outbox(flush_interval_s=0.01),
        listeners=listeners,
        clock=FakeClock().monotonic,
        on_gone=on_gone,
    )
    publisher.removed = gone  # type: ignore[attr-defined]
    return publisher


def sdk_sequences(frames: list[dict[str, object]]) -> list[int]:
    return [int(f["sequence"]) for f in frames if f["type"] == "chunk"]  # type: ignore[call-overload]


@pytest.mark.anyio
async def test_an_sdk_request_gets_the_transports_frames_and_an_end_after_the_ending() -> None:
    poster = FakePoster()
    publisher = sdk_publisher(poster, [Listener("courier"), Listener("sdk", "req-1")])
    publisher.start()
    publisher.emit(START)
    publisher.emit(TextStartPart(id="x"))
    publisher.emit_text("x", "hello")
    publisher.emit(FINISH)
    await publisher.close()

    sdk = poster.frames_for("sdk")
    assert {f["requestId"] for f in sdk} == {"req-1"}
    assert [f["type"] for f in sdk] == ["chunk"] * 4 + ["end"]
    assert sdk_sequences(sdk) == [0, 1, 2, 3]
    assert [f["chunk"]["type"] for f in sdk[:4]] == ["start", "text-start", "text-delta", "finish"]  # type: ignore[index]
    courier = poster.frames_for("courier")  # a Courier client's frames are unchanged
    assert [f["type"] for f in courier] == ["chunk"] * 4 and [f["seq"] for f in courier] == [0, 1, 2, 3]


@pytest.mark.anyio
async def test_an_sdk_request_joining_mid_turn_gets_a_replay_from_start_with_the_same_sequences() -> None:
    poster = FakePoster()
    publisher = sdk_publisher(poster, [Listener("sdk", "req-1")])
    publisher.start()
    publisher.emit(START)
    publisher.emit(TextStartPart(id="x"))
    publisher.emit_text("x", "one ")
    await publisher.drain()
    publisher.emit_text("x", "two ")
    await publisher.drain()

    publisher.sync_listeners([Listener("sdk", "req-1"), Listener("late", "req-2")])
    await eventually(lambda: len(poster.frames_for("late")) == 4)
    publisher.emit_text("x", "three")
    publisher.emit(FINISH)
    await publisher.close()

    first, late = poster.frames_for("sdk"), poster.frames_for("late")
    assert [f["chunk"] for f in late if f["type"] == "chunk"] == [
        f["chunk"] for f in first if f["type"] == "chunk"
    ]
    assert sdk_sequences(late) == sdk_sequences(first) == list(range(6))
    assert late[-1] == {"type": "end", "requestId": "req-2"}


@pytest.mark.anyio
async def test_an_abort_reaches_an_sdk_request_as_abort_then_an_interrupted_finish() -> None:
    poster = FakePoster()
    publisher = sdk_publisher(poster, [Listener("courier"), Listener("sdk", "req-1")])
    publisher.start()
    publisher.emit(START)
    publisher.emit(AbortPart(reason="cancelled"), (INTERRUPTED,))
    await publisher.close()

    sdk = poster.frames_for("sdk")
    assert [(f["type"], f.get("sequence")) for f in sdk] == [
        ("chunk", 0),
        ("chunk", 1),
        ("chunk", 2),
        ("end", None),
    ]
    assert sdk[2]["chunk"]["finishReason"] == "interrupted"  # type: ignore[index]
    courier = poster.frames_for("courier")  # exactly one ending for a Courier client
    assert [f["chunk"]["type"] for f in courier] == ["start", "abort"]  # type: ignore[index]


@pytest.mark.anyio
async def test_an_sdk_request_of_an_earlier_attempt_is_told_to_resume_and_stops_listening() -> None:
    poster = FakePoster()
    publisher = sdk_publisher(poster, [Listener("courier"), Listener("sdk", "req-1")], attempt=2)
    publisher.start()
    publisher.emit(START)
    await publisher.close()

    [notice] = poster.frames_for("sdk")  # nothing of attempt 2: its sequence would repeat attempt 1's
    assert notice["type"] == "error" and notice["requestId"] == "req-1"
    assert "resume" in str(notice["errorText"])
    assert publisher.removed == ["sdk"]  # type: ignore[attr-defined]
    assert [f["chunk"]["type"] for f in poster.frames_for("courier")] == ["start"]  # type: ignore[index]
