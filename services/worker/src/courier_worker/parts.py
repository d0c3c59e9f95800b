"""The agent's stream → AI SDK chunk parts: steps around model calls, reasoning and text blocks,
tool calls.

`PartWriter` keeps the open reasoning or text block and step; `AgentHooks` turns Strands' hook events into
parts and `ToolCallRecord`s, and asks the turn whether another model call may start.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from strands.hooks import (
    AfterToolCallEvent,
    BeforeModelCallEvent,
    BeforeToolCallEvent,
    HookProvider,
    HookRegistry,
)

from courier_shared.db.store import ToolCallRecord
from courier_shared.protocol import (
    DataToolStatusPart,
    FinishStepPart,
    ReasoningEndPart,
    ReasoningStartPart,
    StartStepPart,
    TextEndPart,
    TextStartPart,
    ToolInputAvailablePart,
    ToolOutputAvailablePart,
    ToolOutputErrorPart,
    ToolStatus,
)
from courier_worker.accounting import UsageMeter
from courier_worker.observability import logger
from courier_worker.streaming import Publisher
from courier_worker.tools import ToolInputError, ToolRegistry, result_output, trim_output, trimmed_input

TOOL_ERROR_TEXT_MAX_CHARS = 300
CRASHED_TOOL_TEXT = "The tool failed unexpectedly."
# The reasoning a turn stores (and history returns) at most: a history frame must hold one whole
# turn (answer ≤ INLINE_TEXT_MAX_BYTES) within API Gateway's message limit. All of it is streamed.
STORED_REASONING_MAX_BYTES = 16 * 1024


def stored_reasoning(text: str) -> str:
    """The reasoning as a turn stores it: its first STORED_REASONING_MAX_BYTES."""
    if len(text) * 4 <= STORED_REASONING_MAX_BYTES:  # the cheap bound: nothing to cut
        return text
    return text.encode()[:STORED_REASONING_MAX_BYTES].decode(errors="ignore")


class PartWriter:
    """Emits one attempt's parts in protocol order (start-step … reasoning … text … finish-step).

    At most one block (reasoning or text) is open: a text delta closes an open reasoning block and
    a reasoning delta an open text block, as the model's content blocks follow one another.
    """

    def __init__(self, publisher: Publisher, meter: UsageMeter) -> None:
        self.publisher = publisher
        self.meter = meter
        self.text_id: str | None = None
        self.text_blocks = 0
        self.text_chars = 0  # the answer's characters emitted so far (where a tool call sits in it)
        self.reasoning_id: str | None = None
        self.reasoning_blocks = 0
        self._reasoning: list[str] = []
        self.step_open = False
        self.step_seq = -1  # the open step's start-step

    @property
    def reasoning_text(self) -> str:
        """The attempt's reasoning so far, as stored (its first STORED_REASONING_MAX_BYTES)."""
        return stored_reasoning("".join(self._reasoning))

    def reasoning(self, delta: str) -> None:
        """A piece of the model's reasoning: streamed in reasoning parts, kept apart from the answer."""
        if not delta:
            return
        self.close_text()
        if self.reasoning_id is None:
            self.reasoning_id = f"reasoning-{self.reasoning_blocks}"
            self.reasoning_blocks += 1
            self.publisher.emit(ReasoningStartPart(id=self.reasoning_id))
        self.publisher.emit_reasoning(self.reasoning_id, delta)
        self._reasoning.append(delta)
        self.meter.generated(delta)

    def text(self, delta: str) -> None:
        if not delta:
            return
        self.close_reasoning()
        if self.text_id is None:
            self.text_id = f"text-{self.text_blocks}"
            self.text_blocks += 1
            self.publisher.emit(TextStartPart(id=self.text_id))
        self.publisher.emit_text(self.text_id, delta)
        self.text_chars += len(delta)
        self.meter.generated(delta)

    def model_event(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        if "contentBlockStop" in event or "messageStop" in event:
            self.close_reasoning()
            self.close_text()
        delta = event.get("contentBlockDelta", {}).get("delta", {})
        if isinstance(delta, dict) and "toolUse" in delta:
            self.meter.generated(str(delta["toolUse"].get("input", "")))
        usage = event.get("metadata", {}).get("usage")
        if isinstance(usage, dict):
            self.meter.reported(usage)

    def open_step(self) -> None:
        """A model call begins: start-step goes out now, while the model works on its first token.
        A call retried before it produced anything (throttled) goes on in the step already open."""
        if self.step_open and self.publisher.next_seq == self.step_seq + 1:
            return
        self.close_step()
        self.step_seq = self.publisher.emit(StartStepPart())
        self.step_open = True

    def close_text(self) -> None:
        if self.text_id is not None:
            self.publisher.emit(TextEndPart(id=self.text_id))
            self.text_id = None

    def close_reasoning(self) -> None:
        if self.reasoning_id is not None:
            self.publisher.emit(ReasoningEndPart(id=self.reasoning_id))
            self.reasoning_id = None

    def close_blocks(self) -> None:
        self.close_reasoning()
        self.close_text()

    def close_step(self) -> None:
        self.close_blocks()
        if self.step_open:
            self.publisher.emit(FinishStepPart())
            self.step_open = False


def announce_tool_call(
    writer: PartWriter, tools: ToolRegistry, tool_calls: dict[str, ToolCallRecord], tool_use: Any
) -> None:
    """tool-input-available and data-tool-status for a call the agent makes (or made, when an
    attempt replays the steps an earlier one saved), and its record."""
    publisher = writer.publisher
    writer.close_blocks()
    call_id, name = str(tool_use["toolUseId"]), str(tool_use["name"])
    tool_input = trimmed_input(tool_use.get("input", {}))
    seq = publisher.emit(ToolInputAvailablePart(tool_call_id=call_id, tool_name=name, input=tool_input))
    publisher.emit(
        DataToolStatusPart(
            id=call_id, data=ToolStatus(tool_call_id=call_id, summary=tools.summary(name, tool_input))
        )
    )
    tool_calls[call_id] = ToolCallRecord(seq, call_id, name, tool_input, text_offset=writer.text_chars)


def replay_saved_steps(
    writer: PartWriter, tools: ToolRegistry, tool_calls: dict[str, ToolCallRecord], steps: list[Any]
) -> None:
    """The steps an earlier attempt completed (restored from the turn's agent session), sent again
    as parts: the message a client builds shows them once, and their text is part of the answer."""
    for message in steps:
        if message["role"] == "assistant":
            writer.open_step()
            for block in message["content"]:
                if "text" in block:
                    writer.text(str(block["text"]))
                elif "reasoningContent" in block:
                    writer.reasoning(str(block["reasoningContent"].get("reasoningText", {}).get("text", "")))
                elif "toolUse" in block:
                    announce_tool_call(writer, tools, tool_calls, block["toolUse"])
            writer.close_blocks()
            continue
        for block in message["content"]:
            if "toolResult" not in block:
                continue
            result = block["toolResult"]
            call_id = str(result["toolUseId"])
            call = tool_calls.get(call_id)
            if result.get("status") == "error":
                error_text = _result_error_text(result)
                writer.publisher.emit(ToolOutputErrorPart(tool_call_id=call_id, error_text=error_text))
                output: Any = {"error": error_text}
            else:
                output = trim_output(result_output(result))
                writer.publisher.emit(ToolOutputAvailablePart(tool_call_id=call_id, output=output))
            if call is not None:
                call.status = str(result.get("status", "success"))
                call.output_summary = json.dumps(trim_output(output, 1024), ensure_ascii=False, default=str)
    writer.close_step()


def _result_error_text(result: Any) -> str:
    """An error result's text, as the client may see it."""
    texts = [block["text"] for block in result.get("content", []) if "text" in block]
    text = " ".join(texts).removeprefix("Error: ").strip() or "The tool failed."
    if len(text) > TOOL_ERROR_TEXT_MAX_CHARS:
        text = text[: TOOL_ERROR_TEXT_MAX_CHARS - 1] + "…"
    return text


class AgentHooks(HookProvider):
    """Model calls → start-step (if `may_call_model` allows one more); tool calls →
    tool-input-available, data-tool-status, then tool-output-available or tool-output-error."""

    def __init__(
        self,
        writer: PartWriter,
        tools: ToolRegistry,
        tool_calls: dict[str, ToolCallRecord],
        may_call_model: Callable[[], bool],
    ) -> None:
        self.writer = writer
        self.tools = tools
        self.tool_calls = tool_calls
        self.may_call_model = may_call_model

    def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
        registry.add_callback(BeforeModelCallEvent, self.before_model)
        registry.add_callback(BeforeToolCallEvent, self.before_tool)
        registry.add_callback(AfterToolCallEvent, self.after_tool)

    def before_model(self, event: BeforeModelCallEvent) -> None:
        if not self.may_call_model():
            event.cancel = True  # the turn is stopping; its ending says why
            return
        self.writer.meter.model_call_started(event.projected_input_tokens)
        self.writer.open_step()

    def before_tool(self, event: BeforeToolCallEvent) -> None:
        announce_tool_call(self.writer, self.tools, self.tool_calls, event.tool_use)
        logger.info(
            "tool call",
            extra={"tool_name": event.tool_use["name"], "tool_call_id": event.tool_use["toolUseId"]},
        )

    def after_tool(self, event: AfterToolCallEvent) -> None:
        call_id = str(event.tool_use["toolUseId"])
        call = self.tool_calls.get(call_id)
        error_text = self._error_text(event)
        if error_text is None:
            output = trim_output(result_output(event.result))
            self.writer.publisher.emit(ToolOutputAvailablePart(tool_call_id=call_id, output=output))
        else:
            output = {"error": error_text}
            self.writer.publisher.emit(ToolOutputErrorPart(tool_call_id=call_id, error_text=error_text))
        if call is not None:
            call.status = "cancelled" if event.cancel_message else str(event.result.get("status", "success"))
            if self._crashed(event):
                call.status = "crashed"
            call.output_summary = json.dumps(trim_output(output, 1024), ensure_ascii=False, default=str)
            call.duration_ms = int(event.duration * 1000) if event.duration is not None else None

    @staticmethod
    def _crashed(event: AfterToolCallEvent) -> bool:
        return event.exception is not None and not isinstance(event.exception, ValueError)

    def _error_text(self, event: AfterToolCallEvent) -> str | None:
        """None for a successful call; else the text the client may see.

        A ToolInputError or an error result is the tool speaking on purpose: its text is shown.
        Another ValueError is a bad input (the model reads the details and may try again); any
        other exception is a crash whose message may hold internals: neither the client, the row
        nor the model sees it (the model is told the tool failed, and answers without it).
        """
        if event.cancel_message:
            return "The tool call was cancelled."
        error = event.exception
        if self._crashed(event):
            logger.error(
                "tool crashed",
                extra={"tool_name": event.tool_use["name"], "error_type": type(error).__name__},
            )
            event.result = {
                "toolUseId": str(event.tool_use["toolUseId"]),
                "status": "error",
                "content": [{"text": f"Error: {CRASHED_TOOL_TEXT} Answer without it."}],
            }
            return CRASHED_TOOL_TEXT
        if error is not None and not isinstance(error, ToolInputError):
            return "The tool could not use its input."
        if event.result.get("status") != "error":
            return None
        return _result_error_text(event.result)
