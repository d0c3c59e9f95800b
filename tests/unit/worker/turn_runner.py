"""The worker's TurnRunner over the unit tier's fakes, and a queued turn for it to run: one way to
build them for every unit test."""

from __future__ import annotations

import uuid

from fakes import MemoryChatStore, RecordingPoster
from support import FakeClock
from worker.scripted_model import ScriptedModel

from courier_shared.db.store import Owner
from courier_shared.queue import TurnRequest
from courier_worker.settings import WorkerSettings
from courier_worker.tools import ToolRegistry
from courier_worker.turn import TurnRunner

OWNER = Owner("acme", "user-1")
LISTENER = "conn-1="
# Polls and model retries without waiting: the fakes answer at once.
FAST_SETTINGS = WorkerSettings.model_validate({"CONTROL_POLL_MS": 20, "MODEL_RETRY_DELAY_S": 0})


def fake_turn_runner(
    store: MemoryChatStore,
    model: ScriptedModel,
    poster: RecordingPoster,
    clock: FakeClock,
    tools: ToolRegistry,
) -> TurnRunner:
    """A worker container's runner (make a fresh one per attempt: a dead worker's state is gone).
    Its monotonic clock is the fake's, frozen unless the test moves it: text after the first
    coalesces until a structural part."""
    return TurnRunner(
        settings=FAST_SETTINGS,
        store=store,
        model=model,
        poster=poster,
        bodies=None,
        tools=tools,
        clock=clock.monotonic,
        wall_clock=clock,
    )


def queued_turn(
    store: MemoryChatStore,
    clock: FakeClock,
    text: str = "Hi",
    listener: str = LISTENER,
    request_id: str | None = None,
) -> TurnRequest:
    """OWNER's new turn, stored queued with `listener` listening, as the queue delivers it."""
    with store.unit_of_work() as repo:
        turn, _ = repo.create_turn(OWNER, None, uuid.uuid4(), text, listener, clock(), request_id=request_id)
    return TurnRequest(
        turn_id=turn.id,
        conversation_id=turn.conversation_id,
        tenant_id=OWNER.tenant_id,
        user_id=OWNER.user_id,
        origin_connection_id=listener,
        callback_url="https://abc123.execute-api.us-east-1.amazonaws.com/prod",
    )
