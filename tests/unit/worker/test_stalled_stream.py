"""A model stream that stalls (no event, no end) cannot hold a turn past its deadline.

A stopped Strands agent ends at its next model event; a stalled stream sends none. The turn runner
stops waiting FORCED_STOP_AFTER_S after the stop, and the turn ends in its defined state with its
partial text, its listener told. (Seen under `make load`: turns stuck `streaming` for minutes.)
"""

from __future__ import annotations

import pytest
from worker.scripted_model import ScriptedModel

from courier_shared.protocol import TurnStatus
from unit.worker.test_parts import prepare
from unit.worker.turn_runner import LISTENER, OWNER

pytestmark = pytest.mark.anyio


async def test_a_stalled_model_stream_ends_the_turn_at_its_deadline() -> None:
    model = ScriptedModel([{"text": "The first words and then", "stall": True}])
    request, runner, store, poster = prepare(model)
    deadline = runner.clock() + runner.settings.deadline_margin_s + 0.1  # stop almost at once

    report = await runner.run(request, deadline=deadline)

    parts = [frame["chunk"] for frame in poster.frames[LISTENER]]
    assert parts[-1]["type"] == "error"  # the listener is told the turn ended
    assert report.status is TurnStatus.FAILED and report.error_code == "deadline"
    with store.unit_of_work() as repo:
        turn = repo.find_turn(OWNER, request.turn_id)
        assert turn.status == TurnStatus.FAILED
        assert turn.assistant_text == "The first words and then"  # the partial text is kept
    assert model.closed == 1  # the model's stream was closed, not left open
