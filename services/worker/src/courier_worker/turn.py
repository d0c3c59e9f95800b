"""Running one attempt of a turn: take the turn (and its lease), stream the agent's answer to the
listeners, store the outcome, send the ending.

Every attempt ends, whatever happens: with `finish`, `abort` or `error` after the turn is stored;
or, when the database stays away longer than DATABASE_OUTAGE_BUDGET_S, with an `error` at once and
the record handed back to the queue for a retry in seconds (`RetryLater`). A database blip shorter
than that only delays saves: the text keeps flowing. The attempt also stops DEADLINE_MARGIN_S
before its Lambda's deadline, and after MAX_AGENT_CYCLES model calls.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from strands import Agent
from strands.models import Model
from strands.session.repository_session_manager import RepositorySessionManager
from strands.types.exceptions import MaxTokensReachedException

from courier_shared.db.store import Lease, LeaseHeld, Owner, ToolCallRecord, TurnOutcome
from courier_shared.protocol import (
    ChunkPart,
    ErrorPart,
    FinishMetadata,
    FinishPart,
    StartMetadata,
    StartPart,
    TurnStatus,
    Usage,
)
from courier_shared.queue import TurnRequest
from courier_worker.accounting import TokenUsage, UsageMeter
from courier_worker.bedrock import model_retry_strategy
from courier_worker.endings import (
    TurnEnder,
    aborted,
    cancelled_while_queued,
    finish_reason,
    plan_ending,
    send_ending,
)
from courier_worker.failures import (
    FAILURES,
    RetryLater,
    TurnFailure,
    classify_model_error,
    is_database_outage,
)
from courier_worker.observability import logger
from courier_worker.parts import AgentHooks, PartWriter, replay_saved_steps, stored_reasoning
from courier_worker.persistence import CancelledBeforeStart, StartedTurn, TurnDatabase
from courier_worker.ports import BodyStore, ConnectionPoster, TurnStore
from courier_worker.sessions import TurnSessionRepository
from courier_worker.settings import WorkerSettings
from courier_worker.streaming import Outbox, Publisher
from courier_worker.tools import ToolRegistry

Clock = Callable[[], float]
WallClock = Callable[[], datetime]
# The end write gives up this long before the Lambda's deadline, to leave time for the ending.
FINAL_WRITE_RESERVE_S = 2.0
CONTROL_BACKOFF_MAX_S = 1.0
CONTROL_STOP_WAIT_S = 5.0  # the control loop stops within one database call; never wait longer
# A stopped agent ends at its next model event; a model stream that stalls sends none, so the turn
# stops waiting for it this long after the stop (the deadline margin leaves room for it).
FORCED_STOP_AFTER_S = 3.0


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SavedAnswer:
    """The result of a turn whose final answer an earlier attempt saved but did not store."""

    stop_reason: str = "end_turn"


def _is_final_answer(message: Any) -> bool:
    """An assistant message that calls no tool: the agent loop's last."""
    return bool(
        message["role"] == "assistant" and not any("toolUse" in block for block in message["content"])
    )


class StopCause(enum.Enum):
    CANCELLED = "cancelled"  # the user sent `cancel`
    NO_LISTENERS = "no_listeners"  # nobody listened for the whole grace period
    DEADLINE = "deadline"  # the Lambda's time is nearly up
    TOO_MANY_STEPS = "too_many_steps"  # MAX_AGENT_CYCLES model calls
    DATABASE = "database"  # the database stayed away too long: the record is retried
    LEASE_LOST = "lease_lost"  # another worker (or recovery) has the turn now: stop quietly


@dataclass
class TurnReport:
    """What happened to one record: for logs, metrics, tests and the benchmark."""

    turn_id: uuid.UUID
    status: TurnStatus | None  # None: nothing to do (the turn was already finished)
    attempt: int = 0
    error_code: str | None = None
    frames: int = 0
    posts: int = 0
    post_latency_ms: int | None = None  # the mean of the attempt's @connections calls
    post_latency_max_ms: int | None = None
    db_writes: int = 0
    time_to_first_token_ms: int | None = None
    output_tokens: int | None = None
    usage_estimated: bool = False
    duration_ms: int = 0


