"""The chat page in Chromium against `courier dev`: what a user sees when chatting.

Each test drives the page (web/src, React + useChat + the AI SDK's WebSocketChatTransport) as a
user does and saves a screenshot in test-output/browser/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browser.conftest import DESKTOP, PHONE, ChatPage

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def words(text: str) -> list[str]:
    return text.split()


def test_a_tool_turn_shows_text_and_tool_cards_in_stream_order_and_history_shows_the_same(
    open_page: Any, output_dir: Path
) -> None:
    chat: ChatPage = open_page(DESKTOP).sign_in("page-tools")

    chat.send("What time is it in Tokyo?")
    answer = chat.wait_answers_finished(1)
    chat.send("time in Mars")
    failed = chat.wait_answers_finished(2)
    chat.screenshot(output_dir, "tool-turns-desktop")

    def shape(message: Any) -> list[str]:
        return message.locator("[data-testid=answer-text], [data-testid=tool-card]").evaluate_all(
            "nodes => nodes.map(n => n.dataset.testid === 'tool-card' ? 'tool:' + n.dataset.state : 'text')"
        )

    # The sentence written before the call, the card, then the answer from its result.
    assert shape(answer) == ["text", "tool:done", "text"]
    assert "Let me check the time in Tokyo." in chat.answer_text(answer)
    assert "Asia/Tokyo" in chat.answer_text(answer)
    # A tool that failed is shown failed, with its reason.
    assert shape(failed) == ["text", "tool:failed", "text"]
    assert "Unknown time zone 'Mars'" in failed.get_by_test_id("tool-card").inner_text()
    # Courier's time to first token and the turn's figures, as `courier chat` shows them.
    assert "first token" in answer.get_by_test_id("figures").inner_text()
    # Screen readers hear the finished answer.
    assert "Courier answered:" in chat.page.get_by_test_id("announcer").inner_text()

    live = [shape(answer), shape(failed), answer.get_by_test_id("figures").inner_text()]
    live_texts = [chat.answer_text(answer), chat.answer_text(failed)]
    chat.page.reload()
    answer, failed = chat.wait_answers_finished(1), chat.wait_answers_finished(2)
    chat.screenshot(output_dir, "tool-turns-reloaded")
    assert [shape(answer), shape(failed), answer.get_by_test_id("figures").inner_text()] == live
    assert [chat.answer_text(answer), chat.answer_text(failed)] == live_texts
    assert not chat.errors


def test_markdown_is_rendered_with_highlighted_code_and_a_copy_button(
    open_page: Any, output_dir: Path
) -> None:
    chat: ChatPage = open_page(DESKTOP, permissions=["clipboard-read", "clipboard-write"]).sign_in(
        "page-markdown"
    )
    source = "def double(x):\n    return x * 2"

    chat.send(f"Some **bold** code:\n\n```python\n{source}\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    answer = chat.wait_answers_finished(1)

    assert answer.locator("[data-streamdown=strong]").inner_text() == "bold"
    assert answer.locator("[data-streamdown=table-cell]").all_inner_texts() == ["1", "2"]
    code = answer.locator("pre code")
    code.wait_for()
    # Shiki colours tokens: the keyword and the function name are spans with their own colours.
    colours = code.locator("span").evaluate_all(
        "spans => new Set(spans.map(s => getComputedStyle(s).color)).size"
    )
    assert colours >= 3
    chat.screenshot(output_dir, "markdown-desktop")
    answer.locator("[data-streamdown=code-block-copy-button]").click()
    assert chat.page.evaluate("navigator.clipboard.readText()").rstrip("\n") == source


def test_stop_ends_the_answer_with_the_text_so_far(open_page: Any, output_dir: Path) -> None:
    chat: ChatPage = open_page(DESKTOP).sign_in("page-stop")

    chat.send("lorem 400")
    answer = chat.answers().first
    answer.get_by_test_id("answer-text").filter(has_text="dolor").wait_for()
    chat.page.get_by_test_id("stop").click()

    assert answer.get_by_test_id("ending").inner_text() == "Stopped"
    assert chat.page.get_by_test_id("announcer").inner_text() == "The answer was stopped."
    shown = words(chat.answer_text(answer))
    assert 3 <= len(shown) < 400
    chat.screenshot(output_dir, "stopped")
    chat.page.reload()
    stored = chat.wait_answers_finished(1)
    assert stored.get_by_test_id("ending").inner_text() == "Stopped"
    assert words(chat.answer_text(stored))[: len(shown)] == shown  # what was shown was kept
    chat.page.get_by_test_id("send").wait_for()  # the box is ready for the next message


def test_the_view_follows_the_answer_only_while_the_reader_is_at_the_bottom(
    open_page: Any, output_dir: Path
) -> None:
    chat: ChatPage = open_page(PHONE).sign_in("page-scroll")
    chat.send("lorem 400")
    answer = chat.answers().first
    scroller = chat.page.locator(".messages-scroll")

    # While at the bottom, the view follows the growing answer.
    scroller_js = "document.querySelector('.messages-scroll')"
    chat.page.wait_for_function(
        f"() => {{ const s = {scroller_js}; return s.scrollHeight > s.clientHeight + 200 }}"
    )
    chat.page.wait_for_function(
        f"() => {{ const s = {scroller_js}; return s.scrollTop + s.clientHeight >= s.scrollHeight - 80 }}"
    )
    assert chat.page.get_by_test_id("jump-to-latest").count() == 0

    # Scrolled up, it stays where the reader is while the text keeps coming, and offers a way down.
    scroller.hover()
    chat.page.mouse.wheel(0, -400)
    chat.page.get_by_test_id("jump-to-latest").wait_for()
    held = scroller.evaluate("s => s.scrollTop")
    before = len(words(chat.answer_text(answer)))
    chat.page.wait_for_function(
        "() => document.querySelector('[data-testid=assistant-message]').innerText.split(/\\s+/).length"
        f" > {before + 20}"
    )
    assert scroller.evaluate("s => s.scrollTop") == held
    chat.screenshot(output_dir, "scrolled-up-phone")

    chat.page.get_by_test_id("jump-to-latest").click()
    chat.page.get_by_test_id("jump-to-latest").wait_for(state="detached")
    chat.wait_answers_finished(1)


def test_switching_conversations_mid_answer_shows_the_chosen_one_and_the_other_finishes(
    open_page: Any, output_dir: Path
) -> None:
    chat: ChatPage = open_page(DESKTOP).sign_in("page-switch")
    chat.send("lorem 120")
    chat.answers().first.get_by_test_id("answer-text").filter(has_text="dolor").wait_for()
    first_url = chat.page.url

    chat.page.get_by_test_id("new-conversation").click()
    assert chat.page.get_by_test_id("empty").is_visible()
    chat.send("hello from the second conversation")
    second = chat.wait_answers_finished(1)
    assert chat.answer_text(second) == "You said: hello from the second conversation"
    assert chat.answers().count() == 1
    chat.screenshot(output_dir, "switched")

    chat.page.get_by_test_id("conversation").filter(has_text="lorem 120").click()
    assert chat.page.url == first_url
    first = chat.wait_answers_finished(1)
    assert len(words(chat.answer_text(first))) == 120
    assert chat.page.get_by_test_id("user-message").inner_text().startswith("lorem 120")


def test_a_refused_message_stays_in_the_box_with_the_reason(open_page: Any, output_dir: Path) -> None:
    chat: ChatPage = open_page(DESKTOP).sign_in("page-refused")
    box = chat.page.get_by_test_id("message-input")

    # Over the limit (in characters, whatever their encoding): said before sending, nothing is sent.
    for too_long in ("ж" * 6000, "😀" * 6000):
        box.fill(too_long)
        assert "6,000 characters" in chat.page.get_by_test_id("composer-reason").inner_text()
        assert chat.page.get_by_test_id("send").is_disabled()
        box.press("Enter")
        assert box.input_value() == too_long
    assert chat.page.get_by_test_id("user-message").count() == 0

    # Refused by Courier: the message leaves the conversation and comes back to the box, with why.
    refused = "a message with a NUL \x00 in it"
    chat.send(refused)
    chat.page.get_by_test_id("composer-reason").filter(has_text="NUL").wait_for()
    assert box.input_value() == refused
    assert chat.page.get_by_test_id("user-message").count() == 0
    chat.screenshot(output_dir, "refused")

    # Fixed, it goes.
    chat.send("a message without one")
    assert chat.answer_text(chat.wait_answers_finished(1)) == "You said: a message without one"
    assert chat.page.get_by_test_id("composer-reason").count() == 0


def test_copy_regenerate_and_edit_and_resend(open_page: Any, output_dir: Path) -> None:
    chat: ChatPage = open_page(DESKTOP, permissions=["clipboard-read", "clipboard-write"]).sign_in(
        "page-actions"
    )
    chat.send("first question")
    answer = chat.wait_answers_finished(1)

    answer.get_by_role("button", name="Copy answer").click()
    assert chat.page.evaluate("navigator.clipboard.readText()") == "You said: first question"

    first_turn = answer.get_attribute("data-turn-id")
    answer.get_by_test_id("regenerate").click()
    chat.page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=assistant-message]')]"
        f".some(m => m.dataset.turnId && m.dataset.turnId !== '{first_turn}')"
    )
    regenerated = chat.wait_answers_finished(1)
    assert chat.answer_text(regenerated) == "You said: first question"

    chat.page.get_by_test_id("edit-message").last.click()
    chat.page.get_by_role("textbox", name="Edit message").fill("edited question")
    chat.page.get_by_test_id("resend").click()
    edited = chat.wait_answers_finished(2)
    assert chat.answer_text(edited) == "You said: edited question"
    chat.screenshot(output_dir, "actions")


def test_dark_mode_labels_focus_and_a_growing_message_box(open_page: Any, output_dir: Path) -> None:
    chat: ChatPage = open_page(DESKTOP, color_scheme="dark").sign_in("page-a11y")
    page = chat.page

    # The system asks for dark: the page is dark (its background's RGB channels add up to little).
    channels = page.evaluate("getComputedStyle(document.body).backgroundColor.match(/[\\d.]+/g).map(Number)")
    assert sum(channels[:3]) < 120
    box = page.get_by_role("textbox", name="Message")
    assert box.is_visible()
    assert page.get_by_role("complementary", name="Conversations").is_visible()

    height = box.evaluate("b => b.getBoundingClientRect().height")
    box.fill("one\ntwo\nthree\nfour\nfive")
    assert box.evaluate("b => b.getBoundingClientRect().height") > height * 2

    page.keyboard.press("Tab")
    focused = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused != "none"
    chat.screenshot(output_dir, "dark-desktop")


def test_the_longest_message_in_its_costliest_encoding_still_fits_one_frame(open_page: Any) -> None:
    # JSON writes a control character as \u0001: 6 bytes, the most any character costs on the wire.
    # A message of maxMessageChars of them must still go in one frame under API Gateway's 32 KB
    # (the page sends only the new message), or the gateway would close the socket with 1009.
    chat: ChatPage = open_page(DESKTOP).sign_in("page-longest")
    longest = "\x01" * 5000

    chat.send(longest)

    answer = chat.wait_answers_finished(1)
    assert chat.page.get_by_test_id("composer-reason").count() == 0
    assert answer.get_attribute("data-status") == "completed"
    assert chat.page.get_by_test_id("connection").inner_text() == "connected"


def test_a_streaming_answer_is_its_own_heartbeat_and_costs_no_pings(open_page: Any) -> None:
    # The heartbeat pings only after a few silent seconds: every ping is an API Gateway message
    # (billed, and the stage's ping route has a small share of its throttle).
    chat: ChatPage = open_page(DESKTOP)
    sent: list[str] = []
    chat.page.on(
        "websocket", lambda socket: socket.on("framesent", lambda payload: sent.append(str(payload)))
    )
    chat.sign_in("page-heartbeat")

    chat.send("lorem 150")  # 6 s at 25 tokens/s: twice the silence that would send a ping
    chat.wait_answers_finished(1)

    assert [frame for frame in sent if '"type":"ping"' in frame.replace(" ", "")] == []
    assert any('"type":"send"' in frame.replace(" ", "") for frame in sent)  # the frames were seen
