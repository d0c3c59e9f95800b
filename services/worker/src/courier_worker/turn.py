"""Running one turn: start an attempt, stream the agent's answer to the listeners, store the outcome.

Database calls are blocking (SQLAlchemy) and run in threads, so text keeps flowing while they
happen. Per turn the database sees one write for the start, one per save interval while text
arrives, and one at the end (with the tool invocation rows).
"""

from __future__ import annotations

import asyncio
import enum
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from strands import Agent
from strands.hooks import (
    AfterToolCallEvent,
    BeforeModelCallEvent,
    BeforeToolCallEvent,
    HookProvider,
    HookRegistry,
)
from strands.models import Model
from strands.types.content import Message
from strands.types.exceptions import (
    ContextWindowOverflowException,
    MaxTokensReachedException,
    ModelThrottledException,
)

from courier_shared.db.models import Turn
from courier_shared.db.store import ChatStore, Owner, TurnNotOpen, TurnOutcome
from courier_shared.protocol import (
    AbortPart,
    DataToolStatusPart,
    ErrorPart,
    FinishMetadata,
    FinishPart,
    FinishStepPart,
    StartMetadata,
    StartPart,
    StartStepPart,
    TextEndPart,
    TextStartPart,
    ToolInputAvailablePart,
    ToolOutputAvailablePart,
    ToolStatus,
    TurnStatus,
    Usage,
)
from courier_shared.queue import TurnRequest
from courier_worker.bedrock import model_retry_strategy
from courier_worker.observability import logger
from courier_worker.ports import BodyStore, ConnectionPoster
from courier_worker.settings import WorkerSettings
from courier_worker.streaming import Outbox, Publisher
from courier_worker.tools import ToolRegistry, result_output, trim_output, trimmed_input

Clock = Callable[[], float]
WallClock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class StopCause(enum.Enum):
    CANCELLED = "cancelled"  # the user sent `cancel`
    NO_LISTENERS = "no_listeners"  # nobody listened for the whole grace period
    TOOL_FAILED = "tool_failed"  # a tool crashed
    INFRASTRUCTURE = "infrastructure"  # the database failed under us: the record must be retried


@dataclass(frozen=True)
class TurnFailure:
    code: str
    safe_text: str


FAILURES: dict[str, TurnFailure] = {
    f.code: f
    for f in (
        TurnFailure("model_throttled", "The model is busy right now. Please try again in a moment."),
        TurnFailure("model_rejected", "The model could not process this request."),
        TurnFailure("model_access_denied", "The model is not available to this service right now."),
        TurnFailure("model_not_found", "The configured model does not exist in this region."),
        TurnFailure(
            "context_overflow", "This conversation is too long for the model. Please start a new one."
        ),
        TurnFailure("model_unavailable", "The model did not answer in time. Please try again."),
        TurnFailure("model_error", "The model failed to answer. Please try again."),
        TurnFailure("tool_failed", "A tool failed while preparing the answer. Please try again."),
        TurnFailure("no_callback_url", "The answer could not be delivered."),
        TurnFailure("internal", "Something went wrong while answering. Please try again."),
    )
}
CLIENT_ERROR_CODES = {
    "ThrottlingException": "model_throttled",
    "throttlingException": "model_throttled",
    "ServiceQuotaExceededException": "model_throttled",
    "ModelNotReadyException": "model_throttled",
    "ValidationException": "model_rejected",
    "validationException": "model_rejected",
    "AccessDeniedException": "model_access_denied",
    "ResourceNotFoundException": "model_not_found",
    "ModelTimeoutException": "model_unavailable",
    "ServiceUnavailableException": "model_unavailable",
    "serviceUnavailableException": "model_unavailable",
}


