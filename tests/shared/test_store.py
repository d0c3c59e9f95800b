"""The chat store on both engines (SQLite and real Postgres): idempotency, ownership, states, paging."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from courier_shared.db.store import (
    ChatStore,
    ClientMessageIdReused,
    InvalidCursor,
    Lease,
    Listener,
    Owner,
    ToolCallRecord,
    TurnNotOpen,
    TurnOutcome,
)
from courier_shared.protocol import TurnStatus

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _send(
    store: ChatStore,
    owner: Owner,
    text: str = "hello",
    *,
    client_message_id: uuid.UUID | None = None,
    conversation_id: uuid.UUID | None = None,
    at: datetime = T0,
    connection: str = "conn-1",
):
    with store.unit_of_work() as repo:
        conversation = (
            repo.find_conversation(owner, conversation_id)
            if conversation_id
            else repo.create_conversation(owner, text, at)
        )
        assert conversation is not None
        turn, created = repo.create_turn(
            owner, conversation, client_message_id or uuid.uuid4(), text, connection, at
        )
        return conversation.id, turn.id, created


def _count_turns(store: ChatStore, owner: Owner) -> int:
    with store.unit_of_work() as repo:
        return repo.count_turns_since(owner, EPOCH)


@pytest.fixture
def store(any_store: ChatStore) -> ChatStore:
    """Every test here holds for SQLite, Postgres and the unit tier's in-memory fake."""
    return any_store


def test_same_client_message_id_twice_returns_the_same_turn_and_stores_one_row(store, owner):
    client_message_id = uuid.uuid4()
    conversation_id, first, created_first = _send(store, owner, client_message_id=client_message_id)
    _, second, created_second = _send(
        store, owner, client_message_id=client_message_id, conversation_id=conversation_id
    )

    assert (created_first, created_second) == (True, False)
    assert first == second
    assert _count_turns(store, owner) == 1


def test_concurrent_retries_of_one_message_create_one_turn(store, owner):
    conversation_id, _, _ = _send(store, owner)
    client_message_id = uuid.uuid4()

    def retry(_: int) -> uuid.UUID:
        return _send(store, owner, client_message_id=client_message_id, conversation_id=conversation_id)[1]

    with ThreadPoolExecutor(4) as pool:
        turn_ids = set(pool.map(retry, range(8)))

    assert len(turn_ids) == 1
    assert _count_turns(store, owner) == 2


def test_the_same_client_message_id_from_two_users_makes_two_turns(store, owner):
    other = Owner(owner.tenant_id, owner.user_id + "-other")
    client_message_id = uuid.uuid4()
    _, mine, _ = _send(store, owner, client_message_id=client_message_id)
    _, theirs, _ = _send(store, other, client_message_id=client_message_id)
    assert mine != theirs


def test_a_user_cannot_read_or_change_another_users_conversation_or_turn(store, owner):
    intruder = Owner(owner.tenant_id, owner.user_id + "-intruder")
    other_tenant = Owner("other-tenant", owner.user_id)
    conversation_id, turn_id, _ = _send(store, owner, "my secret plans")

    for stranger in (intruder, other_tenant):
        with store.unit_of_work() as repo:
            assert repo.find_conversation(stranger, conversation_id) is None
            assert repo.find_turn(stranger, turn_id) is None
            assert repo.history(stranger, conversation_id).items == []
            assert repo.list_conversations(stranger).items == []
            assert repo.add_listener(stranger, turn_id, "their-conn") is None
            assert repo.request_cancel(stranger, turn_id, T0) is None
            repo.save_progress(stranger, turn_id, "overwritten", 99)
            with pytest.raises(TurnNotOpen):
                repo.start_attempt(stranger, turn_id, "model", T0)
            with pytest.raises(TurnNotOpen):
                repo.finish_turn(
                    stranger, turn_id, TurnOutcome(TurnStatus.FAILED, "", -1, error_code="x"), T0
                )

    with store.unit_of_work() as repo:
        turn = repo.find_turn(owner, turn_id)
        assert turn is not None
        assert (turn.status, turn.assistant_text, turn.cancel_requested_at) == ("queued", "", None)
        assert repo.turn_control(owner, turn_id).listeners == (Listener("conn-1"),)


