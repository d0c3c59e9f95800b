"""The worker's part translation (parts.py): a model's stream becomes the AI SDK chunk parts a
listener receives, in protocol order, through the turn runner over the in-memory store, a recording
poster and a scripted model. No database, no network, no Bedrock.
"""

from __future__ import annotations

from typing import Any

import pytest
from fakes import MemoryChatStore, RecordingPoster
from support import FakeClock
from worker.scripted_model import ScriptedModel

from courier_shared.protocol import TurnStatus
from courier_worker.accounting import UsageMeter
from courier_worker.parts import CRASHED_TOOL_TEXT, PartWriter
from courier_worker.tools import ToolRegistry, default_tools
from unit.worker.turn_runner import LISTENER, OWNER, fake_turn_runner, queued_turn

pytestmark = pytest.mark.anyio


def prepare(model: ScriptedModel, *, tools: ToolRegistry | None = None) -> tuple[Any, ...]:
    """A queued turn in the in-memory store, and the runner to run it."""
    store, poster, clock = MemoryChatStore(), RecordingPoster(), FakeClock()
    request = queued_turn(store, clock, "What time is it?")
    runner = fake_turn_runner(store, model, poster, clock, tools or default_tools())
    return request, runner, store, poster


async def answer(model: ScriptedModel, *, tools: ToolRegistry | None = None) -> tuple[list[Any], Any, Any]:
    request, runner, store, poster = prepare(model, tools=tools)
    report = await runner.run(request)
    frames = poster.frames[LISTENER]
    assert [f["seq"] for f in frames] == list(range(len(frames)))  # gap-free, in order
    assert {(f["turnId"], f["attempt"]) for f in frames} == {(str(request.turn_id), 1)}
    return [f["chunk"] for f in frames], report, (store, request)


def types(parts: list[dict[str, Any]]) -> list[str]:
    return [part["type"] for part in parts]


async def test_a_text_answer_is_start_step_text_block_finish() -> None:
    parts, report, (store, request) = await answer(ScriptedModel([{"text": "It is noon in Paris."}]))

    assert types(parts) == [
        "start",
        "start-step",
        "text-start",
        *["text-delta"] * (types(parts).count("text-delta")),
        "text-end",
        "finish-step",
        "finish",
    ]
    assert "".join(p["delta"] for p in parts if p["type"] == "text-delta") == "It is noon in Paris."
    assert parts[0]["messageMetadata"] == {
        "model": "scripted-test-model",
        "attempt": 1,
        "turnId": str(request.turn_id),
        "conversationId": str(request.conversation_id),
    }
    assert parts[-1]["messageMetadata"]["usage"] == {"inputTokens": 11, "outputTokens": 5}
    assert report.status is TurnStatus.COMPLETED
    with store.unit_of_work() as repo:
        turn = repo.find_turn(OWNER, request.turn_id)
        assert (turn.status, turn.assistant_text, turn.output_tokens) == (
            TurnStatus.COMPLETED,
            "It is noon in Paris.",
            5,
        )


async def test_a_tool_call_is_its_own_step_with_input_status_and_output() -> None:
    model = ScriptedModel(
        [
            {
                "text": "Let me look. ",
                "tool": {"name": "current_time", "input": {"time_zone": "UTC"}, "id": "t1"},
            },
            {"text": "Done."},
        ]
    )
    parts, _, (store, request) = await answer(model)

    kinds = [t for t in types(parts) if t != "text-delta"]
    assert kinds == [
        "start",
        "start-step",  # first model call
        "text-start",
        "text-end",  # the text block closes before the tool runs
        "tool-input-available",
        "data-tool-status",
        "tool-output-available",
        "finish-step",
        "start-step",  # second model call, after the tool's result
        "text-start",
        "text-end",
        "finish-step",
        "finish",
    ]
    tool_input = next(p for p in parts if p["type"] == "tool-input-available")
    assert (tool_input["toolCallId"], tool_input["toolName"], tool_input["input"]) == (
        "t1",
        "current_time",
        {"time_zone": "UTC"},
    )
    status = next(p for p in parts if p["type"] == "data-tool-status")
    assert status["data"] == {"toolCallId": "t1", "summary": "Checking the time in UTC…"}
    with store.unit_of_work() as repo:
        [row] = repo.tool_invocations(OWNER, request.turn_id)
        assert (row.tool_call_id, row.tool_name, row.status, row.seq) == (
            "t1",
            "current_time",
            "success",
            types(parts).index("tool-input-available"),
        )


