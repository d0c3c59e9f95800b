"""Chromium (Debian's, at /usr/bin/chromium; `make browser-deps` installs it) driven by Playwright.

Never `playwright install`: the test uses the system browser. Without it the tests skip, except
with CI=true, where a missing browser fails the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.devstack import DevStack, start_dev_stack

CHROMIUM = Path(os.environ.get("COURIER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT_DIR = Path(__file__).resolve().parents[2] / "test-output" / "browser"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")  # Playwright's sync API holds an event loop: stop it before other tests run
def browser(chromium_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def browser_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """`courier dev` for the page: 25 tokens/s, slow enough to watch the answer grow and press stop."""
    stack = start_dev_stack(tmp_path_factory.mktemp("courier-browser"), "--token-rate", "25", "--grace", "1")
    yield stack
    code = stack.stop()
    assert code == 0, f"`courier dev` exited with {code} on SIGINT\n{stack.logs()}"


@pytest.fixture
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR


DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


class ChatPage:
    """The page as a user drives it, by the test ids web/src sets (data-testid)."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []  # uncaught page errors: a test may assert there are none
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def sign_in(self, user: str = "page-user") -> ChatPage:
        self.page.goto(self.base_url)
        self.page.locator("input[name=user]").fill(user)
        self.page.get_by_test_id("dev-signin").click()
        self.wait_connected()
        return self

    def wait_connected(self, timeout_ms: float = 15_000) -> None:
        self.page.get_by_test_id("connection").filter(has_text="connected").wait_for(timeout=timeout_ms)

    def send(self, text: str) -> None:
        self.page.get_by_test_id("message-input").fill(text)
        self.page.get_by_test_id("send").click()

    def answers(self) -> Any:
        return self.page.get_by_test_id("assistant-message")

    def wait_answers_finished(self, count: int, timeout_ms: float = 30_000) -> Any:
        """The `count`-th answer, once it has ended (its figures or ending are shown)."""
        answer = self.answers().nth(count - 1)
        answer.locator("[data-testid=figures], [data-testid=ending]").first.wait_for(timeout=timeout_ms)
        return answer

    def answer_text(self, answer: Any) -> str:
        return " ".join(answer.get_by_test_id("answer-text").all_inner_texts())

    def screenshot(self, output_dir: Path, name: str) -> None:
        self.page.screenshot(path=str(output_dir / f"{name}.png"))


@pytest.fixture
def open_page(browser: Any, browser_stack: DevStack) -> Iterator[Any]:
    """open_page(viewport=DESKTOP, **context options) -> ChatPage on `courier dev`'s page."""
    contexts: list[Any] = []

    def open_(viewport: dict[str, int] = DESKTOP, base_url: str | None = None, **options: Any) -> ChatPage:
        context = browser.new_context(viewport=viewport, **options)
        contexts.append(context)
        return ChatPage(context.new_page(), base_url or f"http://127.0.0.1:{browser_stack.port}/")

    yield open_
    for context in contexts:
        context.close()