def test_a_turn_moves_queued_streaming_completed_with_usage_and_timing(store, owner):
    _, turn_id, _ = _send(store, owner)
    with store.unit_of_work() as repo:
        turn = repo.start_attempt(owner, turn_id, "us.anthropic.claude", T0 + timedelta(seconds=1))
        assert (turn.status, turn.attempt, turn.last_seq) == ("streaming", 1, -1)
    with store.unit_of_work() as repo:
        repo.save_progress(owner, turn_id, "Hello wor", 7)
    with store.unit_of_work() as repo:
        turn = repo.find_turn(owner, turn_id)
        assert turn is not None and (turn.assistant_text, turn.last_seq) == ("Hello wor", 7)
        repo.finish_turn(
            owner,
            turn_id,
            TurnOutcome(
                TurnStatus.COMPLETED,
                "Hello world",
                9,
                input_tokens=12,
                output_tokens=3,
                latency_ms=800,
                time_to_first_token_ms=120,
                stop_reason="end_turn",
            ),
            T0 + timedelta(seconds=2),
        )
    with store.unit_of_work() as repo:
        turn = repo.find_turn(owner, turn_id)
        assert turn is not None
        assert (turn.status, turn.assistant_text, turn.input_tokens, turn.output_tokens) == (
            "completed",
            "Hello world",
            12,
            3,
        )
        assert (turn.latency_ms, turn.time_to_first_token_ms, turn.model_id) == (
            800,
            120,
            "us.anthropic.claude",
        )
        assert turn.completed_at == T0 + timedelta(seconds=2)
        assert turn.completed_at.tzinfo is not None
        with pytest.raises(TurnNotOpen):  # a terminal turn never runs again
            repo.start_attempt(owner, turn_id, "m", T0)


def test_a_redelivered_streaming_turn_starts_a_new_attempt_with_fresh_text(store, owner):
    _, turn_id, _ = _send(store, owner)
    with store.unit_of_work() as repo:
        repo.start_attempt(owner, turn_id, "m", T0)
        repo.save_progress(owner, turn_id, "partial", 3)
    with store.unit_of_work() as repo:
        turn = repo.start_attempt(owner, turn_id, "m", T0)
        assert (turn.attempt, turn.assistant_text, turn.last_seq) == (2, "", -1)


@pytest.mark.parametrize("status", [TurnStatus.FAILED, TurnStatus.INTERRUPTED, TurnStatus.CANCELLED])
def test_every_failure_path_stores_its_state_and_partial_text(store, owner, status):
    _, turn_id, _ = _send(store, owner)
    with store.unit_of_work() as repo:
        repo.start_attempt(owner, turn_id, "m", T0)
        repo.finish_turn(
            owner,
            turn_id,
            TurnOutcome(status, "half an ans", 4, error_code="e" if status == "failed" else None),
            T0,
        )
    with store.unit_of_work() as repo:
        turn = repo.find_turn(owner, turn_id)
        assert turn is not None and (turn.status, turn.assistant_text) == (status.value, "half an ans")


