"""Every turn ends, and ends accounted for: a cancel before the turn ran, the Lambda's deadline, a tool
loop that will not stop, a record the queue gave up on; cut turns keep their (estimated) usage."""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine

from courier_local.edge.lambda_context import LambdaContext
from courier_local.edge.sqs import LocalMoto
from courier_shared.protocol import TurnStatus, parse_server_frame
from courier_worker.adapters import ApiGatewayConnections, SqsVisibility
from courier_worker.composition import Worker, build_worker
from courier_worker.failures import FAILURES

from .scripted_model import ScriptedModel
from .stack import REGION, WorkerStack, chunks, now, text_of, worker_settings

pytestmark = pytest.mark.postgres

LONG_ANSWER = " ".join(f"word{i}" for i in range(200))
ENDLESS_ANSWER = " ".join(f"word{i}" for i in range(10_000))  # far longer than any test waits
# The deadline test: a Lambda context with this much time, a worker that stops this long before its
# end (generous: it is the real time the ending has to be stored and sent in after the stop).
FUNCTION_TIMEOUT_S = 120
DEADLINE_MARGIN_S = 30


def make_worker(postgres_url: str, engine: Engine, model: Any, moto: LocalMoto, **settings: object) -> Worker:
    return build_worker(
        worker_settings(postgres_url, **settings),
        model=model,
        connections=ApiGatewayConnections(region_name=REGION),
        engine=engine,
        queue=SqsVisibility(endpoint_url=moto.endpoint_url),
    )


def parts(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["chunk"] for f in chunks(frames)]


def assert_one_clean_attempt(frames: list[dict[str, Any]]) -> None:
    for frame in frames:
        parse_server_frame(json.dumps(frame))
    assert [f["seq"] for f in chunks(frames)] == list(range(len(chunks(frames))))
    assert chunks(frames)[0]["chunk"]["type"] == "start"
    endings = [p for p in parts(frames) if p["type"] in ("finish", "abort", "error")]
    assert len(endings) == 1 and endings[0] == parts(frames)[-1]


def test_cancelling_a_queued_turn_sends_its_listeners_abort_once(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, moto: LocalMoto
) -> None:
    model = ScriptedModel([{"text": "Never said."}])
    with stack.client() as client:
        request = stack.submit("Never mind", client.connection_id)
        with stack.store.unit_of_work() as repo:  # what the gateway's cancel does for a queued turn
            repo.request_cancel(stack.owner, request.turn_id, now())
        # The same request queued again (a resend after 5 minutes): it must not end the turn twice.
        stack.enqueue(
            request.model_dump_json(), group_id=request.group_id, dedup_id=f"{request.turn_id}-again"
        )
        esm = stack.start_worker(make_worker(postgres_url, worker_engine, model, moto))
        frames = client.read_until_end(request.turn_id)
        assert esm.drain(timeout=60)
    assert_one_clean_attempt(frames)
    assert [p["type"] for p in parts(frames)] == ["start", "abort"]
    assert model.calls == []
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.attempt, turn.last_seq) == (TurnStatus.CANCELLED.value, 1, 1)
    assert len(client.turn_frames(request.turn_id)) == 2


def test_a_cancelled_turn_stores_the_tokens_it_used_marked_as_estimated(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, moto: LocalMoto
) -> None:
    model = ScriptedModel([{"text": LONG_ANSWER}], delay_s=0.01)
    stack.start_worker(make_worker(postgres_url, worker_engine, model, moto))
    with stack.client() as client:
        request = stack.submit("Write a lot", client.connection_id)
        while text_of(client.turn_frames(request.turn_id)).count("word") < 20:
            client.read(5)
        client.websocket.send(json.dumps({"action": "cancel", "turnId": str(request.turn_id)}))
        frames = client.read_until_end(request.turn_id)
    assert parts(frames)[-1] == {"type": "abort", "reason": "cancelled"}
    turn = stack.turn(request.turn_id)
    assert turn.status == TurnStatus.CANCELLED.value and turn.assistant_text == text_of(frames)
    # The stream was cut before the model's usage event: an estimate, and it says so.
    assert turn.usage_estimated is True
    assert turn.output_tokens == math.ceil(len(turn.assistant_text) / 4) > 0
    assert turn.input_tokens is not None and turn.input_tokens > 0


def test_a_completed_turn_stores_the_usage_the_model_reported(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, moto: LocalMoto
) -> None:
    model = ScriptedModel([{"text": "Short and sweet."}])
    stack.start_worker(make_worker(postgres_url, worker_engine, model, moto))
    with stack.client() as client:
        request = stack.submit("Hi", client.connection_id)
        client.read_until_end(request.turn_id)
    turn = stack.turn(request.turn_id)
    assert (turn.input_tokens, turn.output_tokens, turn.usage_estimated) == (11, 3, False)


