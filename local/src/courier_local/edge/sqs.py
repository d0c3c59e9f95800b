"""Local SQS (moto's server, in-process) and a poller that invokes a handler the way Lambda's SQS
event source mapping (ESM) does.

What the poller reproduces (AWS Lambda developer guide, "Using Lambda with Amazon SQS"):
- records shaped like Lambda's (camelCase `messageAttributes`, string `attributes`, `md5OfBody`,
  `eventSource`, `eventSourceARN`, `awsRegion`), one invocation per received batch;
- `ReportBatchItemFailures`: only the listed message ids are retried, the rest are deleted; a
  raised exception, or a response naming an id that is not in the batch (or no id), retries the
  whole batch;
- retries happen by letting the visibility timeout expire (nothing is made visible early), so the
  queue's redrive policy moves a message to the DLQ once its receive count exceeds maxReceiveCount;
- FIFO: one in-flight batch per message group (SQS hides a group while any of its messages is in
  flight), groups in parallel up to `max_concurrency`.

Not reproduced: the 5→1,000 concurrency ramp-up, batching windows, batches over 10 messages.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from courier_infra.deployment import QueueSpec
from courier_local.edge.lambda_context import LambdaContext
from courier_local.lambda_runtime import PROVISIONING_ACCESS_KEY

logger = logging.getLogger(__name__)

DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

Handler = Callable[[dict[str, Any], Any], Mapping[str, Any] | None]


def _fix_moto_fifo_redelivery() -> None:
    """Make moto redeliver a FIFO group in order after its visibility timeout expires.

    moto 5.2.5 drops an expired message from its in-flight set only when its receive loop reaches
    it, and checks the group against the in-flight set right away: with [a, b] of one group both
    expired, `a` is skipped (b still counts as in flight) and `b` is delivered first. Releasing
    every expired message before the loop starts gives AWS's order. Patched once per process,
    since moto's backends are process-global.
    """
    from moto.sqs import models

    backend_class: Any = models.SQSBackend
    if getattr(backend_class, "_courier_fifo_fix", False):
        return
    original = backend_class.receive_message

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        for message in list(queue.pending_messages):
            if message.visible:
                queue.pending_messages.discard(message)
        return original(self, queue_name, *args, **kwargs)

    backend_class.receive_message = receive_message
    backend_class._courier_fifo_fix = True


class LocalMoto:
    """moto's server on 127.0.0.1 and a free port, serving SQS and S3 (and any other moto service).

    moto keeps its state in process-global backends: two LocalMoto instances in one process share
    queues and buckets. Use unique names, or `reset()`.
    """

    def __init__(self, *, region: str = "us-east-1") -> None:
        self.region = region
        self._server: ThreadedMotoServer | None = None
        self._endpoint_url: str | None = None

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise RuntimeError("LocalMoto is not started")
        return self._endpoint_url

    def start(self) -> LocalMoto:
        _fix_moto_fifo_redelivery()
        # moto's server logs every request through werkzeug's logger; keep warnings only.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self._endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        # ThreadedMotoServer.stop() shuts the loop down but leaves the listening socket open.
        if server._server is not None:
            server._server.server_close()
        self._endpoint_url = None

    def reset(self) -> None:
        """Forget every queue, message and bucket (moto's own reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310 (our own local http URL)
            pass

    def client(self, service_name: str) -> Any:
        """A boto3 client for `service_name` pointed at this server, with dummy credentials that say
        the calls are the stack's own (provisioning), not a function's."""
        return boto3.client(  # type: ignore[call-overload]
            service_name,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=PROVISIONING_ACCESS_KEY,
            aws_secret_access_key=DUMMY_CREDENTIALS["aws_secret_access_key"],
        )

    def __enter__(self) -> LocalMoto:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(frozen=True)
class QueueUrls:
    queue_url: str
    dlq_url: str


def create_turn_queues(
    sqs_client: Any, name: str, *, visibility_timeout_s: int, max_receive_count: int = 5
) -> QueueUrls:
    """The turn queue as deployed: FIFO, dedup by explicit MessageDeduplicationId (no content-based
    dedup), and a FIFO DLQ that receives a message once its receive count exceeds `max_receive_count`."""
    base = name.removesuffix(".fifo")
    dlq_url = sqs_client.create_queue(
        QueueName=f"{base}-dlq.fifo",
        Attributes={
            "FifoQueue": "true",
            "ContentBasedDeduplication": "false",
            "MessageRetentionPeriod": "1209600",
        },
    )["QueueUrl"]
    dlq_arn = sqs_client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs_client.create_queue(
        QueueName=f"{base}.fifo",
        Attributes={
            "FifoQueue": "true",
            "ContentBasedDeduplication": "false",
            "VisibilityTimeout": str(visibility_timeout_s),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
            ),
        },
    )["QueueUrl"]
    return QueueUrls(queue_url=queue_url, dlq_url=dlq_url)


