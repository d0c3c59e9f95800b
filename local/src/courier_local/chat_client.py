"""A protocol client for Courier: what `courier chat` and the end-to-end tests speak.

Two layers:
- `TurnView` folds the server frames of one turn into what a person should see, following the client
  rules of docs/protocol.md: keep the highest attempt, a gap-free `seq` prefix within it, drop
  duplicates and older attempts, let a `snapshot` replace the text, end on `finish`/`abort`/`error`.
  An `error` may be followed by a later attempt of the same turn (the worker gave up during a
  database outage and the queue retries it): the view then starts over with that attempt.
  It is pure (no I/O), so the rules are unit-tested on their own.
- `ChatConnection` is one WebSocket (the `websockets` library) that sends frames and runs a turn to its
  end, reconnecting and `resume`-ing when the socket drops, and, after an `error`, asking the stored
  turn whether it is over or a retry is coming.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

SUBPROTOCOL = "courier.v1"
TERMINAL_STATUSES = frozenset({"completed", "failed", "interrupted", "cancelled"})
# The protocol's limits (courier_shared.protocol, not imported: `courier chat` starts without
# pydantic). A message of MAX_MESSAGE_CHARS characters fits one frame in any encoding; no frame
# this client sends is over FRAME_BUDGET_BYTES, so API Gateway never drops one (it closes the
# socket with 1009 on a frame over 32 KB).
MAX_MESSAGE_CHARS = 5_000
FRAME_BUDGET_BYTES = 32_000
# Close codes after which sending the same thing again cannot help.
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INVALID_DATA = 1007

# ---------------------------------------------------------------- what a turn looks like to a person


@dataclass(frozen=True)
class TextAppended:
    """New answer text to show after what is already shown."""

    delta: str


@dataclass(frozen=True)
class ReasoningAppended:
    """More of the model's reasoning (extended thinking): shown apart from the answer, before it."""

    delta: str


@dataclass(frozen=True)
class TextReplaced:
    """The whole answer text changed (a new attempt began, or a snapshot disagreed): redraw it."""

    text: str
    reason: str  # "retry" (a new attempt) or "snapshot"


@dataclass(frozen=True)
class ToolStarted:
    tool_call_id: str
    tool_name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolStatus:
    tool_call_id: str
    summary: str


@dataclass(frozen=True)
class ToolFinished:
    tool_call_id: str
    output: Any


@dataclass(frozen=True)
class ToolFailed:
    """The tool failed (`error_text` is safe to show); the answer goes on."""

    tool_call_id: str
    error_text: str


@dataclass(frozen=True)
class AwaitingRetry:
    """This attempt failed, but the turn is not over: a later attempt is expected."""

    error_text: str | None


@dataclass(frozen=True)
class TurnEnded:
    """The turn is over. `status` is completed, cancelled, failed or interrupted."""

    status: str
    error_text: str | None = None
    metadata: dict[str, Any] | None = None


Update = (
    TextAppended
    | ReasoningAppended
    | TextReplaced
    | ToolStarted
    | ToolStatus
    | ToolFinished
    | ToolFailed
    | AwaitingRetry
    | TurnEnded
)


@dataclass
class ToolActivity:
    tool_call_id: str
    tool_name: str
    input: dict[str, Any]
    summary: str | None = None
    output: Any = None
    error_text: str | None = None
    done: bool = False