class TurnRunner:
    """Runs turns. Built once per container; `run` is called once per queued turn request."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        store: TurnStore,
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

    async def run(self, request: TurnRequest, *, deadline: float | None = None) -> TurnReport:
        """Run one attempt. `deadline` (on `clock`) is when the runtime would kill us.

        Raises RetryLater when the record should be retried soon rather than acknowledged.
        """
        return await _TurnExecution(self, request, deadline).run()

    def ender(self) -> TurnEnder:
        return TurnEnder(
            store=self.store,
            poster=self.poster,
            endpoint_url=self.settings.connections_endpoint_url,
            model_label=self.model_label,
            wall_clock=self.wall_clock,
            clock=self.clock,
        )


class _TurnExecution:
    """The state of one attempt of one turn."""

    def __init__(self, runner: TurnRunner, request: TurnRequest, deadline: float | None) -> None:
        self.runner = runner
        self.settings = runner.settings
        self.request = request
        self.deadline = deadline
        self.clock = runner.clock
        self.db = TurnDatabase(
            store=runner.store,
            owner=Owner(request.tenant_id, request.user_id),
            turn_id=request.turn_id,
            lease=Lease(owner=uuid.uuid4().hex, duration=timedelta(seconds=self.settings.lease_s)),
            wall_clock=runner.wall_clock,
            clock=runner.clock,
        )
        self.report = TurnReport(turn_id=request.turn_id, status=None)
        self.meter = UsageMeter()
        self.stop_cause: StopCause | None = None
        self.retry: RetryLater | None = None
        self.agent: Agent | None = None
        self.consumer: asyncio.Task[Any] | None = None  # reads the agent's stream
        self.forced_stop: asyncio.TimerHandle | None = None
        self.stream_abandoned = False
        self.publisher: Publisher | None = None
        self.writer: PartWriter | None = None
        self.tool_calls: dict[str, ToolCallRecord] = {}
        self.model_calls = 0
        self.started_at = runner.clock()
        self.accepted_at: datetime | None = None  # the turn's created_at: when Courier took the message
        self.timers: list[asyncio.TimerHandle] = []
        self.grace_timer: asyncio.TimerHandle | None = None
        self.saved_at = runner.clock()
        self.lease_until = runner.clock() + self.settings.lease_s  # when our lease lapses, at the latest

    @property
    def stop_at(self) -> float | None:
        """When generation must stop to leave DEADLINE_MARGIN_S for the ending."""
        return None if self.deadline is None else self.deadline - self.settings.deadline_margin_s

    # ------------------------------------------------------------ the attempt

    async def run(self) -> TurnReport:
        started = await self._start()
        if started is None:
            return self.report
        if isinstance(started, CancelledBeforeStart):
            await self._announce_cancelled_before_start(started)
            return self.report
        self.report.attempt = started.attempt
        self.accepted_at = started.created_at
        endpoint = self.settings.connections_endpoint_url or self.request.callback_url
        if endpoint is None:
            logger.error("no callback URL for the turn: set CONNECTIONS_ENDPOINT_URL")
            await self._store(TurnStatus.FAILED, "", -1, failure=FAILURES["no_callback_url"])
            return self.report
        publisher = Publisher(
            turn_id=self.request.turn_id,
            attempt=started.attempt,
            endpoint_url=endpoint,
            poster=self.runner.poster,
            outbox=Outbox(flush_interval_s=self.settings.flush_interval_s),
            listeners=started.listeners,
            clock=self.clock,
            on_listener_count=self._listener_count_changed,
            on_gone=self._remove_listener,
            on_first_text=self._first_text_posted,
        )
        self.publisher = publisher
        self.writer = PartWriter(publisher, self.meter)
        publisher.emit(
            StartPart(
                message_id=str(self.request.turn_id),
                message_metadata=StartMetadata(
                    model=self.runner.model_label,
                    attempt=started.attempt,
                    turn_id=self.request.turn_id,
                    conversation_id=self.request.conversation_id,
                ),
            )
        )
        publisher.start()
        if (stop_at := self.stop_at) is not None:
            delay = max(0.0, stop_at - self.clock())
            self.timers.append(asyncio.get_running_loop().call_later(delay, self.stop, StopCause.DEADLINE))
        try:
            if started.cancel_requested:  # cancelled while queued for a retry: no model call
                self.stop_cause = StopCause.CANCELLED
                await self._end_aborted(TurnStatus.CANCELLED, "cancelled")
            else:
                await self._stream(started)
        finally:
            for timer in [*self.timers, *([self.grace_timer] if self.grace_timer else [])]:
                timer.cancel()
        if self.retry is not None:
            raise self.retry
        return self.report

    async def _start(self) -> StartedTurn | CancelledBeforeStart | None:
        """The start write: queued|streaming → streaming, attempt + 1, our lease. None if finished."""
        try:
            started = await self.db.start(self.runner.model_label, self.settings.history_window)
        except LeaseHeld as held:
            wait_s = (held.expires_at - self.runner.wall_clock()).total_seconds()
            logger.info("another worker holds the turn's lease: retrying when it expires")
            raise RetryLater("lease_held", max(1.0, wait_s + 1)) from None
        except Exception as error:
            if not is_database_outage(error):
                raise
            logger.warning("database unavailable at the start of the turn: retrying soon")
            raise RetryLater("database_unavailable") from error
        if started is None:
            logger.info("turn already finished: acknowledged without running the model")
            return None
        if isinstance(started, StartedTurn):
            self.report.db_writes = self.db.writes
            if started.history_refs and self.runner.bodies is not None:
                await asyncio.to_thread(self._load_history_bodies, started)
            logger.info(
                "turn started",
                extra={"attempt": started.attempt, "history_turns": len(started.history) // 2},
            )
        return started

    def _load_history_bodies(self, started: StartedTurn) -> None:
        assert self.runner.bodies is not None
        for index, ref in enumerate(started.history_refs):
            if ref:
                text = self.runner.bodies.get_text(ref)
                started.history[2 * index + 1] = {"role": "assistant", "content": [{"text": text}]}

    async def _announce_cancelled_before_start(self, cancelled: CancelledBeforeStart) -> None:
        self.report.status, self.report.attempt = TurnStatus.CANCELLED, 1
        endpoint = self.settings.connections_endpoint_url or self.request.callback_url
        if endpoint is None:
            return
        request = self.request
        outbox = plan_ending(
            request.turn_id, request.conversation_id, 1, cancelled.model, "", *cancelled_while_queued()
        )
        await send_ending(
            outbox,
            turn_id=self.request.turn_id,
            attempt=1,
            listeners=cancelled.listeners,
            poster=self.runner.poster,
            endpoint_url=endpoint,
            clock=self.clock,
        )
        logger.info("turn cancelled while queued: its listeners got the ending")

    async def _stream(self, started: StartedTurn) -> None:
        assert self.writer is not None
        # Reads the turn's saved steps (its agent session): off the event loop, which is streaming.
        agent = await asyncio.to_thread(self._build_agent)
        saved = list(agent.messages)  # the question and the steps an earlier attempt completed, or []
        agent.messages = copy.deepcopy(started.history) + saved  # strands mutates the messages
        self.agent = agent
        if saved:
            logger.info(
                "going on from the steps an earlier attempt saved", extra={"saved_messages": len(saved)}
            )
            replay_saved_steps(self.writer, self.runner.tools, self.tool_calls, saved[1:])
            if _is_final_answer(saved[-1]):  # answered, but not stored: store it, no model call
                await self._conclude(SavedAnswer(), None)
                return
        if self.stop_cause is not None:  # e.g. no listener at all and no grace
            agent.cancel()
        control = asyncio.create_task(self._control_loop(), name=f"control-{self.request.turn_id}")
        result: Any = None
        error: BaseException | None = None
        prompt = None if saved else started.user_text  # None: go on from the saved messages
        self.consumer = asyncio.create_task(self._consume(agent, prompt), name="agent-stream")
        try:
            result = await self.consumer
        except MaxTokensReachedException:
            result = None  # the partial answer streamed; stored as completed with stop reason max_tokens
        except asyncio.CancelledError:
            if not self.stream_abandoned:
                raise  # not ours: the invocation itself is being cancelled
            logger.warning("the model stream did not end after the stop: abandoned")
        except Exception as caught:
            error = caught
        finally:
            if self.forced_stop is not None:
                self.forced_stop.cancel()
            control.cancel()
            # Bounded: a turn never waits forever on its own housekeeping.
            if not (await asyncio.wait({control}, timeout=CONTROL_STOP_WAIT_S))[0]:
                logger.error("the turn's control loop did not stop when asked: going on without it")
        await self._conclude(result, error)

    def _build_agent(self) -> Agent:
        """The turn's agent; its session (the turn's saved steps) gives it the messages an earlier
        attempt saved, and saves each new one as the agent adds it."""
        assert self.writer is not None
        # A first attempt has nothing saved to restore: it reads nothing.
        saved = TurnSessionRepository(self.db.store, self.request.turn_id, restore=self.report.attempt > 1)
        sessions = RepositorySessionManager(str(self.request.turn_id), saved)
        return Agent(
            model=self.runner.model,
            system_prompt=self.settings.system_prompt,
            tools=self.runner.tools.agent_tools(),  # type: ignore[arg-type]
            hooks=[AgentHooks(self.writer, self.runner.tools, self.tool_calls, self._may_call_model)],
            callback_handler=None,
            retry_strategy=model_retry_strategy(self.settings),
            session_manager=sessions,
            name="courier",
        )

    async def _consume(self, agent: Agent, prompt: str | None) -> Any:
        """Read the agent's stream to its end; returns its result."""
        assert self.writer is not None
        result: Any = None
        async for event in agent.stream_async(prompt):
            if "data" in event:
                self.writer.text(str(event["data"]))
            elif "reasoningText" in event:
                # Signatures and redacted reasoning (encrypted) are Strands' to keep in the
                # agent's messages for the next model call; only readable reasoning is shown.
                self.writer.reasoning(str(event["reasoningText"] or ""))
            elif "event" in event:
                self.writer.model_event(event["event"])
            elif "result" in event:
                result = event["result"]
        return result

    def _first_text_posted(self) -> None:
        """Courier's one time to first token: from the moment it accepted the message (the turn's
        created_at, which includes the queue and any earlier attempt) to the moment the first answer
        text was posted to the listeners. Stored, sent in `finish`, published as a metric."""
        if self.accepted_at is None or self.report.time_to_first_token_ms is not None:
            return
        elapsed = self.runner.wall_clock() - self.accepted_at
        self.report.time_to_first_token_ms = max(0, int(elapsed.total_seconds() * 1000))

    def _may_call_model(self) -> bool:
        """Asked before each model call: the cycle cap and the deadline end a tool loop here."""
        if self.stop_cause is not None:
            return False
        self.model_calls += 1
        if self.model_calls > self.settings.max_agent_cycles:
            self.stop(StopCause.TOO_MANY_STEPS)
            return False
        if (stop_at := self.stop_at) is not None and self.clock() >= stop_at:
            self.stop(StopCause.DEADLINE)
            return False
        return True

    # ------------------------------------------------------------ stopping

    def stop(self, cause: StopCause) -> None:
        """Stop generating (first cause wins). The agent ends within about one model event."""
        if self.stop_cause is None:
            self.stop_cause = cause
            logger.info("stopping the turn", extra={"cause": cause.value})
        if self.agent is not None:
            self.agent.cancel()
        if self.consumer is not None and not self.consumer.done() and self.forced_stop is None:
            self.forced_stop = self.consumer.get_loop().call_later(FORCED_STOP_AFTER_S, self._abandon_stream)

    def _abandon_stream(self) -> None:
        if self.consumer is not None and not self.consumer.done():
            self.stream_abandoned = True
            self.consumer.cancel()

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
        try:
            await self.db.remove_listener(connection_id)
        except Exception:
            # Only housekeeping: the gateway's $disconnect removes it too.
            logger.warning("could not remove a gone listener", exc_info=True)

    async def _control_loop(self) -> None:
        """Every CONTROL_POLL_MS: cancel requested? who listens? And every SAVE_INTERVAL_S: save the
        text and renew the lease. While the database is away the answer goes on (listeners as last
        known); polls back off, and past DATABASE_OUTAGE_BUDGET_S the attempt gives up."""
        publisher = self.publisher
        assert publisher is not None
        poll_s = self.settings.control_poll_s
        delay = poll_s
        outage_since: float | None = None
        while True:
            await asyncio.sleep(delay)
            # The deadline on the runner's clock too (the timer set in run() waits on the loop's):
            # an injected clock that is moved past it stops the turn here.
            if (stop_at := self.stop_at) is not None and self.clock() >= stop_at:
                self.stop(StopCause.DEADLINE)
            try:
                control = await self.db.read_control()
                if control.cancel_requested:
                    self.stop(StopCause.CANCELLED)
                publisher.sync_listeners(control.listeners)
                # Save early enough that the stored text is never older than SAVE_INTERVAL_S.
                save_due = self.clock() - self.saved_at + poll_s >= self.settings.save_interval_s
                if save_due and not await self._save_progress():
                    logger.warning("the turn's lease was lost: another worker or recovery has it")
                    self.stop(StopCause.LEASE_LOST)
                    return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not is_database_outage(error):
                    logger.exception("unexpected error while saving the turn")
                now = self.clock()
                if outage_since is None:
                    outage_since = now
                    logger.warning(
                        "database unavailable while streaming: the answer goes on, saves are retried",
                        extra={"error_type": type(error).__name__},
                    )
                elif now - outage_since >= self.settings.database_outage_budget_s:
                    logger.error("database unavailable for too long: this attempt gives up")
                    self.retry = self._retry_after_our_lease()
                    self.stop(StopCause.DATABASE)
                    return
                delay = min(delay * 2, CONTROL_BACKOFF_MAX_S)
                continue
            if outage_since is not None:
                logger.info("database back", extra={"outage_ms": int((self.clock() - outage_since) * 1000)})
                outage_since = None
            delay = poll_s

    async def _save_progress(self) -> bool:
        publisher = self.publisher
        assert publisher is not None
        self.saved_at = self.clock()
        # What the listeners got, with its seq: a resume's snapshot and the history agree with them.
        reasoning = stored_reasoning(publisher.sent_reasoning)
        held = await self.db.save(publisher.sent_text, publisher.last_sent_seq, reasoning)
        self.lease_until = self.clock() + self.settings.lease_s
        self.report.db_writes = self.db.writes
        return held

    def _retry_after_our_lease(self) -> RetryLater:
        """Giving up while the database is away, we cannot release our lease: the retry comes when
        it has lapsed, so it takes the turn over at once instead of bouncing off it (each bounce
        costs one of the record's receives before the dead-letter queue)."""
        return RetryLater("database_unavailable", max(0.0, self.lease_until - self.clock()) + 1)

    # ------------------------------------------------------------ the end

    async def _conclude(self, result: Any, error: BaseException | None) -> None:
        cause = self.stop_cause
        if cause is StopCause.LEASE_LOST:
            assert self.publisher is not None
            await self.publisher.close()  # no ending from us: the turn's new owner sends it
            return
        if cause is StopCause.DATABASE:
            await self._end_unstored(FAILURES["database_unavailable"])
        elif cause is StopCause.CANCELLED:
            await self._end_aborted(TurnStatus.CANCELLED, "cancelled")
        elif cause is StopCause.NO_LISTENERS:
            await self._end_aborted(TurnStatus.INTERRUPTED, "no_listeners")
        elif cause in (StopCause.DEADLINE, StopCause.TOO_MANY_STEPS):
            assert cause is not None
            await self._fail(FAILURES[cause.value], stop_reason=cause.value)
        elif error is not None:
            failure = classify_model_error(error)
            logger.warning(
                "the model failed", extra={"error_code": failure.code, "error_type": type(error).__name__}
            )
            await self._fail(failure)
        else:
            assert self.writer is not None and self.publisher is not None
            stop_reason = str(result.stop_reason) if result is not None else "max_tokens"
            self.writer.close_step()
            await self.publisher.drain()  # the first text is posted: the metadata has its time
            finish = FinishPart(
                finish_reason=finish_reason(stop_reason),
                message_metadata=self._finish_metadata(TurnStatus.COMPLETED, stop_reason),
            )
            await self._end(TurnStatus.COMPLETED, finish, stop_reason=stop_reason)

    def _finish_metadata(self, status: TurnStatus, stop_reason: str) -> FinishMetadata:
        usage = self.meter.usage()
        return FinishMetadata(
            stop_reason=stop_reason,
            usage=Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
            latency_ms=int((self.clock() - self.started_at) * 1000),
            time_to_first_token_ms=self.report.time_to_first_token_ms,
            status=status,
        )

    async def _end_aborted(self, status: TurnStatus, stop_reason: str) -> None:
        assert self.writer is not None and self.publisher is not None
        self.writer.close_text()  # before the usage is read: the metadata counts all text sent
        await self.publisher.drain()  # the first text is posted: the metadata has its time
        final, sdk_tail = aborted(status, self._finish_metadata(status, stop_reason))
        await self._end(status, final, stop_reason=stop_reason, sdk_tail=sdk_tail)

    async def _fail(self, failure: TurnFailure, *, stop_reason: str | None = None) -> None:
        await self._end(
            TurnStatus.FAILED,
            ErrorPart(error_text=failure.safe_text),
            stop_reason=stop_reason,
            failure=failure,
        )

    async def _end(
        self,
        status: TurnStatus,
        final_part: ChunkPart,
        *,
        stop_reason: str | None = None,
        failure: TurnFailure | None = None,
        sdk_tail: tuple[ChunkPart, ...] = (),
    ) -> None:
        """Deliver all text, store the outcome (one write, waiting a bounded time for the database),
        then send the turn's last chunk."""
        publisher, writer = self.publisher, self.writer
        assert publisher is not None and writer is not None
        if status is not TurnStatus.COMPLETED:
            writer.close_blocks()
        await publisher.drain()
        final_seq = publisher.last_sent_seq + 1  # the final part's seq, reserved by the outbox order
        try:
            await self._store(
                status,
                publisher.sent_text,
                final_seq,
                failure=failure,
                stop_reason=stop_reason,
                usage=self.meter.usage(),
            )
        except Exception as error:
            if not is_database_outage(error):
                raise
            logger.error("database unavailable for the final write: this attempt gives up")
            self.retry = self._retry_after_our_lease()
            await self._end_unstored(FAILURES["database_unavailable"])
            return
        publisher.emit(final_part, sdk_tail)
        await publisher.close()
        self._report_posts(publisher)

    def _report_posts(self, publisher: Publisher) -> None:
        self.report.frames = publisher.frames_sent
        self.report.posts = publisher.posts
        if publisher.posts:
            self.report.post_latency_ms = int(publisher.post_seconds_total / publisher.posts * 1000)
            self.report.post_latency_max_ms = int(publisher.post_seconds_max * 1000)

    async def _end_unstored(self, failure: TurnFailure) -> None:
        """The database is away: tell the listeners at once; the record is retried (`self.retry`)."""
        publisher, writer = self.publisher, self.writer
        assert publisher is not None and writer is not None
        writer.close_blocks()
        publisher.emit(ErrorPart(error_text=failure.safe_text))
        await publisher.close()
        self.report.error_code = failure.code
        self._report_posts(publisher)

    async def _store(
        self,
        status: TurnStatus,
        text: str,
        last_seq: int,
        *,
        failure: TurnFailure | None = None,
        stop_reason: str | None = None,
        usage: TokenUsage | None = None,
    ) -> None:
        latency_ms = int((self.clock() - self.started_at) * 1000)
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
            reasoning_text=self.writer.reasoning_text if self.writer is not None else "",
            last_seq=last_seq,
            body_ref=body_ref,
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            usage_estimated=usage.estimated if usage else False,
            latency_ms=latency_ms,
            time_to_first_token_ms=self.report.time_to_first_token_ms,
            stop_reason=stop_reason,
            error_code=failure.code if failure else None,
            error_message=failure.safe_text if failure else None,
        )
        budget_end = self.clock() + self.settings.database_outage_budget_s
        give_up_at = (
            budget_end if self.deadline is None else min(budget_end, self.deadline - FINAL_WRITE_RESERVE_S)
        )
        listeners = await self.db.finish(outcome, list(self.tool_calls.values()), give_up_at)
        if listeners is None:
            logger.warning("the turn was finished or taken over by someone else; keeping their outcome")
        elif self.publisher is not None:
            self.publisher.sync_listeners(listeners)
        self.report.db_writes = self.db.writes
        self.report.status = status
        self.report.error_code = failure.code if failure else None
        self.report.output_tokens = usage.output_tokens if usage else None
        self.report.usage_estimated = usage.estimated if usage else False
        self.report.duration_ms = latency_ms
