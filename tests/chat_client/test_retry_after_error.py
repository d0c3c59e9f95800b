"""After an `error`, a later attempt of the same turn may come (docs/protocol.md: the worker gives up
during a database outage and the queue retries the turn within seconds). `courier chat` keeps
listening for it and shows that attempt alone; an error the stored turn confirms as final ends the
turn at once.

The server is a small `websockets` server playing Courier's side from a script.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.devstack import courier_command, stack_env
from websockets.asyncio.server import ServerConnection, serve

from courier_local.chat_client import AwaitingRetry, ChatConnection, TextReplaced, Update

TURN = "6f1c7c1e-5a8e-4d8a-9a51-8e4a2f0f0b11"
CONVERSATION = "0b5a8f4e-2c1d-4a7e-9f3b-1d2e3f4a5b6c"
OUTAGE = "Courier lost its database while answering. The answer will be retried in a few seconds."
pytestmark = pytest.mark.anyio


def chunk(attempt: int, seq: int, part: dict[str, Any]) -> str:
    return json.dumps({"type": "chunk", "turnId": TURN, "attempt": attempt, "seq": seq, "chunk": part})


def attempt_parts(attempt: int, words: list[str], ending: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"type": "start", "messageId": TURN, "messageMetadata": {"model": "offline", "attempt": attempt}},
        {"type": "text-start", "id": "t"},
    ]
    parts += [{"type": "text-delta", "id": "t", "delta": word} for word in words]
    return [*parts, {"type": "text-end", "id": "t"}, ending]


FINISH = {"type": "finish", "messageMetadata": {"usage": {"inputTokens": 2, "outputTokens": 2}}}


class FailingThenRetrying:
    """Attempt 1 streams some text and ends with `error`. A `resume` is answered with the stored
    turn: `refusals` times a retryable `internal` error first (the database is still away), then a
    snapshot with `stored_status`. When that status is open and `retry` is set, attempt 2 follows."""

    def __init__(self, *, stored_status: str = "streaming", refusals: int = 0, retry: bool = True) -> None:
        self.stored_status = stored_status
        self.refusals = refusals
        self.retry = retry
        self.received: list[dict[str, Any]] = []

    async def handler(self, websocket: ServerConnection) -> None:
        async for raw in websocket:
            frame = json.loads(raw)
            self.received.append(frame)
            if frame["action"] == "sendMessage":
                ack = {
                    "type": "ack",
                    "action": "sendMessage",
                    "clientMessageId": frame["clientMessageId"],
                    "conversationId": CONVERSATION,
                    "turnId": TURN,
                }
                await websocket.send(json.dumps(ack))
                error = {"type": "error", "errorText": OUTAGE}
                for seq, part in enumerate(attempt_parts(1, ["Stale ", "partial "], error)):
                    await websocket.send(chunk(1, seq, part))
            elif frame["action"] == "resume":
                if self.refusals > 0:
                    self.refusals -= 1
                    refusal = {
                        "type": "error",
                        "code": "internal",
                        "message": "Something went wrong on the server. Try again in a moment.",
                        "action": "resume",
                        "retryable": True,
                    }
                    await websocket.send(json.dumps(refusal))
                    continue
                snapshot = {
                    "type": "snapshot",
                    "turnId": TURN,
                    "attempt": 1,
                    "seq": 2,  # the last save before the database went away
                    "status": self.stored_status,
                    "text": "Stale ",
                }
                await websocket.send(json.dumps(snapshot))
                if self.retry and self.stored_status == "streaming":
                    for seq, part in enumerate(attempt_parts(2, ["Fresh ", "answer"], FINISH)):
                        await websocket.send(chunk(2, seq, part))


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, FailingThenRetrying]]:
    script = FailingThenRetrying(**getattr(request, "param", {}))
    async with serve(script.handler, "127.0.0.1", 0, subprotocols=["courier.v1"]) as running:  # type: ignore[list-item]
        port = next(iter(running.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", script


async def run(url: str, **options: Any) -> tuple[Any, list[Update]]:
    updates: list[Update] = []
    async with ChatConnection(url, "token", status_poll_s=0.05, **options) as connection:
        result = await asyncio.wait_for(connection.run_turn("hi", on_update=updates.append), 20)
    return result, updates


@pytest.mark.parametrize("server", [{"refusals": 2}], indirect=True)
async def test_a_retryable_error_is_followed_by_the_later_attempt_alone(
    server: tuple[str, FailingThenRetrying],
) -> None:
    url, script = server

    result, updates = await run(url)

    assert result.status == "completed"
    assert result.text == "Fresh answer"  # the failed attempt's partial text is gone
    assert result.error_text is None
    assert AwaitingRetry(OUTAGE) in updates
    assert TextReplaced("", "retry") in updates
    # Asked while the database was away (two refusals), then told the turn is still open.
    assert [f["action"] for f in script.received] == ["sendMessage", "resume", "resume", "resume"]


@pytest.mark.parametrize("server", [{"stored_status": "failed"}], indirect=True)
async def test_an_error_the_stored_turn_confirms_ends_the_turn(
    server: tuple[str, FailingThenRetrying],
) -> None:
    url, script = server

    result, updates = await run(url)

    assert result.status == "failed"
    assert result.error_text == OUTAGE
    assert not any(isinstance(update, AwaitingRetry) for update in updates)
    assert [f["action"] for f in script.received] == ["sendMessage", "resume"]


@pytest.mark.parametrize("server", [{"retry": False}], indirect=True)
async def test_a_retry_that_never_comes_leaves_the_error_standing(
    server: tuple[str, FailingThenRetrying],
) -> None:
    url, _ = server

    result, updates = await run(url, retry_wait_s=0.3)

    assert result.status == "failed"
    assert result.error_text == OUTAGE
    assert AwaitingRetry(OUTAGE) in updates


def test_courier_chat_prints_the_retried_answer_and_exits_0(tmp_path: Path) -> None:
    script = FailingThenRetrying()
    for result in _with_server(script):
        completed = subprocess.run(
            [*courier_command(), "chat", "hi", "--url", result, "--token", "any"],
            capture_output=True,
            text=True,
            timeout=60,
            env=stack_env(),
            cwd=tmp_path,
            check=False,
        )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.rstrip().endswith("Fresh answer")
    assert "Waiting for the retry" in completed.stderr
    assert "the answer restarted (retry)" in completed.stderr
    assert "[completed" in completed.stderr


def _with_server(script: FailingThenRetrying) -> Iterator[str]:
    """Runs the scripted server in a thread for a subprocess client; yields its URL once."""
    import threading

    ready: list[str] = []
    stop = threading.Event()

    async def main() -> None:
        async with serve(script.handler, "127.0.0.1", 0, subprotocols=["courier.v1"]) as running:  # type: ignore[list-item]
            ready.append(f"ws://127.0.0.1:{next(iter(running.sockets)).getsockname()[1]}/")
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    try:
        while not ready and thread.is_alive():
            stop.wait(0.02)
        yield ready[0]
    finally:
        stop.set()
        thread.join(5)
