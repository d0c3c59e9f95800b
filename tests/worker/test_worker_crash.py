"""A worker killed mid-answer (SIGKILL: a Lambda timeout, `kill -9`): no turn stays open.

Either the record comes back and a new worker takes the turn over once the dead worker's lease has
lapsed, or (when the record is gone with the queue, as with the local stack's in-memory queue)
recovery ends the abandoned turn with its saved text and tells its listeners.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from courier_local.edge.sqs import LocalMoto
from courier_shared.db.models import Turn
from courier_shared.db.store import in_progress_condition
from courier_shared.protocol import TurnStatus
from courier_worker.adapters import ApiGatewayConnections, SqsVisibility
from courier_worker.composition import Worker, build_worker
from courier_worker.failures import FAILURES
from courier_worker.tools import ToolRegistry

from .crashing_worker import lookup_tool
from .scripted_model import ScriptedModel
from .stack import REGION, Client, WorkerStack, chunks, now, text_of, worker_settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LONG_ANSWER = " ".join(f"word{i}" for i in range(300))
LEASE_S = 3


def child_settings(postgres_url: str) -> dict[str, object]:
    return {
        "DATABASE_URL": postgres_url,
        "FLUSH_INTERVAL_MS": 50,
        "CONTROL_POLL_MS": 50,
        "SAVE_INTERVAL_S": 0.5,
        "LEASE_S": LEASE_S,
        "DATABASE_OUTAGE_BUDGET_S": 1,
        "AWS_REGION": REGION,
    }


@contextmanager
def worker_process(
    stack: WorkerStack, moto: LocalMoto, postgres_url: str, **extra: object
) -> Iterator[subprocess.Popen[str]]:
    config = {
        "settings": child_settings(postgres_url),
        "sqs_endpoint_url": moto.endpoint_url,
        "region": REGION,
        "queue_url": stack.queues.queue_url,
        # Longer than the lease: a record that comes back finds its dead worker's lease lapsed.
        "visibility_timeout_s": LEASE_S + 2,
        "answer": LONG_ANSWER,
        "delay_s": 0.02,
        **extra,
    }
    script = Path(__file__).with_name("crashing_worker.py")
    child = subprocess.Popen(
        [sys.executable, str(script), json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)


def kill_mid_answer(child: subprocess.Popen[str], client: Client, turn_id: Any, words: int = 10) -> None:
    deadline = time.monotonic() + 20
    while text_of(client.turn_frames(turn_id)).count("word") < words:
        client.read(deadline - time.monotonic())
    child.kill()  # SIGKILL: no ending, no final write, the record still in flight
    child.wait(10)


def in_progress(stack: WorkerStack) -> int:
    with stack.store.unit_of_work() as repo:
        query = (
            select(func.count())
            .select_from(Turn)
            .where(Turn.user_id == stack.owner.user_id, in_progress_condition(now()))
        )
        return repo._session.scalar(query) or 0  # test-only peek at the raw count


def make_worker(postgres_url: str, engine: Engine, model: Any, moto: LocalMoto, **settings: object) -> Worker:
    return build_worker(
        worker_settings(
            postgres_url, LEASE_S=LEASE_S, DATABASE_OUTAGE_BUDGET_S=1, SAVE_INTERVAL_S=0.5, **settings
        ),
        model=model,
        connections=ApiGatewayConnections(region_name=REGION),
        engine=engine,
        queue=SqsVisibility(endpoint_url=moto.endpoint_url),
    )


def ended(client: Client, turn_id: Any, attempt: int) -> bool:
    return any(
        f["attempt"] == attempt and f["chunk"]["type"] in ("finish", "abort", "error")
        for f in chunks(client.turn_frames(turn_id))
    )


def test_a_killed_worker_s_turns_are_taken_over_by_the_retried_records(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, moto: LocalMoto
) -> None:
    with stack.client() as client:
        streaming = stack.submit("Tell me a long story", client.connection_id)
        queued = stack.submit("And another one", client.connection_id)  # another conversation
        with worker_process(stack, moto, postgres_url) as child:
            kill_mid_answer(child, client, streaming.turn_id)
        assert stack.turn(streaming.turn_id).status == TurnStatus.STREAMING.value
        # A new worker: each record comes back when its visibility timeout expires.
        model = ScriptedModel([{"text": "Recovered."}])
        esm = stack.start_worker(
            make_worker(postgres_url, worker_engine, model, moto), visibility_timeout_s=60
        )
        deadline = time.monotonic() + 30
        while not (
            ended(client, streaming.turn_id, 2) and any(ended(client, queued.turn_id, a) for a in (1, 2))
        ):
            client.read(deadline - time.monotonic())
        assert esm.drain(timeout=60)
    first = stack.turn(streaming.turn_id)
    assert (first.status, first.attempt, first.assistant_text) == (
        TurnStatus.COMPLETED.value,
        2,
        "Recovered.",
    )
    retried = [f for f in chunks(client.turn_frames(streaming.turn_id)) if f["attempt"] == 2]
    assert retried[0]["chunk"]["type"] == "start" and retried[-1]["chunk"]["type"] == "finish"
    assert stack.turn(queued.turn_id).status == TurnStatus.COMPLETED.value
    assert in_progress(stack) == 0
    assert stack.dlq_bodies() == []


def test_after_a_crash_that_lost_the_queue_recovery_ends_the_abandoned_turn_with_its_text(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, moto: LocalMoto
) -> None:
    with stack.client() as client:
        request = stack.submit("Tell me a long story", client.connection_id)
        with worker_process(stack, moto, postgres_url) as child:
            kill_mid_answer(child, client, request.turn_id, words=80)  # past a few saves (every 0.5 s)
        stack.sqs.purge_queue(QueueUrl=stack.queues.queue_url)  # the queue died with the process
        seen_before = text_of(client.turn_frames(request.turn_id))
        assert in_progress(stack) == 1  # its lease is still live: it counts against the limit
        # Recovery has no record to take a callback URL from: the deployed setting is used.
        recovery = make_worker(
            postgres_url,
            worker_engine,
            ScriptedModel([{"text": "unused"}]),
            moto,
            CONNECTIONS_ENDPOINT_URL=stack.callback_url,
        )
        deadline = time.monotonic() + 20
        while request.turn_id not in recovery.end_abandoned_turns():  # once its lease has lapsed
            assert time.monotonic() < deadline, "the abandoned turn was never ended"
            time.sleep(0.2)
        while not ended(client, request.turn_id, 2):
            client.read(5)
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.error_code, turn.attempt) == (TurnStatus.FAILED.value, "abandoned", 2)
    # The text saved before the crash is kept, and sent again as the ending attempt.
    assert turn.assistant_text and LONG_ANSWER.startswith(turn.assistant_text)
    assert seen_before.startswith(turn.assistant_text)
    assert turn.usage_estimated and turn.output_tokens > 0
    ending = [f for f in chunks(client.turn_frames(request.turn_id)) if f["attempt"] == 2]
    assert [f["seq"] for f in ending] == list(range(len(ending)))
    assert ending[0]["chunk"]["type"] == "start" and text_of(ending) == turn.assistant_text
    assert ending[-1]["chunk"] == {"type": "error", "errorText": FAILURES["abandoned"].safe_text}
    assert turn.last_seq == ending[-1]["seq"]
    assert in_progress(stack) == 0
    assert request.turn_id not in recovery.end_abandoned_turns()  # ended once


def test_a_worker_killed_between_two_tool_steps_is_retried_from_the_saved_step(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, moto: LocalMoto, tmp_path: Path
) -> None:
    tool_log = tmp_path / "lookups.txt"
    first_step = {"text": "Let me look. ", "tool": {"name": "lookup", "input": {"city": "Paris"}, "id": "t1"}}
    with stack.client() as client:
        request = stack.submit("What time is it in Paris?", client.connection_id)
        with worker_process(
            stack, moto, postgres_url, script=[first_step, {"die": True}], tool_log=str(tool_log)
        ) as child:
            child.wait(20)  # it runs the tool, then dies asking the model for the next step
        assert stack.turn(request.turn_id).status == TurnStatus.STREAMING.value
        retry_model = ScriptedModel([{"text": "It is noon in Paris."}])
        worker = build_worker(
            worker_settings(postgres_url, LEASE_S=LEASE_S, DATABASE_OUTAGE_BUDGET_S=1, SAVE_INTERVAL_S=0.5),
            model=retry_model,
            connections=ApiGatewayConnections(region_name=REGION),
            engine=worker_engine,
            queue=SqsVisibility(endpoint_url=moto.endpoint_url),
            tools=ToolRegistry([lookup_tool(str(tool_log))]),
        )
        esm = stack.start_worker(worker, visibility_timeout_s=60)
        deadline = time.monotonic() + 30
        while not ended(client, request.turn_id, 2):
            client.read(deadline - time.monotonic())
        assert esm.drain(timeout=60)
    assert tool_log.read_text().splitlines() == ["Paris"]  # the tool ran once, in the dead worker
    assert len(retry_model.calls) == 1  # only the step that was left
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.attempt) == (TurnStatus.COMPLETED.value, 2)
    assert turn.assistant_text == "Let me look. It is noon in Paris."  # one answer, both steps
    retried = [f["chunk"] for f in chunks(client.turn_frames(request.turn_id)) if f["attempt"] == 2]
    kinds = [part["type"] for part in retried]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert kinds.index("tool-output-available") < kinds.index(
        "text-end", kinds.index("tool-output-available")
    )
    assert text_of([{"type": "chunk", "chunk": part} for part in retried]) == turn.assistant_text
