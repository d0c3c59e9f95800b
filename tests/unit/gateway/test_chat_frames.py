"""The AI SDK's WebSocketChatTransport frames (ai@7), answered by the gateway over the in-memory
store. The frames are shaped exactly as the transport sends them (ai/src/ui/websocket-chat-transport.ts:
`send` carries the chat id, trigger, the whole message list, headers and body); the end-to-end proof
with the SDK itself is tests/e2e/test_ai_sdk_transport.py."""

from __future__ import annotations

import uuid
from typing import Any

from gateway_client import GatewayHarness, HarnessFactory, make_owner

from courier_shared.db.store import Listener
from courier_shared.protocol import TurnStatus


def user_message(text: str, message_id: str | None = None) -> dict[str, Any]:
    return {
        "id": message_id or uuid.uuid4().hex[:16],
        "role": "user",
        "parts": [{"type": "text", "text": text}],
    }


def send_frame(chat_id: str, messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "type": "send",
        "requestId": uuid.uuid4().hex[:16],
        "id": chat_id,
        "trigger": "submit-message",
        "messageId": None,
        "messages": messages,
        "headers": {},
        "body": {},
        **fields,
    }


def stored_turns(harness: GatewayHarness, owner: Any) -> list[Any]:
    """The owner's turns the gateway queued, oldest first."""
    with harness.store.unit_of_work() as repo:
        turns = [repo.find_turn(owner, request.turn_id) for request in harness.queue.sent]
    return sorted((t for t in turns if t is not None), key=lambda t: t.created_at)


def test_a_send_stores_the_last_user_message_as_a_turn_and_answers_start(harness: GatewayHarness) -> None:
    owner = make_owner()
    client = harness.client(owner)
    earlier = [
        user_message("first question"),
        {"id": "a1", "role": "assistant", "parts": [{"type": "text", "text": "an answer"}]},
    ]
    frame = send_frame("chat-xyz", [*earlier, user_message("What time is it?")])

    answer = client.send(frame)

    assert answer == {"type": "start", "requestId": frame["requestId"]}
    [turn] = stored_turns(harness, owner)
    assert (turn.user_text, turn.status) == ("What time is it?", TurnStatus.QUEUED)  # history is Courier's
    with harness.store.unit_of_work() as repo:
        listeners = repo.turn_control(owner, turn.id).listeners
    assert listeners == (Listener(client.connection_id, frame["requestId"]),)


def test_one_chat_id_is_one_conversation_and_a_users_own_conversation_id_is_used_as_is(
    make_harness: HarnessFactory,
) -> None:
    harness = make_harness(MAX_OPEN_TURNS=10)
    owner = make_owner()
    client = harness.client(owner)
    client.send(send_frame("chat-1", [user_message("one")]))
    client.send(send_frame("chat-1", [user_message("one"), user_message("two")]))
    existing = client.send_message("a conversation started by courier chat")
    client.send(send_frame(existing["conversationId"], [user_message("three")]))

    first, second, _, third = stored_turns(harness, owner)
    assert first.conversation_id == second.conversation_id
    assert str(third.conversation_id) == existing["conversationId"]


def test_another_users_conversation_id_as_a_chat_id_is_a_new_conversation_of_ones_own(
    harness: GatewayHarness,
) -> None:
    alice, mallory = make_owner(), make_owner()
    theirs = harness.client(alice).send_message("private")["conversationId"]

    harness.client(mallory).send(send_frame(theirs, [user_message("let me in")]))

    [turn] = stored_turns(harness, mallory)
    assert str(turn.conversation_id) != theirs
    with harness.store.unit_of_work() as repo:
        assert [t.user_text for t in repo.history(alice, uuid.UUID(theirs)).items] == ["private"]


def test_get_history_by_a_chat_id_reads_the_conversation_that_chat_started(harness: GatewayHarness) -> None:
    # A page that started a chat under a UUID of its own, and lost the connection before the answer
    # named the conversation, reads it by that chat id; the answer says the conversation's own id.
    alice, mallory = make_owner(), make_owner()
    chat_id = str(uuid.uuid4())
    harness.client(alice).send(send_frame(chat_id, [user_message("where did it go?")]))
    [turn] = stored_turns(harness, alice)

    history = harness.client(alice).send({"type": "getHistory", "requestId": "h", "conversationId": chat_id})

    assert history["conversationId"] == str(turn.conversation_id) != chat_id
    assert [t["userText"] for t in history["turns"]] == ["where did it go?"]
    theirs = harness.client(mallory).send({"type": "getHistory", "requestId": "h", "conversationId": chat_id})
    assert theirs["type"] == "error" and theirs["code"] == "not_found"  # another user's chat id is nothing


