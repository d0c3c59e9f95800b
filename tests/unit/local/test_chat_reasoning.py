"""`courier chat` and reasoning: TurnView keeps it apart from the answer, the terminal printer shows
it on stderr before the answer, dimmed on a terminal and plain otherwise; stdout stays the answer."""

from __future__ import annotations

import io
from typing import Any

import pytest

from courier_local.chat_client import ReasoningAppended, TextAppended, TextReplaced, TurnView
from courier_local.commands.chat import TerminalPrinter

TURN = "6f1c7c1e-5a8e-4d8a-9a51-8e4a2f0f0b11"
DIM, RESET = "\x1b[2m", "\x1b[0m"


def frames(attempt: int = 1) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"type": "start", "messageId": TURN, "messageMetadata": {"model": "offline", "attempt": attempt}},
        {"type": "start-step"},
        {"type": "reasoning-start", "id": "reasoning-0"},
        {"type": "reasoning-delta", "id": "reasoning-0", "delta": "Greet "},
        {"type": "reasoning-delta", "id": "reasoning-0", "delta": "back."},
        {"type": "reasoning-end", "id": "reasoning-0"},
        {"type": "text-start", "id": "text-0"},
        {"type": "text-delta", "id": "text-0", "delta": "Hello!"},
        {"type": "text-end", "id": "text-0"},
        {"type": "finish-step"},
        {"type": "finish", "messageMetadata": {"stopReason": "end_turn"}},
    ]
    return [
        {"type": "chunk", "turnId": TURN, "attempt": attempt, "seq": s, "chunk": p}
        for s, p in enumerate(parts)
    ]


def test_the_view_keeps_reasoning_apart_from_the_answer_and_a_retry_clears_both() -> None:
    view = TurnView(TURN)
    updates = [u for frame in frames() for u in view.apply(frame)]

    assert [u for u in updates if isinstance(u, ReasoningAppended | TextAppended)] == [
        ReasoningAppended("Greet "),
        ReasoningAppended("back."),
        TextAppended("Hello!"),
    ]
    assert (view.reasoning, view.text) == ("Greet back.", "Hello!")

    retried = TurnView(TURN)
    for frame in frames()[:5]:  # attempt 1 reasons, then the queue retries the turn
        retried.apply(frame)
    assert retried.apply(frames(attempt=2)[0]) == [TextReplaced("", "retry")]
    assert retried.reasoning == ""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def print_turn(monkeypatch: pytest.MonkeyPatch, stderr: io.StringIO) -> tuple[str, str]:
    stdout = io.StringIO()
    monkeypatch.setattr("sys.stdout", stdout)
    monkeypatch.setattr("sys.stderr", stderr)
    printer, view = TerminalPrinter(), TurnView(TURN)
    for frame in frames():
        for update in view.apply(frame):
            printer(update)
    return stdout.getvalue(), stderr.getvalue()


def test_reasoning_goes_to_stderr_before_the_answer_plain_when_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdout, stderr = print_turn(monkeypatch, io.StringIO())
    assert stdout == "Hello!"  # only the answer: scripts read stdout
    assert stderr == "Greet back.\n"


def test_reasoning_is_dimmed_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    _, stderr = print_turn(monkeypatch, Terminal())
    assert stderr == f"{DIM}Greet {RESET}{DIM}back.{RESET}\n"