def test_cancelling_a_queued_turn_cancels_it_at_once_and_a_streaming_one_on_request(store, owner):
    conversation_id, queued, _ = _send(store, owner)
    _, streaming, _ = _send(store, owner, conversation_id=conversation_id)
    with store.unit_of_work() as repo:
        repo.start_attempt(owner, streaming, "m", T0, Lease("worker-1", timedelta(minutes=1)))
    with store.unit_of_work() as repo:
        assert repo.request_cancel(owner, queued, T0) is not None
        assert repo.request_cancel(owner, streaming, T0) is not None
    with store.unit_of_work() as repo:
        assert repo.find_turn(owner, queued).status == "cancelled"  # type: ignore[union-attr]
        assert repo.find_turn(owner, streaming).status == "streaming"  # type: ignore[union-attr]
        assert repo.turn_control(owner, streaming).cancel_requested is True
        assert repo.count_open_turns_since(owner, T0 - timedelta(days=1), T0) == 1
        # A streaming turn whose lease ran out (its worker died) is no longer in progress.
        assert repo.count_open_turns_since(owner, T0 - timedelta(days=1), T0 + timedelta(minutes=2)) == 0


def test_history_pages_backwards_oldest_first_with_a_stable_cursor(store, owner):
    conversation_id, _, _ = _send(store, owner, "turn 0", at=T0)
    for i in range(1, 5):
        _send(store, owner, f"turn {i}", conversation_id=conversation_id, at=T0 + timedelta(seconds=i))
    with store.unit_of_work() as repo:
        newest = repo.history(owner, conversation_id, limit=2)
        assert [t.user_text for t in newest.items] == ["turn 3", "turn 4"]
        middle = repo.history(owner, conversation_id, before=newest.next_cursor, limit=2)
        assert [t.user_text for t in middle.items] == ["turn 1", "turn 2"]
        oldest = repo.history(owner, conversation_id, before=middle.next_cursor, limit=2)
        assert [t.user_text for t in oldest.items] == ["turn 0"]
        assert oldest.next_cursor is None
        with pytest.raises(InvalidCursor):
            repo.history(owner, conversation_id, before="not-a-cursor")


def test_conversations_list_newest_first_and_pages(store, owner):
    for i in range(3):
        _send(store, owner, f"conversation {i}", at=T0 + timedelta(minutes=i))
    with store.unit_of_work() as repo:
        first = repo.list_conversations(owner, limit=2)
        second = repo.list_conversations(owner, before=first.next_cursor, limit=2)
    assert [c.title for c in first.items] == ["conversation 2", "conversation 1"]
    assert [c.title for c in second.items] == ["conversation 0"]
    assert second.next_cursor is None


def test_recent_turns_is_the_finished_window_before_the_turn(store, owner):
    conversation_id, first, _ = _send(store, owner, "q0", at=T0)
    ids = [first]
    for i in range(1, 4):
        ids.append(
            _send(store, owner, f"q{i}", conversation_id=conversation_id, at=T0 + timedelta(seconds=i))[1]
        )
    with store.unit_of_work() as repo:
        for turn_id in ids[:3]:
            repo.start_attempt(owner, turn_id, "m", T0)
            repo.finish_turn(owner, turn_id, TurnOutcome(TurnStatus.COMPLETED, "a", 0), T0)
        current = repo.find_turn(owner, ids[3])
        assert current is not None
        window = repo.recent_turns(owner, current, window=2)
    assert [t.user_text for t in window] == ["q1", "q2"]


def test_connections_register_and_leave_and_stop_listening(store, owner):
    _, turn_id, _ = _send(store, owner, connection="conn-a")
    with store.unit_of_work() as repo:
        repo.register_connection(owner, "conn-a", T0)
        repo.register_connection(owner, "conn-b", T0)
        repo.add_listener(owner, turn_id, "conn-b")
        assert sorted(repo.live_connections(owner)) == ["conn-a", "conn-b"]
    with store.unit_of_work() as repo:
        repo.unregister_connection("conn-a", T0)
    with store.unit_of_work() as repo:
        assert repo.live_connections(owner) == ["conn-b"]
        assert repo.turn_control(owner, turn_id).listeners == (Listener("conn-b"),)


