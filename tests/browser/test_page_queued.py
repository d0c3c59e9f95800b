"""The chat page in Chromium while no worker has taken the turn: the user sees it is queued.

A `courier dev` of its own with one worker: another user's long answer holds it, so the page's
message waits in the queue until that answer ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.devstack import DevStack, start_dev_stack

from browser.conftest import DESKTOP, ChatPage

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def one_worker_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """`courier dev` with one worker at 10 tokens/s: one answer at a time, slow enough to queue behind."""
    stack = start_dev_stack(
        tmp_path_factory.mktemp("courier-one-worker"),
        "--worker-concurrency",
        "1",
        "--token-rate",
        "10",
        "--grace",
        "1",
    )
    yield stack
    code = stack.stop()
    assert code == 0, f"`courier dev` exited with {code} on SIGINT\n{stack.logs()}"


@pytest.fixture
def open_tab(browser: Any, one_worker_stack: DevStack) -> Iterator[Any]:
    """open_tab() -> ChatPage on the one-worker stack, in a browser context of its own (its own user)."""
    contexts: list[Any] = []

    def open_(viewport: dict[str, int] = DESKTOP) -> ChatPage:
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        return ChatPage(context.new_page(), f"http://127.0.0.1:{one_worker_stack.port}/")

    yield open_
    for context in contexts:
        context.close()


def test_a_message_waiting_for_a_worker_shows_queued_until_its_answer_starts(
    open_tab: Any, output_dir: Path
) -> None:
    other: ChatPage = open_tab().sign_in("queued-other-user")
    chat: ChatPage = open_tab().sign_in("queued-user")

    # Another user's long answer (12 s) holds the only worker.
    other.send("lorem 120")
    holding = other.answers().first
    holding.get_by_test_id("answer-text").filter(has_text="dolor").wait_for(timeout=30_000)

    chat.send("hello from the queue")
    queued = chat.page.get_by_test_id("queued")
    queued.wait_for(timeout=10_000)
    assert queued.inner_text().startswith("Queued: waiting for a worker")
    assert chat.answers().count() == 0
    assert chat.page.get_by_test_id("stop").is_visible()  # the user can still give up on it
    # The new conversation is listed, and titled, under its first message while it waits.
    assert chat.page.get_by_test_id("chat-title").inner_text() == "hello from the queue"
    assert chat.page.get_by_test_id("conversation").all_inner_texts() == ["hello from the queue"]
    # The wait is counted while it lasts.
    queued.filter(has_text=" s)").wait_for(timeout=10_000)
    assert holding.get_attribute("data-status") == "streaming"  # it waits behind the other answer
    chat.screenshot(output_dir, "queued-desktop")

    answer = chat.wait_answers_finished(1, timeout_ms=60_000)
    assert chat.answer_text(answer) == "You said: hello from the queue"
    assert queued.count() == 0
    # The worker took it once the other answer had ended.
    assert len(other.answer_text(other.wait_answers_finished(1)).split()) == 120
    chat.screenshot(output_dir, "queued-answered-desktop")
    assert chat.page.get_by_test_id("conversation").all_inner_texts() == [
        "hello from the queue"
    ]  # listed once
    assert not chat.errors
