"""The offline model inside the real Strands agent loop."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from strands import Agent, tool
from strands.types.exceptions import ModelThrottledException

from courier_local.offline_model import MODEL_ID, OfflineModel, OfflineTurn, ToolCall, split_words

pytestmark = pytest.mark.anyio


@tool
def current_time(time_zone: str = "UTC") -> dict[str, str]:
    """Get the current time in a time zone.

    Args:
        time_zone: An IANA time zone name.
    """
    return {"timeZone": time_zone, "localTime": "2026-11-21T12:00:00+01:00"}


async def run(agent: Agent, prompt: str, **kwargs: Any) -> tuple[list[str], list[dict[str, Any]], Any]:
    chunks: list[str] = []
    tool_uses: list[dict[str, Any]] = []
    result = None
    async for event in agent.stream_async(prompt, **kwargs):
        if "data" in event:
            chunks.append(event["data"])
        elif "current_tool_use" in event and event["current_tool_use"].get("name"):
            tool_uses.append(dict(event["current_tool_use"]))
        elif "result" in event:
            result = event["result"]
    return chunks, tool_uses, result


async def test_echoes_the_prompt_word_by_word_with_usage() -> None:
    model = OfflineModel()
    agent = Agent(model=model, callback_handler=None)
    chunks, _, result = await run(agent, "Is anybody out there?")
    assert chunks == ["You ", "said: ", "Is ", "anybody ", "out ", "there?"]
    assert str(result).strip() == "You said: Is anybody out there?"
    assert result.stop_reason == "end_turn"
    usage = result.metrics.accumulated_usage
    assert usage["outputTokens"] == 6
    assert usage["inputTokens"] > 0
    assert usage["totalTokens"] == usage["inputTokens"] + 6
    assert model.config.get("model_id") == MODEL_ID == "courier-offline"


async def test_time_question_calls_the_tool_then_answers_from_its_result() -> None:
    agent = Agent(model=OfflineModel(), tools=[current_time], callback_handler=None)
    chunks, tool_uses, result = await run(agent, "What is the time in Europe/Paris?")
    assert tool_uses[-1]["name"] == "current_time"
    assert "".join(chunks) == (
        "Let me check the time in Europe/Paris. "
        "current_time says: timeZone Europe/Paris, localTime 2026-11-21T12:00:00+01:00"
    )
    assert result.stop_reason == "end_turn"
    roles_and_kinds = [(m["role"], next(iter(m["content"][-1]))) for m in agent.messages]
    assert roles_and_kinds == [
        ("user", "text"),
        ("assistant", "toolUse"),
        ("user", "toolResult"),
        ("assistant", "text"),
    ]
    tool_use = agent.messages[1]["content"][-1]["toolUse"]
    assert tool_use["input"] == {"time_zone": "Europe/Paris"}
    assert result.metrics.cycle_count == 2


async def test_a_question_ending_then_lorem_n_adds_n_words_after_the_tools_answer() -> None:
    agent = Agent(model=OfflineModel(), tools=[current_time], callback_handler=None)
    chunks, tool_uses, _ = await run(agent, "What is the time in Europe/Paris? Then lorem 5")
    assert tool_uses[-1]["name"] == "current_time"
    assert "".join(chunks).endswith("+01:00 lorem ipsum dolor sit amet")


async def test_what_time_is_it_in_a_city_calls_the_tool_with_the_citys_zone() -> None:
    # The page suggests this question: a model picks the IANA zone for the city, and so does this one.
    agent = Agent(model=OfflineModel(), tools=[current_time], callback_handler=None)
    _, tool_uses, _ = await run(agent, "What time is it in Tokyo?")
    assert tool_uses[-1]["name"] == "current_time"
    assert json.loads(tool_uses[-1]["input"]) == {"time_zone": "Asia/Tokyo"}  # streamed: the last is whole


async def test_trigger_without_the_tool_offered_just_answers() -> None:
    agent = Agent(model=OfflineModel(), callback_handler=None)
    chunks, tool_uses, _ = await run(agent, "time in Europe/Paris")
    assert tool_uses == []
    assert "".join(chunks) == "You said: time in Europe/Paris"


async def test_lorem_streams_the_requested_number_of_words() -> None:
    agent = Agent(model=OfflineModel(), callback_handler=None)
    chunks, _, result = await run(agent, "lorem 250")
    assert len(chunks) == 250
    assert result.metrics.accumulated_usage["outputTokens"] == 250


async def test_script_is_played_turn_by_turn() -> None:
    model = OfflineModel(
        script=[
            OfflineTurn(text="Checking. ", tool=ToolCall("current_time", {"time_zone": "Asia/Tokyo"})),
            OfflineTurn(text="It is noon in Tokyo."),
        ]
    )
    agent = Agent(model=model, tools=[current_time], callback_handler=None)
    chunks, tool_uses, _ = await run(agent, "anything")
    assert "".join(chunks) == "Checking. It is noon in Tokyo."
    assert tool_uses[-1]["name"] == "current_time"
    assert [call["tool_names"] for call in model.calls] == [["current_time"], ["current_time"]]


class FakeTime:
    """A clock that moves only when the model waits on it, so the pacing schedule is exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_tokens_are_paced_at_the_configured_rate_after_the_first_token_delay() -> None:
    clock = FakeTime()
    model = OfflineModel(tokens_per_second=200, first_token_delay_s=0.5, clock=clock, sleep=clock.sleep)
    agent = Agent(model=model, callback_handler=None)
    arrivals: list[float] = []
    async for event in agent.stream_async("lorem 21"):
        if "data" in event:
            arrivals.append(clock.now)
    assert arrivals == pytest.approx([0.5 + i / 200 for i in range(21)])  # 5 ms apart, on a schedule