def test_tool_invocations_are_recorded_in_order(store, owner):
    _, turn_id, _ = _send(store, owner)
    with store.unit_of_work() as repo:
        tokyo = ToolCallRecord(0, "call-1", "current_time", {"zone": "Asia/Tokyo"}, "21:00", "success", 2)
        utc = ToolCallRecord(1, "call-2", "current_time", {"zone": "UTC"}, "12:00", "success", 3)
        repo.record_tool_invocation(turn_id, utc)
        repo.record_tool_invocation(turn_id, tokyo)
    with store.unit_of_work() as repo:
        rows = repo.tool_invocations(owner, turn_id)
        assert [(r.seq, r.tool_call_id, r.input) for r in rows] == [
            (0, "call-1", {"zone": "Asia/Tokyo"}),
            (1, "call-2", {"zone": "UTC"}),
        ]
        assert repo.tool_invocations(Owner("x", "y"), turn_id) == []


def test_the_tool_calls_of_several_turns_come_in_one_read_by_turn_in_order_with_their_offsets(store, owner):
    conversation_id, first, _ = _send(store, owner, "one")
    _, second, _ = _send(store, owner, "two", conversation_id=conversation_id, at=T0 + timedelta(seconds=1))
    _, quiet, _ = _send(store, owner, "three", conversation_id=conversation_id, at=T0 + timedelta(seconds=2))
    with store.unit_of_work() as repo:
        repo.record_tool_invocation(second, ToolCallRecord(1, "b-2", "lookup", {}, None, "running", None, 40))
        repo.record_tool_invocation(
            first, ToolCallRecord(0, "a-1", "lookup", {"q": 1}, '"ok"', "success", 5, 12)
        )
        repo.record_tool_invocation(
            second, ToolCallRecord(0, "b-1", "lookup", {}, '{"error": "no"}', "error", 1)
        )

    with store.unit_of_work() as repo:
        calls = repo.tool_invocations_of(owner, [first, second, quiet])
        stranger = repo.tool_invocations_of(Owner("x", "y"), [first, second])
        nothing = repo.tool_invocations_of(owner, [])

    assert set(calls) == {first, second}  # a turn without calls is absent
    assert [(c.tool_call_id, c.status, c.text_offset) for c in calls[first]] == [("a-1", "success", 12)]
    assert [(c.tool_call_id, c.text_offset) for c in calls[second]] == [("b-1", 0), ("b-2", 40)]
    assert stranger == {} and nothing == {}


# ---------------------------------------------------------------- create_turn owns idempotency


def test_a_retry_from_another_connection_gets_the_turn_and_that_connection_listens(store, owner):
    client_message_id = uuid.uuid4()
    conversation_id, turn_id, _ = _send(store, owner, client_message_id=client_message_id)

    with store.unit_of_work() as repo:
        turn, created = repo.create_turn(owner, None, client_message_id, "hello", "conn-2", T0)

    assert (turn.id, turn.conversation_id, created) == (turn_id, conversation_id, False)
    with store.unit_of_work() as repo:
        assert repo.turn_control(owner, turn_id).listeners == (Listener("conn-1"), Listener("conn-2"))
        assert [c.id for c in repo.list_conversations(owner).items] == [conversation_id]  # no new one


def test_a_client_message_id_reused_for_another_text_or_conversation_is_refused(store, owner):
    client_message_id = uuid.uuid4()
    _send(store, owner, "hello", client_message_id=client_message_id)
    other_conversation, _, _ = _send(store, owner, "another")

    with pytest.raises(ClientMessageIdReused), store.unit_of_work() as repo:
        repo.create_turn(owner, None, client_message_id, "hello again", "conn-1", T0)
    with pytest.raises(ClientMessageIdReused), store.unit_of_work() as repo:
        conversation = repo.find_conversation(owner, other_conversation)
        repo.create_turn(owner, conversation, client_message_id, "hello", "conn-1", T0)
    assert _count_turns(store, owner) == 2


