"""Two users: B can neither read, resume, cancel nor post into A's conversation, nor tell that it exists."""

from __future__ import annotations

import uuid
from typing import Any

from courier_shared.db.store import Listener
from courier_shared.protocol import TurnStatus

from .conftest import GatewayHarness, make_owner


def test_user_b_cannot_touch_user_a_s_conversation_or_learn_it_exists(
    harness: GatewayHarness, counts: Any
) -> None:
    alice, bob = make_owner("acme"), make_owner("acme")
    a = harness.client(alice)
    b = harness.client(bob)
    a.connect()
    b.connect()
    ack = a.send_message("Alice's private question")
    conversation_id, turn_id = ack["conversationId"], ack["turnId"]
    nobody_s_conversation, nobody_s_turn = str(uuid.uuid4()), str(uuid.uuid4())
    before = counts()
    queued_before = len(harness.queue.sent)

    def as_b(frame: dict[str, Any]) -> dict[str, Any]:
        answer = b.send(frame)
        answer.pop("clientMessageId", None)
        return answer

    probes = {
        "getHistory": lambda target: {"action": "getHistory", "conversationId": target},
        "resume": lambda target: {"action": "resume", "turnId": target},
        "cancel": lambda target: {"action": "cancel", "turnId": target},
        "sendMessage": lambda target: {
            "action": "sendMessage",
            "clientMessageId": str(uuid.uuid4()),
            "text": "let me in",
            "conversationId": target,
        },
    }
    for action, probe in probes.items():
        target = turn_id if action in ("resume", "cancel") else conversation_id
        nonexistent = nobody_s_turn if action in ("resume", "cancel") else nobody_s_conversation
        on_alice_s = as_b(probe(target))
        on_nothing = as_b(probe(nonexistent))
        assert on_alice_s["type"] == "error" and on_alice_s["code"] == "not_found", action
        assert on_alice_s == on_nothing, f"{action}: B can tell A's id from an id that does not exist"

    assert b.send({"action": "listConversations"})["conversations"] == []
    assert counts() == before and len(harness.queue.sent) == queued_before
    with harness.store.unit_of_work() as repo:
        turn = repo.find_turn(alice, uuid.UUID(turn_id))
        assert turn is not None and turn.status is TurnStatus.QUEUED and turn.cancel_requested_at is None
        assert repo.turn_control(alice, uuid.UUID(turn_id)).listeners == (Listener(a.connection_id),)
    history = a.send({"action": "getHistory", "conversationId": conversation_id})
    assert [t["userText"] for t in history["turns"]] == ["Alice's private question"]


def test_the_same_user_id_in_another_tenant_is_another_user(harness: GatewayHarness) -> None:
    acme = make_owner("acme")
    globex = type(acme)(tenant_id="globex", user_id=acme.user_id)
    ack = harness.client(acme).send_message("acme only")

    answer = harness.client(globex).send({"action": "getHistory", "conversationId": ack["conversationId"]})

    assert answer["code"] == "not_found"


def test_a_client_message_id_is_scoped_to_its_user(harness: GatewayHarness) -> None:
    frame = {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": "same id, two users"}
    a_ack = harness.client(make_owner()).send(frame)
    b_ack = harness.client(make_owner()).send(frame)
    assert b_ack["type"] == "ack" and b_ack["turnId"] != a_ack["turnId"]
