"""Fair use: every action is rate limited per connection and per user, and a flood is refused before
it costs a database query."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from courier_shared.db.store import ChatStore

from .conftest import GatewayHarness, make_owner

LIMITS = {
    "FRAME_RATE_PER_SECOND": 2,
    "FRAME_BURST": 5,
    "USER_FRAME_RATE_PER_SECOND": 4,
    "USER_FRAME_BURST": 8,
}


@pytest.fixture
def harness(make_harness: Any) -> GatewayHarness:
    return make_harness(**LIMITS)


@pytest.fixture
def statements(store: ChatStore) -> Iterator[list[str]]:
    """Every SQL statement the store's engine runs while the test does."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    yield seen
    event.remove(store.engine, "before_cursor_execute", record)


def frames_of_every_action(conversation_id: str, turn_id: str) -> list[dict[str, Any]]:
    return [
        {"action": "ping"},
        {"action": "listConversations"},
        {"action": "getHistory", "conversationId": conversation_id},
        {"action": "resume", "turnId": turn_id},
        {"action": "cancel", "turnId": str(uuid.uuid4())},
        {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": "hi"},
        {"action": "noSuchAction"},
    ]


@pytest.mark.parametrize("index", range(7))
def test_every_action_is_limited_per_connection(harness: GatewayHarness, index: int) -> None:
    owner = make_owner()
    setup = harness.client(owner)
    ack = setup.send_message("setup")
    frame = frames_of_every_action(ack["conversationId"], ack["turnId"])[index]
    client = harness.client(owner)
    harness.clock.advance(60)  # the setup connection's frames are the user's too: let them refill

    answers = [client.send({**frame, "clientMessageId": str(uuid.uuid4())} if "text" in frame else frame)]
    answers += [client.send(frame) for _ in range(LIMITS["FRAME_BURST"])]

    refused = answers[-1]
    assert all(a.get("code") != "rate_limited" for a in answers[:-1]), answers
    assert (refused["type"], refused["code"], refused["retryable"]) == ("error", "rate_limited", True)
    assert "on one connection" in refused["message"]
    if frame["action"] != "noSuchAction":
        assert refused["action"] == frame["action"]  # the client can tell which request it was
    harness.clock.advance(1 / LIMITS["FRAME_RATE_PER_SECOND"])
    assert client.send({"action": "ping"})["type"] == "pong"  # refilled at the rate


def test_a_user_is_limited_over_all_their_connections_and_nobody_else_is(harness: GatewayHarness) -> None:
    owner = make_owner()
    connections = [harness.client(owner) for _ in range(4)]
    answers = [c.send({"action": "ping"}) for c in connections for _ in range(3)]  # 12 > USER_FRAME_BURST

    assert [a["type"] for a in answers].count("pong") == LIMITS["USER_FRAME_BURST"]
    refused = [a for a in answers if a["type"] == "error"]
    assert {a["code"] for a in refused} == {"rate_limited"}
    assert all("from one user" in a["message"] for a in refused)
    assert harness.client(make_owner()).send({"action": "ping"})["type"] == "pong"


def test_a_flood_is_refused_without_touching_the_database(make_harness: Any, statements: list[str]) -> None:
    # Refilling slowly enough that the fake clock's millisecond per reading never adds a token.
    harness = make_harness(**{**LIMITS, "FRAME_RATE_PER_SECOND": 0.01})
    owner = make_owner()
    conversation_id = harness.client(owner).send_message("setup")["conversationId"]
    client = harness.client(owner)
    harness.clock.advance(60)
    history = {"action": "getHistory", "conversationId": conversation_id}
    for _ in range(LIMITS["FRAME_BURST"]):
        assert client.send(history)["type"] == "history"
    statements.clear()

    answers = [client.send(history) for _ in range(500)]

    assert {a["code"] for a in answers} == {"rate_limited"}
    assert statements == []  # not one query for 500 frames
