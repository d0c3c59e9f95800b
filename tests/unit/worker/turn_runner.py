"""The worker's TurnRunner over the unit tier's fakes: one way to build it for every unit test."""

from __future__ import annotations

from fakes import MemoryChatStore, RecordingPoster
from support import FakeClock
from worker.scripted_model import ScriptedModel

from courier_worker.settings import WorkerSettings
from courier_worker.tools import ToolRegistry
from courier_worker.turn import TurnRunner

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
