"""A deterministic offline Strands model: the local stack's default, and the worker tests' model.

It streams word by word at a configurable rate through the real Strands agent loop, with the same
StreamEvents Bedrock produces (messageStart, contentBlockStart/Delta/Stop, messageStop, metadata
with usage). What it answers, decided from the request alone (so concurrent conversations never mix):

- a tool result as the last message → a sentence built from that result (followed by N filler
  words when the question ends with "then lorem N": a tool turn long enough to drop and resume);
- a prompt matching a tool trigger, with that tool offered → a short text, then the tool call
  (default: "time in Europe/Paris" → `current_time(time_zone="Europe/Paris")`; "what time is it
  in Tokyo?" → `current_time(time_zone="Asia/Tokyo")`, as a model would pick the zone);
- "lorem N" → N filler words (benchmarks; e.g. "lorem 1000");
- "fail: throttled" → the model call is refused as a throttled Bedrock call is (failed-turn tests);
- anything else → an echo of the prompt.

Or give it a `script` of turns (one per model call, the last repeats) for tests that need exact text.

Reasoning (extended thinking): when the request asks for it, as Bedrock's does, i.e. the model's
config has `additional_request_fields={"thinking": {"type": "enabled", ...}}` (what the worker builds
from THINKING_BUDGET_TOKENS), each answer starts with a reasoning block: the turn's `reasoning`
(unscripted: one sentence saying what it is about to do), streamed word by word as
`reasoningContent` text deltas, then a signature, as Bedrock streams it. Not after a tool result
(Claude thinks once per turn without interleaved thinking). Without the request, no reasoning.
It stops at the next token when the agent's `cancel_signal` is set.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from zoneinfo import available_timezones

from pydantic import BaseModel
from strands.models import Model
from strands.types.content import Messages
from strands.types.exceptions import ModelThrottledException
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolSpec

MODEL_ID = "courier-offline"
T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class OfflineTurn:
    """One scripted model response: (reasoning,) text, then optionally a tool call; or a throttled call."""

    text: str = ""
    tool: ToolCall | None = None
    reasoning: str = ""  # streamed only when the request asks for thinking
    throttled: bool = False  # refused before anything streams, as Bedrock refuses a throttled call


@dataclass(frozen=True)
class ToolTrigger:
    """A prompt pattern that makes the model call `tool_name` with `make_input(match)`."""

    pattern: re.Pattern[str]
    tool_name: str
    make_input: Callable[[re.Match[str]], dict[str, Any]]
    preamble: Callable[[re.Match[str]], str] = field(default=lambda match: "Let me check. ")


def _zone_for(place: str) -> str:
    """The IANA zone a model would pick for a place: "Tokyo" → "Asia/Tokyo"; anything else as is."""
    if "/" in place:
        return place
    wanted = "/" + place.replace(" ", "_").lower()
    return next((zone for zone in sorted(available_timezones()) if zone.lower().endswith(wanted)), place)


CURRENT_TIME_TRIGGER = ToolTrigger(
    # "time in Tokyo", "what time is it in Europe/Paris?"
    pattern=re.compile(r"\btime (?:is it )?in ([A-Za-z][\w+-]*(?:/[A-Za-z][\w+-]*)*)", re.IGNORECASE),
    tool_name="current_time",
    make_input=lambda match: {"time_zone": _zone_for(match[1])},
    preamble=lambda match: f"Let me check the time in {match[1]}. ",
)
_LOREM = re.compile(r"^\s*lorem\s+(\d{1,6})\s*$", re.IGNORECASE)
_THEN_LOREM = re.compile(r"\bthen\s+lorem\s+(\d{1,6})\s*$", re.IGNORECASE)
_FAIL_THROTTLED = re.compile(r"^\s*fail:\s*throttled\s*$", re.IGNORECASE)
THROTTLED_MESSAGE = "Too many requests, please wait before trying again."  # Bedrock's words
REASONING_SIGNATURE = "b2ZmbGluZS10aGlua2luZw=="  # stands in for Bedrock's opaque signature
_LOREM_WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
]


def thinking_requested(request_fields: Mapping[str, Any] | None) -> bool:
    """Whether Converse's `additionalModelRequestFields` ask for extended thinking."""
    thinking = (request_fields or {}).get("thinking")
    return isinstance(thinking, Mapping) and thinking.get("type") == "enabled"


def ends_with_tool_result(messages: Messages) -> bool:
    last = messages[-1] if messages else None
    return last is not None and last["role"] == "user" and any("toolResult" in b for b in last["content"])


