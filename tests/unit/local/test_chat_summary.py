"""`courier chat`'s closing line shows Courier's own time to first token (the `finish` metadata's,
the figure the page and history show), never one measured by the client; and a failed tool call
is printed as failed."""

from __future__ import annotations

import io

import pytest

from courier_local.chat_client import ToolActivity, ToolFailed, ToolFinished, ToolStarted, TurnResult
from courier_local.commands.chat import TerminalPrinter, summary_line


def result(status: str, metadata: dict[str, object], first_text_s: float | None = 0.031) -> TurnResult:
    return TurnResult(
        turn_id="t",
        conversation_id="c",
        status=status,
        text="Hello.",
        error_text=None,
        metadata=metadata,
        tools=[ToolActivity("c1", "lookup", {})],
        elapsed_s=0.54,
        first_text_s=first_text_s,  # what this client measured: not what it shows
        reconnects=0,
    )


def test_the_summary_shows_the_servers_time_to_first_token() -> None:
    metadata = {"usage": {"inputTokens": 337, "outputTokens": 21}, "timeToFirstTokenMs": 93}

    line = summary_line(result("completed", metadata))

    assert line == "[completed · 337 tokens in, 21 out · first token 93 ms · 0.54 s · 1 tool call]"


def test_a_turn_that_ended_without_the_figure_shows_none() -> None:
    assert "first" not in summary_line(result("interrupted", {}))
    assert "first" not in summary_line(result("completed", {"timeToFirstTokenMs": None}))


def test_a_failed_tool_call_is_printed_as_failed_and_a_finished_one_as_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    printer = TerminalPrinter()

    printer(ToolStarted("c1", "lookup", {"city": "Atlantis"}))
    printer(ToolFailed("c1", "No such city."))
    printer(ToolStarted("c2", "lookup", {"city": "Paris"}))
    printer(ToolFinished("c2", "12:00"))

    lines = stderr.getvalue().splitlines()
    assert lines == [
        "  ⚙ lookup(city='Atlantis')",
        "    ✗ No such city.",
        "  ⚙ lookup(city='Paris')",
        '    ✓ "12:00"',
    ]
