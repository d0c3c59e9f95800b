"""The worker's composition root: settings → model, clients, engine (once per container) → Worker.

The local stack and the tests inject the offline model, a poster pointed at the local gateway and
an engine on their database; in AWS everything is built from the settings.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from sqlalchemy import Engine
from strands.models import Model

from courier_shared.db.aws import connect
from courier_shared.db.store import ChatStore
from courier_shared.queue import TurnRequest
from courier_worker.adapters import ApiGatewayConnections, build_s3_body_store
from courier_worker.bedrock import build_bedrock_model
from courier_worker.observability import MetricUnit, logger, metrics, record_failure
from courier_worker.ports import BodyStore, ConnectionPoster
from courier_worker.settings import WorkerSettings
from courier_worker.tools import ToolRegistry, default_tools
from courier_worker.turn import TurnReport, TurnRunner, utcnow

T = TypeVar("T")
# Threads for blocking calls of one turn: the Bedrock reader, @connections posts (one per
# listener at a time), database calls and sync tools. asyncio's default (cpu + 4) is too small.
TURN_THREADS = 16


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
    """Processes SQS FIFO batches of turn requests; one per container."""

    def __init__(self, *, runner: TurnRunner) -> None:
        self.runner = runner
        self.reports: list[TurnReport] = []  # the last batch's reports (tests, benchmark)

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """The Lambda entry: records in order; a failed record fails the rest of its message group."""
        self.reports = []
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        processor.raise_on_entire_batch_failure = False  # report the failures; never fail the batch blindly
        try:
            response = process_partial_response(
                event=event, record_handler=self._process_record, processor=processor, context=context
            )
        finally:
            if metrics.metric_set:  # nothing to publish when every record was a no-op
                metrics.flush_metrics()
        return dict(response)

    def _process_record(self, record: SQSRecord) -> None:
        # A body that is not a turn request raises here: the record fails, SQS retries it, the DLQ keeps it.
        request = TurnRequest.model_validate_json(record.body)
        keys = {
            "turn_id": str(request.turn_id),
            "conversation_id": str(request.conversation_id),
            "connection_id": request.origin_connection_id,
            "message_id": record.message_id,
        }
        logger.append_keys(**keys)
        try:
            report = run_coroutine(lambda: self.runner.run(request))
        finally:
            logger.remove_keys(list(keys))
        self.reports.append(report)
        self._publish_metrics(report)

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
        if report.error_code is not None:
            record_failure(report.error_code)
        logger.info(
            "turn done",
            extra={
                "turn_id": str(report.turn_id),
                "status": report.status.value,
                "attempt": report.attempt,
                "error_code": report.error_code,
                "frames": report.frames,
                "posts": report.posts,
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
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], datetime] = utcnow,
) -> Worker:
    """Build everything a container reuses: the model, the boto3 clients, the database engine."""
    if engine is None:
        engine = connect(settings, region=settings.aws_region)
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
    return Worker(runner=runner)