@dataclass
class TurnView:
    """One turn as the client sees it, built from `chunk` and `snapshot` frames in any order."""

    turn_id: str
    attempt: int = 0
    last_seq: int = -1  # the contiguous seq prefix applied for `attempt`
    text: str = ""
    reasoning: str = ""  # the model's reasoning this attempt (streamed only: snapshots carry none)
    model: str | None = None
    tools: dict[str, ToolActivity] = field(default_factory=dict)
    ended: TurnEnded | None = None
    _pending: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq → part, beyond a gap
    # Ended by an `error` chunk: a later attempt may still come and reopen the turn.
    _error_ended: bool = False

    @property
    def may_retry(self) -> bool:
        """The turn ended with an `error` that a later attempt could still replace."""
        return self.ended is not None and self._error_ended

    def settle(self) -> None:
        """The stored turn is over: no later attempt will reopen this view."""
        self._error_ended = False

    def apply(self, frame: dict[str, Any]) -> list[Update]:
        """Fold one server frame in; returns what changed, in order. Frames of other turns are ignored."""
        if frame.get("turnId") != self.turn_id:
            return []
        if self.ended is not None:
            if not (self._error_ended and int(frame.get("attempt", 0)) > self.attempt):
                return []
            self.ended = None  # a later attempt of a turn that failed: it starts over (_new_attempt)
        if frame.get("type") == "chunk":
            return self._apply_chunk(int(frame["attempt"]), int(frame["seq"]), frame["chunk"])
        if frame.get("type") == "snapshot":
            return self._apply_snapshot(frame)
        return []

    def _new_attempt(self, attempt: int) -> list[Update]:
        had_text = self.text != "" or self.reasoning != "" or bool(self.tools) or self._error_ended
        self._error_ended = False
        self.attempt, self.last_seq, self.text, self.reasoning = attempt, -1, "", ""
        self.tools.clear()
        self._pending.clear()
        return [TextReplaced("", "retry")] if had_text else []

    def _apply_chunk(self, attempt: int, seq: int, part: dict[str, Any]) -> list[Update]:
        if attempt < self.attempt:
            return []  # a stale attempt the queue has already retried
        updates = self._new_attempt(attempt) if attempt > self.attempt else []
        if seq <= self.last_seq or seq in self._pending:
            return updates  # a duplicate
        self._pending[seq] = part
        while self.ended is None and (self.last_seq + 1) in self._pending:
            self.last_seq += 1
            updates += self._apply_part(self._pending.pop(self.last_seq))
        return updates

    def _apply_snapshot(self, frame: dict[str, Any]) -> list[Update]:
        attempt, seq, status = int(frame["attempt"]), int(frame["seq"]), str(frame["status"])
        updates: list[Update] = []
        if attempt < self.attempt:
            return []
        if attempt > self.attempt:
            updates += self._new_attempt(attempt)
        if seq >= self.last_seq:
            text = str(frame["text"])
            if text != self.text:
                if text.startswith(self.text):
                    updates.append(TextAppended(text[len(self.text) :]))
                else:
                    updates.append(TextReplaced(text, "snapshot"))
                self.text = text
            self.last_seq = seq
            self._pending = {s: p for s, p in self._pending.items() if s > seq}
            while self.ended is None and (self.last_seq + 1) in self._pending:
                self.last_seq += 1
                updates += self._apply_part(self._pending.pop(self.last_seq))
        if status in TERMINAL_STATUSES and self.ended is None:
            # The stored turn is over: no more chunks will come for it.
            self.ended = TurnEnded(status, error_text=None if status != "failed" else "The turn failed.")
            updates.append(self.ended)
        return updates

    def _apply_part(self, part: dict[str, Any]) -> list[Update]:
        kind = part.get("type")
        if kind == "start":
            self.model = (part.get("messageMetadata") or {}).get("model")
            return []
        if kind == "text-delta":
            delta = str(part.get("delta", ""))
            self.text += delta
            return [TextAppended(delta)] if delta else []
        if kind == "reasoning-delta":
            delta = str(part.get("delta", ""))
            self.reasoning += delta
            return [ReasoningAppended(delta)] if delta else []
        if kind == "tool-input-available":
            tool = ToolActivity(str(part["toolCallId"]), str(part["toolName"]), dict(part.get("input") or {}))
            self.tools[tool.tool_call_id] = tool
            return [ToolStarted(tool.tool_call_id, tool.tool_name, tool.input)]
        if kind == "data-tool-status":
            data = part.get("data") or {}
            call_id, summary = str(data.get("toolCallId")), str(data.get("summary", ""))
            if call_id in self.tools:
                self.tools[call_id].summary = summary
            return [ToolStatus(call_id, summary)]
        if kind == "tool-output-available":
            call_id = str(part["toolCallId"])
            if call_id in self.tools:
                self.tools[call_id].output, self.tools[call_id].done = part.get("output"), True
            return [ToolFinished(call_id, part.get("output"))]
        if kind == "tool-output-error":
            call_id, error_text = str(part["toolCallId"]), str(part.get("errorText", "The tool failed."))
            if call_id in self.tools:
                self.tools[call_id].error_text, self.tools[call_id].done = error_text, True
            return [ToolFailed(call_id, error_text)]
        if kind == "finish":
            self.ended = TurnEnded("completed", metadata=dict(part.get("messageMetadata") or {}))
            return [self.ended]
        if kind == "abort":  # its reason is the stored status: cancelled, or interrupted (nobody listened)
            self.ended = TurnEnded("interrupted" if part.get("reason") == "interrupted" else "cancelled")
            return [self.ended]
        if kind == "error":
            self.ended = TurnEnded("failed", error_text=str(part.get("errorText", "The turn failed.")))
            self._error_ended = True
            return [self.ended]
        return []  # start-step, finish-step, text-start/end, reasoning-start/end: nothing to show


