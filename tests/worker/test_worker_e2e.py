"""The worker end to end: SQS FIFO → event source mapping → Worker → @connections → a real WebSocket client,
with the turn stored in real Postgres."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import Engine
from strands import tool

from courier_local.edge.sqs import LocalMoto
from courier_local.offline_model import OfflineModel
from courier_shared.protocol import TurnStatus, parse_server_frame
from courier_worker.adapters import ApiGatewayConnections
from courier_worker.composition import Worker, build_worker
from courier_worker.tools import CourierTool, ToolRegistry

from .scripted_model import ScriptedModel, words
from .stack import REGION, WorkerStack, chunks, text_of, worker_settings

pytestmark = pytest.mark.postgres

ANSWER = "Courier streams every token of this answer in order, with no gaps at all. " * 3


def make_worker(postgres_url: str, engine: Engine, model: Any, **settings: object) -> Worker:
    return build_worker(
        worker_settings(postgres_url, **settings),
        model=model,
        connections=ApiGatewayConnections(region_name=REGION),
        engine=engine,
    )


def test_a_turn_streams_in_order_to_the_client_and_is_stored_completed(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine
) -> None:
    model = ScriptedModel([{"text": ANSWER}], delay_s=0.002)
    stack.start_worker(make_worker(postgres_url, worker_engine, model))
    with stack.client() as client:
        request = stack.submit("Tell me something", client.connection_id)
        frames = client.read_until_end(request.turn_id)

    for frame in frames:
        parse_server_frame(json.dumps(frame))  # every frame is on-contract
    parts = [f["chunk"]["type"] for f in chunks(frames)]
    assert parts[:4] == ["start", "start-step", "text-start", "text-delta"]
    assert parts[-3:] == ["text-end", "finish-step", "finish"]
    assert [f["seq"] for f in chunks(frames)] == list(range(len(parts)))
    assert {f["attempt"] for f in frames} == {1}
    assert text_of(frames) == ANSWER
    assert parts.count("text-delta") < len(words(ANSWER))  # coalesced
    finish = chunks(frames)[-1]["chunk"]["messageMetadata"]
    assert finish["usage"] == {"inputTokens": 11, "outputTokens": len(words(ANSWER))}
    assert finish["stopReason"] == "end_turn"
    assert finish["timeToFirstTokenMs"] is not None

    turn = stack.turn(request.turn_id)
    assert turn.status == TurnStatus.COMPLETED.value
    assert turn.assistant_text == ANSWER
    assert turn.model_id == "scripted-test-model"
    assert (turn.input_tokens, turn.output_tokens) == (11, len(words(ANSWER)))
    # Time to first token runs from the accepted message (created_at); latency is the attempt's own.
    total_ms = (turn.completed_at - turn.created_at).total_seconds() * 1000
    assert turn.time_to_first_token_ms == finish["timeToFirstTokenMs"]
    assert 0 <= turn.time_to_first_token_ms <= total_ms and turn.latency_ms is not None
    assert turn.stop_reason == "end_turn"
    assert turn.last_seq == chunks(frames)[-1]["seq"]
    # The model got the system prompt and the tools.
    assert model.calls[0]["tools"] == ["current_time"]


def test_a_tool_call_becomes_chunks_and_a_tool_invocation_row(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine
) -> None:
    model = ScriptedModel(
        [
            {
                "text": "Let me check. ",
                "tool": {"name": "current_time", "input": {"time_zone": "Asia/Tokyo"}, "id": "t1"},
            },
            {"text": "It is late in Tokyo."},
        ]
    )
    stack.start_worker(make_worker(postgres_url, worker_engine, model))
    with stack.client() as client:
        request = stack.submit("What time is it in Tokyo?", client.connection_id)
        frames = client.read_until_end(request.turn_id)

    parts = [f["chunk"] for f in chunks(frames)]
    kinds = [p["type"] for p in parts]
    tool_at = kinds.index("tool-input-available")
    assert kinds[tool_at - 2 : tool_at + 4] == [
        "text-delta",
        "text-end",
        "tool-input-available",
        "data-tool-status",
        "tool-output-available",
        "finish-step",
    ]
    assert parts[tool_at] == {
        "type": "tool-input-available",
        "toolCallId": "t1",
        "toolName": "current_time",
        "input": {"time_zone": "Asia/Tokyo"},
    }
    assert parts[tool_at + 1]["data"] == {"toolCallId": "t1", "summary": "Checking the time in Asia/Tokyo…"}
    output = parts[tool_at + 2]["output"]
    assert output["timeZone"] == "Asia/Tokyo" and output["localTime"].endswith("+09:00")
    assert kinds.count("start-step") == 2 and kinds[-1] == "finish"
    assert text_of(frames) == "Let me check. It is late in Tokyo."

    [row] = stack.tool_invocations(request.turn_id)
    assert (row.tool_call_id, row.tool_name, row.input, row.status) == (
        "t1",
        "current_time",
        {"time_zone": "Asia/Tokyo"},
        "success",
    )
    assert row.seq == frames[frames.index(next(f for f in frames if f.get("chunk") == parts[tool_at]))]["seq"]
    assert "Asia/Tokyo" in (row.output_summary or "")
    # The model saw the tool's result on its second call.
    assert "toolResult" in json.dumps(model.calls[1]["messages"][-1])
    assert stack.turn(request.turn_id).status == TurnStatus.COMPLETED.value


def test_the_same_record_twice_streams_one_answer(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine
) -> None:
    model = ScriptedModel([{"text": "Only once."}])
    with stack.client() as client:
        request = stack.submit("Once", client.connection_id, enqueue=False)
        body = request.model_dump_json()
        # Two deliveries of one request (a different dedup id, as after the 5-minute window).
        stack.enqueue(body, group_id=request.group_id, dedup_id="first")
        stack.enqueue(body, group_id=request.group_id, dedup_id="second")
        esm = stack.start_worker(make_worker(postgres_url, worker_engine, model))
        client.read_until_end(request.turn_id)
        assert esm.drain(timeout=60)
        time.sleep(0.2)
        frames = client.turn_frames(request.turn_id)
    starts = [f for f in chunks(frames) if f["chunk"]["type"] == "start"]
    assert len(starts) == 1
    assert len(model.calls) == 1
    assert stack.turn(request.turn_id).status == TurnStatus.COMPLETED.value


def test_a_poison_record_goes_to_the_dlq_and_the_rest_of_the_batch_completes(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine
) -> None:
    model = ScriptedModel([{"text": "Fine."}])
    with stack.client() as client:
        good = stack.submit("Good", client.connection_id, enqueue=False)
        stack.enqueue("this is not a turn request", group_id="poison-group", dedup_id="poison")
        stack.enqueue(good.model_dump_json(), group_id=good.group_id, dedup_id=good.deduplication_id)
        esm = stack.start_worker(make_worker(postgres_url, worker_engine, model))
        client.read_until_end(good.turn_id)
        assert esm.drain(timeout=60)
    assert stack.turn(good.turn_id).status == TurnStatus.COMPLETED.value
    assert stack.dlq_bodies() == ["this is not a turn request"]


def test_a_resuming_connection_gets_a_snapshot_then_the_rest_gap_free(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine
) -> None:
    answer = " ".join(f"piece{i}" for i in range(80))
    model = ScriptedModel([{"text": answer}], delay_s=0.01)
    stack.start_worker(make_worker(postgres_url, worker_engine, model))
    with stack.client() as origin, stack.client() as resumer:
        request = stack.submit("Long one", origin.connection_id)
        while text_of(origin.turn_frames(request.turn_id)).count("piece") < 10:
            origin.read(5)
        resumer.websocket.send(json.dumps({"action": "resume", "turnId": str(request.turn_id)}))
        frames = resumer.read_until_end(request.turn_id)
        origin.read_until_end(request.turn_id)

    # A client's view: the latest snapshot replaces the text; chunks at or below its seq are dropped.
    text, last_seq = "", -1
    for frame in frames:
        if frame["type"] == "snapshot":
            text, last_seq = frame["text"], frame["seq"]
        elif frame["type"] == "chunk" and frame["seq"] > last_seq:
            assert frame["seq"] == last_seq + 1, "a gap after the snapshot"
            last_seq = frame["seq"]
            if frame["chunk"]["type"] == "text-delta":
                text += frame["chunk"]["delta"]
    assert [f["type"] for f in frames].count("snapshot") == 2  # the stored one, then the worker's fresh one
    assert text == answer == text_of(origin.turn_frames(request.turn_id))


def test_a_large_answer_goes_to_s3_and_comes_back_as_history(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, moto: LocalMoto
) -> None:
    [bucket] = stack.deployment.buckets  # the declared bodies bucket
    big = "long answer " * 300  # 3.6 KB
    model = ScriptedModel([{"text": big}, {"text": "Short."}])
    worker = make_worker(
        postgres_url,
        worker_engine,
        model,
        BODY_BUCKET=bucket,
        S3_ENDPOINT_URL=moto.endpoint_url,
        INLINE_TEXT_MAX_BYTES=1024,
    )
    stack.start_worker(worker)
    with stack.client() as client:
        first = stack.submit("Write a lot", client.connection_id)
        client.read_until_end(first.turn_id)
        second = stack.submit("And now?", client.connection_id, conversation_id=first.conversation_id)
        client.read_until_end(second.turn_id)
    turn = stack.turn(first.turn_id)
    assert turn.body_ref is not None and len(turn.assistant_text.encode()) <= 1024
    assert big.startswith(turn.assistant_text)
    stored = moto.client("s3").get_object(Bucket=bucket, Key=turn.body_ref)["Body"].read().decode()
    assert stored == big
    history = model.calls[1]["messages"]
    assert [m["content"][0]["text"] for m in history] == ["Write a lot", big, "And now?"]


def test_the_offline_model_answers_with_a_tool_call_end_to_end(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine
) -> None:
    model = OfflineModel(tokens_per_second=500)
    stack.start_worker(make_worker(postgres_url, worker_engine, model))
    with stack.client() as client:
        request = stack.submit("What is the time in Europe/Paris?", client.connection_id)
        frames = client.read_until_end(request.turn_id)

    parts = [f["chunk"] for f in chunks(frames)]
    kinds = [p["type"] for p in parts]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert [f["seq"] for f in chunks(frames)] == list(range(len(parts)))
    tool_input = next(p for p in parts if p["type"] == "tool-input-available")
    assert (tool_input["toolName"], tool_input["input"]) == ("current_time", {"time_zone": "Europe/Paris"})
    status = next(p for p in parts if p["type"] == "data-tool-status")
    assert status["data"]["summary"] == "Checking the time in Europe/Paris…"
    output = next(p for p in parts if p["type"] == "tool-output-available")["output"]
    assert output["timeZone"] == "Europe/Paris"
    text = text_of(frames)
    assert text.startswith("Let me check the time in Europe/Paris. ")
    assert len(text) > len("Let me check the time in Europe/Paris. ")  # the answer after the tool

    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.model_id, turn.assistant_text) == (
        TurnStatus.COMPLETED.value,
        "courier-offline",
        text,
    )
    assert turn.output_tokens and turn.input_tokens and turn.time_to_first_token_ms is not None
    finish = parts[-1]["messageMetadata"]
    assert finish["usage"] == {"inputTokens": turn.input_tokens, "outputTokens": turn.output_tokens}
    [row] = stack.tool_invocations(request.turn_id)
    assert (row.tool_name, row.input, row.status) == (
        "current_time",
        {"time_zone": "Europe/Paris"},
        "success",
    )


def test_a_crashing_tool_sends_a_tool_error_and_the_answer_goes_on(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine
) -> None:
    @tool
    def broken(query: str) -> str:
        """A tool with a bug.

        Args:
            query: Anything.
        """
        raise RuntimeError("database password is hunter2")  # must never reach the client or the model

    model = ScriptedModel(
        [
            {"text": "Trying. ", "tool": {"name": "broken", "input": {"query": "x"}, "id": "b1"}},
            {"text": "The tool is broken, so from memory: 42."},
        ]
    )
    worker = build_worker(
        worker_settings(postgres_url),
        model=model,
        connections=ApiGatewayConnections(region_name=REGION),
        engine=worker_engine,
        tools=ToolRegistry([CourierTool(tool=broken, summarize=lambda _: "Trying the broken tool…")]),
    )
    esm = stack.start_worker(worker)
    with stack.client() as client:
        request = stack.submit("Break", client.connection_id)
        frames = client.read_until_end(request.turn_id)
    assert esm.drain(timeout=60)
    for frame in frames:
        parse_server_frame(json.dumps(frame))
    parts = [f["chunk"] for f in chunks(frames)]
    assert {
        "type": "tool-output-error",
        "toolCallId": "b1",
        "errorText": "The tool failed unexpectedly.",
    } in parts
    assert not any(p["type"] == "tool-output-available" for p in parts)
    assert parts[-1]["type"] == "finish"
    assert "hunter2" not in json.dumps(frames)
    assert "hunter2" not in json.dumps(model.calls[1]["messages"])  # the model only hears it failed
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.error_code) == (TurnStatus.COMPLETED.value, None)
    assert turn.assistant_text == "Trying. The tool is broken, so from memory: 42."
    [row] = stack.tool_invocations(request.turn_id)
    assert row.status == "crashed" and "hunter2" not in (row.output_summary or "")
    assert stack.dlq_bodies() == []


@pytest.mark.parametrize(
    ("zone", "told"),
    [
        ("Mars/Olympus", "Unknown time zone 'Mars/Olympus'"),
        ("Europe", "'Europe' is a region"),  # was IsADirectoryError out of zoneinfo: the turn failed
        ("America/Argentina", "America/Argentina/Buenos_Aires"),
    ],
)
def test_a_time_zone_the_tool_cannot_use_is_a_tool_error_and_the_turn_goes_on(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, zone: str, told: str
) -> None:
    model = ScriptedModel(
        [
            {"text": "", "tool": {"name": "current_time", "input": {"time_zone": zone}, "id": "z1"}},
            {"text": "Sorry, I do not know that zone."},
        ]
    )
    stack.start_worker(make_worker(postgres_url, worker_engine, model))
    with stack.client() as client:
        request = stack.submit(f"What is the time in {zone}?", client.connection_id)
        frames = client.read_until_end(request.turn_id)
    parts = [f["chunk"] for f in chunks(frames)]
    [error] = [p for p in parts if p["type"] == "tool-output-error"]
    assert error["toolCallId"] == "z1" and told in error["errorText"]
    assert told in json.dumps(model.calls[1]["messages"][-1])  # the model was told, and answered
    assert parts[-1]["type"] == "finish"
    assert text_of(frames) == "Sorry, I do not know that zone."
    assert stack.turn(request.turn_id).status == TurnStatus.COMPLETED.value
    [row] = stack.tool_invocations(request.turn_id)
    assert row.status == "error"


def test_a_client_that_reconnects_within_the_grace_period_gets_the_rest(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine
) -> None:
    answer = " ".join(f"bit{i}" for i in range(120))
    model = ScriptedModel([{"text": answer}], delay_s=0.01)
    # A grace period no machine is slow enough to outlast between the two connections.
    stack.start_worker(make_worker(postgres_url, worker_engine, model, LISTENER_GRACE_S=60))
    with stack.client() as first:
        request = stack.submit("Long", first.connection_id)
        while text_of(first.turn_frames(request.turn_id)).count("bit") < 10:
            first.read(5)
    time.sleep(0.2)  # nobody listens now; the turn keeps generating during the grace period
    with stack.client() as second:
        second.websocket.send(json.dumps({"action": "resume", "turnId": str(request.turn_id)}))
        frames = second.read_until_end(request.turn_id)
    snapshot = [f for f in frames if f["type"] == "snapshot"][-1]
    rest = [f for f in chunks(frames) if f["seq"] > snapshot["seq"]]
    assert snapshot["text"] + text_of(rest) == answer
    # A slow machine may finish the turn before the resume: then the snapshot is the ending.
    assert snapshot["status"] == "completed" or rest[-1]["chunk"]["type"] == "finish"
    assert stack.turn(request.turn_id).status == TurnStatus.COMPLETED.value


def test_partial_text_is_saved_while_streaming(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine
) -> None:
    answer = " ".join(f"tok{i}" for i in range(150))
    model = ScriptedModel([{"text": answer}], delay_s=0.01)
    stack.start_worker(make_worker(postgres_url, worker_engine, model, SAVE_INTERVAL_S=0.3))
    seen: list[tuple[str, int]] = []
    with stack.client() as client:
        request = stack.submit("Long", client.connection_id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            turn = stack.turn(request.turn_id)
            if turn.status == TurnStatus.STREAMING.value and turn.assistant_text:
                seen.append((turn.assistant_text, turn.last_seq))
            if turn.status == TurnStatus.COMPLETED.value:
                break
            time.sleep(0.05)
        client.read_until_end(request.turn_id)
    assert len({text for text, _ in seen}) >= 2  # saved more than once while streaming
    for text, last_seq in seen:
        assert answer.startswith(text) and len(text) < len(answer) and last_seq >= 0
        # The stored (text, last_seq) pair is what the client had at that seq: a consistent snapshot.
        upto = [f for f in chunks(client.turn_frames(request.turn_id)) if f["seq"] <= last_seq]
        assert text_of(upto) == text


def test_with_no_listener_and_no_grace_the_turn_stops_at_once(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine
) -> None:
    model = ScriptedModel([{"text": " ".join(["never"] * 200)}], delay_s=0.01)
    esm = stack.start_worker(make_worker(postgres_url, worker_engine, model, LISTENER_GRACE_S=0))
    request = stack.submit("Anyone?", None)
    assert esm.drain(timeout=60)
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.stop_reason) == (TurnStatus.INTERRUPTED.value, "no_listeners")
    assert model.tokens_sent <= 1