def test_a_resent_message_is_one_turn_and_regenerate_is_another(harness: GatewayHarness) -> None:
    owner = make_owner()
    client = harness.client(owner)
    question = user_message("Once")
    client.send(send_frame("chat-2", [question]))
    client.send(send_frame("chat-2", [question]))  # the same message again (a retry)
    client.send(send_frame("chat-2", [question], trigger="regenerate-message", messageId=question["id"]))

    turns = stored_turns(harness, owner)
    assert [t.user_text for t in turns] == ["Once", "Once"]
    assert len({t.id for t in turns}) == 2


def test_a_bad_send_gets_an_error_with_its_request_id_and_writes_nothing(
    harness: GatewayHarness, counts: Any
) -> None:
    client = harness.client(make_owner())
    before = counts()
    assistant_only = send_frame("chat-3", [{"id": "a", "role": "assistant", "parts": []}])
    wrong_trigger = send_frame("chat-3", [user_message("x")], trigger="shout")

    for frame in (assistant_only, wrong_trigger):
        answer = client.send(frame)
        assert answer["type"] == "error" and answer["requestId"] == frame["requestId"]
        assert answer["errorText"]
    assert counts() == before


def test_resume_of_a_chat_with_nothing_in_progress_is_no_active(harness: GatewayHarness) -> None:
    client = harness.client(make_owner())
    frame = {"type": "resume", "requestId": "r1", "id": "never-used", "headers": {}, "body": {}}

    assert client.send(frame) == {"type": "no-active", "requestId": "r1"}


def test_resume_of_a_chat_in_progress_starts_and_listens_as_the_new_request(harness: GatewayHarness) -> None:
    owner = make_owner()
    sender, resumer = harness.client(owner), harness.client(owner)
    sender.send(send_frame("chat-4", [user_message("long answer please")]))
    frame = {"type": "resume", "requestId": "r2", "id": "chat-4", "headers": {}, "body": {}}

    assert resumer.send(frame) == {"type": "start", "requestId": "r2"}
    [turn] = stored_turns(harness, owner)
    with harness.store.unit_of_work() as repo:
        assert Listener(resumer.connection_id, "r2") in repo.turn_control(owner, turn.id).listeners


def test_abort_cancels_the_requests_turn(harness: GatewayHarness) -> None:
    owner = make_owner()
    client = harness.client(owner)
    send = send_frame("chat-5", [user_message("stop me")])
    client.send(send)

    answer = client.send({"type": "abort", "requestId": send["requestId"]})

    assert answer == {"type": "end", "requestId": send["requestId"]}
    [turn] = stored_turns(harness, owner)
    assert turn.status is TurnStatus.CANCELLED  # queued: cancelled at once
    with harness.store.unit_of_work() as repo:
        assert repo.turn_control(owner, turn.id).listeners == ()  # its stream is over: nothing more is posted


def test_a_chat_frame_may_nest_ui_messages_but_a_courier_frame_stays_flat(harness: GatewayHarness) -> None:
    client = harness.client(make_owner())
    nested: Any = "deep"
    for _ in range(8):
        nested = {"inner": nested}
    tool_part = {
        "type": "tool-x",
        "toolCallId": "t",
        "state": "output-available",
        "input": {},
        "output": nested,
    }
    assistant = {"id": "a", "role": "assistant", "parts": [tool_part]}

    answer = client.send(send_frame("chat-6", [assistant, user_message("and now?")]))
    refused = client.send({"action": "ping", "extra": nested})

    assert answer["type"] == "start"
    assert refused["type"] == "error" and refused["code"] == "bad_request"


def test_courier_requests_in_the_same_envelope_are_answered_with_their_request_id(
    harness: GatewayHarness,
) -> None:
    owner = make_owner()
    client = harness.client(owner)
    client.send(send_frame("chat-7", [user_message("hello")]))
    [turn] = stored_turns(harness, owner)

    pong = client.send({"type": "ping", "requestId": "p1"})
    conversations = client.send({"type": "listConversations", "requestId": "c1", "limit": 5})
    history = client.send(
        {"type": "getHistory", "requestId": "h1", "conversationId": str(turn.conversation_id)}
    )
    cancelled = client.send({"type": "cancel", "requestId": "x1", "turnId": str(turn.id)})
    refused = client.send({"type": "getHistory", "requestId": "h2", "conversation_id": "snake"})

    assert (pong["type"], pong["requestId"]) == ("pong", "p1")
    assert conversations["requestId"] == "c1"
    assert [c["conversationId"] for c in conversations["conversations"]] == [str(turn.conversation_id)]
    assert (history["type"], history["requestId"]) == ("history", "h1")
    assert [t["userText"] for t in history["turns"]] == ["hello"]
    assert (cancelled["type"], cancelled["requestId"], cancelled["turnId"]) == ("ack", "x1", str(turn.id))
    assert (refused["type"], refused["code"], refused["requestId"]) == ("error", "bad_request", "h2")


def test_a_frame_whose_type_is_not_a_string_is_a_bad_request(harness: GatewayHarness) -> None:
    client = harness.client(make_owner())

    answer = client.send({"type": ["send"], "requestId": "r"})

    assert (answer["type"], answer["code"]) == ("error", "bad_request")
