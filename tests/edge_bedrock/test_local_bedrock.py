"""The local Bedrock runtime, driven by stock botocore and the real Strands agent loop."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from strands import Agent, tool
from strands.models import BedrockModel
from strands.types.exceptions import ModelThrottledException

from courier_local.edge.bedrock import (
    INVALID_MODEL_IDENTIFIER,
    BedrockScript,
    Fault,
    LocalBedrock,
    ToolCall,
    split_words,
)
from courier_local.stack import offline_answers

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=5, connect_timeout=2)


def bedrock_model(
    server: LocalBedrock, *, model_id: str = f"us.{HAIKU}", region: str = "us-east-1", **kw: Any
) -> Any:
    return BedrockModel(
        model_id=model_id,
        endpoint_url=server.endpoint_url,
        region_name=region,
        boto_client_config=kw.pop("boto_client_config", NO_RETRIES),
        **kw,
    )


async def stream_text(agent: Agent, prompt: str) -> tuple[list[str], Any]:
    chunks: list[str] = []
    result = None
    async for event in agent.stream_async(prompt):
        if "data" in event:
            chunks.append(event["data"])
        elif "result" in event:
            result = event["result"]
    return chunks, result


def test_wire_format_with_plain_botocore(bedrock: LocalBedrock) -> None:
    bedrock.script = BedrockScript(tokens=("Hi ", "there."))
    client = boto3.client(
        "bedrock-runtime", endpoint_url=bedrock.endpoint_url, region_name="us-east-1", config=NO_RETRIES
    )
    response = client.converse_stream(
        modelId=f"us.{HAIKU}", messages=[{"role": "user", "content": [{"text": "hello"}]}]
    )
    events = [(next(iter(event)), event[next(iter(event))]) for event in response["stream"]]
    assert [name for name, _ in events] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert [payload["delta"]["text"] for name, payload in events if name == "contentBlockDelta"] == [
        "Hi ",
        "there.",
    ]
    usage = events[-1][1]["usage"]
    assert usage["outputTokens"] == 2
    assert usage["totalTokens"] == usage["inputTokens"] + 2
    # botocore percent-encodes the ':' of the id; the endpoint sees the real id and the caller's Region
    assert bedrock.last_request.model_id == f"us.{HAIKU}"
    assert bedrock.last_request.region == "us-east-1"
    assert bedrock.last_request.body["messages"][0]["content"][0]["text"] == "hello"
    assert bedrock.events_sent == 6


@pytest.mark.anyio
async def test_strands_agent_streams_the_text_in_order_and_reports_usage(bedrock: LocalBedrock) -> None:
    text = "The quick brown fox jumps over the lazy dog, then naps."
    bedrock.script = BedrockScript.from_text(text)
    agent = Agent(model=bedrock_model(bedrock), callback_handler=None, retry_strategy=None)
    chunks, result = await stream_text(agent, "tell me about the fox")
    assert chunks == list(split_words(text))
    assert "".join(chunks) == text
    assert result.stop_reason == "end_turn"
    usage = result.metrics.accumulated_usage
    assert usage["outputTokens"] == len(split_words(text))
    assert usage["inputTokens"] > 0
    assert bedrock.last_request.completed


class PacingClock:
    """The server's pacing clock: moves only when the server waits, noting what it had sent by then."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[tuple[float, int]] = []  # (when, frames sent so far)
        self.bedrock: LocalBedrock | None = None

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        assert self.bedrock is not None
        self.waits.append((self.now, self.bedrock.events_sent))
        self.now += seconds
        return False  # not stopping


@pytest.mark.anyio
async def test_token_rate_is_respected() -> None:
    clock = PacingClock()
    script = BedrockScript(tokens=tuple(f"t{i} " for i in range(11)))
    with LocalBedrock(script, tokens_per_second=100, clock=clock, wait=clock.wait) as bedrock:
        clock.bedrock = bedrock
        agent = Agent(model=bedrock_model(bedrock), callback_handler=None, retry_strategy=None)
        chunks = [event["data"] async for event in agent.stream_async("go") if "data" in event]
    assert "".join(chunks) == "".join(script.tokens)
    # One wait before each token after the first, each until that token is due (10 ms apart),
    # and exactly one frame written between two waits.
    assert [when for when, _ in clock.waits] == pytest.approx([i / 100 for i in range(10)])
    sent = [frames for _, frames in clock.waits]
    assert sent == list(range(sent[0], sent[0] + 10))