# ---------------------------------------------------------------- talking to Courier


class CourierError(Exception):
    """Base of everything `ChatConnection` raises on purpose."""


class ConnectFailed(CourierError):
    """The server could not be reached (refused, unreachable, timed out)."""


class ServiceUnavailable(ConnectFailed):
    """The server refused the WebSocket upgrade with a server error (HTTP 5xx): Courier is down."""


class AuthRejected(CourierError):
    """The server refused the WebSocket upgrade (HTTP 401/403): the token is missing, bad or expired."""


class MessageTooLarge(CourierError):
    """A message this client will not send: it would not fit the protocol's limits."""


class RequestFailed(CourierError):
    """The server answered an action with an `error` frame."""

    def __init__(self, frame: dict[str, Any]) -> None:
        super().__init__(str(frame.get("message", "The request failed.")))
        self.frame = frame
        self.code = str(frame.get("code", "internal"))


class ConnectionLost(CourierError):
    """The socket dropped and could not be re-established within the reconnect budget, or kept
    dropping without progress."""


@dataclass(frozen=True)
class TurnResult:
    turn_id: str
    conversation_id: str
    status: str  # completed, cancelled, failed, interrupted
    text: str
    error_text: str | None
    metadata: dict[str, Any]
    tools: list[ToolActivity]
    elapsed_s: float
    first_text_s: float | None
    reconnects: int
    reasoning: str = ""  # the model's reasoning, never part of `text`


FrameHook = Callable[[dict[str, Any]], None]
UpdateHook = Callable[[Update], None]


def _subprotocols(token: str) -> list[str]:
    return [SUBPROTOCOL, f"bearer.{token}"]


def encode_frame(frame: dict[str, Any]) -> str:
    """A frame as sent: compact JSON, UTF-8 as is (no \\u escapes: Cyrillic costs 2 bytes, not 6).

    Raises MessageTooLarge for a frame over FRAME_BUDGET_BYTES, or text that is not valid Unicode.
    """
    encoded = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
    try:
        size = len(encoded.encode("utf-8"))
    except UnicodeEncodeError:
        raise MessageTooLarge(
            "The message contains characters that are not valid Unicode (a broken paste?)."
        ) from None
    if size > FRAME_BUDGET_BYTES:
        raise MessageTooLarge(
            f"That request is {size:,} bytes; Courier takes at most {FRAME_BUDGET_BYTES:,} in one frame."
        )
    return encoded


