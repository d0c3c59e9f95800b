"""The wire protocol, version 1: every frame a client and Courier exchange (docs/protocol.md).

Client frames are validated strictly (unknown fields rejected). Server frames and chunk parts are
built here and serialised with `dump_frame`, so every producer speaks exactly the same shapes.
Chunk parts are the Vercel AI SDK UI message stream (v5) parts, unchanged.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from courier_shared.turn_states import TurnStatus as TurnStatus  # part of the protocol's vocabulary

PROTOCOL_VERSION = 1
SUBPROTOCOL = "courier.v1"
BEARER_PREFIX = "bearer."
MAX_FRAME_BYTES = 32 * 1024  # API Gateway's frame limit: a bigger frame closes the socket with 1009
MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway's message limit (a message may span several frames)
# What a Courier client puts in one frame at most. AWS writes "32 KB" without saying whether it means
# 32,000 or 32,768 bytes, so clients stay under the smaller reading.
CLIENT_FRAME_BUDGET_BYTES = 32_000
# The most bytes one character of `text` can take in a frame: a control character is sent as the
# JSON escape \u00XX (6 bytes); anything else takes at most 4 (UTF-8, no \u escaping).
WORST_CASE_BYTES_PER_CHAR = 6
# The longest message (in characters, i.e. Unicode code points): even in its worst-case encoding
# (6 x 5,000 = 30,000 bytes, plus under 200 bytes of action, ids and field names) it fits one client
# frame, so no client ever has to split a message or send a frame API Gateway would drop.
MAX_MESSAGE_CHARS = 5_000
DEFAULT_MAX_MESSAGE_CHARS = MAX_MESSAGE_CHARS
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_CLIENT_FRAME_DEPTH = 8  # a client frame is one flat JSON object; deeper is refused unparsed
MAX_NAME_CHARS_IN_ERRORS = 40  # a field name quoted back in an error message is cut to this


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class _ClientFrame(_Wire):
    # Strict: "20" or true is not an int; camelCase only: `client_message_id` is an unknown field.
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False, validate_by_name=False)


# ---------------------------------------------------------------- client → server


class SendMessage(_ClientFrame):
    action: Literal["sendMessage"]
    client_message_id: UUID
    text: str = Field(min_length=1)  # the upper bound is a setting, checked by the gateway
    conversation_id: UUID | None = None


class Cancel(_ClientFrame):
    action: Literal["cancel"]
    turn_id: UUID


class Resume(_ClientFrame):
    action: Literal["resume"]
    turn_id: UUID
    after_seq: int | None = Field(default=None, ge=-1)


class GetHistory(_ClientFrame):
    action: Literal["getHistory"]
    conversation_id: UUID
    before: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)


class ListConversations(_ClientFrame):
    action: Literal["listConversations"]
    before: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)


class Ping(_ClientFrame):
    action: Literal["ping"]


ClientFrame = Annotated[
    SendMessage | Cancel | Resume | GetHistory | ListConversations | Ping,
    Field(discriminator="action"),
]
CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
# Derived from the union, so an action added there is known everywhere (errors, routes, docs test).
_CLIENT_FRAME_MODELS: tuple[type[BaseModel], ...] = get_args(get_args(ClientFrame)[0])
CLIENT_ACTIONS: frozenset[str] = frozenset(
    action for model in _CLIENT_FRAME_MODELS for action in get_args(model.model_fields["action"].annotation)
)
_CLIENT_FIELD_NAMES: frozenset[str] = frozenset(
    info.alias or name for model in _CLIENT_FRAME_MODELS for name, info in model.model_fields.items()
)


def parse_client_frame(raw: str | bytes) -> ClientFrame:
    """Parse one client frame; raises ValidationError (pydantic) for anything off-contract.

    Check `nesting_depth` first when the input is untrusted: it bounds the parser's recursion.
    """
    return CLIENT_FRAME.validate_json(raw)


_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def nesting_depth(raw: str) -> int:
    """How deeply arrays and objects nest in `raw`, without parsing it (linear, no recursion).

    Brackets inside string literals don't count; for text that is not JSON the answer is a bound.
    """
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRING_LITERAL.sub("", raw)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest


def encode_client_frame(frame: dict[str, Any]) -> str:
    """A client frame as Courier's clients send it: compact, UTF-8 as is (no \\u escapes)."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- chunk parts (AI SDK UI stream v5)


