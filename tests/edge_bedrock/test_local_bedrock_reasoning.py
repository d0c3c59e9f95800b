"""Extended thinking through the local ConverseStream endpoint: the reasoning is on the wire as
Bedrock sends it, so stock botocore parses it and Strands' BedrockModel streams it, keeps it signed
in the agent's messages and replays it after a tool call (the endpoint refuses a request that does
not, as Claude does)."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from strands import Agent, tool
from strands.models import BedrockModel

from courier_local.edge.bedrock import REASONING_SIGNATURE, BedrockScript, LocalBedrock
from courier_local.stack import offline_answers

MODEL_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=5, connect_timeout=2)
THINKING = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
HELLO = [{"role": "user", "content": [{"text": "hello"}]}]


def client(server: LocalBedrock) -> Any:
    return boto3.client(
        "bedrock-runtime", endpoint_url=server.endpoint_url, region_name="us-east-1", config=NO_RETRIES
    )


def thinking_model(server: LocalBedrock, **config: Any) -> BedrockModel:
    return BedrockModel(
        model_id=MODEL_ID,
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        boto_client_config=NO_RETRIES,
        max_tokens=2048,
        additional_request_fields=THINKING,
        **config,
    )


def test_botocore_parses_the_reasoning_deltas_before_the_answer(bedrock: LocalBedrock) -> None:
    bedrock.script = BedrockScript(tokens=("Hi.",), reasoning=("Greet ", "back."))
    response = client(bedrock).converse_stream(
        modelId=MODEL_ID,
        messages=HELLO,
        inferenceConfig={"maxTokens": 2048},
        additionalModelRequestFields=THINKING,
    )
    events = [(name, payload) for event in response["stream"] for name, payload in event.items()]

    deltas = [p["delta"] for name, p in events if name == "contentBlockDelta"]
    assert deltas == [
        {"reasoningContent": {"text": "Greet "}},
        {"reasoningContent": {"text": "back."}},
        {"reasoningContent": {"signature": REASONING_SIGNATURE}},
        {"text": "Hi."},
    ]
    assert [p["contentBlockIndex"] for name, p in events if name == "contentBlockStop"] == [0, 1]
    assert events[-1][1]["usage"]["outputTokens"] == 3  # the reasoning is output, as Bedrock bills it


def test_no_reasoning_unless_the_request_asks_for_thinking(bedrock: LocalBedrock) -> None:
    bedrock.script = BedrockScript(tokens=("Hi.",), reasoning=("Greet ", "back."))
    response = client(bedrock).converse_stream(modelId=MODEL_ID, messages=HELLO)
    deltas = [
        p["delta"] for event in response["stream"] for n, p in event.items() if n == "contentBlockDelta"
    ]
    assert deltas == [{"text": "Hi."}]


def test_converse_returns_the_signed_reasoning_block(bedrock: LocalBedrock) -> None:
    bedrock.script = BedrockScript(tokens=("Hi.",), reasoning=("Greet ", "back."))
    response = client(bedrock).converse(
        modelId=MODEL_ID,
        messages=HELLO,
        inferenceConfig={"maxTokens": 2048},
        additionalModelRequestFields=THINKING,
    )
    assert response["output"]["message"]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "Greet back.", "signature": REASONING_SIGNATURE}}},
        {"text": "Hi."},
    ]


@pytest.mark.parametrize(
    ("fields", "inference", "complaint"),
    [
        (
            {"thinking": {"type": "enabled", "budget_tokens": 512}},
            {"maxTokens": 2048},
            "greater than or equal to 1024",
        ),
        (THINKING, {"maxTokens": 1024}, "must be greater than `thinking.budget_tokens`"),
        (THINKING, {"maxTokens": 2048, "temperature": 0.2}, "temperature"),
    ],
)
def test_a_request_claude_would_refuse_with_thinking_is_refused(
    bedrock: LocalBedrock, fields: dict[str, Any], inference: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(botocore.exceptions.ClientError, match=complaint) as refused:
        client(bedrock).converse_stream(
            modelId=MODEL_ID, messages=HELLO, inferenceConfig=inference, additionalModelRequestFields=fields
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.anyio
async def test_strands_streams_the_reasoning_apart_from_the_text_and_replays_it_after_a_tool() -> None:
    seen: list[str] = []

    @tool
    def current_time(time_zone: str) -> str:
        """The current time in a time zone."""
        seen.append(time_zone)
        return f"12:00 in {time_zone}"

    # The dev stack's answers: "time in …" thinks, calls the tool, then answers from its result.
    with LocalBedrock(offline_answers(0)) as server:
        agent = Agent(
            model=thinking_model(server), tools=[current_time], callback_handler=None, retry_strategy=None
        )
        reasoning: list[str] = []
        text: list[str] = []
        async for event in agent.stream_async("What is the time in Europe/Paris?"):
            if "reasoningText" in event:
                reasoning.append(event["reasoningText"])
            elif "data" in event:
                text.append(event["data"])

        assert seen == ["Europe/Paris"]
        assert (
            "".join(reasoning)
            == "The user asks about time in Europe/Paris. current_time knows; I will call it."
        )
        assert "".join(text).startswith("Let me check the time in Europe/Paris. current_time says:")
        # The request after the tool replayed the signed reasoning in front of the tool call (else
        # the endpoint, like Claude, answers ValidationException), and thought no more.
        assert [r.status for r in server.requests] == [200, 200]
        replayed = server.requests[1].body["messages"][1]["content"][0]
        assert replayed["reasoningContent"]["reasoningText"]["signature"] == REASONING_SIGNATURE


@pytest.mark.anyio
async def test_a_tool_call_without_its_reasoning_replayed_is_refused_as_claude_refuses_it(
    bedrock: LocalBedrock,
) -> None:
    bedrock.script = BedrockScript(tokens=("Ok.",), reasoning=("Hmm.",))
    messages = [
        {"role": "user", "content": [{"text": "time?"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "clock", "input": {}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "noon"}]}}]},
    ]
    with pytest.raises(botocore.exceptions.ClientError, match="must start with a thinking block"):
        client(bedrock).converse_stream(
            modelId=MODEL_ID,
            messages=messages,
            inferenceConfig={"maxTokens": 2048},
            additionalModelRequestFields=THINKING,
            toolConfig={
                "tools": [{"toolSpec": {"name": "clock", "inputSchema": {"json": {"type": "object"}}}}]
            },
        )