def create_declared_queues(sqs_client: Any, queues: Sequence[QueueSpec]) -> dict[str, str]:
    """Create the queues a deployment declares, with their declared attributes (dead-letter targets
    first, so redrive policies name queues that exist). Returns queue name -> local queue URL.

    moto's account and the Pulumi mocks' are the same (123456789012), so local queue ARNs are the
    declared ones, and a redrive policy or an environment variable naming a queue ARN holds as is.
    """
    urls: dict[str, str] = {}
    for queue in sorted(queues, key=lambda queue: queue.dead_letter_target_arn is not None):
        attributes = {
            "VisibilityTimeout": str(queue.visibility_timeout_s),
            "MessageRetentionPeriod": str(queue.message_retention_s),
        }
        if queue.fifo:
            attributes["FifoQueue"] = "true"
            attributes["ContentBasedDeduplication"] = str(queue.content_based_deduplication).lower()
        if queue.dead_letter_target_arn is not None:
            redrive = {
                "deadLetterTargetArn": queue.dead_letter_target_arn,
                "maxReceiveCount": queue.max_receive_count,
            }
            attributes["RedrivePolicy"] = json.dumps(redrive)
        url = sqs_client.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
        arn = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        if arn != queue.arn:
            raise ValueError(f"local queue ARN {arn} differs from the declared {queue.arn}")
        urls[queue.name] = url
    return urls


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """boto3's PascalCase MessageAttributeValue → the camelCase shape of a Lambda SQS record."""
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        binary = value["BinaryValue"]
        # Lambda delivers binary values base64-encoded, as SQS's JSON protocol does.
        attribute["binaryValue"] = (
            base64.b64encode(binary).decode() if isinstance(binary, bytes | bytearray) else binary
        )
    attribute["stringListValues"] = list(value.get("StringListValues", []))
    attribute["binaryListValues"] = [
        base64.b64encode(item).decode() if isinstance(item, bytes | bytearray) else item
        for item in value.get("BinaryListValues", [])
    ]
    attribute["dataType"] = value["DataType"]
    return attribute


