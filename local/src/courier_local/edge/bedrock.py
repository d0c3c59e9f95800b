"""A local Bedrock runtime: ConverseStream (and Converse) over HTTP, answering from a script.

It speaks the real wire protocol (rest-json request, `application/vnd.amazon.eventstream` response
frames, AWS error headers), so stock botocore and `strands.models.BedrockModel(endpoint_url=...)`
run unchanged against it:

    with LocalBedrock(BedrockScript.from_text("Hello there!"), tokens_per_second=200) as bedrock:
        model = BedrockModel(model_id="us.anthropic.claude-haiku-4-5-20251001-v1:0",
                             endpoint_url=bedrock.endpoint_url, region_name="us-east-1")

Faults to inject (`bedrock.inject(...)`): throttling before the stream (HTTP 429) or mid-stream (a
`throttlingException` frame), and a stream that stalls. Extended thinking: a request whose
`additionalModelRequestFields.thinking` is enabled gets the script's `reasoning` first, as
`reasoningContent` deltas (text, then a signature), and is checked as Claude checks it (budget at
least 1024 and below maxTokens, no temperature; a tool result's request must replay the signed
reasoning in front of the tool call). Model ids are checked against the model
catalog for the caller's Region (from the request's SigV4 scope) with Bedrock's exact error texts.
`events_sent` counts the frames actually written, so a test can prove a client closed a stream early.
"""

from __future__ import annotations

import binascii
import json
import logging
import re
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

logger = logging.getLogger(__name__)

INVALID_MODEL_IDENTIFIER = "The provided model identifier is invalid."
MODEL_NOT_FOUND = "Model not found."
# The apostrophe in "isn\u2019t" is U+2019, as Bedrock writes it.
ON_DEMAND_UNSUPPORTED = (
    "Invocation of model ID {model_id} with on-demand throughput isn\u2019t supported. "
    "Retry your request with the ID or ARN of an inference profile that contains this model."
)
THROTTLED = "Too many requests, please wait before trying again."
MIN_THINKING_BUDGET_TOKENS = 1024
REASONING_SIGNATURE = "bG9jYWwtYmVkcm9jay10aGlua2luZw=="  # stands in for Bedrock's opaque signature
_ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_PATH = re.compile(r"^/model/(?P<model_id>[^/]+)/(?P<operation>converse-stream|converse)$")
_CREDENTIAL_REGION = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[a-z0-9-]+)/")


@dataclass(frozen=True)
class ToolCall:
    """A tool call the scripted model makes: name, input, and the id Bedrock would give it."""

    name: str
    input: Mapping[str, Any]
    tool_use_id: str = "tooluse_local_1"


@dataclass(frozen=True)
class BedrockScript:
    """What the model answers.

    Without `tool_use`: `tokens`, then end_turn. With `tool_use` (and the tool offered in the
    request's toolConfig): `tokens`, then the tool call, stopReason tool_use; the request that
    carries the tool's result gets `tokens_after_tool`. Stateless: the answer depends only on the
    request, so concurrent conversations get consistent answers.
    """

    tokens: Sequence[str] = ("Hello ", "from ", "local ", "Bedrock.")
    tool_use: ToolCall | None = None
    tokens_after_tool: Sequence[str] = ("Done.",)
    throttled: bool = False  # refused with 429 ThrottlingException, as a throttled call is
    reasoning: Sequence[str] = ()  # streamed first, only when the request asks for thinking

    @classmethod
    def from_text(cls, text: str, **kwargs: Any) -> BedrockScript:
        """A script streaming `text` word by word (each token keeps its trailing space)."""
        return cls(tokens=split_words(text), **kwargs)


def split_words(text: str) -> tuple[str, ...]:
    """'Hello there, world' → ('Hello ', 'there, ', 'world'): joining the tokens gives the text back."""
    return tuple(re.findall(r"\S+\s*|\s+", text))


class Fault(StrEnum):
    THROTTLE = "throttle"  # HTTP 429 ThrottlingException instead of the stream
    THROTTLE_MID_STREAM = "throttle_mid_stream"  # a throttlingException frame after `after_tokens` deltas
    STALL = "stall"  # stop writing after `after_tokens` deltas; keep the connection open


@dataclass(frozen=True)
class _PendingFault:
    fault: Fault
    after_tokens: int


@dataclass
class BedrockRequest:
    """One request the endpoint answered, for assertions."""

    operation: str  # "converse-stream" | "converse"
    model_id: str
    region: str
    body: dict[str, Any]
    status: int = 200
    error_code: str | None = None
    events_sent: int = 0
    completed: bool = False  # every planned event was written
    client_closed: bool = False  # the client went away before the end


@dataclass
class _Answer:
    content_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    content_blocks: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    output_tokens: int = 0
    throttled: bool = False