@pytest.mark.anyio
async def test_tool_call_then_answer(bedrock: LocalBedrock) -> None:
    seen: list[str] = []

    @tool
    def current_time(timezone: str) -> str:
        """The current time in a time zone."""
        seen.append(timezone)
        return f"12:00 in {timezone}"

    bedrock.script = BedrockScript(
        tokens=("Let ", "me ", "check. "),
        tool_use=ToolCall("current_time", {"timezone": "Europe/Oslo"}),
        tokens_after_tool=("It ", "is ", "noon."),
    )
    agent = Agent(
        model=bedrock_model(bedrock), tools=[current_time], callback_handler=None, retry_strategy=None
    )
    chunks, result = await stream_text(agent, "time in Oslo?")
    assert seen == ["Europe/Oslo"]
    assert "".join(chunks) == "Let me check. It is noon."
    assert result.stop_reason == "end_turn"
    second = bedrock.requests[-1].body["messages"][-1]["content"][0]["toolResult"]
    assert second["content"] == [{"text": "12:00 in Europe/Oslo"}]


@pytest.mark.anyio
async def test_throttling_before_the_stream_raises_model_throttled(bedrock: LocalBedrock) -> None:
    bedrock.inject(Fault.THROTTLE)
    agent = Agent(model=bedrock_model(bedrock), callback_handler=None, retry_strategy=None)
    with pytest.raises(ModelThrottledException):
        await agent.invoke_async("hi")
    assert [(r.status, r.error_code) for r in bedrock.requests] == [(429, "ThrottlingException")]


@pytest.mark.anyio
async def test_throttling_mid_stream_raises_model_throttled(bedrock: LocalBedrock) -> None:
    bedrock.script = BedrockScript(tokens=("one ", "two ", "three ", "four"))
    bedrock.inject(Fault.THROTTLE_MID_STREAM, after_tokens=2)
    agent = Agent(model=bedrock_model(bedrock), callback_handler=None, retry_strategy=None)
    chunks: list[str] = []
    with pytest.raises(ModelThrottledException):
        async for event in agent.stream_async("hi"):
            if "data" in event:
                chunks.append(event["data"])
    assert chunks == ["one ", "two "]
    assert bedrock.last_request.error_code == "throttlingException"


@pytest.mark.anyio
async def test_a_throttle_is_retried_by_the_agent_and_then_succeeds(bedrock: LocalBedrock) -> None:
    from strands import ModelRetryStrategy

    bedrock.inject(Fault.THROTTLE)
    agent = Agent(
        model=bedrock_model(bedrock),
        callback_handler=None,
        retry_strategy=ModelRetryStrategy(max_attempts=2, initial_delay=0, max_delay=0),
    )
    chunks, _ = await stream_text(agent, "hi")
    assert "".join(chunks) == "Hello from local Bedrock."
    assert [r.status for r in bedrock.requests] == [429, 200]


@pytest.mark.parametrize(
    ("model_id", "region", "message"),
    [
        pytest.param(f"us.{HAIKU}", "eu-central-1", INVALID_MODEL_IDENTIFIER, id="us-profile-from-frankfurt"),
        pytest.param(f"apac.{HAIKU}", "ap-northeast-1", INVALID_MODEL_IDENTIFIER, id="apac-haiku-from-tokyo"),
        pytest.param("anthropic.claude-opus-4-7-v1", "us-east-1", INVALID_MODEL_IDENTIFIER, id="wrong-id"),
        pytest.param(
            HAIKU,
            "us-east-1",
            f"Invocation of model ID {HAIKU} with on-demand throughput isn\u2019t supported. "
            "Retry your request with the ID or ARN of an inference profile that contains this model.",
            id="bare-id-needs-profile",
        ),
    ],
)
@pytest.mark.anyio
async def test_model_id_errors_surface_with_bedrocks_text(
    bedrock: LocalBedrock, model_id: str, region: str, message: str
) -> None:
    agent = Agent(model=bedrock_model(bedrock, model_id=model_id, region=region), callback_handler=None)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        await agent.invoke_async("hi")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert raised.value.response["Error"]["Message"] == message
    assert bedrock.last_request.status == 400