def to_lambda_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One received SQS message as a record of Lambda's SQS event."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {key: str(value) for key, value in message.get("Attributes", {}).items()},
        "messageAttributes": {
            name: _lambda_message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(
    response: object, batch_ids: list[str], *, report_batch_item_failures: bool
) -> set[str]:
    """Which messages of a batch to retry, given the handler's return value (AWS's rules)."""
    if not report_batch_item_failures or not isinstance(response, Mapping):
        return set()
    failures = response.get("batchItemFailures")
    if not failures:  # missing, null or empty: the whole batch succeeded
        return set()
    known = set(batch_ids)
    failed: set[str] = set()
    for failure in failures:
        item_id = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not item_id or item_id not in known:
            logger.warning("batchItemFailures names %r, not a message of this batch: retrying all", item_id)
            return known
        failed.add(item_id)
    return failed


class EventSourceMapping:
    """Polls one queue and invokes `handler(event, context)` as Lambda's SQS ESM does.

    `max_concurrency` threads poll; each takes one batch at a time (≤ `batch_size`, at most 10) and
    invokes the handler in its own thread, like that many concurrent Lambda instances.
    `visibility_timeout_s` overrides the queue's visibility timeout on receive: it is how long a
    failed message stays hidden before its retry, so tests can make retries fast.
    """

    def __init__(
        self,
        sqs_client: Any,
        queue_url: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        max_concurrency: int = 2,
        wait_time_s: float = 1.0,
        visibility_timeout_s: int | None = None,
        report_batch_item_failures: bool = True,
        function_name: str = "courier-worker",
        function_timeout_s: float = 60.0,
        poll_interval_s: float = 0.05,
    ) -> None:
        if not 1 <= batch_size <= 10:
            raise ValueError("batch_size must be 1..10 (FIFO queues allow at most 10)")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.handler = handler
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.wait_time_s = wait_time_s
        self.visibility_timeout_s = visibility_timeout_s
        self.report_batch_item_failures = report_batch_item_failures
        self.function_name = function_name
        self.function_timeout_s = function_timeout_s
        self.poll_interval_s = poll_interval_s
        self.region: str = sqs_client.meta.region_name
        self.queue_arn: str = sqs_client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.invocations = 0  # handler calls so far, for tests and logs
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._state = threading.Condition()
        self._batches_in_flight = 0
        # moto's receive is not atomic: two concurrent receives can both take one FIFO group.
        # Serialising our own receives keeps "one in-flight batch per group" (a receive takes ms).
        self._receive_lock = threading.Lock()

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> EventSourceMapping:
        if self._threads:
            raise RuntimeError("already started")
        self._stopping.clear()
        for index in range(self.max_concurrency):
            thread = threading.Thread(
                target=self._poll_loop, name=f"esm-{self.function_name}-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling; waits up to `timeout` for batches being handled to finish."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in self._threads if thread.is_alive()]
        if alive:
            logger.warning("event source mapping threads still busy after stop: %s", alive)
        self._threads = []

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until the queue holds no message (visible or in flight) and no batch is being handled.

        Returns False on timeout. Messages waiting for a retry count as not drained.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            with self._state:
                idle = self._batches_in_flight == 0
            if idle and all(int(value) == 0 for value in attributes.values()):
                return True
            time.sleep(self.poll_interval_s)
        return False

    def __enter__(self) -> EventSourceMapping:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # polling ---------------------------------------------------------------------------------
    def _receive(self) -> list[dict[str, Any]]:
        """One long poll: up to `wait_time_s`, as SQS long polling.

        moto's own blocking receive spins on a FIFO group that is in flight, so we ask it without
        waiting, every `poll_interval_s` (~20 requests/s when idle: about 8% of one core).
        """
        deadline = time.monotonic() + self.wait_time_s
        extra: dict[str, Any] = {}
        if self.visibility_timeout_s is not None:
            extra["VisibilityTimeout"] = self.visibility_timeout_s
        while not self._stopping.is_set():
            with self._receive_lock:
                messages: list[dict[str, Any]] = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=0,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                    **extra,
                ).get("Messages", [])
                if messages or time.monotonic() >= deadline:
                    return messages
                # Idle: wait holding the lock, so one poller asks moto at a time however many there are.
                self._stopping.wait(self.poll_interval_s)
        return []

    def _poll_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                messages = self._receive()
            except Exception:  # moto stopped, network hiccup: log, back off, keep polling
                if not self._stopping.is_set():
                    logger.exception("receive from %s failed", self.queue_url)
                    self._stopping.wait(0.5)
                continue
            if not messages:
                continue
            with self._state:
                self._batches_in_flight += 1
            try:
                self._invoke(messages)
            finally:
                with self._state:
                    self._batches_in_flight -= 1
                    self._state.notify_all()

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        event = {
            "Records": [to_lambda_record(m, queue_arn=self.queue_arn, region=self.region) for m in messages]
        }
        context = LambdaContext(
            function_name=self.function_name, timeout_s=self.function_timeout_s, region=self.region
        )
        batch_ids = [m["MessageId"] for m in messages]
        with self._state:
            self.invocations += 1
        try:
            response = self.handler(event, context)
        except Exception:
            # Lambda: "If your function throws an exception, the entire batch is considered a
            # complete failure." Nothing is deleted; the batch reappears after the visibility timeout.
            logger.exception(
                "handler %s raised: the whole batch of %d is retried", self.function_name, len(messages)
            )
            return
        failed = failed_message_ids(
            response, batch_ids, report_batch_item_failures=self.report_batch_item_failures
        )
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        self._delete(succeeded)

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            result = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in result.get("Failed", []):
                logger.warning("could not delete a processed message: %s", failure)
