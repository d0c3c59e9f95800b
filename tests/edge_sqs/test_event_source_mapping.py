"""The local SQS event source mapping, driven through boto3 against moto's server.

Queues use a 1 s visibility timeout and maxReceiveCount 2, so a retry takes about a second.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsModel
from support import wait_until

from courier_local.edge.sqs import EventSourceMapping, QueueUrls

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "aws_events" / "sqs_receive_message.json"


def send(
    sqs: Any, queue_url: str, body: str, *, group: str = "g1", dedup: str | None = None, **extra: Any
) -> None:
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=body,
        MessageGroupId=group,
        MessageDeduplicationId=dedup or body,
        **extra,
    )


class Recorder:
    """A handler that records every record it sees and fails the bodies it is told to."""

    def __init__(
        self, respond: Callable[[list[dict[str, Any]], int], Mapping[str, Any] | None] | None = None
    ):
        self.batches: list[list[dict[str, Any]]] = []
        self.contexts: list[Any] = []
        self._respond = respond
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Mapping[str, Any] | None:
        with self._lock:
            self.batches.append(event["Records"])
            self.contexts.append(context)
            call = len(self.batches)
        return self._respond(event["Records"], call) if self._respond else None

    def bodies(self) -> list[str]:
        with self._lock:
            return [record["body"] for batch in self.batches for record in batch]


def fail_bodies(*bodies: str) -> Callable[[list[dict[str, Any]], int], dict[str, Any]]:
    def respond(records: list[dict[str, Any]], call: int) -> dict[str, Any]:
        return {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records if r["body"] in bodies]
        }

    return respond


def queue_depth(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def receive_all(sqs: Any, queue_url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [m["Body"] for m in messages]


def test_record_shape_matches_the_published_aws_sample(sqs: Any, turn_queues: QueueUrls) -> None:
    sample = json.loads(FIXTURE.read_text())
    standard_sample, fifo_sample = sample["Records"]
    send(
        sqs,
        turn_queues.queue_url,
        "Test message.",
        MessageAttributes={
            "myAttribute": {"DataType": "String", "StringValue": "myValue"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    recorder = Recorder()
    with EventSourceMapping(sqs, turn_queues.queue_url, recorder, function_name="courier-worker"):
        wait_until(lambda: recorder.bodies() == ["Test message."])

    [[record]] = recorder.batches
    optional = {"md5OfMessageAttributes"}  # in AWS's Go/Java samples and Powertools' model, not this one
    assert set(standard_sample) <= set(record) <= set(standard_sample) | optional
    assert set(record["attributes"]) == set(fifo_sample["attributes"])
    assert all(isinstance(value, str) for value in record["attributes"].values())
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["attributes"]["MessageGroupId"] == "g1"
    assert record["attributes"]["MessageDeduplicationId"] == "Test message."
    assert record["messageAttributes"]["myAttribute"] == standard_sample["messageAttributes"]["myAttribute"]
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="  # base64, as Lambda delivers it
    assert record["md5OfBody"] == standard_sample["md5OfBody"]  # same body, same MD5
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":" + turn_queues.queue_url.rsplit("/", 1)[1])
    assert record["awsRegion"] == "us-east-1"
    SqsModel.model_validate({"Records": [record]})  # Powertools' parser accepts it as an SQS event
    context = recorder.contexts[0]
    assert context.function_name == "courier-worker"
    assert 0 < context.get_remaining_time_in_millis() <= 60_000


def test_partial_batch_failure_leaves_exactly_the_failed_message(sqs: Any, turn_queues: QueueUrls) -> None:
    for body in ("a", "b", "c"):  # three groups, so one batch holds all three
        send(sqs, turn_queues.queue_url, body, group=body)
    recorder = Recorder(fail_bodies("b"))
    with EventSourceMapping(sqs, turn_queues.queue_url, recorder, max_concurrency=1):
        wait_until(lambda: len(recorder.batches) >= 1)
    assert sorted(recorder.bodies()) == ["a", "b", "c"]

    assert queue_depth(sqs, turn_queues.queue_url) == 1
    time.sleep(1.1)  # the failed message reappears once its visibility timeout has passed
    assert receive_all(sqs, turn_queues.queue_url) == ["b"]


@pytest.mark.parametrize(
    "first_response",
    [
        pytest.param("raise", id="handler-raises"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}, id="unknown-id"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": ""}]}, id="empty-id"),
    ],
)
def test_whole_batch_is_retried(sqs: Any, turn_queues: QueueUrls, first_response: Any) -> None:
    for body in ("a", "b"):
        send(sqs, turn_queues.queue_url, body, group=body)

    def respond(records: list[dict[str, Any]], call: int) -> Any:
        if call == 1:
            if first_response == "raise":
                raise RuntimeError("handler crashed")
            return first_response
        return None

    recorder = Recorder(respond)
    with EventSourceMapping(sqs, turn_queues.queue_url, recorder, max_concurrency=1) as esm:
        wait_until(lambda: sorted(recorder.bodies()) == ["a", "a", "b", "b"])
        assert esm.drain(60)
    retried = [r for batch in recorder.batches[1:] for r in batch]
    assert {r["attributes"]["ApproximateReceiveCount"] for r in retried} == {"2"}


def test_success_deletes_the_batch(sqs: Any, turn_queues: QueueUrls) -> None:
    for body in ("a", "b", "c"):
        send(sqs, turn_queues.queue_url, body, group=body)
    recorder = Recorder(lambda records, call: {"batchItemFailures": []})
    with EventSourceMapping(sqs, turn_queues.queue_url, recorder) as esm:
        assert esm.drain(60)
    assert sorted(recorder.bodies()) == ["a", "b", "c"]
    assert queue_depth(sqs, turn_queues.queue_url) == 0


def test_poison_message_reaches_the_dlq_after_max_receive_count(sqs: Any, turn_queues: QueueUrls) -> None:
    for body in ("ok-1", "poison", "ok-2"):
        send(sqs, turn_queues.queue_url, body, group=body)
    recorder = Recorder(fail_bodies("poison"))
    with EventSourceMapping(sqs, turn_queues.queue_url, recorder) as esm:
        assert esm.drain(60)
    assert sorted(recorder.bodies()) == ["ok-1", "ok-2", "poison", "poison"]  # maxReceiveCount = 2
    assert receive_all(sqs, turn_queues.dlq_url) == ["poison"]


def test_fifo_group_order_is_kept_across_a_retry(sqs: Any, turn_queues: QueueUrls) -> None:
    bodies = [f"m{i}" for i in range(1, 6)]
    for body in bodies:
        send(sqs, turn_queues.queue_url, body)
    processed: list[str] = []

    def respond(records: list[dict[str, Any]], call: int) -> None:
        if call == 1:
            raise RuntimeError("first batch fails as a whole")
        processed.extend(r["body"] for r in records)

    recorder = Recorder(respond)
    with EventSourceMapping(sqs, turn_queues.queue_url, recorder, batch_size=2, max_concurrency=2) as esm:
        assert esm.drain(60)
    assert [r["body"] for r in recorder.batches[0]] == ["m1", "m2"]
    assert processed == bodies


def test_one_batch_in_flight_per_group_and_groups_in_parallel(sqs: Any, turn_queues: QueueUrls) -> None:
    for index in range(4):
        for group in ("g1", "g2"):
            send(sqs, turn_queues.queue_url, f"{group}-{index}", group=group)
    lock = threading.Lock()
    in_flight: dict[str, int] = {"g1": 0, "g2": 0}
    overlaps: list[str] = []
    most_in_flight = 0
    order: dict[str, list[str]] = {"g1": [], "g2": []}

    def handler(event: dict[str, Any], context: Any) -> None:
        nonlocal most_in_flight
        groups = {r["attributes"]["MessageGroupId"] for r in event["Records"]}
        with lock:
            for group in groups:
                if in_flight[group]:
                    overlaps.append(group)
                in_flight[group] += 1
            most_in_flight = max(most_in_flight, sum(1 for n in in_flight.values() if n))
        time.sleep(0.15)
        with lock:
            for record in event["Records"]:
                order[record["attributes"]["MessageGroupId"]].append(record["body"])
            for group in groups:
                in_flight[group] -= 1

    with EventSourceMapping(sqs, turn_queues.queue_url, handler, batch_size=1, max_concurrency=3) as esm:
        assert esm.drain(60)
    assert overlaps == []
    assert order == {group: [f"{group}-{i}" for i in range(4)] for group in ("g1", "g2")}
    assert most_in_flight == 2  # the two groups did run side by side


def test_duplicate_within_the_dedup_window_is_dropped(sqs: Any, turn_queues: QueueUrls) -> None:
    send(sqs, turn_queues.queue_url, "first", dedup="turn-1")
    send(sqs, turn_queues.queue_url, "second copy of the same turn", dedup="turn-1")
    send(sqs, turn_queues.queue_url, "next turn", dedup="turn-2")
    recorder = Recorder()
    with EventSourceMapping(sqs, turn_queues.queue_url, recorder) as esm:
        assert esm.drain(60)
    assert recorder.bodies() == ["first", "next turn"]


def test_powertools_fifo_processor_retries_the_failure_and_everything_after_it(
    sqs: Any, turn_queues: QueueUrls
) -> None:
    """The worker's pattern: Powertools stops a FIFO batch at the first failure; the ESM retries
    exactly the reported messages, so the group is processed in order."""
    for body in ("m1", "m2", "m3"):
        send(sqs, turn_queues.queue_url, body)
    processed: list[str] = []
    failed_once: set[str] = set()

    def record_handler(record: Any) -> None:
        if record.body == "m2" and "m2" not in failed_once:
            failed_once.add("m2")
            raise RuntimeError("transient")
        processed.append(record.body)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        processor = SqsFifoPartialProcessor()
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    with EventSourceMapping(sqs, turn_queues.queue_url, handler) as esm:
        assert esm.drain(60)
    assert processed == ["m1", "m2", "m3"]


def test_powertools_logger_accepts_the_local_context(sqs: Any, turn_queues: QueueUrls) -> None:
    output = io.StringIO()
    logger = Logger(service="courier-test", stream=output)

    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: Any) -> None:
        logger.info("handled")

    send(sqs, turn_queues.queue_url, "x")
    with EventSourceMapping(sqs, turn_queues.queue_url, handler, function_name="courier-worker") as esm:
        assert esm.drain(60)
    line = json.loads(output.getvalue().splitlines()[-1])
    assert line["function_name"] == "courier-worker"
    assert line["function_request_id"]


def test_stop_ends_a_long_poll_instead_of_waiting_it_out(sqs: Any, turn_queues: QueueUrls) -> None:
    esm = EventSourceMapping(
        sqs, turn_queues.queue_url, Recorder(), wait_time_s=3600, max_concurrency=2
    ).start()
    time.sleep(0.2)  # let the pollers enter their hour-long poll of the empty queue
    stopper = threading.Thread(target=esm.stop, kwargs={"timeout": 3600})
    stopper.start()
    stopper.join(60)  # only a hang guard: stop takes milliseconds, the poll an hour
    assert not stopper.is_alive(), "stop() is waiting out the long poll"


def test_local_moto_serves_s3_for_large_bodies(moto: Any) -> None:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="courier-bodies-test")
    s3.put_object(Bucket="courier-bodies-test", Key="turns/t1.txt", Body=b"a long answer")
    assert s3.get_object(Bucket="courier-bodies-test", Key="turns/t1.txt")["Body"].read() == b"a long answer"


def test_local_moto_stops_and_frees_its_port() -> None:
    import socket
    import urllib.parse

    from courier_local.edge.sqs import LocalMoto

    moto = LocalMoto().start()
    port = urllib.parse.urlsplit(moto.endpoint_url).port
    moto.stop()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # would fail with EADDRINUSE if moto still listened