class JumpingClock:
    """The worker's monotonic clock, and its Lambda context's: real time, plus the jumps the test
    makes. Text flows at its own pace; the deadline passes when the test says so."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def jump_to(self, at: float) -> None:
        self.offset += max(0.0, at - self())


def test_the_lambda_deadline_ends_the_turn_with_its_partial_text_and_an_ending(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, moto: LocalMoto
) -> None:
    model = ScriptedModel([{"text": ENDLESS_ANSWER}], delay_s=0.02)  # minutes of answer
    clock = JumpingClock()
    worker = build_worker(
        worker_settings(postgres_url, DEADLINE_MARGIN_S=DEADLINE_MARGIN_S),
        model=model,
        connections=ApiGatewayConnections(region_name=REGION),
        engine=worker_engine,
        queue=SqsVisibility(endpoint_url=moto.endpoint_url),
        clock=clock,
    )
    contexts: list[LambdaContext] = []

    def context() -> LambdaContext:  # each invocation's Lambda context, its deadline on the test's clock
        contexts.append(LambdaContext(function_name="worker", timeout_s=FUNCTION_TIMEOUT_S, clock=clock))
        return contexts[-1]

    esm = stack.start_worker(worker, visibility_timeout_s=60, context=context)
    with stack.client() as client:
        request = stack.submit("Write a lot", client.connection_id)
        while text_of(client.turn_frames(request.turn_id)).count("word") < 20:
            client.read(60)
        # The turn must stop DEADLINE_MARGIN_S before the Lambda's deadline: that moment is now.
        [invocation] = contexts
        clock.jump_to(invocation.deadline - DEADLINE_MARGIN_S)
        frames = client.read_until_end(request.turn_id, timeout_s=60)  # a hang guard, not a measure
        assert esm.drain(timeout=60)
    assert len(contexts) == 1  # one invocation: the turn was not handed back for lack of time
    assert_one_clean_attempt(frames)
    assert parts(frames)[-1] == {"type": "error", "errorText": FAILURES["deadline"].safe_text}
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.error_code, turn.stop_reason) == (
        TurnStatus.FAILED.value,
        "deadline",
        "deadline",
    )
    assert turn.assistant_text == text_of(frames)  # the partial text, exactly as the client saw it
    assert turn.assistant_text.count("word") >= 20 and ENDLESS_ANSWER.startswith(turn.assistant_text)
    assert len(turn.assistant_text) < len(ENDLESS_ANSWER)
    assert turn.usage_estimated and turn.output_tokens > 0
    assert turn.last_seq == chunks(frames)[-1]["seq"]


def test_a_tool_loop_stops_after_max_agent_cycles(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, moto: LocalMoto
) -> None:
    # A model that asks for the time forever (the last scripted step repeats).
    model = ScriptedModel([{"text": "Checking. ", "tool": {"name": "current_time", "input": {}, "id": "t"}}])
    esm = stack.start_worker(make_worker(postgres_url, worker_engine, model, moto, MAX_AGENT_CYCLES=3))
    with stack.client() as client:
        request = stack.submit("What time is it, really?", client.connection_id)
        frames = client.read_until_end(request.turn_id)
        assert esm.drain(timeout=60)
    assert_one_clean_attempt(frames)
    assert len(model.calls) == 3
    assert parts(frames)[-1] == {"type": "error", "errorText": FAILURES["too_many_steps"].safe_text}
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.error_code) == (TurnStatus.FAILED.value, "too_many_steps")
    assert turn.assistant_text == "Checking. " * 3
    assert [p["type"] for p in parts(frames)].count("tool-output-available") == 3


def test_an_unreadable_record_is_logged_with_its_message_id_and_hurried_to_the_dlq(
    stack: WorkerStack,
    postgres_url: str,
    worker_engine: Engine,
    moto: LocalMoto,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = ScriptedModel([{"text": "Fine."}])
    message_id = stack.sqs.send_message(
        QueueUrl=stack.queues.queue_url,
        MessageBody='{"turn_id": "not a uuid"}',
        MessageGroupId="poison-group",
        MessageDeduplicationId=str(uuid.uuid4()),
    )["MessageId"]
    # A real queue's visibility timeout: the record reaches the DLQ in seconds only if the worker
    # hands it back at once.
    esm = stack.start_worker(make_worker(postgres_url, worker_engine, model, moto), visibility_timeout_s=60)
    assert esm.drain(timeout=60)
    assert stack.dlq_bodies() == ['{"turn_id": "not a uuid"}']
    unreadable = [r for r in caplog.records if r.getMessage() == "unreadable turn request: the record fails"]
    # Every delivery until the queue gives up (the declared maxReceiveCount), each with its message id.
    assert len(unreadable) == stack.max_receive_count
    assert {getattr(r, "message_id", None) for r in unreadable} == {message_id}
    assert all("not a uuid" not in json.dumps(r.__dict__, default=str) for r in unreadable)  # no body
