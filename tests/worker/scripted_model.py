"""A small deterministic Strands model for worker tests: scripted turns, token delay, honours cancel.

Each model call consumes the next scripted step: {"text": ...} and/or {"tool": {"name", "input", "id"}},
or {"raise": exception}, or {"die": True} (the process is killed). The last step repeats. A step may
start with the model's reasoning, as Bedrock streams extended thinking: {"reasoning": ...} (word by
word, then a "signature"), and/or {"redacted": b"..."} (an encrypted reasoning block).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from collections.abc import AsyncGenerator
from typing import Any

from pydantic import BaseModel
from strands.models import Model


def words(text: str) -> list[str]:
    out, current = [], ""
    for char in text:
        current += char
        if char == " ":
            out.append(current)
            current = ""
    return out + ([current] if current else [])


class ScriptedModel(Model):
    def __init__(self, steps: list[dict[str, Any]], *, delay_s: float = 0.0) -> None:
        self.steps = steps
        self.delay_s = delay_s
        self.calls: list[dict[str, Any]] = []
        self.tokens_sent = 0
        self.closed = 0
        self.config: dict[str, Any] = {"model_id": "scripted-test-model"}

    def update_config(self, **model_config: Any) -> None:
        self.config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        return self.config

    async def structured_output(  # type: ignore[override]
        self, output_model: type[BaseModel], prompt: Any, system_prompt: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[dict[str, Any], None]:
        raise NotImplementedError
        yield {}

    async def stream(  # type: ignore[override]
        self,
        messages: Any,
        tool_specs: Any = None,
        system_prompt: str | None = None,
        *,
        cancel_signal: threading.Event | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[dict[str, Any], None]:
        self.calls.append(
            {
                "messages": messages,
                "system_prompt": system_prompt,
                "tools": [t["name"] for t in tool_specs or []],
            }
        )
        step = self.steps[min(len(self.calls) - 1, len(self.steps) - 1)]
        if "raise" in step:
            raise step["raise"]
        if step.get("die"):  # the process dies here, as a Lambda timeout or kill -9 ends it
            os.kill(os.getpid(), signal.SIGKILL)
        out = 0
        try:
            yield {"messageStart": {"role": "assistant"}}
            if reasoning := step.get("reasoning"):
                for token in words(reasoning):
                    out += 1
                    yield {"contentBlockDelta": {"delta": {"reasoningContent": {"text": token}}}}
                yield {"contentBlockDelta": {"delta": {"reasoningContent": {"signature": "c2lnbmF0dXJl"}}}}
                yield {"contentBlockStop": {}}
            if redacted := step.get("redacted"):
                yield {"contentBlockDelta": {"delta": {"reasoningContent": {"redactedContent": redacted}}}}
                yield {"contentBlockStop": {}}
            if text := step.get("text"):
                yield {"contentBlockStart": {"contentBlockIndex": 0, "start": {}}}
                for token in words(text):
                    if cancel_signal is not None and cancel_signal.is_set():
                        return
                    if self.delay_s:
                        await asyncio.sleep(self.delay_s)
                    out += 1
                    self.tokens_sent += 1
                    yield {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": token}}}
                if step.get("stall"):  # a stream that sends nothing more and never ends
                    await asyncio.Event().wait()
                yield {"contentBlockStop": {"contentBlockIndex": 0}}
            if tool := step.get("tool"):
                yield {
                    "contentBlockStart": {
                        "contentBlockIndex": 1,
                        "start": {"toolUse": {"toolUseId": tool["id"], "name": tool["name"]}},
                    }
                }
                yield {
                    "contentBlockDelta": {
                        "contentBlockIndex": 1,
                        "delta": {"toolUse": {"input": json.dumps(tool["input"])}},
                    }
                }
                yield {"contentBlockStop": {"contentBlockIndex": 1}}
            yield {"messageStop": {"stopReason": "tool_use" if step.get("tool") else "end_turn"}}
            yield {
                "metadata": {
                    "usage": {"inputTokens": 11, "outputTokens": out, "totalTokens": 11 + out},
                    "metrics": {"latencyMs": 5},
                }
            }
        finally:
            self.closed += 1