async def test_a_crashing_tool_is_a_tool_output_error_without_its_internals() -> None:
    from strands import tool

    from courier_worker.tools import CourierTool

    @tool
    def lookup(query: str) -> str:
        """Look something up."""
        raise RuntimeError("postgres://admin:hunter2@db/internal")

    registry = ToolRegistry([CourierTool(tool=lookup, summarize=lambda _input: "Looking it up…")])
    model = ScriptedModel(
        [{"tool": {"name": "lookup", "input": {"query": "x"}, "id": "t1"}}, {"text": "Without it, then."}]
    )
    parts, _, (store, request) = await answer(model, tools=registry)

    error = next(p for p in parts if p["type"] == "tool-output-error")
    assert error == {"type": "tool-output-error", "toolCallId": "t1", "errorText": CRASHED_TOOL_TEXT}
    assert "hunter2" not in str(parts)
    with store.unit_of_work() as repo:
        [row] = repo.tool_invocations(OWNER, request.turn_id)
        assert row.status == "crashed" and "hunter2" not in (row.output_summary or "")


class RecordingPublisher:
    """PartWriter's side of the Publisher: what it emits, in order."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def emit(self, part: Any) -> int:
        self.parts.append(part.type)
        return len(self.parts) - 1

    def emit_text(self, text_id: str, delta: str) -> None:
        self.parts.append(f"delta {text_id} {delta}")

    def emit_reasoning(self, reasoning_id: str, delta: str) -> None:
        self.parts.append(f"delta {reasoning_id} {delta}")

    @property
    def next_seq(self) -> int:
        return len(self.parts)


def test_a_model_call_retried_before_its_first_token_stays_in_its_step() -> None:
    """Strands retries a throttled call: the SDK message gets no empty steps for the attempts."""
    publisher = RecordingPublisher()
    writer = PartWriter(publisher, UsageMeter())  # type: ignore[arg-type]

    writer.open_step()
    writer.open_step()  # refused (throttled), tried again
    writer.open_step()
    writer.text("At last.")
    writer.close_step()

    assert publisher.parts == ["start-step", "text-start", "delta text-0 At last.", "text-end", "finish-step"]


def test_each_text_block_gets_its_own_id_and_a_step_closes_its_open_text() -> None:
    publisher = RecordingPublisher()
    writer = PartWriter(publisher, UsageMeter())  # type: ignore[arg-type]

    writer.open_step()
    writer.text("Hel")
    writer.text("lo")
    writer.model_event({"contentBlockStop": {"contentBlockIndex": 0}})
    writer.text("Again")
    writer.open_step()  # a new model call closes the open text and step first
    writer.text("")  # nothing: no empty block
    writer.close_step()

    assert publisher.parts == [
        "start-step",
        "text-start",
        "delta text-0 Hel",
        "delta text-0 lo",
        "text-end",
        "text-start",
        "delta text-1 Again",
        "text-end",
        "finish-step",
        "start-step",
        "finish-step",
    ]


def test_the_models_usage_report_wins_over_the_estimate() -> None:
    meter = UsageMeter()
    writer = PartWriter(RecordingPublisher(), meter)  # type: ignore[arg-type]
    meter.model_call_started(projected_input_tokens=7)
    writer.text("one two three ")
    estimated = meter.usage()
    writer.model_event({"metadata": {"usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10}}})

    assert estimated.estimated and meter.usage().output_tokens == 3 and not meter.usage().estimated


# ---------------------------------------------------------------- reasoning (extended thinking)

THOUGHT = "The user wants the time. Noon is a safe guess. "


def deltas(parts: list[dict[str, Any]], kind: str, block_id: str | None = None) -> str:
    return "".join(p["delta"] for p in parts if p["type"] == f"{kind}-delta" and block_id in (None, p["id"]))


async def test_reasoning_streams_in_its_own_block_before_the_answer_and_is_stored_beside_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parts, _, (store, request) = await answer(
        ScriptedModel([{"reasoning": THOUGHT, "text": "It is noon in Paris."}])
    )

    kinds = [t for t in types(parts) if not t.endswith("-delta")]
    assert kinds == [
        "start",
        "start-step",
        "reasoning-start",
        "reasoning-end",  # the reasoning block closes before the answer's text starts
        "text-start",
        "text-end",
        "finish-step",
        "finish",
    ]
    reasoning_start = types(parts).index("reasoning-start")
    assert {p["id"] for p in parts if p["type"].startswith("reasoning-")} == {"reasoning-0"}
    assert types(parts)[reasoning_start + 1] == "reasoning-delta"
    assert deltas(parts, "reasoning") == THOUGHT
    assert deltas(parts, "text") == "It is noon in Paris."
    with store.unit_of_work() as repo:
        turn = repo.find_turn(OWNER, request.turn_id)
        assert (turn.assistant_text, turn.reasoning_text) == ("It is noon in Paris.", THOUGHT)
    logged = capsys.readouterr()
    assert "safe guess" not in logged.out + logged.err  # reasoning never goes to logs


async def test_reasoning_around_a_tool_call_gets_a_block_per_step_closed_before_the_tool_runs() -> None:
    model = ScriptedModel(
        [
            {
                "reasoning": "I need the clock. ",
                "text": "Let me look. ",
                "tool": {"name": "current_time", "input": {"time_zone": "UTC"}, "id": "t1"},
            },
            {"reasoning": "Now I know. ", "text": "Done."},
        ]
    )
    parts, _, (store, request) = await answer(model)

    kinds = [t for t in types(parts) if not t.endswith("-delta")]
    assert kinds == [
        "start",
        "start-step",
        "reasoning-start",
        "reasoning-end",
        "text-start",
        "text-end",
        "tool-input-available",
        "data-tool-status",
        "tool-output-available",
        "finish-step",
        "start-step",
        "reasoning-start",
        "reasoning-end",
        "text-start",
        "text-end",
        "finish-step",
        "finish",
    ]
    assert deltas(parts, "reasoning", "reasoning-0") == "I need the clock. "
    assert deltas(parts, "reasoning", "reasoning-1") == "Now I know. "
    with store.unit_of_work() as repo:
        turn = repo.find_turn(OWNER, request.turn_id)
        assert turn.assistant_text == "Let me look. Done."
        assert turn.reasoning_text == "I need the clock. Now I know. "
    # Strands keeps the signed reasoning in the agent's messages for the call after the tool.
    replayed = [b for m in model.calls[1]["messages"] for b in m["content"] if "reasoningContent" in b]
    signed = {"text": "I need the clock. ", "signature": "c2lnbmF0dXJl"}
    assert replayed == [{"reasoningContent": {"reasoningText": signed}}]


async def test_redacted_reasoning_is_not_shown_and_does_not_break_the_turn() -> None:
    parts, report, (store, request) = await answer(
        ScriptedModel([{"redacted": b"\x00encrypted", "text": "It is noon."}])
    )

    assert report.status is TurnStatus.COMPLETED
    assert not [p for p in parts if p["type"].startswith("reasoning-")]
    assert deltas(parts, "text") == "It is noon."
    with store.unit_of_work() as repo:
        turn = repo.find_turn(OWNER, request.turn_id)
        assert (turn.assistant_text, turn.reasoning_text) == ("It is noon.", "")


def test_a_reasoning_block_and_a_text_block_never_overlap() -> None:
    publisher = RecordingPublisher()
    writer = PartWriter(publisher, UsageMeter())  # type: ignore[arg-type]

    writer.open_step()
    writer.reasoning("Hmm")
    writer.text("Hi")  # text closes the open reasoning block
    writer.reasoning("")  # nothing: no empty block
    writer.reasoning("More")  # and reasoning closes the open text block
    writer.close_step()

    assert publisher.parts == [
        "start-step",
        "reasoning-start",
        "delta reasoning-0 Hmm",
        "reasoning-end",
        "text-start",
        "delta text-0 Hi",
        "text-end",
        "reasoning-start",
        "delta reasoning-1 More",
        "reasoning-end",
        "finish-step",
    ]
    assert writer.reasoning_text == "HmmMore"


def test_stored_reasoning_is_bounded_so_a_history_turn_fits_one_message() -> None:
    from courier_worker.parts import STORED_REASONING_MAX_BYTES

    writer = PartWriter(RecordingPublisher(), UsageMeter())  # type: ignore[arg-type]
    writer.reasoning("é" * STORED_REASONING_MAX_BYTES)

    stored = writer.reasoning_text
    assert len(stored.encode()) <= STORED_REASONING_MAX_BYTES and stored == "é" * len(stored)