class _Part(_Wire):
    model_config = ConfigDict(extra="forbid")


class StartMetadata(_Wire):
    model: str
    attempt: int
    turn_id: UUID | None = None  # also the message id; here for the AI SDK's message metadata
    conversation_id: UUID | None = None  # the conversation an AI SDK chat id names


class StartPart(_Part):
    type: Literal["start"] = "start"
    message_id: str
    message_metadata: StartMetadata


class StartStepPart(_Part):
    type: Literal["start-step"] = "start-step"


class FinishStepPart(_Part):
    type: Literal["finish-step"] = "finish-step"


class TextStartPart(_Part):
    type: Literal["text-start"] = "text-start"
    id: str


class TextDeltaPart(_Part):
    type: Literal["text-delta"] = "text-delta"
    id: str
    delta: str


class TextEndPart(_Part):
    type: Literal["text-end"] = "text-end"
    id: str


class ReasoningStartPart(_Part):
    type: Literal["reasoning-start"] = "reasoning-start"
    id: str


class ReasoningDeltaPart(_Part):
    type: Literal["reasoning-delta"] = "reasoning-delta"
    id: str
    delta: str


class ReasoningEndPart(_Part):
    type: Literal["reasoning-end"] = "reasoning-end"
    id: str


class ToolInputAvailablePart(_Part):
    type: Literal["tool-input-available"] = "tool-input-available"
    tool_call_id: str
    tool_name: str
    input: dict[str, Any]


class ToolStatus(_Wire):
    tool_call_id: str
    summary: str


class DataToolStatusPart(_Part):
    type: Literal["data-tool-status"] = "data-tool-status"
    id: str  # the tool call's id: a later status of the same call replaces the earlier one
    data: ToolStatus


class ToolOutputAvailablePart(_Part):
    type: Literal["tool-output-available"] = "tool-output-available"
    tool_call_id: str
    output: Any


class ToolOutputErrorPart(_Part):
    type: Literal["tool-output-error"] = "tool-output-error"
    tool_call_id: str
    error_text: str


class Usage(_Wire):
    input_tokens: int = 0
    output_tokens: int = 0


class FinishMetadata(_Wire):
    stop_reason: str
    usage: Usage
    latency_ms: int | None  # None when the turn was ended by recovery, not by its worker
    time_to_first_token_ms: int | None
    status: TurnStatus = TurnStatus.COMPLETED  # the stored status (completed, cancelled, interrupted)


# The AI SDK's finish reasons (ai@7; `interrupted` is new in 7: a turn that did not complete).
FinishReason = Literal["stop", "length", "content-filter", "tool-calls", "error", "interrupted", "other"]


class FinishPart(_Part):
    type: Literal["finish"] = "finish"
    finish_reason: FinishReason
    message_metadata: FinishMetadata


class AbortPart(_Part):
    type: Literal["abort"] = "abort"
    reason: Literal["cancelled", "interrupted"]  # the turn's stored status


class ErrorPart(_Part):
    type: Literal["error"] = "error"
    error_text: str


ChunkPart = Annotated[
    StartPart
    | StartStepPart
    | FinishStepPart
    | TextStartPart
    | TextDeltaPart
    | TextEndPart
    | ReasoningStartPart
    | ReasoningDeltaPart
    | ReasoningEndPart
    | ToolInputAvailablePart
    | DataToolStatusPart
    | ToolOutputAvailablePart
    | ToolOutputErrorPart
    | FinishPart
    | AbortPart
    | ErrorPart,
    Field(discriminator="type"),
]

# ---------------------------------------------------------------- server → client


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    CONFLICT = "conflict"
    INTERNAL = "internal"


class Ack(_Wire):
    type: Literal["ack"] = "ack"
    action: str
    client_message_id: UUID | None = None
    conversation_id: UUID | None = None
    turn_id: UUID | None = None


