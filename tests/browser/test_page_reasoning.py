"""The model's reasoning on the page: collapsed above the answer while it streams, the same from
history after a reload, and never part of the answer's text. `courier dev --thinking-budget 1024`
asks the worker to think, as courier:thinkingBudgetTokens does in AWS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.devstack import DevStack, start_dev_stack

from browser.conftest import DESKTOP, ChatPage

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# What the offline model thinks and answers for "hello there" (courier_local.offline_model).
THOUGHT = "The user wrote 2 words. I will say them back."
ANSWER = "You said: hello there"


@pytest.fixture(scope="module")
def thinking_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    stack = start_dev_stack(tmp_path_factory.mktemp("courier-thinking"), "--thinking-budget", "1024")
    yield stack
    assert stack.stop() == 0, stack.logs()


def test_reasoning_is_shown_collapsed_beside_the_answer_live_and_from_history(
    open_page: Any, thinking_stack: DevStack, output_dir: Path
) -> None:
    chat: ChatPage = open_page(DESKTOP, base_url=f"http://127.0.0.1:{thinking_stack.port}/").sign_in(
        "thinker"
    )

    chat.send("hello there")
    answer = chat.wait_answers_finished(1)

    def reasoning_seen() -> tuple[str, bool, str, str]:
        reasoning = answer.get_by_test_id("reasoning")
        return (
            reasoning.locator("summary").inner_text(),
            reasoning.evaluate("details => details.open"),
            reasoning.evaluate("details => details.querySelector('p').textContent"),
            chat.answer_text(answer),
        )

    assert reasoning_seen() == ("Thought", False, THOUGHT, ANSWER)
    chat.screenshot(output_dir, "reasoning")
    chat.page.reload()
    answer = chat.wait_answers_finished(1)
    assert reasoning_seen() == ("Thought", False, THOUGHT, ANSWER)