async def test_cancel_stops_within_one_token() -> None:
    clock = FakeTime()
    model = OfflineModel(tokens_per_second=50, clock=clock, sleep=clock.sleep)  # 20 ms per token
    agent = Agent(model=model, callback_handler=None)
    received = 0
    cancelled_at = 0.0
    result = None
    async for event in agent.stream_async("lorem 200"):
        if "data" in event:
            received += 1
            if received == 5:
                agent.cancel()
                cancelled_at = clock.now
        elif "result" in event:
            result = event["result"]
            assert model.finished_streams == 1  # the model's generator has already ended
    assert received == 5
    assert clock.now - cancelled_at <= 1 / 50 + 1e-9  # no more waiting than the next token's
    assert result is not None and result.stop_reason == "cancelled"


async def test_cancel_signal_set_from_another_thread_stops_the_stream() -> None:
    clock = FakeTime()
    stop = threading.Event()

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        if clock.now > 0.095 and not stop.is_set():  # 0.1 s in: another thread sets the signal
            setter = threading.Thread(target=stop.set)
            setter.start()
            setter.join()
            # Strands mirrors a caller's signal onto the agent's own by polling (every 50 ms of
            # real time); the model sees the agent's. Let that happen before the next token.
            while not agent.cancel_signal.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    model = OfflineModel(tokens_per_second=100, clock=clock, sleep=sleep)
    agent = Agent(model=model, callback_handler=None)
    chunks, _, result = await run(agent, "lorem 500", cancel_signal=stop)
    assert result.stop_reason == "cancelled"
    assert len(chunks) == 10  # the tokens due before 0.1 s, not 500


async def test_one_model_serves_concurrent_conversations_without_mixing_them() -> None:
    model = OfflineModel(tokens_per_second=500)
    prompts = [f"conversation number {i}" for i in range(5)]
    answers = await asyncio.gather(*(run(Agent(model=model, callback_handler=None), p) for p in prompts))
    assert ["".join(chunks) for chunks, _, _ in answers] == [f"You said: {p}" for p in prompts]


def test_split_words_round_trips() -> None:
    text = "  Hello there,\nworld!  "
    assert "".join(split_words(text)) == text


async def test_fail_throttled_is_refused_as_a_throttled_bedrock_call() -> None:
    model = OfflineModel()
    agent = Agent(model=model, callback_handler=None, retry_strategy=None)
    with pytest.raises(ModelThrottledException):
        await run(agent, "fail: throttled")
    assert model.respond([{"role": "user", "content": [{"text": "fail: throttled"}]}], []).throttled