class Chunk(_Wire):
    type: Literal["chunk"] = "chunk"
    turn_id: UUID
    attempt: int = Field(ge=1)
    seq: int = Field(ge=0)
    chunk: ChunkPart


class Snapshot(_Wire):
    type: Literal["snapshot"] = "snapshot"
    turn_id: UUID
    attempt: int
    seq: int  # the last seq the text includes; -1 before the first chunk
    status: TurnStatus
    text: str


# A tool call's state in history, in the AI SDK's terms for a tool part: it finished with an output,
# it failed, or it never finished (the attempt ended while the tool ran).
HistoryToolState = Literal["output-available", "output-error", "input-available"]


class HistoryTool(_Wire):
    """One tool call of a stored turn, as history returns it (in the order the calls were made)."""

    tool_call_id: str
    tool_name: str
    input: dict[str, Any]
    state: HistoryToolState
    output: Any  # the stored output (trimmed to about 1 KiB); null unless output-available
    error_text: str | None  # safe to show; null unless output-error
    # How many characters (Unicode code points) of the answer came before the call: the page draws
    # the tool between the first textOffset characters of assistantText and the rest. 0 for a call
    # stored before offsets were recorded; may exceed assistantText's length when only the start of
    # a long answer is inline (the rest is in S3).
    text_offset: int = Field(ge=0)
    duration_ms: int | None  # null for a call that never finished


class HistoryTurn(_Wire):
    turn_id: UUID
    status: TurnStatus
    user_text: str
    assistant_text: str
    # The model's reasoning (extended thinking) for this turn, never part of the answer; "" if none.
    reasoning_text: str = ""
    model: str | None
    usage: Usage | None
    created_at: datetime
    completed_at: datetime | None
    # From createdAt (Courier accepted the message) to the first answer text posted to listeners;
    # null when no text was posted by the worker (e.g. interrupted, or ended by recovery).
    time_to_first_token_ms: int | None
    latency_ms: int | None  # the last attempt's duration, from its start to its end
    tools: list[HistoryTool]  # its tool calls in the order made (stored when the turn ends)


class History(_Wire):
    type: Literal["history"] = "history"
    conversation_id: UUID
    turns: list[HistoryTurn]
    next_cursor: str | None


class ConversationSummary(_Wire):
    conversation_id: UUID
    title: str
    updated_at: datetime


class Conversations(_Wire):
    type: Literal["conversations"] = "conversations"
    conversations: list[ConversationSummary]
    next_cursor: str | None


class Pong(_Wire):
    type: Literal["pong"] = "pong"
    server_time: datetime


class Error(_Wire):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    action: str | None = None
    client_message_id: UUID | None = None
    retryable: bool = False


ServerFrame = Annotated[
    Ack | Chunk | Snapshot | History | Conversations | Pong | Error,
    Field(discriminator="type"),
]
SERVER_FRAME: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)


# ---------------------------------------------------------------- AI SDK chat frames
#
# The envelope of the AI SDK's WebSocketChatTransport (ai@7): every frame carries `type` and
# `requestId`; chunks carry a per-request `sequence` (0, 1, 2, … with no gaps). These frames have no
# `action`, so API Gateway routes them to `$default`, and the gateway answers them by `type`.

CHAT_REQUEST_TYPES = frozenset({"send", "resume", "abort"})
# Courier's other requests in the same envelope: `{"type": <action>, "requestId": …, …its fields}`,
# answered with the action's frame plus that `requestId`. (`sendMessage` and `resume` are the SDK's
# `send` and `resume` here.)
ENVELOPED_ACTIONS = frozenset({"cancel", "getHistory", "listConversations", "ping"})
MAX_CHAT_ID_CHARS = 200
MAX_REQUEST_ID_CHARS = 128
MAX_CHAT_FRAME_DEPTH = 32  # UI messages nest (parts, tool inputs and outputs); still bounded


class _ChatRequest(_Wire):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False, validate_by_name=False)

    request_id: str = Field(min_length=1, max_length=MAX_REQUEST_ID_CHARS)