@pytest.mark.parametrize(
    ("model_id", "region"),
    [
        (f"jp.{HAIKU}", "ap-northeast-1"),
        (f"eu.{HAIKU}", "eu-central-1"),
        ("amazon.nova-micro-v1:0", "us-east-1"),
    ],
)
@pytest.mark.anyio
async def test_region_correct_ids_are_served(bedrock: LocalBedrock, model_id: str, region: str) -> None:
    agent = Agent(model=bedrock_model(bedrock, model_id=model_id, region=region), callback_handler=None)
    result = await agent.invoke_async("hi")
    assert str(result).strip() == "Hello from local Bedrock."


class AbortableBedrockModel(BedrockModel):
    """strands.md §2.4: give the boto3 reader thread a latched cancel flag strands never clears."""

    async def stream(
        self, *args: Any, cancel_signal: threading.Event | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        private = threading.Event()
        outer = cancel_signal

        class Latched(threading.Event):
            def is_set(self) -> bool:
                if outer is not None and outer.is_set():
                    private.set()
                return private.is_set()

        try:
            async for event in super().stream(*args, cancel_signal=Latched(), **kwargs):
                yield event
        finally:
            private.set()


@pytest.mark.anyio
async def test_a_cancelled_stream_is_closed_early() -> None:
    planned = 20_000  # 100 s at 200 tokens/s: only a close ends this stream within the test
    script = BedrockScript(tokens=tuple(f"w{i} " for i in range(planned)))
    with LocalBedrock(script, tokens_per_second=200) as bedrock:
        model = AbortableBedrockModel(
            model_id=f"us.{HAIKU}",
            endpoint_url=bedrock.endpoint_url,
            region_name="us-east-1",
            boto_client_config=NO_RETRIES,
        )
        agent = Agent(model=model, callback_handler=None, retry_strategy=None)
        received = 0
        result = None
        async for event in agent.stream_async("go"):
            if "data" in event:
                received += 1
                if received == 5:
                    agent.cancel()
            elif "result" in event:
                result = event["result"]
        assert result is not None and result.stop_reason == "cancelled"
        deadline = time.monotonic() + 60  # a hang guard: it measures nothing
        while not bedrock.last_request.client_closed and time.monotonic() < deadline:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        sent = bedrock.events_sent
        await anyio.sleep(0.2)  # at 200 tokens/s, 40 more frames would go out if the stream were still open
        assert bedrock.last_request.client_closed
        assert bedrock.events_sent == sent
        assert sent < planned, sent  # closed before its end
        assert not bedrock.last_request.completed


@pytest.mark.anyio
async def test_a_stalled_stream_hits_the_clients_read_timeout() -> None:
    bedrock = LocalBedrock(BedrockScript(tokens=("a ", "b ", "c")), tokens_per_second=0).start()
    try:
        bedrock.inject(Fault.STALL, after_tokens=1)
        impatient = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=0.5)
        agent = Agent(
            model=bedrock_model(bedrock, boto_client_config=impatient),
            callback_handler=None,
            retry_strategy=None,
        )
        chunks: list[str] = []
        # The stall never ends on its own: only the client's read timeout gets the test past here.
        with pytest.raises(Exception, match=r"(?i)timeout|timed out"):
            async for event in agent.stream_async("hi"):
                if "data" in event:
                    chunks.append(event["data"])
        assert chunks == ["a "]
        assert not bedrock.last_request.completed
    finally:
        bedrock.stop()


@pytest.mark.anyio
async def test_converse_without_streaming(bedrock: LocalBedrock) -> None:
    bedrock.script = BedrockScript.from_text("All in one piece.")
    agent = Agent(model=bedrock_model(bedrock, streaming=False), callback_handler=None, retry_strategy=None)
    result = await agent.invoke_async("hi")
    assert str(result).strip() == "All in one piece."
    assert bedrock.last_request.operation == "converse"
    assert result.metrics.accumulated_usage["outputTokens"] == 4


@pytest.mark.anyio
async def test_the_offline_answers_refuse_fail_throttled_as_bedrock_does() -> None:
    """The dev stack's default model: "fail: throttled" gets Bedrock's 429 ThrottlingException on
    every call, so the worker's retries and failure classification run on a real botocore error."""
    with LocalBedrock(offline_answers(0), tokens_per_second=0) as server:
        agent = Agent(model=bedrock_model(server), callback_handler=None, retry_strategy=None)
        with pytest.raises(ModelThrottledException):
            await agent.invoke_async("fail: throttled")
        assert [(r.status, r.error_code) for r in server.requests] == [(429, "ThrottlingException")]
