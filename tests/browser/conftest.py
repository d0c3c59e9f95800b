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
