"""Database faults: a blip does not stop an answer; a long outage ends the attempt with an error at once
and retries it in seconds; a record the queue gives up on ends its turn. Nothing is lost or doubled."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from support import wait_until

from courier_local.edge.sqs import EventSourceMapping, LocalMoto
from courier_shared.db.engine import build_engine
from courier_shared.protocol import TurnStatus
from courier_worker.adapters import ApiGatewayConnections, SqsVisibility
from courier_worker.composition import build_worker
from courier_worker.failures import FAILURES

from .scripted_model import ScriptedModel
from .stack import REGION, Client, WorkerStack, chunks, text_of, worker_settings
from .tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres

ANSWER = " ".join(f"part{i}" for i in range(60))
LONG_ANSWER = " ".join(f"part{i}" for i in range(130))


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


def test_database_down_at_the_start_fails_the_record_and_the_retry_completes(
    stack: WorkerStack, postgres_url: str, proxy: TcpProxy, proxied_engine: Engine, moto: LocalMoto
) -> None:
    model = ScriptedModel([{"text": "Back again."}])
    worker = build_worker(
        worker_settings(postgres_url),
        model=model,
        connections=ApiGatewayConnections(region_name=REGION),
        engine=proxied_engine,
        queue=SqsVisibility(endpoint_url=moto.endpoint_url),
    )
    with stack.client() as client:
        request = stack.submit("Are you there?", client.connection_id)
        proxy.stop()
        esm = stack.start_worker(worker)
        wait_until(lambda: esm.invocations >= 1, what="the first invocation")
        time.sleep(0.1)  # the first invocation fails on connect
        assert stack.turn(request.turn_id).status == TurnStatus.QUEUED.value
        proxy.start()
        frames = client.read_until_end(request.turn_id)
    assert esm.drain(timeout=60)
    assert esm.invocations >= 2
    assert text_of(frames) == "Back again."
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.attempt) == (TurnStatus.COMPLETED.value, 1)
    assert stack.dlq_bodies() == []


def words_seen(client: Client, turn_id: uuid.UUID) -> int:
    return text_of(client.turn_frames(turn_id)).count("part")


def read_until(client: Client, condition: Callable[[], bool], timeout_s: float) -> None:
    """Read frames until `condition()` holds; `timeout_s` bounds a hang (a negative check may pass
    a short one: the condition must not hold in that window)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        client.read(max(0.01, deadline - time.monotonic()))


def test_database_connections_terminated_mid_answer_do_not_stop_the_answer(
    stack: WorkerStack, postgres_url: str, moto: LocalMoto
) -> None:
    application = f"courier-worker-{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_url).update_query_dict({"application_name": application})
    engine = build_engine(url.render_as_string(hide_password=False))
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    model = ScriptedModel([{"text": LONG_ANSWER}], delay_s=0.03)  # ~4 s of answer
    worker = build_worker(
        worker_settings(postgres_url, SAVE_INTERVAL_S=0.3),  # many saves run into the terminations
        model=model,
        connections=ApiGatewayConnections(region_name=REGION),
        engine=engine,
        queue=SqsVisibility(endpoint_url=moto.endpoint_url),
    )
    terminated = 0
    try:
        with stack.client() as client:
            request = stack.submit("Go", client.connection_id)
            # A real queue's visibility timeout: a retried record would come far too late for this test.
            esm = stack.start_worker(worker, visibility_timeout_s=60)
            read_until(client, lambda: words_seen(client, request.turn_id) >= 5, 60)
            # Every worker connection, killed as it reconnects, until the client has had 60 more words
            # (~2 s of saves running into the terminations): text that stopped while the database
            # was being killed would never end this loop (60 s bounds a hang).
            until_words = words_seen(client, request.turn_id) + 60
            hang_guard = time.monotonic() + 60
            with admin.connect() as connection:
                while terminated == 0 or words_seen(client, request.turn_id) < until_words:
                    assert time.monotonic() < hang_guard, "the text stopped while the database was killed"
                    terminated += connection.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE application_name = :name"
                        ),
                        {"name": application},
                    ).scalar_one()
                    with contextlib.suppress(TimeoutError):
                        client.read(0.05)
            frames = client.read_until_end(request.turn_id, timeout_s=60)
        assert esm.drain(timeout=60)
    finally:
        engine.dispose()
        admin.dispose()
    assert terminated > 0
    assert {f["attempt"] for f in frames} == {1}  # the same attempt went on: not restarted from the top
    assert [f["seq"] for f in chunks(frames)] == list(range(len(chunks(frames))))
    assert text_of(frames) == LONG_ANSWER and chunks(frames)[-1]["chunk"]["type"] == "finish"
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.attempt, turn.assistant_text) == (TurnStatus.COMPLETED.value, 1, LONG_ANSWER)
    assert model.calls and len(model.calls) == 1  # the model was asked (and paid) once


