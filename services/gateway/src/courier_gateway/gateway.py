"""The gateway: every WebSocket route of the protocol, answered from the chat store.

Each client frame gets exactly one answer (the route response): the action's answer, or an `error`
frame whose code and message say what to fix. Identity comes only from the authorizer context, and
every store call is scoped by it, so another user's conversation or turn reads as not found.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from courier_gateway.cursors import CursorSigner, ForgedCursor
from courier_gateway.events import WebSocketEvent, connect_response, frame_response, refuse_connect
from courier_gateway.fair_use import FrameRateLimiter
from courier_gateway.observability import record_refusal
from courier_gateway.ports import GatewayRepository, GatewayStore
from courier_gateway.queue import TurnQueue
from courier_shared.db.models import Conversation, ToolInvocation, Turn
from courier_shared.db.store import ClientMessageIdReused, InvalidCursor, Owner, encode_cursor
from courier_shared.protocol import (
    CHAT_REQUEST_TYPES,
    CLIENT_ACTIONS,
    ENVELOPED_ACTIONS,
    MAX_CHAT_FRAME_DEPTH,
    MAX_CLIENT_FRAME_DEPTH,
    MAX_REQUEST_ID_CHARS,
    SUBPROTOCOL,
    Ack,
    Cancel,
    ChatAbort,
    ChatEnd,
    ChatError,
    ChatNoActive,
    ChatResponse,
    ChatResume,
    ChatSend,
    ChatStart,
    ClientFrame,
    Conversations,
    ConversationSummary,
    Error,
    ErrorCode,
    GetHistory,
    History,
    HistoryTool,
    HistoryToolState,
    HistoryTurn,
    ListConversations,
    Ping,
    Pong,
    Resume,
    SendMessage,
    Snapshot,
    Usage,
    describe_validation_error,
    dump_frame,
    nesting_depth,
    parse_chat_request,
    parse_client_frame,
)
from courier_shared.queue import TurnRequest

RATE_WINDOW = timedelta(minutes=1)
# API Gateway refuses a route response over 128 KB: a history page stops short of it, and its
# nextCursor continues from the oldest turn it holds.
HISTORY_RESPONSE_BUDGET_BYTES = 120 * 1024
# What one turn's tool calls may add to a history page: a stored input may be 16 KiB and a turn may
# make many calls, so history keeps small inputs whole and, past the turn's budget, only the calls'
# places and states (a history frame must always hold one whole turn).
HISTORY_TOOL_INPUT_MAX_BYTES = 2 * 1024
HISTORY_TOOLS_MAX_BYTES = 8 * 1024
NO_COURIER_SUBPROTOCOL = (
    "Offer the WebSocket subprotocol 'courier.v1' (with 'bearer.<token>'), or offer none and pass "
    "the token as ?token=."
)
NO_SUCH_CONVERSATION = "No conversation with that conversationId."
NO_SUCH_TURN = "No turn with that turnId."
BAD_CURSOR = (
    "The 'before' cursor is not one Courier issued for this request: pass the nextCursor of an earlier "
    "answer to the same action (and conversation), or omit it."
)


@dataclass(frozen=True)
class GatewayLimits:
    max_message_chars: int
    max_frame_bytes: int
    send_rate_per_minute: int
    max_open_turns: int
    open_turn_window: timedelta = timedelta(minutes=15)


class FrameError(Exception):
    """A client frame that gets an `error` answer instead of its action's answer."""

    def __init__(self, code: ErrorCode, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class _NewMessage:
    """A message to answer, from `sendMessage` or from an AI SDK `send`."""

    client_message_id: uuid.UUID
    text: str
    conversation_id: uuid.UUID | None = None  # sendMessage: an existing conversation, or a new one
    chat_id: str | None = None  # AI SDK: the chat's id names the conversation, made on first use
    request_id: str | None = None  # AI SDK: the request whose stream the answer is


@dataclass(frozen=True)
class _StoredTurn:
    turn_id: uuid.UUID
    conversation_id: uuid.UUID
    needs_enqueue: bool


class Gateway:
    def __init__(
        self,
        store: GatewayStore,
        queue: TurnQueue,
        limits: GatewayLimits,
        *,
        cursors: CursorSigner,
        fair_use: FrameRateLimiter,
        clock: Callable[[], datetime],
        logger: Logger,
    ) -> None:
        self._store = store
        self._queue = queue
        self._limits = limits
        self._cursors = cursors
        self._fair_use = fair_use
        self._clock = clock
        self._logger = logger

    def handle(self, event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
        """One API Gateway WebSocket event in, the Lambda proxy response out. Never raises."""
        try:
            request = WebSocketEvent.from_event(event)
            if request.route_key == "$connect":
                return self._connect(request)
            if request.route_key == "$disconnect":
                return self._disconnect(request)
            answer = self.answer(request)
            return frame_response(answer.dump() if isinstance(answer, Enveloped) else dump_frame(answer))
        except Exception:  # a bug: the client still gets a server error, never a dropped socket
            self._logger.exception("event failed")
            record_refusal(ErrorCode.INTERNAL.value)
            context = event.get("requestContext") if isinstance(event, Mapping) else None
            if isinstance(context, Mapping) and context.get("eventType") in ("CONNECT", "DISCONNECT"):
                return {"statusCode": 500}
            return frame_response(dump_frame(_internal_error(None, None)))

    # ---------------------------------------------------------------- connection lifecycle

    def _connect(self, request: WebSocketEvent) -> dict[str, Any]:
        if request.owner is None:  # only reachable if the route lost its authorizer: refuse
            self._logger.warning("connect without identity", extra={"connection_id": request.connection_id})
            record_refusal(ErrorCode.UNAUTHORIZED.value)
            return {"statusCode": 401}
        if request.offered_subprotocols and SUBPROTOCOL not in request.offered_subprotocols:
            # A browser would fail the handshake on its own; say why while we still can.
            self._logger.info("connect refused", extra={**_who(request), "reason": "no courier.v1"})
            record_refusal(ErrorCode.BAD_REQUEST.value)
            return refuse_connect(400, NO_COURIER_SUBPROTOCOL)
        try:
            with self._store.unit_of_work() as repo:
                repo.register_connection(request.owner, request.connection_id, self._clock())
        except Exception:
            # A server error, never 401/403: clients tell "the service is down" from "your token".
            self._logger.exception("connect failed", extra={"connection_id": request.connection_id})
            record_refusal(ErrorCode.INTERNAL.value)
            return refuse_connect(500, "Courier cannot accept connections right now: try again shortly.")
        self._logger.info("connected", extra=_who(request))
        return connect_response(request.offered_subprotocols)

    def _disconnect(self, request: WebSocketEvent) -> dict[str, Any]:
        # Best effort, as in AWS: a missed $disconnect only leaves a row the worker learns is gone.
        try:
            with self._store.unit_of_work() as repo:
                repo.unregister_connection(request.connection_id, self._clock())
        except Exception:
            self._logger.exception("disconnect failed", extra={"connection_id": request.connection_id})
            return {"statusCode": 500}
        self._logger.info("disconnected", extra=_who(request))
        return {"statusCode": 200}

    # ---------------------------------------------------------------- client frames

    def answer(
        self, request: WebSocketEvent
    ) -> Ack | Snapshot | History | Conversations | Pong | Error | ChatResponse | Enveloped:
        hints: _Hints = (None, None)
        try:
            body = request.body or ""
            document = self._load(body)
            if isinstance(document, dict) and _is_chat_request(document):
                return self._answer_chat(request, body, document)
            if isinstance(document, dict) and _is_enveloped_action(document):
                return self._answer_enveloped(request, document)
            hints = _hints(document)
            owner = self._admitted_owner(request)
            self._check(body, document)
            answer = self._dispatch(self._parse(body), request, owner)
        except FrameError as error:
            self._logger.info(
                "frame refused", extra={**_who(request), "action": hints[0], "code": error.code.value}
            )
            record_refusal(error.code.value)
            return Error(
                code=error.code,
                message=error.message,
                action=hints[0],
                client_message_id=hints[1],
                retryable=error.retryable,
            )
        except Exception:
            self._logger.exception("frame failed", extra={**_who(request), "action": hints[0]})
            record_refusal(ErrorCode.INTERNAL.value)
            return _internal_error(*hints)
        self._logger.info(
            "frame answered", extra={**_who(request), "action": hints[0], "answer": answer.type}
        )
        return answer

    def _admitted_owner(self, request: WebSocketEvent) -> Owner:
        if request.owner is None:
            raise FrameError(
                ErrorCode.UNAUTHORIZED,
                "This connection has no verified identity: reconnect with a token.",
            )
        self._admit(request, request.owner)  # before anything that costs more than a lookup
        return request.owner

    def _admit(self, request: WebSocketEvent, owner: Owner) -> None:
        refusal = self._fair_use.admit(request.connection_id, owner)
        if refusal is None:
            return
        rate = self._fair_use.per_connection if refusal.limit == "connection" else self._fair_use.per_user
        where = "on one connection" if refusal.limit == "connection" else "from one user"
        raise FrameError(
            ErrorCode.RATE_LIMITED,
            f"Too many requests {where}: at most {rate.per_second:g} a second (bursts of {rate.burst}). "
            f"Wait {max(refusal.wait_s, 0.1):.1f} s, then send again.",
            retryable=True,
        )

    @staticmethod
    def _load(body: str) -> object:
        """The frame's JSON, or None if it is not JSON. The nesting is checked first, unparsed, so a
        deeply nested frame can't exhaust the parser's recursion: an AI SDK chat frame carries UI
        messages and may nest up to MAX_CHAT_FRAME_DEPTH, any other frame is one flat object."""
        if body == "":
            raise FrameError(
                ErrorCode.BAD_REQUEST, 'The frame is empty: send a JSON object like {"action":"ping"}.'
            )
        depth = nesting_depth(body)
        too_deep = FrameError(
            ErrorCode.BAD_REQUEST,
            f"The frame nests arrays or objects more than {MAX_CLIENT_FRAME_DEPTH} levels deep: "
            'a client frame is one flat JSON object like {"action":"ping"}.',
        )
        if depth > MAX_CHAT_FRAME_DEPTH:
            raise too_deep
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if depth > MAX_CLIENT_FRAME_DEPTH and not _is_chat_request(document):
            raise too_deep
        return document

    def _check_size(self, body: str) -> None:
        size = len(body.encode("utf-8", errors="surrogatepass"))
        if size > self._limits.max_frame_bytes:
            raise FrameError(
                ErrorCode.TOO_LARGE,
                f"The frame is {size} bytes; the limit is {self._limits.max_frame_bytes} bytes.",
            )

    def _check(self, body: str, document: object) -> None:
        self._check_size(body)
        if document is None:
            raise FrameError(ErrorCode.BAD_REQUEST, "The frame is not valid JSON.")
        if not isinstance(document, dict):
            raise FrameError(ErrorCode.BAD_REQUEST, 'The frame must be a JSON object like {"action":"ping"}.')
        if "action" not in document:
            raise FrameError(
                ErrorCode.BAD_REQUEST,
                f"Missing required field 'action'. Known actions: {', '.join(sorted(CLIENT_ACTIONS))}.",
            )

    def _parse(self, body: str) -> ClientFrame:
        try:
            return parse_client_frame(body)
        except ValidationError as error:
            raise FrameError(ErrorCode.BAD_REQUEST, describe_validation_error(error)) from None

    def _dispatch(
        self, frame: ClientFrame, request: WebSocketEvent, owner: Owner
    ) -> Ack | Snapshot | History | Conversations | Pong:
        match frame:
            case SendMessage():
                return self._send_message(frame, request, owner)
            case Cancel():
                return self._cancel(frame, owner)
            case Resume():
                return self._resume(frame, request, owner)
            case GetHistory():
                return self._get_history(frame, owner)
            case ListConversations():
                return self._list_conversations(frame, owner)
            case Ping():
                return Pong(server_time=self._clock())

    # ---------------------------------------------------------------- sendMessage

    def _send_message(self, frame: SendMessage, request: WebSocketEvent, owner: Owner) -> Ack:
        message = _NewMessage(frame.client_message_id, frame.text, conversation_id=frame.conversation_id)
        stored = self._take_message(message, request, owner)
        return Ack(
            action="sendMessage",
            client_message_id=frame.client_message_id,
            conversation_id=stored.conversation_id,
            turn_id=stored.turn_id,
        )

    def _take_message(self, message: _NewMessage, request: WebSocketEvent, owner: Owner) -> _StoredTurn:
        """Check, store and queue a message (once per clientMessageId): the one way a turn starts."""
        text = message.text
        if len(text) > self._limits.max_message_chars:
            raise FrameError(
                ErrorCode.TOO_LARGE,
                f"The message is {len(text)} characters; the limit is {self._limits.max_message_chars}. "
                "Shorten it or split it into several messages.",
            )
        if not text.strip():
            raise FrameError(ErrorCode.BAD_REQUEST, "The message text is empty.")
        if "\x00" in text:
            raise FrameError(ErrorCode.BAD_REQUEST, "The message text contains a NUL character.")
        # One user's sends run one at a time, across every gateway process: the limits count exactly,
        # and turns are queued in the order they are stored (and history shows), so a conversation's
        # turns run in that order.
        with self._store.owner_serialized(owner) as store:
            stored = self._store_turn(store, message, request, owner)
            if stored.needs_enqueue:
                self._enqueue(store, stored, request, owner)
        return stored

    def _store_turn(
        self, store: GatewayStore, message: _NewMessage, request: WebSocketEvent, owner: Owner
    ) -> _StoredTurn:
        now = self._clock()
        with store.unit_of_work() as repo:
            conversation = None
            if message.chat_id is not None:
                conversation = _chat_conversation(repo, owner, message.chat_id)
                if conversation is None:
                    conversation = repo.create_conversation(
                        owner, message.text, now, conversation_id=_derived_chat_uuid(owner, message.chat_id)
                    )
            elif message.conversation_id is not None:
                conversation = repo.find_conversation(owner, message.conversation_id)
                if conversation is None:
                    raise FrameError(ErrorCode.NOT_FOUND, NO_SUCH_CONVERSATION)
            try:
                turn, created = repo.create_turn(
                    owner,
                    conversation,
                    message.client_message_id,
                    message.text,
                    request.connection_id or None,
                    now,
                    admit=lambda: self._check_limits(repo, owner, now),  # only for a new message
                    request_id=message.request_id,
                )
            except ClientMessageIdReused:
                raise FrameError(
                    ErrorCode.CONFLICT,
                    "This clientMessageId was already used for a different message: "
                    "use a new clientMessageId for a new message.",
                ) from None
            # A retry gets the same answer; a turn stored but never queued (a crash or a queue
            # failure last time) is queued now.
            needs_enqueue = created or (turn.enqueued_at is None and not turn.status.is_terminal)
            return _StoredTurn(turn.id, turn.conversation_id, needs_enqueue)

    def _check_limits(self, repo: GatewayRepository, owner: Owner, now: datetime) -> None:
        # Both are "wait, then send again" conditions, so both answer rate_limited with retryable=true.
        open_turns = repo.count_open_turns_since(owner, now - self._limits.open_turn_window, now)
        if open_turns >= self._limits.max_open_turns:
            raise FrameError(
                ErrorCode.RATE_LIMITED,
                f"You have {open_turns} answers in progress (the limit is {self._limits.max_open_turns}): "
                "wait for one to finish, then send again.",
                retryable=True,
            )
        recent = repo.count_turns_since(owner, now - RATE_WINDOW)
        if recent >= self._limits.send_rate_per_minute:
            raise FrameError(
                ErrorCode.RATE_LIMITED,
                f"Too many messages: at most {self._limits.send_rate_per_minute} a minute. "
                "Wait a moment, then send again.",
                retryable=True,
            )

    def _enqueue(
        self, store: GatewayStore, stored: _StoredTurn, request: WebSocketEvent, owner: Owner
    ) -> None:
        turn_request = TurnRequest(
            turn_id=stored.turn_id,
            conversation_id=stored.conversation_id,
            tenant_id=owner.tenant_id,
            user_id=owner.user_id,
            origin_connection_id=request.connection_id or None,
            callback_url=request.callback_url,
        )
        try:
            self._queue.send(turn_request)
        except Exception:
            # The turn stays stored with enqueued_at unset: a retry with the same clientMessageId
            # queues it (SQS FIFO drops a second copy by turn id, so nothing runs twice).
            self._logger.exception("enqueue failed", extra={"turn_id": str(stored.turn_id)})
            raise FrameError(
                ErrorCode.INTERNAL,
                "Your message was saved but could not be queued: "
                "send it again with the same clientMessageId.",
                retryable=True,
            ) from None
        with store.unit_of_work() as repo:
            repo.mark_enqueued(owner, stored.turn_id, self._clock())

    def _answer_enveloped(self, request: WebSocketEvent, document: dict[str, Any]) -> Enveloped:
        """A Courier request in the AI SDK's envelope: answered as its action, with its requestId."""
        request_id = document.get("requestId")
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
            refusal = Error(
                code=ErrorCode.BAD_REQUEST,
                message=f"'requestId' must be a string of 1 to {MAX_REQUEST_ID_CHARS} characters.",
            )
            return Enveloped(refusal, "")
        fields = {key: value for key, value in document.items() if key not in ("type", "requestId")}
        action = json.dumps({"action": document["type"], **fields}, ensure_ascii=False)
        answer = self.answer(dataclasses.replace(request, body=action))
        assert not isinstance(answer, Enveloped)
        return Enveloped(answer, request_id)

    # ---------------------------------------------------------------- AI SDK chat requests

    def _answer_chat(self, request: WebSocketEvent, body: str, document: dict[str, Any]) -> ChatResponse:
        """An AI SDK WebSocketChatTransport frame: answered in its envelope, always with its
        `requestId` (the transport drops the whole connection on a frame without one)."""
        raw_id = document.get("requestId")
        request_id = raw_id if isinstance(raw_id, str) else ""
        kind = str(document.get("type"))
        try:
            owner = self._admitted_owner(request)
            self._check_size(body)
            try:
                frame = parse_chat_request(body)
            except ValidationError as error:
                raise FrameError(ErrorCode.BAD_REQUEST, describe_validation_error(error)) from None
            match frame:
                case ChatSend():
                    answer: ChatResponse = self._chat_send(frame, request, owner)
                case ChatResume():
                    answer = self._chat_resume(frame, request, owner)
                case ChatAbort():
                    answer = self._chat_abort(frame, request, owner)
        except FrameError as error:
            self._logger.info(
                "chat frame refused", extra={**_who(request), "type": kind, "code": error.code.value}
            )
            record_refusal(error.code.value)
            return ChatError(request_id=request_id, error_text=error.message)
        except Exception:
            self._logger.exception("chat frame failed", extra={**_who(request), "type": kind})
            record_refusal(ErrorCode.INTERNAL.value)
            return ChatError(request_id=request_id, error_text=_internal_error(None, None).message)
        self._logger.info("chat frame answered", extra={**_who(request), "type": kind, "answer": answer.type})
        return answer

    def _chat_send(self, frame: ChatSend, request: WebSocketEvent, owner: Owner) -> ChatStart:
        """The last user message is the question: Courier keeps the conversation's history itself."""
        question = next((m for m in reversed(frame.messages) if m.role == "user"), None)
        if question is None:
            raise FrameError(ErrorCode.BAD_REQUEST, "The chat has no user message to answer.")
        if frame.trigger == "regenerate-message":
            # Another answer to the same question: a new turn, once per request.
            client_message_id = uuid.uuid5(CHAT_NAMESPACE, f"regenerate\n{frame.request_id}")
        else:
            client_message_id = _uuid_for(question.id)
        message = _NewMessage(
            client_message_id, question.text(), chat_id=frame.id, request_id=frame.request_id
        )
        self._take_message(message, request, owner)
        return ChatStart(request_id=frame.request_id)

    def _chat_resume(
        self, frame: ChatResume, request: WebSocketEvent, owner: Owner
    ) -> ChatStart | ChatNoActive:
        """The chat's answer in progress, replayed from its start by the worker; else no-active."""
        with self._store.unit_of_work() as repo:
            conversation = _chat_conversation(repo, owner, frame.id)
            turn = None if conversation is None else repo.open_turn_of(owner, conversation.id, self._clock())
            if turn is not None:
                # Share-locks the turn: if its worker is ending it right now, we see the ending.
                turn = repo.add_listener(owner, turn.id, request.connection_id, frame.request_id)
            if turn is None or turn.status.is_terminal:
                return ChatNoActive(request_id=frame.request_id)
        return ChatStart(request_id=frame.request_id)

    def _chat_abort(self, frame: ChatAbort, request: WebSocketEvent, owner: Owner) -> ChatEnd:
        """Stop the answer this request streams (the transport has closed its stream already)."""
        with self._store.unit_of_work() as repo:
            turn = repo.find_request_turn(owner, request.connection_id, frame.request_id)
            if turn is not None:
                repo.request_cancel(owner, turn.id, self._clock())
                repo.remove_listener(turn.id, request.connection_id)  # the request is over: no more posts
        return ChatEnd(request_id=frame.request_id)

    # ---------------------------------------------------------------- the other actions

    def _cancel(self, frame: Cancel, owner: Owner) -> Ack:
        with self._store.unit_of_work() as repo:
            turn = repo.request_cancel(owner, frame.turn_id, self._clock())
            if turn is None:
                raise FrameError(ErrorCode.NOT_FOUND, NO_SUCH_TURN)
            return Ack(action="cancel", conversation_id=turn.conversation_id, turn_id=turn.id)

    def _resume(self, frame: Resume, request: WebSocketEvent, owner: Owner) -> Snapshot:
        with self._store.unit_of_work() as repo:
            turn = repo.add_listener(owner, frame.turn_id, request.connection_id)
            if turn is None:
                raise FrameError(ErrorCode.NOT_FOUND, NO_SUCH_TURN)
            return Snapshot(
                turn_id=turn.id,
                attempt=turn.attempt,
                seq=turn.last_seq,
                status=turn.status,
                text=turn.assistant_text,
            )

    def _get_history(self, frame: GetHistory, owner: Owner) -> History:
        scope = str(frame.conversation_id)
        before = self._open_cursor(frame.before, "getHistory", owner, scope)
        with self._store.unit_of_work() as repo:
            # Named as a chat id is (the AI SDK's chat ids are UUIDs too): a page that started a chat
            # before the first answer named its conversation can still read it.
            conversation = _chat_conversation(repo, owner, str(frame.conversation_id))
            if conversation is None:
                raise FrameError(ErrorCode.NOT_FOUND, NO_SUCH_CONVERSATION)
            try:
                page = repo.history(owner, conversation.id, before=before, limit=frame.limit)
            except InvalidCursor:
                raise FrameError(ErrorCode.BAD_REQUEST, BAD_CURSOR) from None
            calls = repo.tool_invocations_of(owner, [turn.id for turn in page.items])
            turns = [_history_turn(turn, calls.get(turn.id, [])) for turn in page.items]
        kept = _newest_that_fit(turns, HISTORY_RESPONSE_BUDGET_BYTES)
        position = page.next_cursor
        if len(kept) < len(turns):
            position = encode_cursor(kept[0].created_at, kept[0].turn_id)
        return History(
            conversation_id=conversation.id,  # the conversation's own id, also when asked by chat id
            turns=kept,
            next_cursor=self._issue_cursor(position, "getHistory", owner, scope),
        )

    def _list_conversations(self, frame: ListConversations, owner: Owner) -> Conversations:
        before = self._open_cursor(frame.before, "listConversations", owner)
        with self._store.unit_of_work() as repo:
            try:
                page = repo.list_conversations(owner, before=before, limit=frame.limit)
            except InvalidCursor:
                raise FrameError(ErrorCode.BAD_REQUEST, BAD_CURSOR) from None
            return Conversations(
                conversations=[
                    ConversationSummary(
                        conversation_id=conversation.id,
                        title=conversation.title,
                        updated_at=conversation.updated_at,
                    )
                    for conversation in page.items
                ],
                next_cursor=self._issue_cursor(page.next_cursor, "listConversations", owner),
            )

    def _open_cursor(self, cursor: str | None, action: str, owner: Owner, scope: str = "") -> str | None:
        if cursor is None:
            return None
        try:
            return self._cursors.open(cursor, action=action, owner=owner, scope=scope)
        except ForgedCursor:
            raise FrameError(ErrorCode.BAD_REQUEST, BAD_CURSOR) from None

    def _issue_cursor(self, position: str | None, action: str, owner: Owner, scope: str = "") -> str | None:
        if position is None:
            return None
        return self._cursors.issue(position, action=action, owner=owner, scope=scope)


def _newest_that_fit(turns: list[HistoryTurn], budget_bytes: int) -> list[HistoryTurn]:
    """The newest turns (oldest first) whose wire size stays within the budget; always at least one.

    One turn always fits: its user text is capped by MAX_MESSAGE_CHARS and its inline answer by the
    worker's INLINE_TEXT_MAX_BYTES (the rest of a longer answer is in S3).
    """
    kept: list[HistoryTurn] = []
    used = 0
    for turn in reversed(turns):
        size = len(dump_frame(turn).encode())
        if kept and used + size > budget_bytes:
            break
        kept.append(turn)
        used += size
    kept.reverse()
    return kept


def _history_turn(turn: Turn, calls: list[ToolInvocation]) -> HistoryTurn:
    usage = None
    if turn.input_tokens is not None or turn.output_tokens is not None:
        usage = Usage(input_tokens=turn.input_tokens or 0, output_tokens=turn.output_tokens or 0)
    return HistoryTurn(
        turn_id=turn.id,
        status=turn.status,
        user_text=turn.user_text,
        assistant_text=turn.assistant_text,
        reasoning_text=turn.reasoning_text or "",  # unset until the row is flushed
        model=turn.model_id,
        usage=usage,
        created_at=turn.created_at,
        completed_at=turn.completed_at,
        time_to_first_token_ms=turn.time_to_first_token_ms,
        latency_ms=turn.latency_ms,
        tools=_history_tools(calls),
    )


def _history_tools(calls: list[ToolInvocation]) -> list[HistoryTool]:
    """A turn's tool calls as history shows them. Bounded, so one turn always fits a history frame:
    an input over HISTORY_TOOL_INPUT_MAX_BYTES is `{"truncated": true}` (as a chunk's would be), and
    once the turn's calls have used HISTORY_TOOLS_MAX_BYTES, later calls keep their place, state and
    error text but not their input or output."""
    tools: list[HistoryTool] = []
    used = 0
    for call in calls:
        state, output, error_text = _tool_result(call)
        tool_input = call.input if isinstance(call.input, dict) else {"value": call.input}
        if len(json.dumps(tool_input, default=str).encode()) > HISTORY_TOOL_INPUT_MAX_BYTES:
            tool_input = {"truncated": True}
        tool = HistoryTool(
            tool_call_id=call.tool_call_id,
            tool_name=call.tool_name,
            input=tool_input,
            state=state,
            output=output,
            error_text=error_text,
            text_offset=max(0, call.text_offset or 0),
            duration_ms=call.duration_ms,
        )
        size = len(dump_frame(tool).encode())
        if used + size > HISTORY_TOOLS_MAX_BYTES:
            tool = tool.model_copy(update={"input": {"truncated": True}, "output": None})
            size = len(dump_frame(tool).encode())
        tools.append(tool)
        used += size
    return tools


def _tool_result(call: ToolInvocation) -> tuple[HistoryToolState, Any, str | None]:
    """(state, output, errorText) of a stored call. The worker stores `success`, `error`,
    `cancelled`, `crashed` or (never finished) `running`; its output summary is the output's JSON,
    or `{"error": <text safe to show>}` for a failed call."""
    summary: Any = None
    if call.output_summary is not None:
        try:
            summary = json.loads(call.output_summary)
        except ValueError:
            summary = call.output_summary
    if call.status == "running":
        return "input-available", None, None
    if call.status == "success":
        return "output-available", summary, None
    error = summary.get("error") if isinstance(summary, dict) else None
    return "output-error", None, str(error) if isinstance(error, str) and error else "The tool failed."


def _internal_error(action: str | None, client_message_id: uuid.UUID | None) -> Error:
    return Error(
        code=ErrorCode.INTERNAL,
        message="Something went wrong on our side. Try again in a moment.",
        action=action,
        client_message_id=client_message_id,
        retryable=True,
    )


# AI SDK chat ids are any string; a conversation id is a UUID. A chat id that is not the UUID of one
# of the user's conversations names the conversation uuid5(CHAT_NAMESPACE, tenant, user, chat id).
CHAT_NAMESPACE = uuid.UUID("5b0e4c55-7c2a-4b8e-9a51-c0a1e4f7d3b2")


@dataclass(frozen=True)
class Enveloped:
    """An answer to a request in the AI SDK's envelope: the action's frame plus its `requestId`."""

    frame: Ack | Snapshot | History | Conversations | Pong | Error | ChatResponse
    request_id: str

    @property
    def type(self) -> str:
        return self.frame.type

    def dump(self) -> str:
        return json.dumps(
            {**json.loads(dump_frame(self.frame)), "requestId": self.request_id}, ensure_ascii=False
        )


def _is_enveloped_action(document: dict[str, Any]) -> bool:
    return _enveloped_type(document) in ENVELOPED_ACTIONS


def _is_chat_request(document: object) -> bool:
    """An AI SDK chat frame: a `type` it sends and no `action` (API Gateway routes it to $default)."""
    return isinstance(document, dict) and _enveloped_type(document) in CHAT_REQUEST_TYPES


def _enveloped_type(document: dict[str, Any]) -> str | None:
    """The `type` of a frame in the AI SDK's envelope (no `action`), if it is a string."""
    kind = document.get("type")
    return kind if "action" not in document and isinstance(kind, str) else None


def _derived_chat_uuid(owner: Owner, chat_id: str) -> uuid.UUID:
    return uuid.uuid5(CHAT_NAMESPACE, f"{owner.tenant_id}\n{owner.user_id}\n{chat_id}")


def _chat_conversation(repo: GatewayRepository, owner: Owner, chat_id: str) -> Conversation | None:
    """The user's conversation a chat id names: the conversation with that id, else the derived one."""
    candidates = [_derived_chat_uuid(owner, chat_id)]
    with contextlib.suppress(ValueError):
        candidates.insert(0, uuid.UUID(chat_id))
    for conversation_id in candidates:
        conversation = repo.find_conversation(owner, conversation_id)
        if conversation is not None:
            return conversation
    return None


def _uuid_for(message_id: str) -> uuid.UUID:
    """A UI message's id as a clientMessageId (the idempotency key: a resent message is one turn)."""
    try:
        return uuid.UUID(message_id)
    except ValueError:
        return uuid.uuid5(CHAT_NAMESPACE, f"message\n{message_id}")


_Hints = tuple[str | None, uuid.UUID | None]


def _hints(document: object) -> _Hints:
    """The frame's action and clientMessageId, when readable, so an error can name them."""
    if not isinstance(document, dict):
        return None, None
    action = document.get("action")
    known_action = action if isinstance(action, str) and action in CLIENT_ACTIONS else None
    client_message_id = None
    raw_id = document.get("clientMessageId")
    if isinstance(raw_id, str):
        try:
            client_message_id = uuid.UUID(raw_id)
        except ValueError:
            client_message_id = None
    return known_action, client_message_id


def _who(request: WebSocketEvent) -> dict[str, Any]:
    owner = request.owner
    return {
        "route": request.route_key,
        "connection_id": request.connection_id,
        "tenant_id": owner.tenant_id if owner else None,
        "user_id": owner.user_id if owner else None,
    }
