"""A client that resumes while the turn ends still gets the ending.

The worker learns of new listeners from its control poll; a resume that lands after the last poll
but before the final write used to get a `streaming` snapshot from the gateway and then nothing,
ever (seen in CI). The final write now reads the listeners in the same transaction, after the
update a resume waits on (`add_listener` share-locks the turn), so either the resume sees the ended
turn or the worker sees the listener.
"""

from __future__ import annotations

from typing import Any

import pytest
from fakes import MemoryRepository
from worker.scripted_model import ScriptedModel

from courier_shared.protocol import TurnStatus
from unit.worker.test_parts import prepare
from unit.worker.turn_runner import LISTENER

pytestmark = pytest.mark.anyio
LATE = "conn-late="


async def test_a_listener_added_just_before_the_final_write_gets_the_rest_and_the_ending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finish_turn = MemoryRepository.finish_turn

    def resume_lands_first(
        self: MemoryRepository, owner: Any, turn_id: Any, *args: Any, **kwargs: Any
    ) -> None:
        self.add_listener(owner, turn_id, LATE)
        finish_turn(self, owner, turn_id, *args, **kwargs)

    monkeypatch.setattr(MemoryRepository, "finish_turn", resume_lands_first)
    request, runner, _, poster = prepare(ScriptedModel([{"text": "It is noon in Paris."}]))

    report = await runner.run(request)

    assert report.status is TurnStatus.COMPLETED
    snapshot, *rest = poster.frames[LATE]
    assert snapshot["type"] == "snapshot" and snapshot["text"] == "It is noon in Paris."
    assert [f["chunk"]["type"] for f in rest] == ["finish"]
    assert rest[0]["seq"] == snapshot["seq"] + 1 == poster.frames[LISTENER][-1]["seq"]
