"""The worker with the real Strands BedrockModel (our AbortableBedrockModel, built from settings) against
the local ConverseStream endpoint: streaming, tools, stopping for real, throttling."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from courier_local.edge.bedrock import BedrockScript, Fault, LocalBedrock, ToolCall
from courier_shared.protocol import TurnStatus
from courier_worker.adapters import ApiGatewayConnections
from courier_worker.bedrock import AbortableBedrockModel
from courier_worker.composition import Worker, build_worker

from .stack import REGION, WorkerStack, chunks, text_of, worker_settings

pytestmark = pytest.mark.postgres

MODEL_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
LONG_ANSWER = " ".join(f"word{i}" for i in range(400))
ENDLESS_ANSWER = " ".join(f"word{i}" for i in range(20_000))  # at 100 tokens/s, minutes
GRACE_S = 0.3
FLUSH_S = 0.05


@pytest.fixture
def bedrock() -> Iterator[LocalBedrock]:
    with LocalBedrock(
        BedrockScript.from_text("Hello from the local Bedrock endpoint, token by token.")
    ) as server:
        yield server


def bedrock_worker(postgres_url: str, engine: Engine, bedrock: LocalBedrock, **settings: object) -> Worker:
    worker = build_worker(
        worker_settings(
            postgres_url,
            MODEL_ID=MODEL_ID,
            BEDROCK_REGION="us-east-1",
            BEDROCK_ENDPOINT_URL=bedrock.endpoint_url,
            BEDROCK_MAX_ATTEMPTS=2,
            MODEL_RETRY_ATTEMPTS=2,
            **settings,
        ),
        connections=ApiGatewayConnections(region_name=REGION),
        engine=engine,
    )
    assert isinstance(worker.runner.model, AbortableBedrockModel)
    return worker


def test_bedrock_turn_streams_in_order_and_stores_usage_and_timing(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, bedrock: LocalBedrock
) -> None:
    bedrock.tokens_per_second = 200
    stack.start_worker(bedrock_worker(postgres_url, worker_engine, bedrock))
    with stack.client() as client:
        request = stack.submit("Say hello", client.connection_id)
        frames = client.read_until_end(request.turn_id)

    expected = "Hello from the local Bedrock endpoint, token by token."
    assert text_of(frames) == expected
    assert [f["seq"] for f in chunks(frames)] == list(range(len(chunks(frames))))
    finish = chunks(frames)[-1]["chunk"]
    assert finish["type"] == "finish"
    usage = finish["messageMetadata"]["usage"]
    assert usage["outputTokens"] == 9 and usage["inputTokens"] > 0

    turn = stack.turn(request.turn_id)
    assert turn.status == TurnStatus.COMPLETED.value
    assert turn.assistant_text == expected
    assert (turn.input_tokens, turn.output_tokens) == (usage["inputTokens"], 9)
    assert turn.model_id == MODEL_ID
    # Time to first token runs from the accepted message (created_at): within created_at → completed_at.
    total_ms = (turn.completed_at - turn.created_at).total_seconds() * 1000
    assert turn.time_to_first_token_ms is not None and 0 <= turn.time_to_first_token_ms <= total_ms
    assert turn.latency_ms is not None and turn.latency_ms <= total_ms
    # The request Bedrock got: the system prompt from settings, our tool, the user's text.
    body = bedrock.requests[0].body
    assert body["system"][0]["text"].startswith("You are Courier")
    assert [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]] == ["current_time"]
    assert body["messages"][-1]["content"][0]["text"] == "Say hello"


def test_bedrock_tool_call_and_conversation_history(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, bedrock: LocalBedrock
) -> None:
    bedrock.script = BedrockScript(
        tokens=("Checking. ",),
        tool_use=ToolCall(name="current_time", input={"time_zone": "Europe/Paris"}, tool_use_id="tooluse_A"),
        tokens_after_tool=("It ", "is ", "evening."),
    )
    stack.start_worker(bedrock_worker(postgres_url, worker_engine, bedrock))
    with stack.client() as client:
        first = stack.submit("Hi", client.connection_id)
        client.read_until_end(first.turn_id)
        second = stack.submit("Time in Paris?", client.connection_id, conversation_id=first.conversation_id)
        frames = client.read_until_end(second.turn_id)

    kinds = [f["chunk"]["type"] for f in chunks(frames)]
    assert "tool-input-available" in kinds and "tool-output-available" in kinds
    assert text_of(frames) == "Checking. It is evening."
    [row] = stack.tool_invocations(second.turn_id)
    assert (row.tool_call_id, row.tool_name, row.status) == ("tooluse_A", "current_time", "success")
    # The second turn's first model request carried the first turn as history.
    history_request = next(r for r in bedrock.requests if "Time in Paris?" in json.dumps(r.body["messages"]))
    texts = [m["content"][0].get("text") for m in history_request.body["messages"]]
    assert texts == ["Hi", "Checking. It is evening.", "Time in Paris?"]


def test_client_disconnect_stops_generation_and_closes_the_bedrock_stream(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, bedrock: LocalBedrock
) -> None:
    bedrock.script = BedrockScript.from_text(ENDLESS_ANSWER)
    bedrock.tokens_per_second = 100  # minutes of answer: only a stop ends this stream
    stack.start_worker(
        bedrock_worker(
            postgres_url, worker_engine, bedrock, LISTENER_GRACE_S=GRACE_S, FLUSH_INTERVAL_MS=FLUSH_S * 1000
        )
    )
    with stack.client() as client:
        request = stack.submit("Write a lot", client.connection_id)
        while text_of(client.turn_frames(request.turn_id)).count("word") < 10:
            client.read(60)
        client.websocket.close()
    # Generous: these bound a hang (a stream left running would take minutes), they measure nothing.
    assert stack.esm is not None and stack.esm.drain(timeout=60)
    turn = stack.turn(request.turn_id)
    assert turn.status == TurnStatus.INTERRUPTED.value
    assert ENDLESS_ANSWER.startswith(turn.assistant_text) and turn.assistant_text.count("word") >= 10
    # The worker closed Bedrock's stream before its end: generation stopped, not merely unheard.
    request_seen = bedrock.last_request
    assert request_seen.client_closed and not request_seen.completed
    assert len(bedrock.requests) == 1  # and was not asked again
    assert bedrock.events_sent < len(ENDLESS_ANSWER.split())
    # How soon after the disconnect (LISTENER_GRACE_S, a real-time timer) is not measured here: a
    # figure in events per second is a benchmark's.


def test_cancel_mid_answer_sends_abort_and_keeps_the_partial_text(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, bedrock: LocalBedrock
) -> None:
    bedrock.script = BedrockScript.from_text(LONG_ANSWER)
    bedrock.tokens_per_second = 100
    stack.start_worker(bedrock_worker(postgres_url, worker_engine, bedrock))
    with stack.client() as client:
        request = stack.submit("Write a lot", client.connection_id)
        while text_of(client.turn_frames(request.turn_id)).count("word") < 5:
            client.read(5)
        client.websocket.send(json.dumps({"action": "cancel", "turnId": str(request.turn_id)}))
        frames = client.read_until_end(request.turn_id)
    assert chunks(frames)[-1]["chunk"] == {"type": "abort", "reason": "cancelled"}
    assert [f["seq"] for f in chunks(frames)] == list(range(len(chunks(frames))))
    turn = stack.turn(request.turn_id)
    assert turn.status == TurnStatus.CANCELLED.value
    assert turn.assistant_text == text_of(frames)  # exactly what the client saw
    assert LONG_ANSWER.startswith(turn.assistant_text) and len(turn.assistant_text) < len(LONG_ANSWER)
    assert bedrock.last_request.client_closed


def test_throttling_beyond_the_budget_fails_the_turn_with_an_error_chunk_and_acks(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, bedrock: LocalBedrock
) -> None:
    bedrock.inject(Fault.THROTTLE, times=100)
    esm = stack.start_worker(bedrock_worker(postgres_url, worker_engine, bedrock))
    with stack.client() as client:
        request = stack.submit("Hello?", client.connection_id)
        frames = client.read_until_end(request.turn_id)
    assert esm.drain(timeout=60)
    last = chunks(frames)[-1]["chunk"]
    assert last == {
        "type": "error",
        "errorText": "The model is busy right now. Please try again in a moment.",
    }
    assert "finish" not in [f["chunk"]["type"] for f in chunks(frames)]
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.error_code) == (TurnStatus.FAILED.value, "model_throttled")
    assert len(bedrock.requests) == 4  # 2 strands attempts x 2 botocore attempts: the budget, then stop
    assert esm.invocations == 1 and stack.dlq_bodies() == []  # acknowledged, not retried


def test_an_invalid_model_id_fails_the_turn_once(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, bedrock: LocalBedrock
) -> None:
    worker = bedrock_worker(postgres_url, worker_engine, bedrock)
    worker.runner.model.update_config(model_id="eu.anthropic.claude-haiku-4-5-20251001-v1:0")  # wrong Region
    esm = stack.start_worker(worker)
    with stack.client() as client:
        request = stack.submit("Hello?", client.connection_id)
        frames = client.read_until_end(request.turn_id)
    assert esm.drain(timeout=60)
    assert chunks(frames)[-1]["chunk"]["type"] == "error"
    assert stack.turn(request.turn_id).error_code == "model_rejected"
    assert len(bedrock.requests) == 1
