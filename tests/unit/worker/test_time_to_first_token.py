"""Courier's one time to first token, and where each tool call sits in the answer.

Time to first token runs from the moment Courier accepted the message (the turn's created_at) to the
moment the worker posted the turn's first answer text: the stored turn, the `finish` part's metadata
and the report the metric is published from all carry that one figure. The fake clock only moves
when the test (or the model, as it "thinks") moves it, so the figure is exact.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import pytest
from fakes import MemoryChatStore, RecordingPoster
from strands import tool
from support import FakeClock
from worker.scripted_model import ScriptedModel

from courier_shared.protocol import TurnStatus
from courier_worker.tools import CourierTool, ToolInputError, ToolRegistry
from unit.worker.turn_runner import LISTENER, OWNER, fake_turn_runner, queued_turn

pytestmark = pytest.mark.anyio


class ThinkingModel(ScriptedModel):
    """The scripted model, taking `think_s` of the fake clock before each answer."""

    def __init__(self, steps: list[dict[str, Any]], clock: FakeClock, think_s: float) -> None:
        super().__init__(steps)
        self.clock = clock
        self.think_s = think_s

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[dict[str, Any], None]:  # type: ignore[override]
        self.clock.advance(self.think_s)
        async for event in super().stream(*args, **kwargs):
            yield event


def parts(poster: RecordingPoster) -> list[dict[str, Any]]:
    return [frame["chunk"] for frame in poster.frames[LISTENER] if frame.get("type") == "chunk"]


async def test_time_to_first_token_runs_from_the_accepted_message_to_the_first_text_posted() -> None:
    store, poster, clock = MemoryChatStore(), RecordingPoster(), FakeClock()
    request = queued_turn(store, clock)
    clock.advance(2.0)  # the turn waits in the queue
    model = ThinkingModel([{"text": "Hello there."}], clock, think_s=0.25)  # the model thinks

    report = await fake_turn_runner(store, model, poster, clock, ToolRegistry()).run(request)

    assert report.status is TurnStatus.COMPLETED
    assert report.time_to_first_token_ms == 2250  # the figure the TimeToFirstToken metric publishes
    [finish] = [part for part in parts(poster) if part["type"] == "finish"]
    assert finish["messageMetadata"]["timeToFirstTokenMs"] == 2250
    with store.unit_of_work() as repo:
        assert repo.find_turn(OWNER, request.turn_id).time_to_first_token_ms == 2250


async def test_a_turn_that_posted_no_answer_text_has_no_time_to_first_token() -> None:
    store, poster, clock = MemoryChatStore(), RecordingPoster(), FakeClock()
    request = queued_turn(store, clock)
    model = ThinkingModel([{"raise": RuntimeError("the model broke")}], clock, think_s=0.1)

    report = await fake_turn_runner(store, model, poster, clock, ToolRegistry()).run(request)

    assert report.status is TurnStatus.FAILED and report.time_to_first_token_ms is None
    with store.unit_of_work() as repo:
        assert repo.find_turn(OWNER, request.turn_id).time_to_first_token_ms is None


async def test_each_tool_call_is_stored_with_the_answer_text_before_it_and_a_failure_as_a_failure() -> None:
    @tool
    def lookup(city: str) -> str:
        """Look up the time in a city."""
        if city == "Atlantis":
            raise ToolInputError("No such city.")
        return f"12:00 in {city}"

    tools = ToolRegistry([CourierTool(tool=lookup, summarize=lambda _input: "Looking it up…")])
    store, poster, clock = MemoryChatStore(), RecordingPoster(), FakeClock()
    request = queued_turn(store, clock, "Paris, then Atlantis?")
    model = ThinkingModel(
        [
            {"text": "Let me look. ", "tool": {"name": "lookup", "input": {"city": "Paris"}, "id": "t1"}},
            {"text": "Noon there; ", "tool": {"name": "lookup", "input": {"city": "Atlantis"}, "id": "t2"}},
            {"text": "and Atlantis is unknown."},
        ],
        clock,
        think_s=0.1,
    )

    report = await fake_turn_runner(store, model, poster, clock, tools).run(request)

    assert report.status is TurnStatus.COMPLETED
    with store.unit_of_work() as repo:
        answer = repo.find_turn(OWNER, request.turn_id).assistant_text
        calls = repo.tool_invocations(OWNER, request.turn_id)
    assert answer == "Let me look. Noon there; and Atlantis is unknown."
    assert [(c.tool_call_id, c.status, c.text_offset) for c in calls] == [
        ("t1", "success", len("Let me look. ")),
        ("t2", "error", len("Let me look. Noon there; ")),
    ]
    assert answer[: calls[1].text_offset] == "Let me look. Noon there; "
