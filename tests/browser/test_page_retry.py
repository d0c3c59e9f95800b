"""The page after an `error` the queue retries (the worker gave up during a database outage): it
shows that a retry is awaited, then the later attempt alone; an error the stored turn confirms ends
the answer as failed and frees the composer.

The page is served from its static files and pointed (`?ws=`) at a small WebSocket server playing
Courier's side from a script, so the outage needs no database to break.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from courier_local.stack import WEB_DIR

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUTAGE = "Courier lost its database while answering. The answer will be retried in a few seconds."
CONVERSATION = "0b5a8f4e-2c1d-4a7e-9f3b-1d2e3f4a5b6c"
TURNS = {"retry": "6f1c7c1e-5a8e-4d8a-9a51-8e4a2f0f0b11", "final": "7a2d8d2f-6b9f-4e9b-8b62-9f5b3a1a1c22"}


def parts(turn_id: str, attempt: int, words: list[str], ending: dict[str, Any]) -> list[dict[str, Any]]:
    start = {
        "type": "start",
        "messageId": turn_id,
        "messageMetadata": {"model": "offline", "attempt": attempt},
    }
    deltas = [{"type": "text-delta", "id": "t", "delta": word} for word in words]
    return [start, {"type": "text-start", "id": "t"}, *deltas, {"type": "text-end", "id": "t"}, ending]


class OutageScript:
    """ "retry": attempt 1 ends with the outage `error`, the stored turn stays open, and attempt 2
    streams once `release` is set. "final": the same error, but the stored turn says failed."""

    def __init__(self) -> None:
        self.release = threading.Event()

    async def handler(self, websocket: ServerConnection) -> None:
        async for raw in websocket:
            frame = json.loads(raw)
            if frame["action"] == "sendMessage":
                turn_id = TURNS[frame["text"]]
                ack = {
                    "type": "ack",
                    "action": "sendMessage",
                    "clientMessageId": frame["clientMessageId"],
                    "conversationId": CONVERSATION,
                    "turnId": turn_id,
                }
                await websocket.send(json.dumps(ack))
                error = {"type": "error", "errorText": OUTAGE}
                for seq, part in enumerate(parts(turn_id, 1, ["Stale ", "partial"], error)):
                    await websocket.send(self.chunk(turn_id, 1, seq, part))
            elif frame["action"] == "resume":
                turn_id = frame["turnId"]
                status = "streaming" if turn_id == TURNS["retry"] else "failed"
                snapshot = {"type": "snapshot", "turnId": turn_id, "attempt": 1, "seq": 2, "status": status}
                await websocket.send(json.dumps({**snapshot, "text": "Stale "}))
                if status == "streaming":
                    await asyncio.to_thread(self.release.wait, 30)
                    finish = {
                        "type": "finish",
                        "messageMetadata": {"usage": {"inputTokens": 1, "outputTokens": 2}},
                    }
                    for seq, part in enumerate(parts(turn_id, 2, ["Fresh ", "answer"], finish)):
                        await websocket.send(self.chunk(turn_id, 2, seq, part))

    @staticmethod
    def chunk(turn_id: str, attempt: int, seq: int, part: dict[str, Any]) -> str:
        return json.dumps({"type": "chunk", "turnId": turn_id, "attempt": attempt, "seq": seq, "chunk": part})


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the test output stays quiet
        pass


@pytest.fixture
def scripted_page() -> Iterator[tuple[str, OutageScript]]:
    """The page's URL, pointed at the scripted WebSocket server."""
    script = OutageScript()
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


def test_the_page_waits_for_the_retry_and_shows_only_the_later_attempt(
    browser: Any, scripted_page: tuple[str, OutageScript], output_dir: Path
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

        page.get_by_test_id("message-input").fill("retry")
        page.get_by_test_id("send").click()
        answer = page.get_by_test_id("assistant").nth(0)
        expect(answer).to_have_attribute("data-status", "retrying", timeout=10_000)
        expect(answer.get_by_test_id("turn-status")).to_contain_text("Waiting for the retry")
        expect(page.get_by_test_id("stop")).to_be_visible()  # the answer is still in progress
        page.screenshot(path=str(output_dir / "waiting-for-retry.png"))

        script.release.set()
        expect(answer).to_have_attribute("data-status", "completed", timeout=10_000)
        assert answer.locator(".text").inner_text() == "Fresh answer"  # the stale attempt is gone

        page.get_by_test_id("message-input").fill("final")
        page.get_by_test_id("send").click()
        second = page.get_by_test_id("assistant").nth(1)
        expect(second).to_have_attribute("data-status", "failed", timeout=10_000)
        expect(second.get_by_test_id("turn-status")).to_contain_text(OUTAGE)
        expect(page.get_by_test_id("send")).to_be_visible()  # the composer is free again
        assert not errors, errors
    finally:
        context.close()
