"""A retried attempt, as the AI SDK shows it: one answer, the tool ran once.

Courier's worker produces the frames (the real TurnRunner, Publisher and agent session, over the
in-memory store): attempt 1 streams a tool step to an AI SDK request and the worker dies asking the
model for the next step; attempt 2 restores the saved step, tells the old request to resume, and
replays the whole answer to the request that resumes. A scripted WebSocket server plays exactly
those frames to the `ai` package's own WebSocketChatTransport and AbstractChat (tests/ai_sdk/
drive.mjs, scenario send-resume-on-error): what a user of useChat sees after a worker crash.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fakes import MemoryChatStore, MemoryRepository, RecordingPoster
from support import FakeClock
from unit.worker.test_durable_attempts import WorkerDied, dying_tool_turn
from unit.worker.turn_runner import FAST_SETTINGS, OWNER, fake_turn_runner, queued_turn
from websockets.sync.server import ServerConnection, serve

from courier_shared.protocol import TurnStatus
from e2e.test_ai_sdk_transport import answer, drive, text_of

pytestmark = pytest.mark.slow
SENDER, RESUMER = "conn-sender=", "conn-resumer="


@dataclass
class Played:
    """The frames Courier sent: to the request that sent the question, and to the one that resumed."""

    to_sender: list[dict[str, Any]]
    to_resumer: list[dict[str, Any]]
    stored_text: str
    lookups: list[str]


def worker_frames(monkeypatch: pytest.MonkeyPatch) -> Played:
    """Each attempt in an event loop of its own, as in its own worker: what the dead one had not
    posted yet dies with it."""
    tools, model, lookups = dying_tool_turn()
    store, poster, clock = MemoryChatStore(), RecordingPoster(), FakeClock()
    request = queued_turn(store, clock, "What time is it in Paris?", SENDER, request_id="SENT")
    with pytest.raises(WorkerDied):
        asyncio.run(fake_turn_runner(store, model, poster, clock, tools).run(request))
    clock.advance(FAST_SETTINGS.lease_s + 1)
    # The SDK resumes during attempt 2 (after the old request was told to): it listens from then on.
    finish_turn = MemoryRepository.finish_turn

    def resumed_before_the_end(
        self: MemoryRepository, owner: Any, turn_id: Any, *args: Any, **kwargs: Any
    ) -> None:
        self.add_listener(owner, turn_id, RESUMER, "RESUMED")
        finish_turn(self, owner, turn_id, *args, **kwargs)

    monkeypatch.setattr(MemoryRepository, "finish_turn", resumed_before_the_end)
    report = asyncio.run(fake_turn_runner(store, model, poster, clock, tools).run(request))
    assert report.status is TurnStatus.COMPLETED
    with store.unit_of_work() as repo:
        stored_text = repo.find_turn(OWNER, request.turn_id).assistant_text
    return Played(poster.frames[SENDER], poster.frames[RESUMER], stored_text, lookups)


@dataclass
class ScriptedCourier:
    """Plays the recorded frames to whatever request asks, under that request's id."""

    played: Played
    ws_url: str = ""

    def token(self, _owner: str) -> str:
        return "not-checked"

    def handle(self, connection: ServerConnection) -> None:
        for raw in connection:
            frame = json.loads(raw)
            if frame["type"] == "send":
                frames = [{"type": "start"}, *self.played.to_sender]
            elif frame["type"] == "resume":
                frames = [{"type": "start"}, *self.played.to_resumer]
            else:
                continue
            for played in frames:
                connection.send(json.dumps({**played, "requestId": frame["requestId"]}))


@pytest.fixture
def scripted_courier(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedCourier]:
    played = worker_frames(monkeypatch)
    courier = ScriptedCourier(played)
    with serve(courier.handle, "127.0.0.1", 0, subprotocols=["courier.v1"]) as server:  # type: ignore[list-item]
        courier.ws_url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield courier
        server.shutdown()


def test_after_a_worker_crash_between_two_tool_steps_the_sdk_shows_one_answer(
    scripted_courier: ScriptedCourier,
) -> None:
    played = scripted_courier.played
    assert [f["type"] for f in played.to_sender][-1] == "error"  # the old request is told to resume

    result = drive(scripted_courier, "send-resume-on-error", "What time is it in Paris?", owner="u")  # type: ignore[arg-type]

    assert result["afterError"]["status"] == "error" and "resume" in result["afterError"]["error"]
    message = answer(result)
    assert result["status"] == "ready", result
    assert text_of(message) == played.stored_text == "Let me look. It is noon in Paris."  # once
    tools = [part for part in message["parts"] if part["type"].startswith("tool-")]
    assert [(p["type"], p["state"], p["output"]) for p in tools] == [
        ("tool-lookup", "output-available", "12:00 in Paris")
    ]
    assert played.lookups == ["Paris"]  # the tool ran once, in the attempt that died
