"""History after a tool turn, end to end on Postgres: the worker streams and stores a turn whose first
tool call fails and whose second succeeds; `getHistory` over the local gateway shows both calls in
order, each where it was made in the answer's text, the failed one as failed, with the turn's
timings; and the tool calls of a whole page are read in one query."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event

from courier_shared.protocol import parse_server_frame
from courier_worker.adapters import ApiGatewayConnections
from courier_worker.composition import build_worker

from .scripted_model import ScriptedModel
from .stack import REGION, Client, WorkerStack, chunks, worker_settings

pytestmark = pytest.mark.postgres

FIRST, SECOND, LAST = "Let me check. ", "That zone is unknown; trying Tokyo. ", "It is late in Tokyo."


def tool_turn_model() -> ScriptedModel:
    return ScriptedModel(
        [
            {"text": FIRST, "tool": {"name": "current_time", "input": {"time_zone": "Atlantis"}, "id": "t1"}},
            {
                "text": SECOND,
                "tool": {"name": "current_time", "input": {"time_zone": "Asia/Tokyo"}, "id": "t2"},
            },
            {"text": LAST},
            {"text": "Again: ", "tool": {"name": "current_time", "input": {"time_zone": "UTC"}, "id": "t3"}},
            {"text": "Done."},
        ]
    )


def get_history(client: Client, conversation_id: uuid.UUID, timeout_s: float = 10.0) -> dict[str, Any]:
    client.websocket.send(json.dumps({"action": "getHistory", "conversationId": str(conversation_id)}))
    deadline = time.monotonic() + timeout_s
    while (frame := client.read(deadline - time.monotonic()))["type"] != "history":
        pass
    parse_server_frame(json.dumps(frame))
    return frame


@pytest.fixture
def tool_queries() -> Iterator[list[str]]:
    """Every SELECT from tool_invocations any engine of this process runs meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM tool_invocations" in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def test_history_shows_each_tool_call_where_it_was_made_and_a_failed_one_as_failed(
    stack: WorkerStack, postgres_url: str, worker_engine: Engine, tool_queries: list[str]
) -> None:
    settings = worker_settings(postgres_url)
    worker = build_worker(
        settings,
        model=tool_turn_model(),
        connections=ApiGatewayConnections(region_name=REGION),
        engine=worker_engine,
    )
    stack.start_worker(worker)
    with stack.client() as client:
        first = stack.submit("What time is it in Atlantis?", client.connection_id)
        frames = client.read_until_end(first.turn_id)
        second = stack.submit("And again?", client.connection_id, conversation_id=first.conversation_id)
        client.read_until_end(second.turn_id)
        tool_queries.clear()
        history = get_history(client, first.conversation_id)

    assert len(tool_queries) == 1  # one read for the tool calls of the whole page, not one per turn
    turn = history["turns"][0]
    assert turn["assistantText"] == FIRST + SECOND + LAST
    finish = chunks(frames)[-1]["chunk"]
    assert finish["type"] == "finish"
    stored = stack.turn(first.turn_id)
    assert turn["timeToFirstTokenMs"] == finish["messageMetadata"]["timeToFirstTokenMs"]
    assert turn["timeToFirstTokenMs"] == stored.time_to_first_token_ms is not None
    assert turn["latencyMs"] == stored.latency_ms is not None
    failed, tokyo = turn["tools"]
    assert {
        key: failed[key] for key in ("toolCallId", "toolName", "input", "state", "output", "textOffset")
    } == {
        "toolCallId": "t1",
        "toolName": "current_time",
        "input": {"time_zone": "Atlantis"},
        "state": "output-error",
        "output": None,
        "textOffset": len(FIRST),
    }
    assert failed["errorText"].startswith("Unknown time zone 'Atlantis'")
    assert (tokyo["toolCallId"], tokyo["state"], tokyo["errorText"]) == ("t2", "output-available", None)
    assert tokyo["output"]["timeZone"] == "Asia/Tokyo" and tokyo["textOffset"] == len(FIRST + SECOND)
    assert all(isinstance(tool["durationMs"], int) for tool in (failed, tokyo))
    text = turn["assistantText"]
    assert (text[: failed["textOffset"]], text[failed["textOffset"] : tokyo["textOffset"]]) == (FIRST, SECOND)
    [again] = history["turns"][1]["tools"]  # the second turn's own call
    assert (again["toolCallId"], again["state"], again["textOffset"]) == (
        "t3",
        "output-available",
        len("Again: "),
    )