class LocalBedrock:
    """The HTTP server; a context manager. Thread-safe; one thread per connection."""

    def __init__(
        self,
        script: BedrockScript | Callable[[Mapping[str, Any]], BedrockScript] | None = None,
        *,
        tokens_per_second: float = 0.0,
        first_token_delay_s: float = 0.0,
        region: str | None = None,
        validate_model_ids: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.script = script or BedrockScript()
        self.tokens_per_second = tokens_per_second
        self.first_token_delay_s = first_token_delay_s
        # None: the caller's Region, read from its SigV4 credential scope (as a regional endpoint is).
        self.region = region
        self.validate_model_ids = validate_model_ids
        self.requests: list[BedrockRequest] = []
        self._faults: deque[_PendingFault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # Pacing's time source and wait (True once stopping); replaceable so tests check the schedule.
        self._clock = clock
        self._wait = wait or self._stopping.wait
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ------------------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalBedrock is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalBedrock:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.block_on_close = False  # a stalled stream must not hold up stop()
        server.bedrock = self  # type: ignore[attr-defined]
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="local-bedrock", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # ends stalled and paced streams
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> LocalBedrock:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # test controls --------------------------------------------------------------------------
    def inject(self, fault: Fault, *, times: int = 1, after_tokens: int = 1) -> None:
        """The next `times` ConverseStream requests get `fault` (Converse requests only THROTTLE)."""
        with self._lock:
            self._faults.extend(_PendingFault(fault, after_tokens) for _ in range(times))

    @property
    def events_sent(self) -> int:
        """Event-stream frames written to clients so far, over all requests."""
        with self._lock:
            return sum(request.events_sent for request in self.requests)

    @property
    def last_request(self) -> BedrockRequest:
        with self._lock:
            return self.requests[-1]

    def _take_fault(self, operation: str) -> _PendingFault | None:
        with self._lock:
            if not self._faults:
                return None
            if operation == "converse" and self._faults[0].fault is not Fault.THROTTLE:
                return None
            return self._faults.popleft()

    def _record(self, request: BedrockRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # the model ------------------------------------------------------------------------------
    def check_model_id(self, model_id: str, region: str) -> tuple[int, str, str] | None:
        """(status, error type, message) Bedrock answers for `model_id` called from `region`, or None."""
        if not self.validate_model_ids or "." not in model_id:
            return None  # plain names ("test-model") are accepted, for scripted tests
        return _catalog_check(model_id, region)

    def answer(self, body: Mapping[str, Any]) -> _Answer:
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        has_tool_result = last.get("role") == "user" and any(
            "toolResult" in block for block in last.get("content", [])
        )
        offered = {
            tool.get("toolSpec", {}).get("name") for tool in (body.get("toolConfig") or {}).get("tools", [])
        }
        # A script, or a function of the request (an answer that depends on what was asked).
        script = self.script if isinstance(self.script, BedrockScript) else self.script(body)
        if script.throttled:
            return _Answer(throttled=True)
        call = script.tool_use if script.tool_use is not None and script.tool_use.name in offered else None
        tokens = list(script.tokens_after_tool if has_tool_result else script.tokens)
        answer = _Answer()
        index = 0
        # Claude thinks at the start of its turn, not after a tool result (no interleaved thinking).
        reasoning = list(script.reasoning) if thinking_budget(body) and not has_tool_result else []
        if reasoning:
            for token in reasoning:
                answer.content_events.append(
                    (
                        "contentBlockDelta",
                        {"contentBlockIndex": index, "delta": {"reasoningContent": {"text": token}}},
                    )
                )
            answer.content_events += [
                (
                    "contentBlockDelta",
                    {
                        "contentBlockIndex": index,
                        "delta": {"reasoningContent": {"signature": REASONING_SIGNATURE}},
                    },
                ),
                ("contentBlockStop", {"contentBlockIndex": index}),
            ]
            answer.content_blocks.append(
                {
                    "reasoningContent": {
                        "reasoningText": {"text": "".join(reasoning), "signature": REASONING_SIGNATURE}
                    }
                }
            )
            answer.output_tokens += len(reasoning)
            index += 1
        if tokens:
            for token in tokens:
                answer.content_events.append(
                    ("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": token}})
                )
            answer.content_events.append(("contentBlockStop", {"contentBlockIndex": index}))
            answer.content_blocks.append({"text": "".join(tokens)})
            answer.output_tokens += len(tokens)
            index += 1
        if call is not None and not has_tool_result:
            raw_input = json.dumps(dict(call.input))
            answer.content_events += [
                (
                    "contentBlockStart",
                    {
                        "contentBlockIndex": index,
                        "start": {"toolUse": {"toolUseId": call.tool_use_id, "name": call.name}},
                    },
                ),
                (
                    "contentBlockDelta",
                    {"contentBlockIndex": index, "delta": {"toolUse": {"input": raw_input}}},
                ),
                ("contentBlockStop", {"contentBlockIndex": index}),
            ]
            answer.content_blocks.append(
                {"toolUse": {"toolUseId": call.tool_use_id, "name": call.name, "input": dict(call.input)}}
            )
            answer.stop_reason = "tool_use"
            answer.output_tokens += max(1, len(raw_input) // 4)
        return answer


def thinking_budget(body: Mapping[str, Any]) -> int:
    """The extended-thinking budget the request asks for; 0 when it asks for none."""
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
        return 0
    return int(thinking.get("budget_tokens") or 0)


def thinking_problem(body: Mapping[str, Any]) -> str | None:
    """What Claude refuses in a request with thinking on (a ValidationException), or None."""
    budget = thinking_budget(body)
    if not budget:
        return None
    inference = body.get("inferenceConfig") or {}
    if budget < MIN_THINKING_BUDGET_TOKENS:
        return (
            "thinking.enabled.budget_tokens: Input should be greater than or equal to "
            f"{MIN_THINKING_BUDGET_TOKENS}"
        )
    if inference.get("maxTokens") is not None and inference["maxTokens"] <= budget:
        return "`max_tokens` must be greater than `thinking.budget_tokens`."
    if inference.get("temperature") is not None:
        return "`temperature` may only be set to 1 when thinking is enabled."
    messages = body.get("messages") or []
    replied = messages[-2] if len(messages) >= 2 and messages[-2].get("role") == "assistant" else None
    if replied is not None and any("toolUse" in block for block in replied.get("content", [])):
        first = (replied.get("content") or [{}])[0]
        if not (first.get("reasoningContent") or {}).get("reasoningText", {}).get("signature"):
            return (
                "Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is "
                "enabled, a final `assistant` message must start with a thinking block."
            )
    return None


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """About 4 characters per token over the prompt (messages, system, tools), as a plausible count."""
    text = json.dumps([body.get("system"), body.get("messages"), body.get("toolConfig")])
    return max(1, len(text) // 4)


def _catalog_check(model_id: str, region: str) -> tuple[int, str, str] | None:
    from courier_shared.catalog import (
        CatalogError,
        PartitionMismatch,
        RetiredModel,
        ScopeUnavailable,
        UnknownModel,
        UnknownRegion,
        resolve,
    )
    from courier_shared.catalog.data import PROFILE_SCOPES

    prefix = model_id.partition(".")[0]
    named_scope = prefix in PROFILE_SCOPES or model_id.startswith("arn:")
    try:
        resolve(model_id, region, "auto" if named_scope else "bare", allow_legacy=True)
    except UnknownRegion:
        return None  # a Region the catalog does not know: nothing to check against
    except ScopeUnavailable as error:
        if error.scope == "bare":
            return 400, "ValidationException", ON_DEMAND_UNSUPPORTED.format(model_id=model_id)
        return 400, "ValidationException", INVALID_MODEL_IDENTIFIER
    except RetiredModel:
        return 404, "ResourceNotFoundException", MODEL_NOT_FOUND
    except (UnknownModel, PartitionMismatch, CatalogError):
        return 400, "ValidationException", INVALID_MODEL_IDENTIFIER
    return None


# wire format ------------------------------------------------------------------------------------
def _header(name: str, value: str) -> bytes:
    name_bytes, value_bytes = name.encode(), value.encode()
    return bytes([len(name_bytes)]) + name_bytes + b"\x07" + len(value_bytes).to_bytes(2, "big") + value_bytes


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (lengths + CRC), string headers, payload, message CRC."""
    header_bytes = b"".join(_header(name, value) for name, value in headers.items())
    total_length = 12 + len(header_bytes) + len(payload) + 4
    prelude = total_length.to_bytes(4, "big") + len(header_bytes).to_bytes(4, "big")
    message = prelude + binascii.crc32(prelude).to_bytes(4, "big") + header_bytes + payload
    return message + binascii.crc32(message).to_bytes(4, "big")


def event_frame(event_type: str, payload: Mapping[str, Any]) -> bytes:
    return encode_frame(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(payload).encode(),
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    return encode_frame(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message}).encode(),
    )


class _ClientGone(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalBedrock"
    # One small write per token: without TCP_NODELAY, Nagle + delayed ACKs hold frames back ~40 ms.
    disable_nagle_algorithm = True

    @property
    def bedrock(self) -> LocalBedrock:
        return self.server.bedrock  # type: ignore[attr-defined, no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        match = _PATH.match(self.path.split("?", 1)[0])
        if match is None:
            self._send_error(404, "UnknownOperationException", f"No operation at {self.path}")
            return
        operation, model_id = match["operation"], unquote(match["model_id"])
        credential = _CREDENTIAL_REGION.search(self.headers.get("Authorization", ""))
        region = self.bedrock.region or (credential["region"] if credential else "us-east-1")
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_error(400, "ValidationException", "Request body is not valid JSON")
            return
        request = BedrockRequest(operation=operation, model_id=model_id, region=region, body=body)
        self.bedrock._record(request)

        problem = self.bedrock.check_model_id(model_id, region)
        if problem is not None:
            request.status, request.error_code, message = problem
            self._send_error(problem[0], problem[1], message)
            return
        if (refusal := thinking_problem(body)) is not None:
            request.status, request.error_code = 400, "ValidationException"
            self._send_error(400, "ValidationException", refusal)
            return
        fault = self.bedrock._take_fault(operation)
        if fault is not None and fault.fault is Fault.THROTTLE:
            request.status, request.error_code = 429, "ThrottlingException"
            self._send_error(429, "ThrottlingException", THROTTLED)
            return
        answer = self.bedrock.answer(body)
        if answer.throttled:
            request.status, request.error_code = 429, "ThrottlingException"
            self._send_error(429, "ThrottlingException", THROTTLED)
            return
        if operation == "converse":
            self._converse(request, answer)
        else:
            self._converse_stream(request, answer, fault)

    # responses ------------------------------------------------------------------------------
    def _send_error(self, status: int, error_type: str, message: str) -> None:
        payload = json.dumps({"message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-ErrorType", error_type + _ERROR_TYPE_SUFFIX)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _converse(self, request: BedrockRequest, answer: _Answer) -> None:
        input_tokens = estimate_input_tokens(request.body)
        payload = json.dumps(
            {
                "output": {"message": {"role": "assistant", "content": answer.content_blocks}},
                "stopReason": answer.stop_reason,
                "usage": _usage(input_tokens, answer.output_tokens),
                "metrics": {"latencyMs": 1},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        request.completed = True

    def _converse_stream(self, request: BedrockRequest, answer: _Answer, fault: _PendingFault | None) -> None:
        started = self.bedrock._clock()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for frame in self._frames(request, answer, fault, started):
                self._write_frame(request, frame)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except _ClientGone:
            request.client_closed = True
            self.close_connection = True

    def _frames(
        self, request: BedrockRequest, answer: _Answer, fault: _PendingFault | None, started: float
    ) -> Iterator[bytes]:
        bedrock = self.bedrock
        interval = 1.0 / bedrock.tokens_per_second if bedrock.tokens_per_second > 0 else 0.0
        yield event_frame("messageStart", {"role": "assistant"})
        if bedrock.first_token_delay_s:
            self._pause(bedrock.first_token_delay_s)
        deltas = 0
        first_delta_at = 0.0
        for event_type, payload in answer.content_events:
            if event_type == "contentBlockDelta":
                if fault is not None and deltas >= fault.after_tokens:
                    if fault.fault is Fault.THROTTLE_MID_STREAM:
                        request.error_code = "throttlingException"
                        yield exception_frame("throttlingException", THROTTLED)
                        return
                    self._stall()
                    return
                if deltas == 0:
                    first_delta_at = bedrock._clock()
                elif interval:  # on a schedule from the first token, so pauses don't drift
                    self._pause(first_delta_at + deltas * interval - bedrock._clock())
                deltas += 1
            yield event_frame(event_type, payload)
        yield event_frame("messageStop", {"stopReason": answer.stop_reason})
        latency_ms = int((bedrock._clock() - started) * 1000)
        usage = _usage(estimate_input_tokens(request.body), answer.output_tokens)
        yield event_frame("metadata", {"usage": usage, "metrics": {"latencyMs": latency_ms}})
        request.completed = True

    def _write_frame(self, request: BedrockRequest, frame: bytes) -> None:
        if self._client_gone():
            raise _ClientGone
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as error:
            raise _ClientGone from error
        with self.bedrock._lock:
            request.events_sent += 1

    def _client_gone(self) -> bool:
        """True once the client has closed its end (a readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _pause(self, seconds: float) -> None:
        """Sleep, but notice a client that leaves or a server that stops."""
        clock = self.bedrock._clock
        deadline = clock() + seconds
        while (left := deadline - clock()) > 0:
            if self.bedrock._wait(min(left, 0.05)):
                raise _ClientGone
            if self._client_gone():
                raise _ClientGone

    def _stall(self) -> None:
        """Send nothing more until the client gives up or the server stops."""
        while not self.bedrock._stopping.wait(0.05):
            if self._client_gone():
                raise _ClientGone
        raise _ClientGone


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens,
    }
