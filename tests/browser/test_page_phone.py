"""The chat page in Chromium on phones (390x844 and 360x740): nothing wider than the screen, Send in
reach, and the conversations in a drawer behind the menu button.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browser.conftest import PHONE, ChatPage

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SMALL_PHONE = {"width": 360, "height": 740}
LONG_LINE = "print('" + "a-long-line-of-code-" * 20 + "')"  # 400 characters, no place to wrap


def no_horizontal_scroll(chat: ChatPage) -> bool:
    return bool(chat.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def inside_viewport(chat: ChatPage, locator: Any) -> bool:
    box = locator.bounding_box()
    size = chat.page.viewport_size
    return (
        box is not None
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= size["width"]
        and box["y"] + box["height"] <= size["height"]
    )


def drawer_is_closed(chat: ChatPage) -> None:
    """The sidebar is off the screen to the left (it slides out: wait for the transition)."""
    chat.page.wait_for_function(
        "() => document.querySelector('#sidebar').getBoundingClientRect().right <= 0", timeout=5_000
    )


def drawer_is_open(chat: ChatPage) -> None:
    chat.page.wait_for_function(
        "() => document.querySelector('#sidebar').getBoundingClientRect().left >= 0", timeout=5_000
    )


@pytest.mark.parametrize("viewport", [PHONE, SMALL_PHONE], ids=["390x844", "360x740"])
def test_a_phone_shows_the_chat_with_the_conversations_in_a_drawer(
    open_page: Any, output_dir: Path, viewport: dict[str, int]
) -> None:
    size = f"{viewport['width']}x{viewport['height']}"
    chat: ChatPage = open_page(viewport).sign_in(f"phone-{size}")
    menu = chat.page.get_by_test_id("menu")

    # The chat fills the screen: no sidebar, Send within reach, nothing to scroll sideways.
    drawer_is_closed(chat)
    assert menu.is_visible()
    chat.page.get_by_test_id("message-input").fill("the first conversation")
    assert inside_viewport(chat, chat.page.get_by_test_id("send"))
    assert no_horizontal_scroll(chat)
    chat.page.get_by_test_id("send").click()
    assert chat.answer_text(chat.wait_answers_finished(1)) == "You said: the first conversation"
    assert no_horizontal_scroll(chat)
    chat.screenshot(output_dir, f"phone-{size}-chat")

    # The menu opens the conversations as a drawer over the chat.
    menu.click()
    drawer_is_open(chat)
    assert menu.get_attribute("aria-expanded") == "true"
    assert inside_viewport(chat, chat.page.get_by_test_id("new-conversation"))
    assert no_horizontal_scroll(chat)
    chat.screenshot(output_dir, f"phone-{size}-drawer")

    # A new conversation with a long code block: the block scrolls inside itself, the page does not.
    chat.page.get_by_test_id("new-conversation").click()
    drawer_is_closed(chat)
    chat.send(f"a long line:\n```python\n{LONG_LINE}\n```")
    answer = chat.wait_answers_finished(1)
    code = answer.locator("pre").first
    code.wait_for()
    assert LONG_LINE in code.inner_text()
    assert code.evaluate("pre => pre.scrollWidth > pre.clientWidth")  # it is wider than the screen…
    assert code.evaluate("pre => pre.getBoundingClientRect().right") <= viewport["width"]
    assert no_horizontal_scroll(chat)  # …and the page is not
    assert inside_viewport(chat, chat.page.get_by_test_id("send"))
    chat.screenshot(output_dir, f"phone-{size}-long-code")

    # Choosing a conversation in the drawer closes it and shows that conversation.
    menu.click()
    drawer_is_open(chat)
    chat.page.get_by_test_id("conversation").filter(has_text="the first conversation").click()
    drawer_is_closed(chat)
    assert menu.get_attribute("aria-expanded") == "false"
    chat.page.get_by_test_id("user-message").filter(has_text="the first conversation").wait_for()
    assert chat.page.get_by_test_id("chat-title").inner_text() == "the first conversation"
    assert chat.answer_text(chat.wait_answers_finished(1)) == "You said: the first conversation"
    assert no_horizontal_scroll(chat)
    chat.screenshot(output_dir, f"phone-{size}-chosen")
    assert not chat.errors
