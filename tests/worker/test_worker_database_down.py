"""Infrastructure faults fail the record so SQS retries it; nothing is lost once the database is back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from courier_shared.db.engine import build_engine
from courier_shared.protocol import TurnStatus
from courier_worker.adapters import ApiGatewayConnections
from courier_worker.composition import build_worker

from .scripted_model import ScriptedModel
from .stack import WorkerStack, chunks, text_of, worker_settings
from .tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres

ANSWER = " ".join(f"part{i}" for i in range(60))


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:
    url = make_url(postgres_url)
    running = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield running
    running.stop()


@pytest.fixture
def proxied_engine(postgres_url: str, proxy: TcpProxy) -> Iterator[Engine]:
    url = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    engine = build_engine(url.render_as_string(hide_password=False))
    yield engine
    engine.dispose()


def wait_for(condition: object, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)


def test_database_down_at_the_start_fails_the_record_and_the_retry_completes(
    stack: WorkerStack, postgres_url: str, proxy: TcpProxy, proxied_engine: Engine
) -> None:
    model = ScriptedModel([{"text": "Back again."}])
    worker = build_worker(
        worker_settings(postgres_url),
        model=model,
        connections=ApiGatewayConnections(region_name="us-east-1"),
        engine=proxied_engine,
    )
    with stack.client() as client:
        request = stack.submit("Are you there?", client.connection_id)
        proxy.stop()
        esm = stack.start_worker(worker)
        wait_for(lambda: esm.invocations >= 1)
        time.sleep(0.1)  # the first invocation fails on connect
        assert stack.turn(request.turn_id).status == TurnStatus.QUEUED.value
        proxy.start()
        frames = client.read_until_end(request.turn_id)
    assert esm.drain(timeout=10)
    assert esm.invocations >= 2
    assert text_of(frames) == "Back again."
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.attempt) == (TurnStatus.COMPLETED.value, 1)
    assert stack.dlq_bodies() == []


def test_database_lost_mid_stream_retries_the_record_as_a_new_attempt(
    stack: WorkerStack, postgres_url: str, proxy: TcpProxy, proxied_engine: Engine
) -> None:
    model = ScriptedModel([{"text": ANSWER}], delay_s=0.02)
    worker = build_worker(
        worker_settings(postgres_url),
        model=model,
        connections=ApiGatewayConnections(region_name="us-east-1"),
        engine=proxied_engine,
    )
    with stack.client() as client:
        request = stack.submit("Go", client.connection_id)
        esm = stack.start_worker(worker)
        while text_of(client.turn_frames(request.turn_id)).count("part") < 5:
            client.read(5)
        proxy.stop()
        time.sleep(0.3)
        proxy.start()
        deadline = time.monotonic() + 15
        while True:  # read past attempt 1 (which ends without a final chunk) to attempt 2's end
            frame = client.read(deadline - time.monotonic())
            if frame.get("attempt") == 2 and frame["chunk"]["type"] in ("finish", "abort", "error"):
                break
    assert esm.drain(timeout=10)
    frames = client.turn_frames(request.turn_id)
    second = [f for f in chunks(frames) if f["attempt"] == 2]
    assert second[0]["chunk"]["type"] == "start" and second[0]["seq"] == 0
    assert second[0]["chunk"]["messageMetadata"]["attempt"] == 2
    assert text_of(second) == ANSWER and second[-1]["chunk"]["type"] == "finish"
    first = [f for f in chunks(frames) if f["attempt"] == 1]
    assert all(f["chunk"]["type"] not in ("finish", "abort", "error") for f in first)
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.attempt, turn.assistant_text) == (TurnStatus.COMPLETED.value, 2, ANSWER)