def test_database_refusing_connections_mid_answer_the_text_flows_and_the_end_waits_for_it(
    stack: WorkerStack, postgres_url: str, proxy: TcpProxy, proxied_engine: Engine, moto: LocalMoto
) -> None:
    model = ScriptedModel([{"text": ANSWER}], delay_s=0.02)
    worker = build_worker(
        worker_settings(postgres_url),
        model=model,
        connections=ApiGatewayConnections(region_name=REGION),
        engine=proxied_engine,
        queue=SqsVisibility(endpoint_url=moto.endpoint_url),
    )
    with stack.client() as client:
        request = stack.submit("Go", client.connection_id)
        esm = stack.start_worker(worker, visibility_timeout_s=60)
        read_until(client, lambda: text_of(client.turn_frames(request.turn_id)).count("part") >= 5, 60)
        proxy.stop()  # refused from now on; open connections cut
        down_since = time.monotonic()
        # The whole answer reaches the client while the database is away...
        read_until(client, lambda: text_of(client.turn_frames(request.turn_id)) == ANSWER, 60)
        # ...but not its ending: the turn is stored first, and the final write waits for the database.
        with pytest.raises(TimeoutError):
            read_until(
                client,
                lambda: any(
                    f["chunk"]["type"] == "finish" for f in chunks(client.turn_frames(request.turn_id))
                ),
                max(0.5, 5 - (time.monotonic() - down_since)),  # a 5 s outage in all
            )
        restarted = len(client.frames)
        proxy.start()
        frames = client.read_until_end(request.turn_id, timeout_s=30)
    assert esm.drain(timeout=60)
    assert chunks(client.frames[restarted:])[-1]["chunk"]["type"] == "finish"  # only after the restart
    assert {f["attempt"] for f in frames} == {1}
    assert [f["seq"] for f in chunks(frames)] == list(range(len(chunks(frames))))
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.attempt, turn.assistant_text) == (TurnStatus.COMPLETED.value, 1, ANSWER)
    assert turn.last_seq == chunks(frames)[-1]["seq"]


def test_an_outage_longer_than_the_budget_ends_the_attempt_with_an_error_and_retries_in_seconds(
    stack: WorkerStack, postgres_url: str, proxy: TcpProxy, proxied_engine: Engine, moto: LocalMoto
) -> None:
    model = ScriptedModel([{"text": LONG_ANSWER}, {"text": "Second time lucky."}], delay_s=0.03)
    worker = build_worker(
        worker_settings(
            postgres_url, DATABASE_OUTAGE_BUDGET_S=1, LEASE_S=5, SAVE_INTERVAL_S=0.5, RETRY_BACKOFF_S=1
        ),
        model=model,
        connections=ApiGatewayConnections(region_name=REGION),
        engine=proxied_engine,
        queue=SqsVisibility(endpoint_url=moto.endpoint_url),
    )
    with stack.client() as client:
        request = stack.submit("Go", client.connection_id)
        # 60 s: only the worker's ChangeMessageVisibility can bring the record back within the test.
        esm = stack.start_worker(worker, visibility_timeout_s=60)
        read_until(client, lambda: text_of(client.turn_frames(request.turn_id)).count("part") >= 5, 60)
        proxy.stop()
        # The attempt gives up while the database is still away, and says so at once.
        read_until(
            client, lambda: chunks(client.turn_frames(request.turn_id))[-1]["chunk"]["type"] == "error", 60
        )
        proxy.start()
        deadline = time.monotonic() + 30
        while not any(
            f["attempt"] == 2 and f["chunk"]["type"] == "finish"
            for f in chunks(client.turn_frames(request.turn_id))
        ):
            client.read(deadline - time.monotonic())
    assert esm.drain(timeout=60)
    frames = client.turn_frames(request.turn_id)
    first = [f for f in chunks(frames) if f["attempt"] == 1]
    assert first[-1]["chunk"] == {"type": "error", "errorText": FAILURES["database_unavailable"].safe_text}
    assert [f["seq"] for f in first] == list(range(len(first)))
    second = [f for f in chunks(frames) if f["attempt"] == 2]
    assert second[0]["chunk"]["type"] == "start" and text_of(second) == "Second time lucky."
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.attempt, turn.assistant_text) == (
        TurnStatus.COMPLETED.value,
        2,
        "Second time lucky.",
    )


def test_a_dead_lettered_turn_ends_failed_and_its_listener_is_told(
    stack: WorkerStack, postgres_url: str, proxy: TcpProxy, proxied_engine: Engine, moto: LocalMoto
) -> None:
    # Two deliveries, not the declared five: with the worker's doubling backoff, five take 30 s.
    stack.redrive_after(2)
    dlq_arn = stack.sqs.get_queue_attributes(QueueUrl=stack.queues.dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    model = ScriptedModel([{"text": "Never said."}])
    worker = build_worker(
        worker_settings(postgres_url, RETRY_BACKOFF_S=1, DEAD_LETTER_QUEUE_ARN=dlq_arn),
        model=model,
        connections=ApiGatewayConnections(region_name=REGION),
        engine=proxied_engine,
        queue=SqsVisibility(endpoint_url=moto.endpoint_url),
    )
    # The dead-letter queue's own event source mapping, to the same function (as Pulumi declares it).
    dead_letters = EventSourceMapping(
        stack.sqs, stack.queues.dlq_url, worker.handle, batch_size=1, max_concurrency=1, wait_time_s=0.2
    )
    with stack.client() as client, dead_letters:
        request = stack.submit("Are you there?", client.connection_id)
        proxy.stop()  # every delivery fails until the queue gives up
        stack.start_worker(worker, visibility_timeout_s=60)
        wait_until(lambda: dead_letters.invocations >= 1, 30, what="the dead-letter invocation")
        proxy.start()
        frames = client.read_until_end(request.turn_id, timeout_s=30)
        assert dead_letters.drain(timeout=60)
    assert [p["chunk"]["type"] for p in chunks(frames)] == ["start", "error"]
    assert chunks(frames)[-1]["chunk"]["errorText"] == FAILURES["dead_lettered"].safe_text
    assert model.calls == []  # a dead letter is never run
    turn = stack.turn(request.turn_id)
    assert (turn.status, turn.error_code, turn.attempt) == (TurnStatus.FAILED.value, "dead_lettered", 1)
    assert turn.last_seq == chunks(frames)[-1]["seq"]
    assert stack.dlq_bodies() == []  # consumed: the turn it stood for has ended
