"""The chat page in a real browser against `courier dev`: sign in, stream, a tool call, stop, reload."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from e2e.devstack import DevStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def assistant_text(page: Any, index: int) -> str:
    return str(page.locator("[data-testid=assistant] .text").nth(index).inner_text())


def test_the_page_streams_an_answer_stops_one_and_shows_history_after_a_reload(
    browser: Any, browser_stack: DevStack, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1200, "height": 760})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(browser_stack.info["page_url"])

        # Sign in with a dev token from the local stack.
        page.get_by_test_id("dev-signin").click()
        expect(page.get_by_test_id("connection")).to_have_text("connected", timeout=10_000)

        # A tool call, then its answer.
        page.get_by_test_id("message-input").fill("What is the time in Europe/Paris?")
        page.get_by_test_id("send").click()
        first = page.get_by_test_id("assistant").nth(0)
        expect(first.get_by_test_id("tool")).to_contain_text("current_time", timeout=10_000)
        expect(first).to_have_attribute("data-status", "completed", timeout=15_000)
        expect(first.get_by_test_id("tool")).to_contain_text("Europe/Paris")
        assert assistant_text(page, 0).strip()

        # A long answer streams in: the text grows while the cursor blinks, then Stop ends it.
        page.get_by_test_id("message-input").fill("lorem 400")
        page.get_by_test_id("message-input").press("Enter")
        second = page.get_by_test_id("assistant").nth(1)
        expect(second.get_by_test_id("cursor")).to_be_visible(timeout=10_000)
        expect(second.locator(".text")).to_contain_text("lorem", timeout=10_000)
        early = len(assistant_text(page, 1))
        time.sleep(0.8)
        later = len(assistant_text(page, 1))
        assert later > early, f"the answer did not grow while streaming ({early} → {later} characters)"
        page.screenshot(path=str(output_dir / "streaming.png"))

        page.get_by_test_id("stop").click()
        expect(second).to_have_attribute("data-status", "cancelled", timeout=10_000)
        expect(second.get_by_test_id("turn-status")).to_contain_text("Stopped")
        expect(second.get_by_test_id("cursor")).to_have_count(0)
        stopped_text = assistant_text(page, 1)
        assert 0 < len(stopped_text.split()) < 400, "stop did not stop the answer"
        expect(page.get_by_test_id("send")).to_be_visible()

        # The conversation is listed, and survives a reload with both turns and their outcomes.
        expect(page.get_by_test_id("conversations").locator("a")).to_have_count(1)
        expect(page.get_by_test_id("conversations")).to_contain_text("What is the time in Europe/Paris?")
        assert re.search(r"#c=[0-9a-f-]{36}$", page.url)
        page.reload()
        expect(page.get_by_test_id("connection")).to_have_text("connected", timeout=10_000)
        expect(page.get_by_test_id("assistant")).to_have_count(2, timeout=10_000)
        expect(page.locator(".msg.user").nth(0)).to_have_text("What is the time in Europe/Paris?")
        expect(page.locator(".msg.user").nth(1)).to_have_text("lorem 400")
        expect(page.get_by_test_id("assistant").nth(0)).to_have_attribute("data-status", "completed")
        expect(page.get_by_test_id("assistant").nth(1)).to_have_attribute("data-status", "cancelled")
        assert assistant_text(page, 1) == stopped_text, (
            "the stored partial answer differs from what was shown"
        )
        expect(page.get_by_test_id("conversations").locator("a")).to_have_count(1)
        page.screenshot(path=str(output_dir / "after-reload.png"))

        # New conversation clears the view; picking the listed one brings its history back.
        page.get_by_test_id("new-conversation").click()
        expect(page.get_by_test_id("assistant")).to_have_count(0)
        page.get_by_test_id("conversations").locator("a").first.click()
        expect(page.get_by_test_id("assistant")).to_have_count(2, timeout=10_000)
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        page.screenshot(path=str(output_dir / "last.png"))
        context.close()


def test_a_bad_token_is_explained_in_plain_words(
    browser: Any, browser_stack: DevStack, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(browser_stack.info["page_url"])
        page.locator("#token-input").fill("not.a.token")
        page.get_by_test_id("token-signin").click()
        expect(page.locator("#signin-error")).to_contain_text("refused the connection", timeout=10_000)
        page.screenshot(path=str(output_dir / "bad-token.png"))
    finally:
        context.close()


def test_the_page_resumes_an_answer_after_its_socket_drops(
    browser: Any, browser_stack: DevStack, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(browser_stack.info["page_url"])
        page.locator("#dev-user").fill("resume-user")
        page.get_by_test_id("dev-signin").click()
        expect(page.get_by_test_id("connection")).to_have_text("connected", timeout=10_000)
        page.get_by_test_id("message-input").fill("lorem 60")
        page.get_by_test_id("send").click()
        answer = page.get_by_test_id("assistant").nth(0)
        expect(answer.locator(".text")).to_contain_text("lorem", timeout=10_000)

        page.evaluate("() => state.ws.close()")  # the network drops the socket mid-answer
        expect(page.get_by_test_id("banner")).to_contain_text("Connection lost")
        expect(answer).to_have_attribute("data-status", "completed", timeout=15_000)
        expect(page.get_by_test_id("banner")).to_be_hidden()
        words = assistant_text(page, 0).split()
        assert len(words) == 60, f"{len(words)} words after the resume: a gap or a duplicate"
        page.screenshot(path=str(output_dir / "resumed.png"))
    finally:
        context.close()