def classify_model_error(error: BaseException) -> TurnFailure:
    """The failure to store for an exception out of the agent loop (strands may wrap the cause)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ModelThrottledException):
            return FAILURES["model_throttled"]
        if isinstance(seen, ContextWindowOverflowException):
            return FAILURES["context_overflow"]
        if isinstance(seen, ClientError):
            code = str(seen.response.get("Error", {}).get("Code", ""))
            return FAILURES[CLIENT_ERROR_CODES.get(code, "model_error")]
        if isinstance(seen, BotoCoreError):
            return FAILURES["model_unavailable"]
        seen = seen.__cause__
    return FAILURES["internal"]


@dataclass
class TurnReport:
    """What happened to one record: for logs, metrics, tests and the benchmark."""

    turn_id: uuid.UUID
    status: TurnStatus | None  # None: nothing to do (the turn was already finished)
    attempt: int = 0
    error_code: str | None = None
    frames: int = 0
    posts: int = 0
    db_writes: int = 0
    time_to_first_token_ms: int | None = None
    output_tokens: int | None = None
    duration_ms: int = 0


@dataclass
class _ToolCall:
    seq: int
    tool_call_id: str
    tool_name: str
    tool_input: dict[str, Any]
    output_summary: str | None = None
    status: str = "running"
    duration_ms: int | None = None


@dataclass
class _Started:
    attempt: int
    user_text: str
    history: list[Message]
    listeners: tuple[str, ...]
    cancel_requested: bool
    history_refs: list[str] = field(default_factory=list)


class TurnRunner:
    """Runs turns. Built once per container; `run` is called once per queued turn request."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        store: ChatStore,
        model: Model,
        poster: ConnectionPoster,
        bodies: BodyStore | None,
        tools: ToolRegistry,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.model = model
        self.poster = poster
        self.bodies = bodies
        self.tools = tools
        self.clock = clock
        self.wall_clock = wall_clock

    @property
    def model_label(self) -> str:
        config = self.model.get_config()
        model_id = config.get("model_id") if isinstance(config, dict) else None
        return str(model_id or type(self.model).__name__)

    async def run(self, request: TurnRequest) -> TurnReport:
        return await _TurnExecution(self, request).run()


