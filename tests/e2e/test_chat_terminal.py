"""`courier chat` in a real terminal (tmux): the prompt edits like a shell's and remembers messages.

Keys go in through tmux as a user types them; what the terminal shows is read back from the pane.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_until

from e2e.devstack import DevStack, courier_command

pytestmark = pytest.mark.slow


@pytest.fixture
def terminal(dev_stack: DevStack, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An interactive `courier chat` in a tmux session of its own (HOME in tmp_path: its history)."""
    if shutil.which("tmux") is None:
        message = "tmux is not installed: the terminal test needs it"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    session = f"courier-chat-{uuid.uuid4().hex[:8]}"
    chat = [
        *courier_command(),
        "chat",
        "--url",
        dev_stack.ws_url,
        "--token",
        dev_stack.token("terminal-user"),
    ]
    command = f"env HOME={shlex.quote(str(tmp_path))} TERM=xterm {shlex.join(chat)}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40", command], check=True)
    try:
        yield session, tmp_path
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def screen(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=False
    ).stdout


def keys(session: str, *typed: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, *typed], check=True)


def test_the_prompt_edits_like_a_shell_and_recalls_earlier_messages(terminal: tuple[str, Path]) -> None:
    session, home = terminal
    wait_until(lambda: "you>" in screen(session), 30, what="the prompt")  # tmux trims the trailing space

    keys(session, "-l", "hello wrld")
    keys(session, "Left", "Left", "Left")
    keys(session, "-l", "o")  # inserted mid-line: "hello world"
    keys(session, "Enter")
    wait_until(lambda: screen(session).count("you>") >= 2, 30, what="the first answer")
    first = screen(session)
    assert "hello world" in first.split("you> hello world", 1)[1]  # the offline model echoes it

    keys(session, "Up")  # the last message comes back to the prompt
    wait_until(lambda: screen(session).rstrip().endswith("you> hello world"), 10, what="history recall")
    keys(session, "Enter")
    wait_until(lambda: screen(session).count("you>") >= 3, 30, what="the second answer")
    keys(session, "C-d")

    wait_until(lambda: (home / ".courier_chat_history").exists(), 10, what="the saved history")
    assert (home / ".courier_chat_history").read_text().splitlines()[-1] == "hello world"
