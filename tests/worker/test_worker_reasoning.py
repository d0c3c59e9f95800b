"""Reasoning (extended thinking) end to end: queue → worker → @connections → a WebSocket client, the
turn in Postgres, and `getHistory` through the gateway. Once with the offline model asked to think,
once with THINKING_BUDGET_TOKENS building the real BedrockModel against the local ConverseStream
endpoint (the dev stack's answers), through a tool call."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine

from courier_local.edge.bedrock import LocalBedrock
from courier_local.offline_model import OfflineModel
from courier_local.stack import offline_answers
from courier_shared.protocol import TurnStatus
from courier_worker.adapters import ApiGatewayConnections
from courier_worker.composition import build_worker

from .stack import REGION, Client, WorkerStack, chunks, text_of, worker_settings
from .test_worker_bedrock import bedrock_worker

pytestmark = pytest.mark.postgres
THINKING = {"thinking": {"type": "enabled", "budget_tokens": 1024}}


def parts_of(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["chunk"] for f in chunks(frames)]


def reasoning_of(parts: list[dict[str, Any]]) -> str:
    return "".join(p["delta"] for p in parts if p["type"] == "reasoning-delta")


def history(client: Client, conversation_id: uuid.UUID) -> dict[str, Any]:
    client.websocket.send(json.dumps({"action": "getHistory", "conversationId": str(conversation_id)}))
    while (frame := client.read(10))["type"] != "history":
        pass
    return frame


def test_the_offline_model_asked_to_think_streams_stores_and_returns_its_reasoning(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine
) -> None:
    model = OfflineModel(tokens_per_second=500, additional_request_fields=THINKING)
    worker = build_worker(
        worker_settings(postgres_url),
        model=model,
        connections=ApiGatewayConnections(region_name=REGION),
        engine=worker_engine,
    )
    stack.start_worker(worker)
    with stack.client() as client:
        request = stack.submit("hello there", client.connection_id)
        parts = parts_of(client.read_until_end(request.turn_id))
        frame = history(client, request.conversation_id)

    kinds = [p["type"] for p in parts if not p["type"].endswith("-delta")]
    assert kinds[:6] == ["start", "start-step", "reasoning-start", "reasoning-end", "text-start", "text-end"]
    thought = "The user wrote 2 words. I will say them back."
    assert reasoning_of(parts) == thought
    [turn] = frame["turns"]
    assert (turn["status"], turn["assistantText"], turn["reasoningText"]) == (
        TurnStatus.COMPLETED.value,
        "You said: hello there",
        thought,
    )


def test_a_thinking_budget_makes_bedrock_think_and_the_reasoning_survives_a_tool_call(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine
) -> None:
    with LocalBedrock(offline_answers(0)) as bedrock:
        worker = bedrock_worker(
            postgres_url, worker_engine, bedrock, THINKING_BUDGET_TOKENS=1024, MAX_OUTPUT_TOKENS=3072
        )
        stack.start_worker(worker)
        with stack.client() as client:
            request = stack.submit("What is the time in Europe/Paris?", client.connection_id)
            frames = client.read_until_end(request.turn_id)
            frame = history(client, request.conversation_id)

        # Two model calls: the second replayed the signed reasoning (else Claude, and the endpoint,
        # answer ValidationException) and, as Claude without interleaved thinking, thought no more.
        assert [(r.status, r.body["additionalModelRequestFields"]) for r in bedrock.requests] == [
            (200, {"thinking": {"type": "enabled", "budget_tokens": 1024}})
        ] * 2

    parts = parts_of(frames)
    kinds = [p["type"] for p in parts if not p["type"].endswith("-delta")]
    assert kinds.index("reasoning-end") < kinds.index("text-start") < kinds.index("tool-input-available")
    assert kinds.count("reasoning-start") == 1 and parts[-1]["type"] == "finish"
    thought = "The user asks about time in Europe/Paris. current_time knows; I will call it."
    assert reasoning_of(parts) == thought
    answer = text_of(frames)
    assert answer.startswith("Let me check the time in Europe/Paris. current_time says:")
    assert "current_time knows" not in answer
    [turn] = frame["turns"]
    assert (turn["assistantText"], turn["reasoningText"]) == (answer, thought)
    assert stack.turn(request.turn_id).reasoning_text == thought
