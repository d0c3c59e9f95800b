"""Token accounting of one attempt: what the model reported, plus an estimate for a model call
that was cut before its usage event (cancel, disconnect, deadline), marked as estimated."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# A rough and common rule of thumb for English text with today's tokenizers.
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int
    output_tokens: int
    estimated: bool


class UsageMeter:
    """Fed the stream's events in order; `usage()` is the attempt's total at any moment."""

    def __init__(self) -> None:
        self._input = 0
        self._output = 0
        self._call_open = False
        self._projected_input: int | None = None
        self._unreported_chars = 0

    def model_call_started(self, projected_input_tokens: int | None) -> None:
        self._call_open = True
        self._projected_input = projected_input_tokens
        self._unreported_chars = 0

    def generated(self, text: str) -> None:
        """Output of the open model call (answer text or tool input), not yet covered by a report."""
        self._unreported_chars += len(text)

    def reported(self, usage: dict[str, Any]) -> None:
        """The model's own usage event for the open call."""
        self._input += int(usage.get("inputTokens", 0) or 0)
        self._output += int(usage.get("outputTokens", 0) or 0)
        self._call_open = False
        self._unreported_chars = 0

    def usage(self) -> TokenUsage:
        if not self._call_open:
            return TokenUsage(self._input, self._output, estimated=False)
        # Cut mid-call: the model read its whole prompt and wrote what we saw, and did not say so.
        return TokenUsage(
            self._input + (self._projected_input or 0),
            self._output + math.ceil(self._unreported_chars / CHARS_PER_TOKEN),
            estimated=True,
        )
