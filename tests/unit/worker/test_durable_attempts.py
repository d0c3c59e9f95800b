"""Durable attempts: a retried attempt goes on from the last step the agent loop completed.

The turn's agent session (Strands' RepositorySessionManager over the store) saves each message as
the agent adds it. A worker that dies between two tool steps leaves the turn `streaming` under its
lease; the retry restores the saved steps, sends them again as parts (so a client's message shows
one answer), and asks the model only for what is left: the tool never runs twice.
"""

from __future__ import annotations

import pytest
from fakes import MemoryChatStore, RecordingPoster
from strands import tool
from support import FakeClock
from worker.scripted_model import ScriptedModel

from courier_shared.protocol import TurnStatus
from courier_worker.failures import FAILURES
from courier_worker.tools import CourierTool, ToolRegistry
from unit.worker.turn_runner import FAST_SETTINGS, LISTENER, OWNER, fake_turn_runner, queued_turn

pytestmark = pytest.mark.anyio


class WorkerDied(BaseException):
    """The process died mid-answer (a Lambda timeout, kill -9): nothing after it runs."""


def dying_tool_turn() -> tuple[ToolRegistry, ScriptedModel, list[str]]:
    """A tool turn whose worker dies asking the model for the step after the tool: the tool, the
    model (its third call answers), and the tool's runs."""
    lookups: list[str] = []

    @tool
    def lookup(city: str) -> str:
        """Look up the time in a city."""
        lookups.append(city)
        return f"12:00 in {city}"

    tools = ToolRegistry([CourierTool(tool=lookup, summarize=lambda _input: "Looking it up…")])
    model = ScriptedModel(
        [
            {"text": "Let me look. ", "tool": {"name": "lookup", "input": {"city": "Paris"}, "id": "t1"}},
            {"raise": WorkerDied()},  # the model call after the tool: the worker dies here
            {"text": "It is noon in Paris."},
        ]
    )
    return tools, model, lookups


async def test_a_retry_after_a_crash_between_two_tool_steps_goes_on_without_running_the_tool_again() -> None:
    tools, model, lookups = dying_tool_turn()
    store, poster, clock = MemoryChatStore(), RecordingPoster(), FakeClock()
    request = queued_turn(store, clock, "What time is it in Paris?")
    turn_id = request.turn_id

    with pytest.raises(WorkerDied):
        await fake_turn_runner(store, model, poster, clock, tools).run(request)
    with store.unit_of_work() as repo:
        assert repo.find_turn(OWNER, turn_id).status is TurnStatus.STREAMING  # left as a crash leaves it
    clock.advance(FAST_SETTINGS.lease_s + 1)  # the dead worker's lease lapses

    report = await fake_turn_runner(store, model, poster, clock, tools).run(request)  # the queue's retry

    assert lookups == ["Paris"]  # the tool ran once
    assert len(model.calls) == 3  # the first step was not asked of the model again
    retried = model.calls[2]["messages"]
    assert any("toolResult" in block for message in retried for block in message["content"])
    assert report.status is TurnStatus.COMPLETED and report.attempt == 2
    with store.unit_of_work() as repo:
        stored = repo.find_turn(OWNER, turn_id)
        assert stored.assistant_text == "Let me look. It is noon in Paris."  # one answer, both steps
        assert [call.tool_name for call in repo.tool_invocations(OWNER, turn_id)] == ["lookup"]
        assert repo.session_messages(turn_id, "default") == []  # the saved steps are gone with the turn
    second = [f["chunk"] for f in poster.frames[LISTENER] if f["attempt"] == 2]
    types = [part["type"] for part in second]
    assert types[:10] == [
        "start",
        "start-step",  # the saved step, sent again
        "text-start",
        "text-delta",
        "text-end",
        "tool-input-available",
        "data-tool-status",
        "tool-output-available",
        "finish-step",
        "start-step",  # the model's next step
    ]
    assert types[-3:] == ["text-end", "finish-step", "finish"]
    assert (
        "".join(p["delta"] for p in second if p["type"] == "text-delta")
        == "Let me look. It is noon in Paris."
    )


async def test_nothing_is_saved_before_the_first_tool_call() -> None:
    """A plain answer costs no session writes: a retry would ask the model again anyway."""
    store, poster, clock = MemoryChatStore(), RecordingPoster(), FakeClock()
    request = queued_turn(store, clock, "Hello")

    with pytest.raises(WorkerDied):
        await fake_turn_runner(
            store, ScriptedModel([{"raise": WorkerDied()}]), poster, clock, ToolRegistry()
        ).run(request)

    with store.unit_of_work() as repo:
        assert repo.session_record(request.turn_id, "session", "", -1) is None
        assert repo.session_messages(request.turn_id, "default") == []


async def test_a_dead_lettered_turn_tells_an_sdk_request_of_its_earlier_attempt_how_it_ended() -> None:
    """The ending goes out as a new attempt, which that request cannot take: it gets the ending's text."""
    store, poster, clock = MemoryChatStore(), RecordingPoster(), FakeClock()
    request = queued_turn(store, clock, "Hello", "sdk-conn=", request_id="SENT")
    with store.unit_of_work() as repo:
        repo.start_attempt(OWNER, request.turn_id, "scripted-test-model", clock())  # then the worker died
    ender = fake_turn_runner(store, ScriptedModel([]), poster, clock, ToolRegistry()).ender()

    assert await ender.end_dead_lettered(request) is TurnStatus.FAILED

    [notice] = poster.frames["sdk-conn="]
    assert notice == {"type": "error", "requestId": "SENT", "errorText": FAILURES["dead_lettered"].safe_text}
