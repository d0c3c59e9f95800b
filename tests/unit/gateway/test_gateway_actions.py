"""Every client action of the protocol, answered by the gateway Lambda from the in-memory store.

The same gateway code runs over SQLite and Postgres in tests/gateway/ (concurrency, isolation); the
store's own behaviour is proven on both engines and on the fake in tests/shared/test_store.py.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from gateway_client import Client, GatewayHarness, make_owner

from courier_shared.db.store import Listener, TurnOutcome
from courier_shared.protocol import TurnStatus, parse_server_frame


def test_connect_registers_the_connection_and_answers_the_courier_subprotocol(
    harness: GatewayHarness,
) -> None:
    owner = make_owner()
    client = harness.client(owner)

    response = client.connect(protocol="courier.v1, bearer.abc.def.ghi")

    assert response == {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "courier.v1"}}
    with harness.store.unit_of_work() as repo:
        assert repo.live_connections(owner) == [client.connection_id]


def test_connect_names_no_subprotocol_when_none_was_offered(harness: GatewayHarness) -> None:
    assert harness.client(make_owner()).connect(protocol=None) == {"statusCode": 200}


def test_connect_without_an_identity_is_refused_and_writes_nothing(
    harness: GatewayHarness, counts: Any
) -> None:
    before = counts()
    assert harness.client(None).connect()["statusCode"] == 401
    assert counts() == before


def test_disconnect_marks_the_connection_gone_and_a_second_one_is_harmless(harness: GatewayHarness) -> None:
    owner = make_owner()
    client = harness.client(owner)
    client.connect()

    assert client.disconnect() == {"statusCode": 200}
    assert client.disconnect() == {"statusCode": 200}  # best effort, repeatable
    with harness.store.unit_of_work() as repo:
        assert repo.live_connections(owner) == []


def test_send_message_stores_the_turn_queues_it_and_acks(harness: GatewayHarness) -> None:
    owner = make_owner()
    client = harness.client(owner)
    client_message_id = str(uuid.uuid4())

    ack = client.send({"action": "sendMessage", "clientMessageId": client_message_id, "text": "What is 2+2?"})

    assert ack["type"] == "ack" and ack["action"] == "sendMessage"
    assert ack["clientMessageId"] == client_message_id
    turn_id, conversation_id = uuid.UUID(ack["turnId"]), uuid.UUID(ack["conversationId"])
    [queued] = harness.queue.sent
    assert (queued.turn_id, queued.conversation_id) == (turn_id, conversation_id)
    assert (queued.tenant_id, queued.user_id, queued.origin_connection_id) == (*owner, client.connection_id)
    assert queued.group_id == str(conversation_id) and queued.deduplication_id == str(turn_id)
    assert queued.callback_url == "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
    with harness.store.unit_of_work() as repo:
        turn = repo.find_turn(owner, turn_id)
        assert turn is not None
        assert (turn.user_text, turn.status, turn.conversation_id) == (
            "What is 2+2?",
            TurnStatus.QUEUED,
            conversation_id,
        )
        assert turn.enqueued_at is not None
        assert repo.turn_control(owner, turn_id).listeners == (Listener(client.connection_id),)
        conversation = repo.find_conversation(owner, conversation_id)
        assert conversation is not None and conversation.title == "What is 2+2?"


def test_send_message_continues_an_existing_conversation(harness: GatewayHarness) -> None:
    client = harness.client(make_owner())
    first = client.send_message("one")

    second = client.send_message("two", conversationId=first["conversationId"])

    assert second["conversationId"] == first["conversationId"] and second["turnId"] != first["turnId"]
    assert [request.conversation_id for request in harness.queue.sent] == [
        uuid.UUID(first["conversationId"])
    ] * 2


def test_a_repeated_client_message_id_gets_the_same_ack_and_creates_nothing(
    harness: GatewayHarness, counts: Any
) -> None:
    owner = make_owner()
    client = harness.client(owner)
    frame = {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": "Once only"}
    first = client.send(frame)
    after_first = counts()

    again = client.send(frame)
    from_new_connection = harness.client(owner).send(frame)  # the client reconnected and retried

    assert again == first and from_new_connection == first
    assert len(harness.queue.sent) == 1
    assert {k: v for k, v in counts().items() if k != "turn_listeners"} == {
        k: v for k, v in after_first.items() if k != "turn_listeners"
    }


def test_the_retrying_connection_hears_the_turn(harness: GatewayHarness) -> None:
    owner = make_owner()
    frame = {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": "hi"}
    first_connection, second_connection = harness.client(owner), harness.client(owner)
    turn_id = uuid.UUID(first_connection.send(frame)["turnId"])

    second_connection.send(frame)

    with harness.store.unit_of_work() as repo:
        listeners = {s.connection_id for s in repo.turn_control(owner, turn_id).listeners}
    assert listeners == {first_connection.connection_id, second_connection.connection_id}


def test_a_client_message_id_reused_for_another_message_is_a_conflict(
    harness: GatewayHarness, counts: Any
) -> None:
    client = harness.client(make_owner())
    client_message_id = str(uuid.uuid4())
    client.send({"action": "sendMessage", "clientMessageId": client_message_id, "text": "first"})
    before = counts()

    answer = client.send({"action": "sendMessage", "clientMessageId": client_message_id, "text": "second"})

    assert answer["type"] == "error" and answer["code"] == "conflict"
    assert answer["clientMessageId"] == client_message_id and answer["action"] == "sendMessage"
    assert counts() == before and len(harness.queue.sent) == 1


def test_a_queue_failure_leaves_a_turn_that_a_retry_repairs(harness: GatewayHarness) -> None:
    owner = make_owner()
    client = harness.client(owner)
    frame = {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": "Survive the outage"}
    harness.queue.fail_next = 1

    failed = client.send(frame)

    assert failed["type"] == "error" and failed["code"] == "internal" and failed["retryable"] is True
    assert failed["clientMessageId"] == frame["clientMessageId"]
    assert "same clientMessageId" in failed["message"]
    assert harness.queue.sent == []

    ack = client.send(frame)

    assert ack["type"] == "ack"
    [queued] = harness.queue.sent
    assert queued.turn_id == uuid.UUID(ack["turnId"])
    with harness.store.unit_of_work() as repo:
        turn = repo.find_turn_by_client_message_id(owner, uuid.UUID(frame["clientMessageId"]))
        assert turn is not None and turn.id == queued.turn_id and turn.enqueued_at is not None
    assert client.send(frame) == ack and len(harness.queue.sent) == 1  # enqueued now: not sent again


def test_an_unknown_conversation_is_not_found_and_writes_nothing(
    harness: GatewayHarness, counts: Any
) -> None:
    before = counts()
    answer = harness.client(make_owner()).send_message("hi", conversationId=str(uuid.uuid4()))
    assert (answer["type"], answer["code"]) == ("error", "not_found")
    assert counts() == before and harness.queue.sent == []


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("x" * 101, "too_large", "101 characters; the limit is 100"),
        ("   \n\t ", "bad_request", "empty"),
        ("", "bad_request", "text"),
        ("nul\x00byte", "bad_request", "NUL"),
    ],
)
def test_bad_message_text_is_refused_and_writes_nothing(
    make_harness: Any, counts: Any, text: str, code: str, fragment: str
) -> None:
    harness = make_harness(MAX_MESSAGE_CHARS=100)
    before = counts()
    answer = harness.client(make_owner()).send_message(text)
    assert (answer["type"], answer["code"]) == ("error", code)
    assert fragment in answer["message"]
    assert counts() == before and harness.queue.sent == []


def test_a_message_of_exactly_the_limit_is_accepted(make_harness: Any) -> None:
    harness = make_harness(MAX_MESSAGE_CHARS=100)
    assert harness.client(make_owner()).send_message("é" * 100)["type"] == "ack"


def test_an_oversized_frame_is_too_large(make_harness: Any, counts: Any) -> None:
    harness = make_harness(MAX_FRAME_BYTES=1024)
    before = counts()
    answer = harness.client(make_owner()).send_message("x" * 2000)
    assert (answer["type"], answer["code"], answer["action"]) == ("error", "too_large", "sendMessage")
    assert "limit is 1024 bytes" in answer["message"]
    assert counts() == before


def test_the_send_rate_is_limited_per_user_per_minute(make_harness: Any, counts: Any) -> None:
    harness = make_harness(SEND_RATE_PER_MINUTE=2, MAX_OPEN_TURNS=100)
    owner = make_owner()
    client = harness.client(owner)
    first = {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": "1"}
    client.send(first)
    client.send_message("2")
    before = counts()

    limited = client.send_message("3")

    assert (limited["type"], limited["code"], limited["retryable"]) == ("error", "rate_limited", True)
    assert counts() == before
    assert client.send(first)["type"] == "ack"  # a retry of a stored message is never limited
    assert harness.client(make_owner()).send_message("other user")["type"] == "ack"
    harness.clock.advance(61)
    assert client.send_message("4")["type"] == "ack"


def test_open_turns_are_limited_per_user(make_harness: Any) -> None:
    harness = make_harness(MAX_OPEN_TURNS=1)
    client = harness.client(make_owner())
    first = client.send_message("1")

    limited = client.send_message("2")
    assert (limited["code"], limited["retryable"]) == ("rate_limited", True)
    assert "in progress" in limited["message"]

    client.send({"action": "cancel", "turnId": first["turnId"]})  # a queued turn is cancelled at once
    assert client.send_message("2")["type"] == "ack"


def test_a_turn_stuck_open_stops_counting_after_the_window(make_harness: Any) -> None:
    harness = make_harness(MAX_OPEN_TURNS=1, OPEN_TURN_WINDOW_S=600)
    client = harness.client(make_owner())
    assert client.send_message("lost in a dead-letter queue")["type"] == "ack"
    harness.clock.advance(599)
    assert client.send_message("still blocked")["code"] == "rate_limited"

    harness.clock.advance(2)

    assert client.send_message("unblocked")["type"] == "ack"


def test_cancel_acks_and_cancels_a_queued_turn(harness: GatewayHarness) -> None:
    owner = make_owner()
    client = harness.client(owner)
    sent = client.send_message("stop me")

    answer = client.send({"action": "cancel", "turnId": sent["turnId"]})

    assert answer == {
        "type": "ack",
        "action": "cancel",
        "clientMessageId": None,
        "conversationId": sent["conversationId"],
        "turnId": sent["turnId"],
    }
    with harness.store.unit_of_work() as repo:
        turn = repo.find_turn(owner, uuid.UUID(sent["turnId"]))
        assert turn is not None and turn.status is TurnStatus.CANCELLED


def test_cancel_of_a_streaming_turn_asks_the_worker_to_stop(harness: GatewayHarness) -> None:
    owner = make_owner()
    client = harness.client(owner)
    turn_id = uuid.UUID(client.send_message("long answer")["turnId"])
    with harness.store.unit_of_work() as repo:
        repo.start_attempt(owner, turn_id, "model", harness.clock())

    assert client.send({"action": "cancel", "turnId": str(turn_id)})["type"] == "ack"

    with harness.store.unit_of_work() as repo:
        assert repo.turn_control(owner, turn_id).cancel_requested is True


def test_resume_answers_a_snapshot_and_makes_the_connection_a_listener(harness: GatewayHarness) -> None:
    owner = make_owner()
    sender = harness.client(owner)
    turn_id = uuid.UUID(sender.send_message("tell me")["turnId"])
    with harness.store.unit_of_work() as repo:
        repo.start_attempt(owner, turn_id, "model", harness.clock())
        repo.save_progress(owner, turn_id, "Once upon a", last_seq=4)
    reconnected = harness.client(owner)
    reconnected.connect()

    snapshot = reconnected.send({"action": "resume", "turnId": str(turn_id), "afterSeq": 2})

    assert snapshot == {
        "type": "snapshot",
        "turnId": str(turn_id),
        "attempt": 1,
        "seq": 4,
        "status": "streaming",
        "text": "Once upon a",
    }
    with harness.store.unit_of_work() as repo:
        assert Listener(reconnected.connection_id) in repo.turn_control(owner, turn_id).listeners


def test_resume_of_a_finished_turn_gives_its_final_text(harness: GatewayHarness) -> None:
    owner = make_owner()
    client = harness.client(owner)
    turn_id = uuid.UUID(client.send_message("q")["turnId"])
    with harness.store.unit_of_work() as repo:
        repo.start_attempt(owner, turn_id, "model", harness.clock())
        repo.finish_turn(owner, turn_id, TurnOutcome(TurnStatus.COMPLETED, "All done.", 7), harness.clock())

    snapshot = client.send({"action": "resume", "turnId": str(turn_id)})

    assert (snapshot["status"], snapshot["text"], snapshot["seq"]) == ("completed", "All done.", 7)


def test_get_history_pages_back_through_a_conversation_oldest_first(make_harness: Any) -> None:
    harness = make_harness(MAX_OPEN_TURNS=100)
    owner = make_owner()
    client = harness.client(owner)
    first = client.send_message("m0")
    conversation_id = first["conversationId"]
    for index in range(1, 5):
        client.send_message(f"m{index}", conversationId=conversation_id)
    with harness.store.unit_of_work() as repo:
        turn_id = uuid.UUID(first["turnId"])
        repo.start_attempt(owner, turn_id, "anthropic.claude", harness.clock())
        outcome = TurnOutcome(TurnStatus.COMPLETED, "a0", 3, input_tokens=10, output_tokens=5)
        repo.finish_turn(owner, turn_id, outcome, harness.clock())

    pages: list[list[str]] = []
    cursor = None
    while True:
        frame: dict[str, Any] = {"action": "getHistory", "conversationId": conversation_id, "limit": 2}
        if cursor is not None:
            frame["before"] = cursor
        history = client.send(frame)
        parse_server_frame(json.dumps(history))
        pages.append([turn["userText"] for turn in history["turns"]])
        cursor = history["nextCursor"]
        if cursor is None:
            break

    assert pages == [["m3", "m4"], ["m1", "m2"], ["m0"]]
    newest = client.send(
        {"action": "getHistory", "conversationId": conversation_id, "limit": 1, "before": None}
    )
    assert newest["turns"][0]["userText"] == "m4"
    everything = client.send({"action": "getHistory", "conversationId": conversation_id})
    done = everything["turns"][0]
    assert (done["status"], done["assistantText"], done["model"]) == ("completed", "a0", "anthropic.claude")
    assert done["usage"] == {"inputTokens": 10, "outputTokens": 5} and done["completedAt"] is not None
    assert everything["turns"][1]["usage"] is None and everything["nextCursor"] is None


def test_list_conversations_pages_newest_first(make_harness: Any) -> None:
    harness = make_harness(MAX_OPEN_TURNS=100)
    client = harness.client(make_owner())
    ids = [client.send_message(f"conversation {index}")["conversationId"] for index in range(5)]

    seen: list[str] = []
    cursor = None
    while True:
        frame: dict[str, Any] = {"action": "listConversations", "limit": 2}
        if cursor:
            frame["before"] = cursor
        page = client.send(frame)
        assert page["type"] == "conversations" and len(page["conversations"]) <= 2
        seen += [conversation["conversationId"] for conversation in page["conversations"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert seen == list(reversed(ids))
    titles = [c["title"] for c in client.send({"action": "listConversations"})["conversations"]]
    assert titles[0] == "conversation 4"


@pytest.mark.parametrize("action", ["getHistory", "listConversations"])
@pytest.mark.parametrize("cursor", ["garbage", "bm90fGEtY3Vyc29y", ""])
def test_a_cursor_courier_did_not_issue_is_a_bad_request(
    harness: GatewayHarness, action: str, cursor: str
) -> None:
    client = harness.client(make_owner())
    conversation_id = client.send_message("hi")["conversationId"]
    frame = {"action": action, "before": cursor}
    if action == "getHistory":
        frame["conversationId"] = conversation_id
    answer = client.send(frame)
    assert (answer["type"], answer["code"], answer["action"]) == ("error", "bad_request", action)
    assert "cursor" in answer["message"]


def test_ping_answers_pong_with_the_server_time(harness: GatewayHarness) -> None:
    answer = harness.client(make_owner()).send({"action": "ping"})
    assert answer["type"] == "pong"
    assert answer["serverTime"].startswith("2026-01-05T09:00:00")


@pytest.mark.parametrize(
    ("body", "fragment", "action"),
    [
        ("not json", "not valid JSON", None),
        ("", "empty", None),
        ("[1, 2]", "JSON object", None),
        ('"ping"', "JSON object", None),
        ("{}", "Missing required field 'action'", None),
        ('{"action": "dance"}', "Unknown action", None),
        ('{"action": 7}', "Unknown action", None),
        ('{"action": "ping", "extra": 1}', "Unknown field 'extra'", "ping"),
        (
            '{"action": "sendMessage", "text": "hi"}',
            "Missing required field 'clientMessageId'",
            "sendMessage",
        ),
        (
            '{"action": "sendMessage", "clientMessageId": "nope", "text": "hi"}',
            "clientMessageId",
            "sendMessage",
        ),
        (
            '{"action": "sendMessage", "clientMessageId": "6f1c2b0e-2a8e-4c57-9d51-2f0b8f3c9a10", "text": 5}',
            "text",
            "sendMessage",
        ),
        ('{"action": "cancel", "turnId": 12}', "turnId", "cancel"),
        (
            '{"action": "resume", "turnId": "6f1c2b0e-2a8e-4c57-9d51-2f0b8f3c9a10", "afterSeq": "x"}',
            "afterSeq",
            "resume",
        ),
        (
            '{"action": "getHistory", "conversationId": "6f1c2b0e-2a8e-4c57-9d51-2f0b8f3c9a10", "limit": 0}',
            "limit",
            "getHistory",
        ),
        ('{"action": "listConversations", "limit": 101}', "limit", "listConversations"),
    ],
)
def test_bad_frames_get_a_bad_request_naming_the_problem_and_write_nothing(
    harness: GatewayHarness, counts: Any, body: str, fragment: str, action: str | None
) -> None:
    client = harness.client(make_owner())
    before = counts()

    answer = client.send(body)

    assert (answer["type"], answer["code"], answer["retryable"]) == ("error", "bad_request", False)
    assert fragment in answer["message"], answer["message"]
    assert answer["action"] == action
    assert counts() == before and harness.queue.sent == []


def test_a_frame_without_an_identity_is_unauthorized(harness: GatewayHarness, counts: Any) -> None:
    before = counts()
    answer = harness.client(None).send_message("hi")
    assert (answer["type"], answer["code"]) == ("error", "unauthorized")
    assert counts() == before


def test_a_failing_database_answers_internal_and_never_raises(harness: GatewayHarness) -> None:
    class BrokenStore:
        def unit_of_work(self) -> Any:
            raise RuntimeError("connection refused")

    from courier_gateway.cursors import CursorSigner
    from courier_gateway.fair_use import FrameRateLimiter, Rate
    from courier_gateway.gateway import Gateway, GatewayLimits

    gateway = Gateway(
        BrokenStore(),  # type: ignore[arg-type]
        harness.queue,
        GatewayLimits(8000, 32 * 1024, 20, 3),
        cursors=CursorSigner(b"k" * 32),
        fair_use=FrameRateLimiter(
            per_connection=Rate(5, 20), per_user=Rate(10, 40), clock=harness.clock.monotonic
        ),
        clock=harness.clock,
        logger=harness.gateway._logger,
    )
    client = Client(gateway, make_owner())

    answer = client.send_message("hi")
    assert (answer["type"], answer["code"], answer["retryable"]) == ("error", "internal", True)
    assert answer["action"] == "sendMessage" and answer["clientMessageId"] is not None
    assert "connection refused" not in answer["message"]  # internals stay in the log
    assert client.connect()["statusCode"] == 500
    assert client.disconnect()["statusCode"] == 500
    assert client.send({"action": "ping"})["type"] == "pong"


def test_logs_never_hold_message_text(harness: GatewayHarness) -> None:
    client = harness.client(make_owner())
    client.send_message("my secret diagnosis")
    client.send_message("x" * 9000)
    assert "my secret diagnosis" not in harness.log.getvalue()
    assert "frame answered" in harness.log.getvalue()


def test_a_history_page_of_long_turns_stays_under_the_route_response_limit(make_harness: Any) -> None:
    harness = make_harness(MAX_OPEN_TURNS=100)
    owner = make_owner()
    client = harness.client(owner)
    first = client.send_message("q0")
    conversation_id = first["conversationId"]
    turn_ids = [uuid.UUID(first["turnId"])]
    for index in range(1, 6):
        answer = client.send_message(f"q{index}", conversationId=conversation_id)
        turn_ids.append(uuid.UUID(answer["turnId"]))
    long_answer = "word " * 10_000  # 50 KB each: six of them are more than API Gateway's 128 KB
    with harness.store.unit_of_work() as repo:
        for turn_id in turn_ids:
            repo.start_attempt(owner, turn_id, "m", harness.clock())
            repo.finish_turn(
                owner, turn_id, TurnOutcome(TurnStatus.COMPLETED, long_answer, 9), harness.clock()
            )

    seen: list[str] = []
    cursor = None
    while True:
        frame: dict[str, Any] = {"action": "getHistory", "conversationId": conversation_id, "limit": 20}
        if cursor is not None:
            frame["before"] = cursor
        response = client.raw(json.dumps(frame))
        assert len(response["body"].encode()) < 128 * 1024
        history = json.loads(response["body"])
        assert history["type"] == "history" and history["turns"]
        seen = [turn["userText"] for turn in history["turns"]] + seen
        cursor = history["nextCursor"]
        if cursor is None:
            break

    assert seen == [f"q{index}" for index in range(6)]  # every turn exactly once, in order
