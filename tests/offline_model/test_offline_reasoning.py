"""The offline model's reasoning (extended thinking) inside the real Strands agent loop: only when the
request asks for thinking, as Bedrock; in the same stream events; once per turn, before the text."""

from __future__ import annotations

from typing import Any

import pytest
from strands import Agent, tool

from courier_local.offline_model import REASONING_SIGNATURE, OfflineModel, OfflineTurn

pytestmark = pytest.mark.anyio
THINKING = {"thinking": {"type": "enabled", "budget_tokens": 1024}}


@tool
def current_time(time_zone: str = "UTC") -> dict[str, str]:
    """Get the current time in a time zone.

    Args:
        time_zone: An IANA time zone name.
    """
    return {"timeZone": time_zone, "localTime": "2026-11-21T12:00:00+01:00"}


async def run(agent: Agent, prompt: str) -> tuple[list[tuple[str, str]], Any]:
    """The stream as ("reasoning" | "text", piece) in arrival order, and the result."""
    pieces: list[tuple[str, str]] = []
    result = None
    async for event in agent.stream_async(prompt):
        if "reasoningText" in event:
            pieces.append(("reasoning", event["reasoningText"]))
        elif "data" in event:
            pieces.append(("text", event["data"]))
        elif "result" in event:
            result = event["result"]
    return pieces, result


def joined(pieces: list[tuple[str, str]], kind: str) -> str:
    return "".join(piece for k, piece in pieces if k == kind)


async def test_asked_to_think_it_reasons_first_then_answers() -> None:
    agent = Agent(model=OfflineModel(additional_request_fields=THINKING), callback_handler=None)
    pieces, result = await run(agent, "hello there")

    assert joined(pieces, "reasoning") == "The user wrote 2 words. I will say them back."
    assert joined(pieces, "text") == "You said: hello there"
    kinds = [kind for kind, _ in pieces]
    assert kinds == sorted(kinds)  # every reasoning piece before any text ("reasoning" < "text")
    assert result.message["content"] == [
        {
            "reasoningContent": {
                "reasoningText": {
                    "text": "The user wrote 2 words. I will say them back.",
                    "signature": REASONING_SIGNATURE,
                }
            }
        },
        {"text": "You said: hello there"},
    ]


async def test_not_asked_to_think_it_does_not() -> None:
    agent = Agent(model=OfflineModel(), callback_handler=None)
    pieces, result = await run(agent, "hello there")

    assert joined(pieces, "reasoning") == ""
    assert result.message["content"] == [{"text": "You said: hello there"}]


async def test_a_scripted_turn_reasons_its_own_words() -> None:
    model = OfflineModel(
        script=[OfflineTurn(text="Noon.", reasoning="Check the clock.")], additional_request_fields=THINKING
    )
    pieces, _ = await run(Agent(model=model, callback_handler=None), "time?")
    assert pieces == [
        ("reasoning", "Check "),
        ("reasoning", "the "),
        ("reasoning", "clock."),
        ("text", "Noon."),
    ]


async def test_it_thinks_once_per_turn_and_strands_replays_the_signed_reasoning_after_the_tool() -> None:
    model = OfflineModel(additional_request_fields=THINKING)
    agent = Agent(model=model, tools=[current_time], callback_handler=None)
    pieces, result = await run(agent, "What is the time in Europe/Paris?")

    assert joined(pieces, "reasoning") == (
        "The user asks about time in Europe/Paris. current_time knows; I will call it."
    )
    assert joined(pieces, "text").startswith("Let me check the time in Europe/Paris. current_time says:")
    assert result.stop_reason == "end_turn"
    after_tool = model.calls[1]["messages"]
    assert (
        after_tool[1]["content"][0]["reasoningContent"]["reasoningText"]["signature"] == REASONING_SIGNATURE
    )
