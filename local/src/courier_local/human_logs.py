"""The `make dev` terminal: the services' JSON log lines as one short line each.

The functions log JSON (what CloudWatch wants, and what tools read from a file); on a terminal
`courier dev` shows each line as `12:01:02 worker   turn done  status=completed turn_id=…`, drops
the metric lines (Embedded Metric Format) and lets any other output through unchanged. When the
output is not a terminal nothing changes.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, TextIO

# Keys every line carries, or that only matter in AWS: not worth a terminal's width.
QUIET_KEYS = frozenset(
    {
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "xray_trace_id",
        "sampling_rate",
    }
)
LEVEL_MARKS = {"WARNING": "warning: ", "ERROR": "error: ", "CRITICAL": "error: "}


def human_line(line: str) -> str | None:
    """The terminal's form of one output line; None to drop it (a metrics line)."""
    try:
        record: Any = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    if "_aws" in record:
        return None
    if "message" not in record or "level" not in record:
        return line
    clock = str(record.get("timestamp", ""))[11:19]
    service = str(record.get("service", "")).removeprefix("courier-")
    mark = LEVEL_MARKS.get(str(record["level"]), "")
    details = " ".join(f"{key}={_short(value)}" for key, value in record.items() if key not in QUIET_KEYS)
    return f"{clock} {service:<10} {mark}{record['message']}" + (f"  {details}" if details else "")


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if UUID.match(text):
        return text[:8]  # enough to tell turns apart on a screen
    return text if len(text) <= 80 else text[:79] + "…"


class HumanLogs:
    """A text stream that writes `human_line` of each complete line to `out`."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._pending = ""
        self._lock = threading.Lock()  # many threads log at once

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                shown = human_line(line)
                if shown is not None:
                    self._out.write(shown + "\n")
        return len(text)

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return self._out.isatty()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, … of the terminal
        return getattr(self._out, name)