class UIMessageIn(_Wire):
    """A UI message as the transport sends it; only the last user message's text is used."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: str = Field(max_length=200)
    role: Literal["system", "user", "assistant"]
    parts: list[dict[str, Any]]

    def text(self) -> str:
        return "\n".join(
            part["text"]
            for part in self.parts
            if part.get("type") == "text" and isinstance(part.get("text"), str)
        )


class ChatSend(_ChatRequest):
    type: Literal["send"]
    id: str = Field(min_length=1, max_length=MAX_CHAT_ID_CHARS)
    trigger: Literal["submit-message", "regenerate-message"]
    message_id: str | None = Field(default=None, max_length=200)
    messages: list[UIMessageIn] = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] = Field(default_factory=dict)
    metadata: Any = None


class ChatResume(_ChatRequest):
    type: Literal["resume"]
    id: str = Field(min_length=1, max_length=MAX_CHAT_ID_CHARS)
    last_sequence: int | None = Field(default=None, ge=0)  # advisory: the replay is always complete
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] = Field(default_factory=dict)
    metadata: Any = None


class ChatAbort(_ChatRequest):
    type: Literal["abort"]


ChatRequest = Annotated[ChatSend | ChatResume | ChatAbort, Field(discriminator="type")]
CHAT_REQUEST: TypeAdapter[ChatRequest] = TypeAdapter(ChatRequest)


def parse_chat_request(raw: str | bytes) -> ChatRequest:
    """Parse one AI SDK chat frame; raises ValidationError (pydantic) for anything off-contract."""
    return CHAT_REQUEST.validate_json(raw)


class ChatStart(_Wire):
    type: Literal["start"] = "start"
    request_id: str


class ChatChunk(_Wire):
    type: Literal["chunk"] = "chunk"
    request_id: str
    sequence: int = Field(ge=0)
    chunk: ChunkPart


class ChatEnd(_Wire):
    type: Literal["end"] = "end"
    request_id: str


class ChatError(_Wire):
    type: Literal["error"] = "error"
    request_id: str
    error_text: str


class ChatNoActive(_Wire):
    type: Literal["no-active"] = "no-active"
    request_id: str


ChatResponse = Annotated[
    ChatStart | ChatChunk | ChatEnd | ChatError | ChatNoActive, Field(discriminator="type")
]


def dump_frame(frame: _Wire) -> str:
    """Serialise a server frame (or a chunk part) exactly as it goes on the wire."""
    return frame.model_dump_json(by_alias=True, exclude_none=False)


def parse_server_frame(raw: str | bytes) -> ServerFrame:
    """Parse a server frame: what clients and tests use to read Courier's answers."""
    return SERVER_FRAME.validate_json(raw)


def _quoted_name(name: str) -> str:
    """A field name as an error message quotes it: cut short, so a huge name is not echoed back."""
    if len(name) > MAX_NAME_CHARS_IN_ERRORS:
        name = name[:MAX_NAME_CHARS_IN_ERRORS] + "…"
    return f"'{name}'"


def describe_validation_error(error: ValidationError) -> str:
    """One short sentence a person can act on, naming the first offending field.

    An unknown field is named before a missing one: `client_message_id` is more likely a misspelt
    `clientMessageId` than two mistakes.
    """
    errors = error.errors(include_input=False, include_url=False)
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    field = str(next((p for p in reversed(first["loc"]) if not isinstance(p, int)), "frame"))
    # The discriminated union puts the action's name first in the location; the field comes last.
    kind = first["type"]
    if kind == "extra_forbidden":
        hint = ""
        camel = to_camel(field)
        if camel != field and camel in _CLIENT_FIELD_NAMES:
            hint = f" Field names are camelCase: {_quoted_name(camel)}."
        return f"Unknown field {_quoted_name(field)}.{hint}"
    if kind == "missing":
        return f"Missing required field {_quoted_name(field)}."
    if kind == "union_tag_invalid":
        return f"Unknown action. Known actions: {', '.join(sorted(CLIENT_ACTIONS))}."
    if kind == "union_tag_not_found":
        return "Missing required field 'action'."
    if kind in ("json_invalid", "json_type"):
        return "The frame is not a JSON object."
    if kind == "model_attributes_type":
        return "The frame must be a JSON object."
    return f"Invalid {_quoted_name(field)}: {first['msg']}."
