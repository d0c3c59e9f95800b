"""The page shows the model's reasoning collapsed above the answer: live while the answer streams,
and from history after a reload; the answer's text never contains it.

The page is served from its static files and pointed (`?ws=`) at a small WebSocket server playing
Courier's side from a script (as test_page_retry.py does).
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from courier_local.stack import WEB_DIR

from .test_page_retry import QuietFiles

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CONVERSATION = "0b5a8f4e-2c1d-4a7e-9f3b-1d2e3f4a5b6c"
TURN = "6f1c7c1e-5a8e-4d8a-9a51-8e4a2f0f0b11"
THOUGHT = "The user wrote 2 words. I will say them back."
ANSWER = "You said: hello there"


class ThinkingScript:
    """sendMessage: reasoning, then (once `release` is set) the answer; getHistory: the stored turn."""

    def __init__(self) -> None:
        self.release = threading.Event()

    async def handler(self, websocket: ServerConnection) -> None:
        async for raw in websocket:
            frame = json.loads(raw)
            if frame["action"] == "sendMessage":
                ack = {
                    "type": "ack",
                    "action": "sendMessage",
                    "clientMessageId": frame["clientMessageId"],
                    "conversationId": CONVERSATION,
                    "turnId": TURN,
                }
                await websocket.send(json.dumps(ack))
                start = {
                    "type": "start",
                    "messageId": TURN,
                    "messageMetadata": {"model": "offline", "attempt": 1},
                }
                thinking = [
                    start,
                    {"type": "start-step"},
                    {"type": "reasoning-start", "id": "reasoning-0"},
                    *(
                        {"type": "reasoning-delta", "id": "reasoning-0", "delta": w}
                        for w in re.findall(r"\S+\s*", THOUGHT)
                    ),
                    {"type": "reasoning-end", "id": "reasoning-0"},
                ]
                answer = [
                    {"type": "text-start", "id": "text-0"},
                    {"type": "text-delta", "id": "text-0", "delta": ANSWER},
                    {"type": "text-end", "id": "text-0"},
                    {"type": "finish-step"},
                    {"type": "finish", "messageMetadata": {"usage": {"inputTokens": 1, "outputTokens": 2}}},
                ]
                for seq, part in enumerate(thinking):
                    await websocket.send(chunk(seq, part))
                await asyncio.to_thread(self.release.wait, 30)
                for seq, part in enumerate(answer, start=len(thinking)):
                    await websocket.send(chunk(seq, part))
            elif frame["action"] == "getHistory":
                turn = {
                    "turnId": TURN,
                    "status": "completed",
                    "userText": "hello there",
                    "assistantText": ANSWER,
                    "reasoningText": THOUGHT,
                    "model": "offline",
                    "usage": {"inputTokens": 1, "outputTokens": 2},
                    "createdAt": "2026-11-27T12:00:00+00:00",
                    "completedAt": "2026-11-27T12:00:01+00:00",
                }
                history = {
                    "type": "history",
                    "conversationId": CONVERSATION,
                    "turns": [turn],
                    "nextCursor": None,
                }
                await websocket.send(json.dumps(history))


def chunk(seq: int, part: dict[str, Any]) -> str:
    return json.dumps({"type": "chunk", "turnId": TURN, "attempt": 1, "seq": seq, "chunk": part})


@pytest.fixture
def scripted_page() -> Iterator[tuple[str, ThinkingScript]]:
    script = ThinkingScript()
    files = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietFiles, directory=str(WEB_DIR)))
    threading.Thread(target=files.serve_forever, daemon=True).start()
    ws_url: list[str] = []
    stop = threading.Event()

    async def websocket_server() -> None:
        async with serve(script.handler, "127.0.0.1", 0, subprotocols=["courier.v1"]) as running:  # type: ignore[list-item]
            ws_url.append(f"ws://127.0.0.1:{next(iter(running.sockets)).getsockname()[1]}/")
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(websocket_server(),), daemon=True)
    thread.start()
    while not ws_url and thread.is_alive():
        stop.wait(0.02)
    try:
        yield f"http://127.0.0.1:{files.server_address[1]}/?ws={ws_url[0]}", script
    finally:
        script.release.set()
        stop.set()
        thread.join(5)
        files.shutdown()
        files.server_close()


def test_reasoning_is_collapsed_above_the_answer_live_and_from_history(
    browser: Any, scripted_page: tuple[str, ThinkingScript], output_dir: Path
) -> None:
    from playwright.sync_api import expect

    url, script = scripted_page
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url)
        page.locator("#token-input").fill("any.token.here")
        page.get_by_test_id("token-signin").click()
        expect(page.get_by_test_id("connection")).to_have_text("connected", timeout=10_000)

        page.get_by_test_id("message-input").fill("hello there")
        page.get_by_test_id("send").click()
        answer = page.get_by_test_id("assistant").nth(0)
        reasoning = answer.get_by_test_id("reasoning")
        # While the model thinks: the reasoning is there, collapsed, and the answer has not begun.
        expect(reasoning).to_have_count(1, timeout=10_000)
        expect(reasoning.locator(".reasoning-text")).to_have_text(THOUGHT, timeout=10_000)
        expect(reasoning.locator(".reasoning-text")).to_be_hidden()
        expect(answer).to_have_attribute("data-status", "streaming")
        reasoning.locator("summary").click()  # opened by the user, it stays open as the answer streams
        script.release.set()
        expect(answer).to_have_attribute("data-status", "completed", timeout=10_000)
        expect(answer.get_by_test_id("reasoning").locator(".reasoning-text")).to_be_visible()
        assert answer.locator(".text").inner_text() == ANSWER  # the answer alone
        page.screenshot(path=str(output_dir / "reasoning.png"))

        page.reload()  # the conversation comes back from history (#c=…)
        expect(page.get_by_test_id("connection")).to_have_text("connected", timeout=10_000)
        stored = page.get_by_test_id("assistant").nth(0)
        expect(stored).to_have_attribute("data-status", "completed", timeout=10_000)
        expect(stored.get_by_test_id("reasoning").locator(".reasoning-text")).to_have_text(THOUGHT)
        expect(stored.get_by_test_id("reasoning").locator(".reasoning-text")).to_be_hidden()
        assert stored.locator(".text").inner_text() == ANSWER
        assert not errors, errors
    finally:
        context.close()
