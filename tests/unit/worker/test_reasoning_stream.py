"""The streaming core and reasoning: reasoning deltas coalesce like text, in their own parts, and
what was delivered of each is kept apart (the stored answer never holds reasoning)."""

from __future__ import annotations

import asyncio

import pytest
from support import FakeClock

from courier_shared.protocol import (
    ReasoningEndPart,
    ReasoningStartPart,
    StartMetadata,
    StartPart,
    TextStartPart,
)

from .test_streaming import FakePoster, make_publisher, part_types

START = StartPart(message_id="t", message_metadata=StartMetadata(model="m", attempt=1))


@pytest.mark.anyio
async def test_reasoning_coalesces_in_its_own_deltas_and_is_delivered_apart_from_the_text() -> None:
    clock = FakeClock()
    poster = FakePoster()
    publisher = make_publisher(poster, ["a"], clock, interval=0.05)
    publisher.start()
    publisher.emit(START)
    publisher.emit(ReasoningStartPart(id="reasoning-0"))
    for word in ("Think ", "it ", "over."):
        publisher.emit_reasoning("reasoning-0", word)
        await asyncio.sleep(0)
    clock.advance(0.05)
    publisher.emit(ReasoningEndPart(id="reasoning-0"))
    publisher.emit(TextStartPart(id="text-0"))
    publisher.emit_text("text-0", "Answer.")
    await publisher.close()

    frames = poster.frames_for("a")
    kinds = part_types(frames)
    assert kinds[:2] == ["start", "reasoning-start"] and kinds[-3:] == [
        "reasoning-end",
        "text-start",
        "text-delta",
    ]
    reasoning_frames = [f["chunk"] for f in frames if f["chunk"]["type"] == "reasoning-delta"]  # type: ignore[index]
    assert len(reasoning_frames) < 3  # merged, not one frame per token
    assert "".join(str(p["delta"]) for p in reasoning_frames) == "Think it over."  # type: ignore[index]
    assert (publisher.sent_text, publisher.sent_reasoning) == ("Answer.", "Think it over.")