class _TurnExecution:
    """The state of one attempt of one turn."""

    def __init__(self, runner: TurnRunner, request: TurnRequest) -> None:
        self.runner = runner
        self.settings = runner.settings
        self.request = request
        self.owner = Owner(request.tenant_id, request.user_id)
        self.report = TurnReport(turn_id=request.turn_id, status=None)
        self.stop_cause: StopCause | None = None
        self.infrastructure_error: BaseException | None = None
        self.agent: Agent | None = None
        self.publisher: Publisher | None = None
        self.tool_calls: dict[str, _ToolCall] = {}
        self.text_id: str | None = None
        self.text_blocks = 0
        self.step_open = False
        self.started_at = runner.clock()
        self.first_text_at: float | None = None
        self.grace_timer: asyncio.TimerHandle | None = None
        self.saved_seq = -1
        self.saved_at = runner.clock()

    # ------------------------------------------------------------ the attempt

    async def run(self) -> TurnReport:
        started = await self._start()
        if started is None:
            return self.report
        self.report.attempt = started.attempt
        endpoint = self.settings.connections_endpoint_url or self.request.callback_url
        if endpoint is None:
            logger.error("no callback URL for the turn: set CONNECTIONS_ENDPOINT_URL")
            await self._finish(TurnStatus.FAILED, "", -1, failure=FAILURES["no_callback_url"])
            return self.report
        outbox = Outbox(flush_interval_s=self.settings.flush_interval_s)
        publisher = Publisher(
            turn_id=self.request.turn_id,
            attempt=started.attempt,
            endpoint_url=endpoint,
            poster=self.runner.poster,
            outbox=outbox,
            listeners=started.listeners,
            clock=self.runner.clock,
            on_listener_count=self._listener_count_changed,
            on_gone=self._remove_listener,
        )
        self.publisher = publisher
        publisher.emit(
            StartPart(
                message_id=str(self.request.turn_id),
                message_metadata=StartMetadata(model=self.runner.model_label, attempt=started.attempt),
            )
        )
        publisher.start()
        try:
            if started.cancel_requested:  # cancelled while queued for a retry: no model call
                self.stop_cause = StopCause.CANCELLED
                await self._end(TurnStatus.CANCELLED, AbortPart(), {}, stop_reason="cancelled")
            else:
                await self._stream(started)
        finally:
            if self.grace_timer is not None:
                self.grace_timer.cancel()
        if self.infrastructure_error is not None:
            await publisher.close()
            raise self.infrastructure_error
        return self.report

    async def _start(self) -> _Started | None:
        """The start write: queued|streaming → streaming, attempt + 1. None if the turn is finished."""

        def start() -> _Started | None:
            with self.runner.store.unit_of_work() as repo:
                try:
                    turn = repo.start_attempt(
                        self.owner, self.request.turn_id, self.runner.model_label, self.runner.wall_clock()
                    )
                except TurnNotOpen:
                    return None
                control = repo.turn_control(self.owner, turn.id)
                earlier = repo.recent_turns(self.owner, turn, self.settings.history_window)
                return self._with_history(turn, control.listeners, control.cancel_requested, earlier)

        started = await asyncio.to_thread(start)
        if started is None:
            logger.info("turn already finished: acknowledged without running the model")
            return None
        self.report.db_writes += 1
        if started.history_refs and self.runner.bodies is not None:
            await asyncio.to_thread(self._load_history_bodies, started)
        logger.info(
            "turn started", extra={"attempt": started.attempt, "history_turns": len(started.history) // 2}
        )
        return started

    def _with_history(
        self, turn: Turn, listeners: tuple[str, ...], cancel_requested: bool, earlier: list[Turn]
    ) -> _Started:
        history: list[Message] = []
        refs: list[str] = []
        for past in earlier:
            answer = past.assistant_text or "(no answer)"
            history.append({"role": "user", "content": [{"text": past.user_text}]})
            history.append({"role": "assistant", "content": [{"text": answer}]})
            refs.append(past.body_ref or "")
        return _Started(turn.attempt, turn.user_text, history, listeners, cancel_requested, refs)

    def _load_history_bodies(self, started: _Started) -> None:
        assert self.runner.bodies is not None
        for index, ref in enumerate(started.history_refs):
            if ref:
                text = self.runner.bodies.get_text(ref)
                started.history[2 * index + 1] = {"role": "assistant", "content": [{"text": text}]}

    async def _stream(self, started: _Started) -> None:
        publisher = self.publisher
        assert publisher is not None
        agent = Agent(
            model=self.runner.model,
            messages=[dict(m) for m in started.history],  # type: ignore[misc]  # strands mutates the list
            system_prompt=self.settings.system_prompt,
            tools=self.runner.tools.agent_tools(),  # type: ignore[arg-type]
            hooks=[_ChunkHooks(self)],
            callback_handler=None,
            retry_strategy=model_retry_strategy(self.settings),
            name="courier",
        )
        self.agent = agent
        if self.stop_cause is not None:  # e.g. no listener at all and no grace
            agent.cancel()
        control = asyncio.create_task(self._control_loop(), name=f"control-{self.request.turn_id}")
        result: Any = None
        error: BaseException | None = None
        stream_started = self.runner.clock()
        try:
            async for event in agent.stream_async(started.user_text):
                if "data" in event:
                    self._on_text(str(event["data"]), stream_started)
                elif "event" in event:
                    self._on_model_event(event["event"])
                elif "result" in event:
                    result = event["result"]
        except MaxTokensReachedException:
            result = None  # the partial answer streamed; stored as completed with stop reason max_tokens
        except Exception as caught:
            error = caught
        finally:
            control.cancel()
            await asyncio.gather(control, return_exceptions=True)
        if self.infrastructure_error is not None:
            return
        await self._conclude(agent, result, error)

    # ------------------------------------------------------------ stream events → chunks

    def _on_text(self, text: str, stream_started: float) -> None:
        publisher = self.publisher
        assert publisher is not None
        if not text:
            return
        if self.first_text_at is None:
            self.first_text_at = self.runner.clock()
            self.report.time_to_first_token_ms = int((self.first_text_at - stream_started) * 1000)
        if self.text_id is None:
            self.text_id = f"text-{self.text_blocks}"
            self.text_blocks += 1
            publisher.emit(TextStartPart(id=self.text_id))
        publisher.emit_text(self.text_id, text)

    def _on_model_event(self, event: Any) -> None:
        publisher = self.publisher
        assert publisher is not None
        if not isinstance(event, dict):
            return
        if "contentBlockStop" in event or "messageStop" in event:
            self._close_text()

    def open_step(self) -> None:
        """A model call begins: start-step goes out now, while the model works on its first token."""
        self._close_step()
        if self.publisher is not None:
            self.publisher.emit(StartStepPart())
            self.step_open = True

    def _close_text(self) -> None:
        if self.text_id is not None and self.publisher is not None:
            self.publisher.emit(TextEndPart(id=self.text_id))
            self.text_id = None

    def _close_step(self) -> None:
        self._close_text()
        if self.step_open and self.publisher is not None:
            self.publisher.emit(FinishStepPart())
            self.step_open = False

    # ------------------------------------------------------------ stopping

    def stop(self, cause: StopCause) -> None:
        """Stop generating (first cause wins). The agent ends within about one model event."""
        if self.stop_cause is None:
            self.stop_cause = cause
            logger.info("stopping the turn", extra={"cause": cause.value})
        if self.agent is not None:
            self.agent.cancel()

    def _listener_count_changed(self, count: int) -> None:
        if count > 0:
            if self.grace_timer is not None:
                self.grace_timer.cancel()
                self.grace_timer = None
            return
        if self.grace_timer is not None or self.stop_cause is not None:
            return
        grace = self.settings.listener_grace_s
        if grace == 0:
            self.stop(StopCause.NO_LISTENERS)
        else:
            loop = asyncio.get_running_loop()
            self.grace_timer = loop.call_later(grace, self.stop, StopCause.NO_LISTENERS)

    async def _remove_listener(self, connection_id: str) -> None:
        def remove() -> None:
            with self.runner.store.unit_of_work() as repo:
                repo.remove_listener(self.request.turn_id, connection_id)

        try:
            await asyncio.to_thread(remove)
            self.report.db_writes += 1
        except Exception:
            # Only housekeeping: the gateway's $disconnect removes it too.
            logger.warning("could not remove a gone listener", exc_info=True)

    async def _control_loop(self) -> None:
        """Every CONTROL_POLL_MS: cancel requested? who listens? and save the text every SAVE_INTERVAL_S."""
        publisher = self.publisher
        assert publisher is not None
        poll_s = self.settings.control_poll_s
        try:
            while True:
                await asyncio.sleep(poll_s)
                control = await asyncio.to_thread(self._read_control)
                if control.cancel_requested:
                    self.stop(StopCause.CANCELLED)
                publisher.sync_listeners(control.listeners)
                now = self.runner.clock()
                # Save early enough that the stored text is never older than SAVE_INTERVAL_S.
                if now - self.saved_at + poll_s >= self.settings.save_interval_s:
                    await self._save_progress()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.exception("database failed during the turn: the record will be retried")
            self.infrastructure_error = error
            self.stop(StopCause.INFRASTRUCTURE)

    def _read_control(self) -> Any:
        with self.runner.store.unit_of_work() as repo:
            return repo.turn_control(self.owner, self.request.turn_id)

    async def _save_progress(self) -> None:
        publisher = self.publisher
        assert publisher is not None
        self.saved_at = self.runner.clock()
        seq, text = publisher.last_sent_seq, publisher.sent_text
        if seq == self.saved_seq:
            return

        def save() -> None:
            with self.runner.store.unit_of_work() as repo:
                repo.save_progress(self.owner, self.request.turn_id, text, seq)

        await asyncio.to_thread(save)
        self.saved_seq = seq
        self.report.db_writes += 1

    # ------------------------------------------------------------ the end

    async def _conclude(self, agent: Agent, result: Any, error: BaseException | None) -> None:
        metrics = result.metrics if result is not None else agent.event_loop_metrics
        invocation = metrics.latest_agent_invocation
        usage = invocation.usage if invocation is not None else {}
        self.report.output_tokens = int(usage.get("outputTokens", 0))
        cause = self.stop_cause
        if cause is StopCause.CANCELLED:
            await self._end(TurnStatus.CANCELLED, AbortPart(), usage, stop_reason="cancelled")
        elif cause is StopCause.NO_LISTENERS:
            await self._end(TurnStatus.INTERRUPTED, AbortPart(), usage, stop_reason="no_listeners")
        elif cause is StopCause.TOOL_FAILED:
            failure = FAILURES["tool_failed"]
            await self._end(
                TurnStatus.FAILED, ErrorPart(error_text=failure.safe_text), usage, failure=failure
            )
        elif error is not None:
            failure = classify_model_error(error)
            logger.warning(
                "the model failed", extra={"error_code": failure.code, "error_type": type(error).__name__}
            )
            await self._end(
                TurnStatus.FAILED, ErrorPart(error_text=failure.safe_text), usage, failure=failure
            )
        else:
            stop_reason = str(result.stop_reason) if result is not None else "max_tokens"
            self._close_step()
            latency_ms = int((self.runner.clock() - self.started_at) * 1000)
            finish = FinishPart(
                message_metadata=FinishMetadata(
                    stop_reason=stop_reason,
                    usage=Usage(
                        input_tokens=int(usage.get("inputTokens", 0)),
                        output_tokens=int(usage.get("outputTokens", 0)),
                    ),
                    latency_ms=latency_ms,
                    time_to_first_token_ms=self.report.time_to_first_token_ms,
                )
            )
            await self._end(TurnStatus.COMPLETED, finish, usage, stop_reason=stop_reason)

    async def _end(
        self,
        status: TurnStatus,
        final_part: Any,
        usage: Any,
        *,
        stop_reason: str | None = None,
        failure: TurnFailure | None = None,
    ) -> None:
        """Deliver all text, store the outcome (one write), then send the turn's last chunk."""
        publisher = self.publisher
        assert publisher is not None
        if status is not TurnStatus.COMPLETED:
            self._close_text()
        await publisher.drain()
        final_seq = publisher.last_sent_seq + 1  # the final part's seq, reserved by the outbox order
        await self._finish(
            status,
            publisher.sent_text,
            final_seq,
            failure=failure,
            stop_reason=stop_reason,
            input_tokens=int(usage.get("inputTokens", 0)) if usage else None,
            output_tokens=int(usage.get("outputTokens", 0)) if usage else None,
        )
        publisher.emit(final_part)
        await publisher.close()
        self.report.frames = publisher.frames_sent
        self.report.posts = publisher.posts

    async def _finish(
        self,
        status: TurnStatus,
        text: str,
        last_seq: int,
        *,
        failure: TurnFailure | None = None,
        stop_reason: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        latency_ms = int((self.runner.clock() - self.started_at) * 1000)
        inline, body_ref = text, None
        bodies = self.runner.bodies
        if bodies is not None and len(text.encode()) > self.settings.inline_text_max_bytes:
            request = self.request
            key = f"turns/{request.conversation_id}/{request.turn_id}/attempt-{self.report.attempt}.txt"
            body_ref = await asyncio.to_thread(bodies.put_text, key, text)
            inline = text.encode()[: self.settings.inline_text_max_bytes].decode(errors="ignore")
        outcome = TurnOutcome(
            status=status,
            assistant_text=inline,
            last_seq=last_seq,
            body_ref=body_ref,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_ms=latency_ms,
            time_to_first_token_ms=self.report.time_to_first_token_ms,
            stop_reason=stop_reason,
            error_code=failure.code if failure else None,
            error_message=failure.safe_text if failure else None,
        )
        tool_calls = list(self.tool_calls.values())

        def finish() -> None:
            with self.runner.store.unit_of_work() as repo:
                repo.finish_turn(self.owner, self.request.turn_id, outcome, self.runner.wall_clock())
                for call in tool_calls:
                    repo.record_tool_invocation(
                        self.request.turn_id,
                        call.seq,
                        call.tool_call_id,
                        call.tool_name,
                        call.tool_input,
                        call.output_summary,
                        call.status,
                        call.duration_ms,
                    )

        try:
            await asyncio.to_thread(finish)
        except TurnNotOpen:
            logger.warning("the turn was finished by someone else; keeping their outcome")
        self.report.db_writes += 1
        self.report.status = status
        self.report.error_code = failure.code if failure else None
        self.report.duration_ms = latency_ms


class _ChunkHooks(HookProvider):
    """Model calls → start-step; tool calls → tool-input-available, data-tool-status,
    tool-output-available and the tool_invocations rows of the end write."""

    def __init__(self, execution: _TurnExecution) -> None:
        self._execution = execution

    def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
        registry.add_callback(BeforeModelCallEvent, self.before_model)
        registry.add_callback(BeforeToolCallEvent, self.before_tool)
        registry.add_callback(AfterToolCallEvent, self.after_tool)

    def before_model(self, event: BeforeModelCallEvent) -> None:
        self._execution.open_step()

    def before_tool(self, event: BeforeToolCallEvent) -> None:
        execution = self._execution
        publisher = execution.publisher
        assert publisher is not None
        execution._close_text()
        tool_use = event.tool_use
        call_id, name = str(tool_use["toolUseId"]), str(tool_use["name"])
        tool_input = trimmed_input(tool_use.get("input", {}))
        seq = publisher.emit(ToolInputAvailablePart(tool_call_id=call_id, tool_name=name, input=tool_input))
        publisher.emit(
            DataToolStatusPart(
                data=ToolStatus(
                    tool_call_id=call_id, summary=execution.runner.tools.summary(name, tool_input)
                )
            )
        )
        execution.tool_calls[call_id] = _ToolCall(seq, call_id, name, tool_input)
        logger.info("tool call", extra={"tool_name": name, "tool_call_id": call_id})

    def after_tool(self, event: AfterToolCallEvent) -> None:
        execution = self._execution
        publisher = execution.publisher
        assert publisher is not None
        call_id = str(event.tool_use["toolUseId"])
        call = execution.tool_calls.get(call_id)
        # A ValueError is the tool telling the model its input is wrong (safe, meant to be read);
        # anything else is a crash, whose message may hold internals: neither client nor row sees it.
        crashed = event.exception is not None and not isinstance(event.exception, ValueError)
        if crashed:
            output: Any = {"error": f"The tool failed ({type(event.exception).__name__})."}
        else:
            output = trim_output(result_output(event.result))
        publisher.emit(ToolOutputAvailablePart(tool_call_id=call_id, output=output))
        if call is not None:
            call.status = "cancelled" if event.cancel_message else str(event.result.get("status", "success"))
            call.output_summary = json.dumps(trim_output(output, 1024), ensure_ascii=False, default=str)
            call.duration_ms = int(event.duration * 1000) if event.duration is not None else None
            if crashed:
                call.status = "crashed"
        if crashed:
            logger.error(
                "tool crashed",
                extra={"tool_name": event.tool_use["name"], "error_type": type(event.exception).__name__},
            )
            execution.stop(StopCause.TOOL_FAILED)
