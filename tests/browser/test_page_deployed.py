"""The page as `courier page` writes it for a deployed stack: served from another origin by a plain
static file server, configured only by its config.json (no dev tokens), it signs in with a pasted
token and chats over the stack's WebSocket."""

from __future__ import annotations

import functools
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from e2e.devstack import DevStack, courier_command, stack_env

from browser.conftest import DESKTOP, ChatPage

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def static_site(tmp_path: Path, browser_stack: DevStack) -> Iterator[str]:
    outputs = {"websocketUrl": browser_stack.ws_url, "maxMessageChars": 5000}
    site = tmp_path / "site"
    subprocess.run(
        [*courier_command(), "page", "--outputs", "-", "--out", str(site)],
        input=json.dumps(outputs),
        text=True,
        check=True,
        env=stack_env(),
        capture_output=True,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietFiles, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_the_deployed_page_signs_in_with_a_token_and_chats(
    open_page: Any, static_site: str, browser_stack: DevStack, output_dir: Path
) -> None:
    chat: ChatPage = open_page(DESKTOP, base_url=static_site)
    chat.page.goto(static_site)
    assert chat.page.get_by_test_id("dev-signin").count() == 0  # a deployed stack mints no dev tokens
    chat.page.get_by_test_id("token-input").fill(browser_stack.token("deployed-user"))
    chat.page.get_by_test_id("token-signin").click()
    chat.wait_connected()

    chat.send("hello from a static host")
    assert chat.answer_text(chat.wait_answers_finished(1)) == "You said: hello from a static host"
    assert "deployed-user" in chat.page.get_by_test_id("who").inner_text()
    chat.screenshot(output_dir, "deployed-page")