def split_words(text: str) -> list[str]:
    """'Hello there, world' → ['Hello ', 'there, ', 'world']: the tokens join back to the text."""
    return re.findall(r"\S+\s*|\s+", text)


class OfflineModel(Model):
    """See the module docstring. `tokens_per_second=0` streams as fast as the event loop allows."""

    def __init__(
        self,
        *,
        tokens_per_second: float = 0.0,
        first_token_delay_s: float = 0.0,
        script: Sequence[OfflineTurn] | None = None,
        tool_triggers: Sequence[ToolTrigger] = (CURRENT_TIME_TRIGGER,),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        **config: Any,
    ) -> None:
        self.tokens_per_second = tokens_per_second
        # The pacing's time source and wait, replaceable so tests can check the schedule exactly.
        self._clock = clock
        self._sleep = sleep
        self.first_token_delay_s = first_token_delay_s
        self.script = list(script) if script else None
        self.tool_triggers = tuple(tool_triggers)
        # strands reads config.get("model_id") (tracing, logs); the worker stores it with the turn.
        self.config: dict[str, Any] = {"model_id": MODEL_ID, **config}
        self.calls: deque[dict[str, Any]] = deque(maxlen=100)  # the last requests, for assertions
        self.finished_streams = 0  # streams whose generator has ended (normally, cancelled or dropped)
        self._lock = threading.Lock()
        self._script_position = 0

    # Model interface -------------------------------------------------------------------------
    def update_config(self, **model_config: Any) -> None:
        self.config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        return self.config

    async def structured_output(
        self, output_model: type[T], prompt: Messages, system_prompt: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        raise NotImplementedError("the offline model does not produce structured output")
        yield {}  # pragma: no cover (makes this an async generator)

    async def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        *,
        cancel_signal: threading.Event | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[StreamEvent, None]:
        offered = [spec["name"] for spec in tool_specs or []]
        with self._lock:
            self.calls.append({"messages": messages, "tool_names": offered, "system_prompt": system_prompt})
        turn = self._next_turn(messages, offered)
        if turn.throttled:  # what Strands' BedrockModel raises for Bedrock's ThrottlingException
            raise ModelThrottledException(THROTTLED_MESSAGE)
        started = self._clock()
        cancelled = cancel_signal.is_set if cancel_signal is not None else (lambda: False)
        emitted = 0
        try:
            yield {"messageStart": {"role": "assistant"}}
            if self.first_token_delay_s:
                await self._sleep(self.first_token_delay_s)
            index = 0
            thinking = thinking_requested(self.config.get("additional_request_fields"))
            if turn.reasoning and thinking and not ends_with_tool_result(messages):
                for token in split_words(turn.reasoning):
                    await self._pace(started, emitted)
                    if cancelled():
                        return
                    emitted += 1
                    yield {
                        "contentBlockDelta": {
                            "contentBlockIndex": index,
                            "delta": {"reasoningContent": {"text": token}},
                        }
                    }
                yield {
                    "contentBlockDelta": {
                        "contentBlockIndex": index,
                        "delta": {"reasoningContent": {"signature": REASONING_SIGNATURE}},
                    }
                }
                yield {"contentBlockStop": {"contentBlockIndex": index}}
                index += 1
            if turn.text:
                yield {"contentBlockStart": {"contentBlockIndex": index, "start": {}}}
                for token in split_words(turn.text):
                    await self._pace(started, emitted)
                    if cancelled():
                        return  # the agent sees the signal and ends the turn as "cancelled"
                    emitted += 1
                    yield {"contentBlockDelta": {"contentBlockIndex": index, "delta": {"text": token}}}
                yield {"contentBlockStop": {"contentBlockIndex": index}}
                index += 1
            if turn.tool is not None:
                if cancelled():
                    return
                tool_use_id = f"tooluse_offline_{len(messages)}"  # unique within a conversation
                yield {
                    "contentBlockStart": {
                        "contentBlockIndex": index,
                        "start": {"toolUse": {"toolUseId": tool_use_id, "name": turn.tool.name}},
                    }
                }
                raw_input = json.dumps(dict(turn.tool.input))
                for fragment in (raw_input[: len(raw_input) // 2], raw_input[len(raw_input) // 2 :]):
                    yield {
                        "contentBlockDelta": {
                            "contentBlockIndex": index,
                            "delta": {"toolUse": {"input": fragment}},
                        }
                    }
                yield {"contentBlockStop": {"contentBlockIndex": index}}
                emitted += max(1, len(raw_input) // 4)
            yield {"messageStop": {"stopReason": "tool_use" if turn.tool is not None else "end_turn"}}
            input_tokens = estimate_tokens(messages, tool_specs, system_prompt)
            yield {
                "metadata": {
                    "usage": {
                        "inputTokens": input_tokens,
                        "outputTokens": emitted,
                        "totalTokens": input_tokens + emitted,
                    },
                    "metrics": {"latencyMs": int((self._clock() - started) * 1000)},
                }
            }
        finally:
            with self._lock:
                self.finished_streams += 1

    # answers -----------------------------------------------------------------------------------
    async def _pace(self, started: float, emitted: int) -> None:
        """Wait until token number `emitted` is due (a schedule, so sleeps don't drift)."""
        if self.tokens_per_second <= 0:
            await asyncio.sleep(0)  # still let the consumer run, and see a cancel, between tokens
            return
        due = started + self.first_token_delay_s + emitted / self.tokens_per_second
        await self._sleep(max(0.0, due - self._clock()))

    def _next_turn(self, messages: Messages, offered: list[str]) -> OfflineTurn:
        if self.script is not None:
            with self._lock:
                turn = self.script[min(self._script_position, len(self.script) - 1)]
                self._script_position += 1
            return turn
        return self.respond(messages, offered)

    def respond(self, messages: Messages, offered: Sequence[str]) -> OfflineTurn:
        """The unscripted answer to a conversation (see the module docstring)."""
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "user":
            results = [block["toolResult"] for block in last["content"] if "toolResult" in block]
            if results:
                text = " ".join(_describe_result(r, _tool_name(messages, r)) for r in results)
                then = _THEN_LOREM.search(_question(messages))
                return OfflineTurn(text=f"{text} {_filler(int(then[1]))}" if then else text)
        prompt = _text_of(last) if last is not None else ""
        for trigger in self.tool_triggers:
            match = trigger.pattern.search(prompt)
            if match and trigger.tool_name in offered:
                return OfflineTurn(
                    text=trigger.preamble(match),
                    tool=ToolCall(trigger.tool_name, trigger.make_input(match)),
                    reasoning=f"The user asks about {match[0]}. {trigger.tool_name} knows; I will call it.",
                )
        if _FAIL_THROTTLED.match(prompt):
            return OfflineTurn(throttled=True)
        lorem = _LOREM.match(prompt)
        if lorem:
            count = int(lorem[1])
            return OfflineTurn(text=_filler(count), reasoning=f"The user wants {count} filler words.")
        words = len(prompt.split())
        return OfflineTurn(
            text=f"You said: {prompt.strip()}" if prompt.strip() else "Hello from the offline model.",
            reasoning=f"The user wrote {words} word{'s' if words != 1 else ''}. I will say them back.",
        )


def estimate_tokens(messages: Messages, tool_specs: list[ToolSpec] | None, system_prompt: str | None) -> int:
    """About 4 characters per token over everything the model was sent."""
    return max(1, len(json.dumps([system_prompt, messages, tool_specs], default=str)) // 4)


def _filler(count: int) -> str:
    return " ".join(_LOREM_WORDS[i % len(_LOREM_WORDS)] for i in range(count))


def _question(messages: Messages) -> str:
    """The user's question: the last user message with text (tool results are user messages too)."""
    for message in reversed(messages):
        if message["role"] == "user" and (text := _text_of(message)):
            return text
    return ""


def _text_of(message: Mapping[str, Any]) -> str:
    return "".join(block.get("text", "") for block in message.get("content", []))


def _tool_name(messages: Messages, result: Mapping[str, Any]) -> str:
    """The name of the tool whose call `result` answers, from the assistant's previous message."""
    for message in reversed(messages):
        for block in message["content"]:
            tool_use = block.get("toolUse")
            if tool_use and tool_use.get("toolUseId") == result.get("toolUseId"):
                return str(tool_use["name"])
    return "the tool"


def _describe_result(result: Mapping[str, Any], tool_name: str) -> str:
    parts = []
    for block in result.get("content", []):
        if "json" in block:
            parts.append(_describe_value(block["json"]))
        elif "text" in block:
            try:  # Strands hands a tool's dict return value over as JSON text
                parts.append(_describe_value(json.loads(block["text"])))
            except ValueError:
                parts.append(block["text"])
    detail = "; ".join(parts) or "nothing"
    if result.get("status") == "error":
        return f"{tool_name} failed: {detail}"
    return f"{tool_name} says: {detail}"


def _describe_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {item}" for key, item in value.items())
    return value if isinstance(value, str) else json.dumps(value)
