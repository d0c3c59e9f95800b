"""The worker's composition root: settings → model, clients, engine (once per container) → Worker.

The local stack and the tests inject the offline model, a poster pointed at the local gateway and
an engine on their database; in AWS everything is built from the settings.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    ExceptionInfo,
    FailureResponse,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json, ValidationError
from sqlalchemy import Engine
from strands.models import Model

from courier_shared.db.aws import connect
from courier_shared.db.store import ChatStore
from courier_shared.queue import TurnRequest
from courier_worker.adapters import ApiGatewayConnections, SqsVisibility, build_s3_body_store
from courier_worker.bedrock import build_bedrock_model
from courier_worker.failures import RetryLater
from courier_worker.observability import MetricUnit, logger, metrics, record_outcome
from courier_worker.ports import BodyStore, ConnectionPoster, QueueVisibility
from courier_worker.settings import WorkerSettings
from courier_worker.tools import ToolRegistry, default_tools
from courier_worker.turn import TurnReport, TurnRunner, utcnow

T = TypeVar("T")
# Threads for blocking calls of one turn: the Bedrock reader, @connections posts (one per
# listener at a time), database calls and sync tools. asyncio's default (cpu + 4) is too small.
TURN_THREADS = 16
MAX_RETRY_BACKOFF_S = 60
# A dead-letter record that cannot be read stays in the DLQ for a person; it is looked at again
# after this long (SQS's maximum visibility timeout), with one more log line.
UNREADABLE_DEAD_LETTER_VISIBILITY_S = 12 * 3600


class TurnRequestRecord(SqsRecordModel):
    """An SQS record whose body is a turn request: the batch processors validate it (model=...)."""

    body: Json[TurnRequest]  # the body, parsed


# A record whose body is not a TurnRequest: Powertools fails it before our handler sees it.
OnUnreadable = Callable[[SQSRecord, ValidationError], None]


def _unreadable_error(record: Any, exception: ExceptionInfo) -> ValidationError | None:
    """The ValidationError of a record Powertools could not read as a TurnRequestRecord (it passes
    those on as a plain SQSRecord), else None."""
    error = exception[1]
    return error if isinstance(record, SQSRecord) and isinstance(error, ValidationError) else None


class TurnRecordProcessor(SqsFifoPartialProcessor):
    """The turn queue's processor: FIFO, a failed record fails the rest of its message group, and
    an unreadable record is reported to `on_unreadable` (logged with its message id) as it fails."""

    def __init__(self, on_unreadable: OnUnreadable) -> None:
        super().__init__(model=TurnRequestRecord, skip_group_on_error=True)
        self._on_unreadable = on_unreadable

    def _process_record(self, record: dict[str, Any]) -> Any:
        try:
            return super()._process_record(record)  # type: ignore[no-untyped-call]
        except ValidationError:
            # Powertools reads a record skipped after its group failed with the model, outside its
            # own guard: an unreadable one would fail the whole batch. It fails alone instead.
            return self.failure_handler(SQSRecord(record), sys.exc_info())

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        if (error := _unreadable_error(record, exception)) is not None:
            self._on_unreadable(record, error)
        return super().failure_handler(record, exception)


class DeadLetterProcessor(BatchProcessor):
    """The dead-letter queue's processor (standard SQS semantics), reading records as the turn
    queue's processor does."""

    def __init__(self, on_unreadable: OnUnreadable) -> None:
        super().__init__(EventType.SQS, model=TurnRequestRecord)
        self._on_unreadable = on_unreadable

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        if (error := _unreadable_error(record, exception)) is not None:
            self._on_unreadable(record, error)
        return super().failure_handler(record, exception)


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, even if this thread already runs a loop."""

    async def with_threads() -> T:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=TURN_THREADS, thread_name_prefix="turn"))
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(with_threads())
    outcome: dict[str, Any] = {}

    def in_thread() -> None:
        try:
            outcome["value"] = asyncio.run(with_threads())
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=in_thread, name="courier-worker-turn")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


class Worker:
    """Processes SQS FIFO batches of turn requests, and dead-lettered ones; one per container."""

    def __init__(
        self,
        *,
        runner: TurnRunner,
        queue: QueueVisibility | None = None,
        dead_letter_queue_arn: str | None = None,
    ) -> None:
        self.runner = runner
        self.queue = queue
        self.dead_letter_queue_arn = dead_letter_queue_arn
        self.reports: list[TurnReport] = []  # the last batch's reports (tests, benchmark)
        self._deadline: float | None = None
        self._retry_in: dict[str, int] = {}  # message id → seconds until its retry

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """The Lambda entry. Turn records run in order; a failed record fails the rest of its message
        group. Dead-letter records end their turns. Records given up for a temporary reason are
        made visible again after a short backoff (not the queue's visibility timeout)."""
        self.reports = []
        self._retry_in = {}
        self._deadline = self._deadline_of(context)
        records = event.get("Records", [])
        dead_letters = self.dead_letter_queue_arn is not None and any(
            r.get("eventSourceARN") == self.dead_letter_queue_arn for r in records
        )
        processor: BatchProcessor
        record_handler: Callable[[TurnRequestRecord], None]
        if dead_letters:  # one event comes from one event source mapping
            # Unreadable, it stays in the DLQ for a person: looked at again in 12 hours.
            processor = DeadLetterProcessor(self._unreadable(UNREADABLE_DEAD_LETTER_VISIBILITY_S))
            record_handler = self._process_dead_letter
        else:
            # Unreadable: on to the DLQ quickly, not every visibility timeout.
            processor, record_handler = TurnRecordProcessor(self._unreadable(0)), self._process_record
        processor.raise_on_entire_batch_failure = False  # report the failures; never fail the batch blindly
        try:
            response = process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
            self._hasten_retries(records, response)
        finally:
            if metrics.metric_set:  # nothing to publish when every record was a no-op
                metrics.flush_metrics()
        return dict(response)

    def end_abandoned_turns(self) -> list[uuid.UUID]:
        """Recovery: end every streaming turn whose lease has lapsed and whose record will not come
        back (e.g. the local stack was killed with its in-memory queue), telling its listeners."""
        return run_coroutine(lambda: self.runner.ender().end_abandoned())

    def _deadline_of(self, context: Any) -> float | None:
        """When the runtime will stop this invocation, on the runner's clock (None: no context)."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return None
        return self.runner.clock() + int(remaining()) / 1000

    def _process_record(self, record: TurnRequestRecord) -> None:
        request = record.body
        keys = {
            "turn_id": str(request.turn_id),
            "conversation_id": str(request.conversation_id),
            "connection_id": request.origin_connection_id,
            "message_id": record.messageId,
        }
        # Per thread (and the asyncio tasks it starts): the local stack runs several containers in
        # one process, sharing the logger, and each line must name its own turn.
        logger.thread_safe_append_keys(**keys)
        try:
            if self._deadline is not None:
                left = self._deadline - self.runner.clock()
                if left < 1.5 * self.runner.settings.deadline_margin_s:
                    logger.info("too little time left in this invocation to start the turn: handed back")
                    raise RetryLater("deadline", 0)
            report = run_coroutine(lambda: self.runner.run(request, deadline=self._deadline))
        except RetryLater as retry:
            self._retry_in[record.messageId] = delay = self._backoff(record, retry)
            logger.info("record handed back for a retry", extra={"reason": retry.reason, "retry_in_s": delay})
            raise
        finally:
            logger.thread_safe_remove_keys(list(keys))
        self.reports.append(report)
        self._publish_metrics(report)

    def _process_dead_letter(self, record: TurnRequestRecord) -> None:
        """A record the turn queue gave up on: its turn ends `failed`, its listeners are told."""
        request = record.body
        keys = {"turn_id": str(request.turn_id), "message_id": record.messageId}
        logger.thread_safe_append_keys(**keys)
        try:
            status = run_coroutine(lambda: self.runner.ender().end_dead_lettered(request))
        except Exception:
            self._retry_in[record.messageId] = self._backoff(record, RetryLater("dead_letter_failed"))
            logger.exception("could not end a dead-lettered turn: retrying")
            raise
        finally:
            logger.thread_safe_remove_keys(list(keys))
        if status is not None:
            logger.warning(
                "dead-lettered turn ended", extra={"turn_id": str(request.turn_id), "status": status}
            )
            metrics.add_metric(name="DeadLetteredTurns", unit=MetricUnit.Count, value=1)
            record_outcome("dead_lettered")

    def _unreadable(self, retry_in: int) -> OnUnreadable:
        def report(record: SQSRecord, error: ValidationError) -> None:
            # The body is not logged (it is not ours to trust); where it broke is.
            first = error.errors(include_input=False, include_url=False)[0]
            logger.error(
                "unreadable turn request: the record fails",
                extra={
                    "message_id": record.message_id,
                    "event_source_arn": record.event_source_arn,
                    "receive_count": (record.get("attributes") or {}).get("ApproximateReceiveCount"),
                    "body_bytes": len(record.body.encode()),
                    "problem": first["type"],
                    "field": ".".join(str(part) for part in first["loc"]),
                },
            )
            self._retry_in[record.message_id] = retry_in

        return report

    def _backoff(self, record: TurnRequestRecord, retry: RetryLater) -> int:
        if retry.delay_s is not None:
            return max(0, min(round(retry.delay_s), MAX_RETRY_BACKOFF_S))
        receives = int(record.attributes.ApproximateReceiveCount or 1)
        return int(min(self.runner.settings.retry_backoff_s * 2 ** (receives - 1), MAX_RETRY_BACKOFF_S))

    def _hasten_retries(self, records: list[dict[str, Any]], response: Any) -> None:
        """Make failed records visible again after their backoff. Records skipped because an earlier
        record of their FIFO group failed follow it: SQS holds a group while any of it is in flight."""
        if self.queue is None or not self._retry_in:
            return
        failed = {str(item["itemIdentifier"]) for item in response.get("batchItemFailures", [])}
        group_delay: dict[str, int] = {}
        for record in records:
            group = record.get("attributes", {}).get("MessageGroupId")
            delay = self._retry_in.get(record["messageId"])
            if group is not None and delay is not None:
                group_delay.setdefault(group, delay)
        for record in records:
            if record["messageId"] not in failed:
                continue
            group = record.get("attributes", {}).get("MessageGroupId")
            delay = self._retry_in.get(record["messageId"], group_delay.get(group) if group else None)
            if delay is None:
                continue
            try:
                self.queue.retry_after(record["eventSourceARN"], record["receiptHandle"], delay)
            except Exception:
                # The queue's visibility timeout still brings the record back, only later.
                logger.warning("could not shorten a record's wait for its retry", exc_info=True)

    @staticmethod
    def _publish_metrics(report: TurnReport) -> None:
        if report.status is None:
            return
        metrics.add_metric(name="FramesPosted", unit=MetricUnit.Count, value=report.posts)
        metrics.add_metric(name="Duration", unit=MetricUnit.Milliseconds, value=report.duration_ms)
        if report.output_tokens is not None:
            metrics.add_metric(name="OutputTokens", unit=MetricUnit.Count, value=report.output_tokens)
        if report.time_to_first_token_ms is not None:
            metrics.add_metric(
                name="TimeToFirstToken", unit=MetricUnit.Milliseconds, value=report.time_to_first_token_ms
            )
        if report.post_latency_ms is not None and report.post_latency_max_ms is not None:
            metrics.add_metric(name="PostLatency", unit=MetricUnit.Milliseconds, value=report.post_latency_ms)
            metrics.add_metric(
                name="PostLatencyMax", unit=MetricUnit.Milliseconds, value=report.post_latency_max_ms
            )
        record_outcome(report.error_code or report.status.value)
        logger.info(
            "turn done",
            extra={
                "turn_id": str(report.turn_id),
                "status": report.status.value,
                "attempt": report.attempt,
                "error_code": report.error_code,
                "frames": report.frames,
                "posts": report.posts,
                "post_latency_ms": report.post_latency_ms,
                "db_writes": report.db_writes,
                "time_to_first_token_ms": report.time_to_first_token_ms,
                "output_tokens": report.output_tokens,
                "duration_ms": report.duration_ms,
            },
        )


def build_worker(
    settings: WorkerSettings,
    *,
    model: Model | None = None,
    connections: ConnectionPoster | None = None,
    bodies: BodyStore | None = None,
    engine: Engine | None = None,
    tools: ToolRegistry | None = None,
    queue: QueueVisibility | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], datetime] = utcnow,
) -> Worker:
    """Build everything a container reuses: the model, the boto3 clients, the database engine."""
    if engine is None:
        engine = connect(settings, logger=logger, region=settings.aws_region)
    if connections is None:
        connections = ApiGatewayConnections(region_name=settings.aws_region)
        if settings.connections_endpoint_url is not None:
            # Building the client takes ~40 ms: pay it at cold start, not on a turn's first token.
            connections.client(settings.connections_endpoint_url)
    runner = TurnRunner(
        settings=settings,
        store=ChatStore(engine),
        model=model if model is not None else build_bedrock_model(settings),
        poster=connections,
        bodies=bodies if bodies is not None else build_s3_body_store(settings),
        tools=tools if tools is not None else default_tools(),
        clock=clock,
        wall_clock=wall_clock,
    )
    if queue is None:
        queue = SqsVisibility(endpoint_url=settings.sqs_endpoint_url)  # boto3 client built on first use
    return Worker(runner=runner, queue=queue, dead_letter_queue_arn=settings.dead_letter_queue_arn)