def check_message(text: str) -> None:
    """Refuse, before anything is sent, a message the server would refuse as too large."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise MessageTooLarge(
            f"The message is {len(text):,} characters; the limit is {MAX_MESSAGE_CHARS:,}. "
            "Shorten it or split it into several messages."
        )


def _closed_for_good(error: ConnectionClosed) -> CourierError | None:
    """The error to give up with when the server closed for a reason a resend cannot fix."""
    code = error.rcvd.code if error.rcvd is not None else None
    if code == CLOSE_MESSAGE_TOO_BIG:
        return MessageTooLarge("The server closed the connection: a message was too large for it (1009).")
    if code == CLOSE_INVALID_DATA:
        return MessageTooLarge("The server closed the connection: a message was not valid UTF-8 (1007).")
    return None


class ChatConnection:
    """One logical session with Courier over a WebSocket that may drop and come back.

    `on_frame` sees every raw frame received (for `--json`); reconnects happen inside `run_turn`.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        on_frame: FrameHook | None = None,
        reconnect_attempts: int = 8,
        reconnect_delay_s: float = 0.25,
        max_drops_without_progress: int = 5,
        open_timeout_s: float = 10.0,
        retry_wait_s: float = 60.0,
        status_poll_s: float = 2.0,
        ack_timeout_s: float = 15.0,
    ) -> None:
        self.url = url
        self.token = token
        self.on_frame = on_frame
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_delay_s = reconnect_delay_s
        # A turn gives up after this many drops in a row with nothing received in between: a server
        # that keeps closing on the same frame is never retried for ever.
        self.max_drops_without_progress = max_drops_without_progress
        self.open_timeout_s = open_timeout_s
        # After an `error`, how long to wait for a later attempt of a turn that is not over, and how
        # often to ask again while the server cannot say (its database is away).
        self.retry_wait_s = retry_wait_s
        self.status_poll_s = status_poll_s
        self.ack_timeout_s = ack_timeout_s  # how long `sendMessage` waits for its ack
        self.reconnects = 0
        self._ws: ClientConnection | None = None
        self._early: list[dict[str, Any]] = []  # chunks that arrived before their turn's ack

    # -------------------------------------------------------- socket

    async def open(self) -> None:
        try:
            self._ws = await connect(
                self.url,
                subprotocols=_subprotocols(self.token),  # type: ignore[arg-type]
                open_timeout=self.open_timeout_s,
                max_size=2**20,
                ping_interval=20,
            )
        except InvalidStatus as error:
            status = error.response.status_code
            if status in (401, 403):
                raise AuthRejected(f"The server refused the token (HTTP {status}).") from error
            if status >= 500:
                raise ServiceUnavailable(
                    f"Courier is unavailable right now (HTTP {status}): try again in a moment."
                ) from error
            raise ConnectFailed(f"The server refused the connection (HTTP {status}).") from error
        except (OSError, TimeoutError, InvalidHandshake) as error:
            raise ConnectFailed(f"Could not connect to {_redact(self.url)}: {error}") from error

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def drop(self) -> None:
        """Cut the socket abruptly, as a network failure would (tests use this to prove resume)."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def __aenter__(self) -> ChatConnection:
        await self.open()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def websocket(self) -> ClientConnection:
        if self._ws is None:
            raise ConnectionLost("not connected")
        return self._ws

    async def send(self, frame: dict[str, Any]) -> None:
        await self.websocket.send(encode_frame(frame))

    async def receive(self, timeout_s: float | None = None) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):  # not wait_for: on 3.11 it can lose a Ctrl-C's cancel
            raw = await self.websocket.recv()
        frame: dict[str, Any] = json.loads(raw)
        if self.on_frame is not None:
            self.on_frame(frame)
        return frame

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.receive()

    async def _reconnect(self, drops: int = 1) -> None:
        """Open a new socket after a drop, with growing pauses; ConnectionLost when the budget runs out.

        `drops` is how many times in a row the connection dropped without progress: the first pause
        grows with it, and past `max_drops_without_progress` the turn gives up.
        """
        await self.close()
        if drops > self.max_drops_without_progress:
            raise ConnectionLost(
                f"The connection dropped {drops} times in a row without getting anywhere: giving up."
            )
        delay = min(self.reconnect_delay_s * 2 ** (drops - 1), 3.0)
        for _ in range(self.reconnect_attempts):
            await asyncio.sleep(delay)
            try:
                await self.open()
            except ConnectFailed:
                delay = min(delay * 2, 3.0)
                continue
            self.reconnects += 1
            return
        raise ConnectionLost("The connection dropped and could not be re-established.")

    # -------------------------------------------------------- request/answer actions

    async def request(
        self, frame: dict[str, Any], answer_type: str, timeout_s: float = 10.0
    ) -> dict[str, Any]:
        """Send an action and wait for its answer (or its `error` frame). Other frames are skipped."""
        await self.send(frame)
        deadline = time.monotonic() + timeout_s
        while True:
            reply = await self.receive(max(0.01, deadline - time.monotonic()))
            if reply.get("type") == answer_type:
                return reply
            if reply.get("type") == "error" and reply.get("action") in (frame.get("action"), None):
                raise RequestFailed(reply)

    async def ping(self) -> dict[str, Any]:
        return await self.request({"action": "ping"}, "pong")

    async def list_conversations(self, limit: int = 20) -> dict[str, Any]:
        return await self.request({"action": "listConversations", "limit": limit}, "conversations")

    async def history(self, conversation_id: str, limit: int = 20) -> dict[str, Any]:
        return await self.request(
            {"action": "getHistory", "conversationId": conversation_id, "limit": limit}, "history"
        )

    async def cancel(self, turn_id: str) -> None:
        """Ask the server to stop the turn; its `abort` chunk arrives on the turn's stream."""
        await self.send({"action": "cancel", "turnId": turn_id})

    # -------------------------------------------------------- a whole turn

    async def send_message(
        self, text: str, conversation_id: str | None = None, client_message_id: str | None = None
    ) -> dict[str, Any]:
        """Send `sendMessage` and return its `ack`. Chunks that overtake the ack are kept for the turn.

        Raises MessageTooLarge, before sending anything, for a message over the protocol's limits.
        """
        check_message(text)
        frame: dict[str, Any] = {
            "action": "sendMessage",
            "clientMessageId": client_message_id or str(uuid.uuid4()),
            "text": text,
        }
        if conversation_id is not None:
            frame["conversationId"] = conversation_id
        await self.send(frame)
        self._early = []
        while True:
            reply = await self.receive(self.ack_timeout_s)
            if reply.get("type") == "ack" and reply.get("clientMessageId") == frame["clientMessageId"]:
                return reply
            if reply.get("type") == "error" and reply.get("action") in ("sendMessage", None):
                raise RequestFailed(reply)
            if reply.get("type") in ("chunk", "snapshot"):
                self._early.append(reply)

    async def run_turn(
        self,
        text: str,
        conversation_id: str | None = None,
        *,
        on_update: UpdateHook | None = None,
        on_ack: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
        cancel_event: asyncio.Event | None = None,
    ) -> TurnResult:
        """Send a message and follow its turn to the end, resuming on a new socket if this one drops.

        A drop before the `ack` resends the same `clientMessageId` (the server answers with the same
        turn); a drop after it reconnects and sends `resume` with the last seq seen. Setting
        `cancel_event` sends `cancel` and waits for the turn to end.

        An `error` ending is checked with `resume`: a stored turn that is over (failed) ends the turn
        here; one still open means a later attempt is coming (the worker gave up during a database
        outage), and the turn goes on with it, for at most `retry_wait_s`.
        """
        check_message(text)
        started = time.monotonic()
        client_message_id = str(uuid.uuid4())
        ack: dict[str, Any] | None = None
        drops = 0
        while ack is None:
            try:
                ack = await self.send_message(text, conversation_id, client_message_id)
            except ConnectionClosed as error:
                if (fatal := _closed_for_good(error)) is not None:
                    raise fatal from error
                drops += 1
                await self._reconnect(drops)
            except ConnectionLost:
                drops += 1
                await self._reconnect(drops)
        if on_ack is not None:
            maybe = on_ack(ack)
            if maybe is not None:
                await maybe
        view = TurnView(str(ack["turnId"]))
        first_text_s: float | None = None

        def fold(frame: dict[str, Any]) -> None:
            nonlocal first_text_s
            for update in view.apply(frame):
                if first_text_s is None and isinstance(update, TextAppended) and update.delta:
                    first_text_s = time.monotonic() - started
                if on_update is not None:
                    on_update(update)

        for early in self._early:
            fold(early)
        cancel_sent = False
        drops = 0
        # Set while the turn has ended with an `error` that a later attempt may replace: until then
        # the stored turn is asked (`resume`) whether it is over or will be retried.
        retry_deadline: float | None = None
        told_retry = False
        refusals = 0  # resume answered with a retryable error, in a row

        async def ask_status() -> None:
            await self.send({"action": "resume", "turnId": view.turn_id, "afterSeq": view.last_seq})

        def expect_retry() -> None:
            nonlocal told_retry
            if not told_retry and on_update is not None:
                assert view.ended is not None
                on_update(AwaitingRetry(view.ended.error_text))
            told_retry = True

        while True:
            if view.ended is not None:
                if not view.may_retry:
                    break
                if retry_deadline is None:
                    retry_deadline = time.monotonic() + self.retry_wait_s
                    with contextlib.suppress(ConnectionClosed, ConnectionLost):
                        await ask_status()  # if the socket is gone, the reconnect below asks
            try:
                if cancel_event is not None and cancel_event.is_set() and not cancel_sent:
                    await self.cancel(view.turn_id)
                    cancel_sent = True
                wait_s = None if retry_deadline is None else max(0.0, retry_deadline - time.monotonic())
                try:
                    frame = await self._receive_or_cancel(
                        cancel_event if not cancel_sent else None, timeout_s=wait_s
                    )
                except TimeoutError:
                    view.settle()  # no later attempt came in time: the error stands
                    break
                if frame is None:
                    continue  # cancel requested: loop sends it
                drops = 0  # something arrived: the connection is getting somewhere
                if frame.get("type") == "error" and frame.get("action") == "cancel":
                    continue
                if frame.get("type") == "error" and frame.get("action") == "resume":
                    refusals += 1
                    if not frame.get("retryable"):
                        if retry_deadline is None:
                            raise RequestFailed(frame)
                        view.settle()  # e.g. not_found: nothing more will come for this turn
                        break
                    if retry_deadline is None and refusals * self.status_poll_s > self.retry_wait_s:
                        raise RequestFailed(frame)
                    if retry_deadline is not None:
                        expect_retry()  # the server cannot tell yet (its database is away)
                    await asyncio.sleep(self.status_poll_s)
                    await ask_status()
                    continue
                if frame.get("type") == "snapshot":
                    refusals = 0
                if (
                    retry_deadline is not None
                    and view.ended is not None
                    and frame.get("type") == "snapshot"
                    and frame.get("turnId") == view.turn_id
                    and int(frame.get("attempt", 0)) <= view.attempt
                ):
                    if str(frame.get("status")) in TERMINAL_STATUSES:
                        view.settle()  # stored as over: no retry will come
                        break
                    expect_retry()  # stored as still open: its next attempt is on its way
                    continue
                fold(frame)
                if view.ended is None:
                    retry_deadline, told_retry = None, False  # a later attempt has begun
            except (ConnectionClosed, ConnectionLost):
                drops += 1
                await self._reconnect(drops)
                await self.send({"action": "resume", "turnId": view.turn_id, "afterSeq": view.last_seq})
                cancel_sent = False if cancel_event is not None and cancel_event.is_set() else cancel_sent
        assert view.ended is not None
        return TurnResult(
            turn_id=view.turn_id,
            conversation_id=str(ack["conversationId"]),
            status=view.ended.status,
            text=view.text,
            reasoning=view.reasoning,
            error_text=view.ended.error_text,
            metadata=view.ended.metadata or {},
            tools=list(view.tools.values()),
            elapsed_s=time.monotonic() - started,
            first_text_s=first_text_s,
            reconnects=self.reconnects,
        )

    async def _receive_or_cancel(
        self, cancel_event: asyncio.Event | None, timeout_s: float | None = None
    ) -> dict[str, Any] | None:
        """The next frame, or None when `cancel_event` is set first; TimeoutError after `timeout_s`."""
        if cancel_event is None:
            return await self.receive(timeout_s)
        receiving = asyncio.ensure_future(self.receive())
        cancelling = asyncio.ensure_future(cancel_event.wait())
        done, _ = await asyncio.wait(
            {receiving, cancelling}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if receiving in done:
            cancelling.cancel()
            return receiving.result()
        cancelling.cancel()
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await receiving
        if not done:
            raise TimeoutError
        return None


def _redact(url: str) -> str:
    """The URL without a query string (it may carry ?token=)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
