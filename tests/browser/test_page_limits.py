"""The page and API Gateway's 32 KB frames: a message too long is refused in plain words before it is
sent, and a message of the maximum length goes out as one frame even in its worst-case encoding."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from e2e.devstack import DevStack

from courier_shared.protocol import CLIENT_FRAME_BUDGET_BYTES, MAX_MESSAGE_CHARS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_page_refuses_a_message_too_long_and_sends_a_maximal_one_in_one_frame(
    browser: Any, browser_stack: DevStack, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    sent: list[int] = []
    closes: list[int] = []

    def watch(websocket: Any) -> None:
        websocket.on("framesent", lambda payload: sent.append(len(str(payload).encode())))
        websocket.on("close", lambda _ws: closes.append(1))

    page.on("websocket", watch)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(browser_stack.info["page_url"])
        page.locator("#dev-user").fill("limits-user")
        page.get_by_test_id("dev-signin").click()
        expect(page.get_by_test_id("connection")).to_have_text("connected", timeout=10_000)
        frames_before = len(sent)

        # 6,000 Cyrillic characters: under the old 8,000 limit, but never sendable in one frame.
        too_long = "ж" * 6_000
        page.get_by_test_id("message-input").fill(too_long)
        page.get_by_test_id("send").click()
        expect(page.get_by_test_id("banner")).to_contain_text("6,000 characters; the limit is 5,000")
        assert page.get_by_test_id("message-input").input_value() == too_long  # kept to be shortened
        expect(page.get_by_test_id("assistant")).to_have_count(0)
        assert len(sent) == frames_before  # nothing went out
        page.screenshot(path=str(output_dir / "too-long.png"))

        # The longest message in its worst encoding: control characters, 6 bytes each as JSON.
        page.get_by_test_id("message-input").fill("\x01" * MAX_MESSAGE_CHARS)
        page.get_by_test_id("send").click()
        turn = page.locator("article.turn").nth(0)
        expect(turn).to_have_attribute("data-turn-id", re.compile(".+"), timeout=10_000)  # acknowledged
        expect(page.get_by_test_id("assistant").nth(0)).to_have_attribute(
            "data-status", "completed", timeout=20_000
        )
        assert max(sent) > 30_000  # it really was the worst case ...
        assert max(sent) <= CLIENT_FRAME_BUDGET_BYTES  # ... in one frame the gateway takes
        assert closes == []  # the socket was never closed over it
        assert not errors, errors
    finally:
        context.close()