def test_admit_is_asked_only_for_a_new_turn_and_its_refusal_writes_nothing(store, owner):
    client_message_id = uuid.uuid4()
    _send(store, owner, client_message_id=client_message_id)
    asked: list[str] = []

    def refuse() -> None:
        asked.append("asked")
        raise PermissionError("over the limit")

    with store.unit_of_work() as repo:
        _, created = repo.create_turn(owner, None, client_message_id, "hello", None, T0, admit=refuse)
    assert created is False and asked == []
    with pytest.raises(PermissionError), store.unit_of_work() as repo:
        repo.create_turn(owner, None, uuid.uuid4(), "new", None, T0, admit=refuse)
    assert asked == ["asked"] and _count_turns(store, owner) == 1
    with store.unit_of_work() as repo:
        assert len(repo.list_conversations(owner).items) == 1


def test_a_new_turn_is_never_ordered_before_its_conversations_last_one(store, owner):
    conversation_id, first, _ = _send(store, owner, "one", at=T0)
    with store.unit_of_work() as repo:
        conversation = repo.find_conversation(owner, conversation_id)
        # This process's clock is a minute behind the one that stored the first turn.
        second, _ = repo.create_turn(
            owner, conversation, uuid.uuid4(), "two", None, T0 - timedelta(minutes=1)
        )
        second_id = second.id
    with store.unit_of_work() as repo:
        assert [t.id for t in repo.history(owner, conversation_id).items] == [first, second_id]


def test_a_resume_while_the_turn_ends_waits_for_the_ending_and_sees_it(postgres_url, chat_stores, owner):
    """add_listener waits on a final write in progress, then returns the ended turn; without the
    lock it read `streaming` and the worker, having read its listeners already, never told it."""
    store = chat_stores(postgres_url)
    _, turn_id, _ = _send(store, owner)
    with store.unit_of_work() as repo:
        repo.start_attempt(owner, turn_id, "us.anthropic.claude", T0)
    with ThreadPoolExecutor(1) as pool:
        with store.unit_of_work() as repo:
            repo.finish_turn(owner, turn_id, TurnOutcome(TurnStatus.COMPLETED, "done", 3), T0)

            def resume() -> str:
                with store.unit_of_work() as other:
                    turn = other.add_listener(owner, turn_id, "conn-late")
                    assert turn is not None
                    return turn.status

            resumed = pool.submit(resume)
            with pytest.raises(TimeoutError):
                resumed.result(timeout=0.5)  # waiting on the final write's row lock
        assert resumed.result(timeout=10) == TurnStatus.COMPLETED


def test_a_turns_agent_session_records_are_kept_in_order_and_go_when_the_turn_ends(store, owner):
    _, turn_id, _ = _send(store, owner)
    with store.unit_of_work() as repo:
        repo.start_attempt(owner, turn_id, "us.anthropic.claude", T0)
        repo.put_session_record(turn_id, "session", "", -1, {"session_id": str(turn_id)})
        for message_id in (1, 0, 2):
            repo.put_session_record(turn_id, "message", "default", message_id, {"message_id": message_id})
        repo.put_session_record(turn_id, "message", "default", 2, {"message_id": 2, "redacted": True})
    with store.unit_of_work() as repo:
        assert repo.session_record(turn_id, "session", "", -1) == {"session_id": str(turn_id)}
        assert repo.session_record(turn_id, "agent", "default", -1) is None
        assert repo.session_messages(turn_id, "default") == [
            {"message_id": 0},
            {"message_id": 1},
            {"message_id": 2, "redacted": True},  # replaced, not added
        ]
        assert repo.session_messages(turn_id, "default", offset=1, limit=1) == [{"message_id": 1}]
        repo.finish_turn(owner, turn_id, TurnOutcome(TurnStatus.COMPLETED, "done", 3), T0)
    with store.unit_of_work() as repo:
        assert repo.session_messages(turn_id, "default") == []
        assert repo.session_record(turn_id, "session", "", -1) is None
