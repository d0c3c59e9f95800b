"""The tool registry: a Courier tool is a Strands tool plus a function that describes a call in one
short human sentence (the `data-tool-status` chunk). New tools plug in here; the runtime's hooks
turn every call into chunks and a `tool_invocations` row without knowing the tool.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from strands import tool
from strands.types.tools import AgentTool, ToolResult

from courier_worker.observability import logger

Summarize = Callable[[dict[str, Any]], str]
TOOL_OUTPUT_MAX_BYTES = 4 * 1024  # what a tool-output-available chunk may carry
TOOL_INPUT_MAX_BYTES = 16 * 1024


class ToolInputError(ValueError):
    """A tool's input is wrong (the model can fix it): its message is safe to show.

    Strands hands a ValueError from a tool back to the model as an error result; the client gets
    a `tool-output-error` with this message. Any other exception is a crash: the client and the
    model only learn that the tool failed, and the answer goes on without it.
    """


@dataclass(frozen=True)
class CourierTool:
    tool: AgentTool
    summarize: Summarize

    @property
    def name(self) -> str:
        return self.tool.tool_name


class ToolRegistry:
    """The tools one worker offers the model, each with its status sentence."""

    def __init__(self, tools: Iterable[CourierTool] = ()) -> None:
        self._tools: dict[str, CourierTool] = {}
        for courier_tool in tools:
            self.register(courier_tool)

    def register(self, courier_tool: CourierTool) -> None:
        if courier_tool.name in self._tools:
            raise ValueError(f"tool {courier_tool.name!r} is registered twice")
        self._tools[courier_tool.name] = courier_tool

    def agent_tools(self) -> list[AgentTool]:
        return [t.tool for t in self._tools.values()]

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def summary(self, tool_name: str, tool_input: dict[str, Any]) -> str:
        """The status sentence for a call; never fails (a broken summary must not break the turn)."""
        courier_tool = self._tools.get(tool_name)
        if courier_tool is not None:
            try:
                return courier_tool.summarize(tool_input)
            except Exception:
                logger.warning("tool summary failed", extra={"tool_name": tool_name}, exc_info=True)
        return f"Using {tool_name}…"


def trimmed_input(tool_input: Any) -> dict[str, Any]:
    """The tool input as it may go into a chunk: a dict, not larger than TOOL_INPUT_MAX_BYTES."""
    if not isinstance(tool_input, dict):
        return {"value": trim_output(tool_input)}
    if len(json.dumps(tool_input, default=str).encode()) <= TOOL_INPUT_MAX_BYTES:
        return tool_input
    return {"truncated": True}


def result_output(result: ToolResult) -> Any:
    """A tool result's content as plain JSON: one json block as is, text parsed if it is JSON."""
    values: list[Any] = []
    for block in result.get("content", []):
        if "json" in block:
            values.append(block["json"])
        elif "text" in block:
            text = block["text"]
            try:
                values.append(json.loads(text))
            except ValueError:
                values.append(text)
    if len(values) == 1:
        return values[0]
    return values


def trim_output(value: Any, max_bytes: int = TOOL_OUTPUT_MAX_BYTES) -> Any:
    """The value if its JSON fits `max_bytes`, else its JSON text cut to fit, ending in an ellipsis."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text.encode()) <= max_bytes:
        return value
    cut = text.encode()[: max_bytes - 3].decode(errors="ignore")
    return cut + "…"


# ---------------------------------------------------------------- shipped tools


ZONE_NAME_SHOWN_CHARS = 60


@functools.cache
def _zone_names() -> dict[str, str]:
    """Every IANA zone the tzdata package knows, by lower-case name (read once, on first use)."""
    return {name.lower(): name for name in available_timezones()}


def tool_error(text: str) -> dict[str, Any]:
    """A tool result that tells the model (and the client, as `tool-output-error`) what went wrong."""
    return {"status": "error", "content": [{"text": text}]}


def _unknown_zone(time_zone: str) -> dict[str, Any]:
    shown = time_zone[:ZONE_NAME_SHOWN_CHARS]
    prefix = time_zone.strip().strip("/").lower() + "/"
    inside = sorted(name for key, name in _zone_names().items() if key.startswith(prefix))
    if inside:
        examples = ", ".join(inside[:3])
        return tool_error(
            f"{shown!r} is a region, not a time zone: use one of its zones, such as {examples}."
        )
    return tool_error(f"Unknown time zone {shown!r}. Use an IANA name such as 'Europe/Paris' or 'UTC'.")


@tool
def current_time(time_zone: str = "UTC") -> dict[str, Any]:
    """Get the current date and time in a time zone.

    Args:
        time_zone: An IANA time zone name, such as "Europe/Paris" or "America/New_York".
    """
    # Any string may come from the model: only names of the zone database reach ZoneInfo (which
    # raises IsADirectoryError for "Europe", OSError for long names…), and nothing escapes as an error.
    try:
        name = _zone_names().get(str(time_zone).strip().lower())
        if name is None:
            return _unknown_zone(str(time_zone))
        now = datetime.now(UTC).astimezone(ZoneInfo(name))
    except Exception:
        logger.warning("time zone lookup failed", exc_info=True)
        return _unknown_zone(str(time_zone))
    return {
        "timeZone": name,
        "localTime": now.isoformat(timespec="seconds"),
        "weekday": now.strftime("%A"),
    }


def _summarize_current_time(tool_input: dict[str, Any]) -> str:
    return f"Checking the time in {tool_input.get('time_zone') or 'UTC'}…"


CURRENT_TIME = CourierTool(tool=current_time, summarize=_summarize_current_time)


def default_tools() -> ToolRegistry:
    return ToolRegistry([CURRENT_TIME])
