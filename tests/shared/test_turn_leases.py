"""Turn states and leases on both engines: who may move a turn, and when a turn stops being "in progress"."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from courier_shared.db.models import Turn
from courier_shared.db.store import (
    ChatStore,
    Lease,
    LeaseHeld,
    Owner,
    TurnNotOpen,
    TurnOutcome,
)
from courier_shared.turn_states import OPEN, TERMINAL, TRANSITIONS, TurnStatus, in_progress, sources

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LEASE_A = Lease(owner="worker-a", duration=timedelta(seconds=30))
LEASE_B = Lease(owner="worker-b", duration=timedelta(seconds=30))


def _queued_turn(store: ChatStore, owner: Owner, connection: str | None = "conn-1") -> uuid.UUID:
    with store.unit_of_work() as repo:
        conversation = repo.create_conversation(owner, "hi", T0)
        turn, _ = repo.create_turn(owner, conversation, uuid.uuid4(), "hi", connection, T0)
        return turn.id


def _turn(store: ChatStore, owner: Owner, turn_id: uuid.UUID) -> Turn:
    with store.unit_of_work() as repo:
        turn = repo.find_turn(owner, turn_id)
        assert turn is not None
        return turn


def _in_progress_count(store: ChatStore, owner: Owner, now: datetime) -> int:
    with store.unit_of_work() as repo:  # in_progress_condition, as the open-turn limit counts
        return repo.count_open_turns_since(owner, datetime.min.replace(tzinfo=UTC), now)


@pytest.fixture
def store(any_store: ChatStore) -> ChatStore:
    """Every test here holds for SQLite, Postgres and the unit tier's in-memory fake."""
    return any_store


def test_every_status_is_named_once_and_the_terminal_ones_go_nowhere() -> None:
    assert set(TRANSITIONS) == set(TurnStatus)
    assert {TurnStatus.QUEUED, TurnStatus.STREAMING} == OPEN
    assert set(TurnStatus) == OPEN | TERMINAL and not OPEN & TERMINAL
    assert all(status.is_terminal for status in TERMINAL)
    assert sources(TurnStatus.COMPLETED) == {TurnStatus.STREAMING}  # a turn completes only by streaming
    assert sources(TurnStatus.CANCELLED) == OPEN
    assert not TurnStatus.COMPLETED.may_become(TurnStatus.STREAMING)


def test_in_progress_means_queued_or_streaming_under_a_live_lease() -> None:
    assert in_progress(TurnStatus.QUEUED, None, T0)
    assert in_progress(TurnStatus.STREAMING, T0 + timedelta(seconds=1), T0)
    assert not in_progress(TurnStatus.STREAMING, T0, T0)
    assert not in_progress(TurnStatus.STREAMING, None, T0)
    assert not in_progress(TurnStatus.COMPLETED, T0 + timedelta(hours=1), T0)


def test_a_live_lease_keeps_other_workers_out_and_an_expired_one_is_taken_over(store, owner) -> None:
    turn_id = _queued_turn(store, owner)
    with store.unit_of_work() as repo:
        turn = repo.start_attempt(owner, turn_id, "m", T0, LEASE_A)
        assert (turn.attempt, turn.lease_owner, turn.lease_expires_at) == (
            1,
            "worker-a",
            T0 + timedelta(seconds=30),
        )
    with pytest.raises(LeaseHeld) as held, store.unit_of_work() as repo:
        repo.start_attempt(owner, turn_id, "m", T0 + timedelta(seconds=10), LEASE_B)
    assert held.value.expires_at == T0 + timedelta(seconds=30)

    with store.unit_of_work() as repo:  # a save renews the lease from its own time
        assert repo.save_progress(owner, turn_id, "Hel", 3, lease=LEASE_A, now=T0 + timedelta(seconds=20))
    with pytest.raises(LeaseHeld), store.unit_of_work() as repo:
        repo.start_attempt(owner, turn_id, "m", T0 + timedelta(seconds=40), LEASE_B)

    later = T0 + timedelta(seconds=51)  # A stopped renewing: B takes the turn over as attempt 2
    with store.unit_of_work() as repo:
        turn = repo.start_attempt(owner, turn_id, "m", later, LEASE_B)
        assert (turn.attempt, turn.lease_owner, turn.assistant_text) == (2, "worker-b", "")
    with store.unit_of_work() as repo:  # A wakes up: its writes no longer land
        assert not repo.save_progress(owner, turn_id, "Hello", 5, lease=LEASE_A, now=later)
    with pytest.raises(TurnNotOpen), store.unit_of_work() as repo:
        repo.finish_turn(owner, turn_id, TurnOutcome(TurnStatus.COMPLETED, "Hello", 6), later, LEASE_A)
    with store.unit_of_work() as repo:
        repo.finish_turn(owner, turn_id, TurnOutcome(TurnStatus.COMPLETED, "Hi", 4), later, LEASE_B)
    turn = _turn(store, owner, turn_id)
    assert (turn.status, turn.assistant_text, turn.lease_expires_at) == ("completed", "Hi", None)


def test_a_streaming_turn_stops_counting_as_in_progress_when_its_lease_expires(store, owner) -> None:
    queued = _queued_turn(store, owner)
    streaming = _queued_turn(store, owner)
    with store.unit_of_work() as repo:
        repo.start_attempt(owner, streaming, "m", T0, LEASE_A)
    assert _in_progress_count(store, owner, T0 + timedelta(seconds=29)) == 2
    assert _in_progress_count(store, owner, T0 + timedelta(seconds=31)) == 1  # only the queued one
    with store.unit_of_work() as repo:  # other tests' turns share the database: look for ours
        expired = {a.turn_id for a in repo.abandoned_turns(T0 + timedelta(seconds=31), limit=10_000)}
        live = {a.turn_id for a in repo.abandoned_turns(T0 + timedelta(seconds=29), limit=10_000)}
    assert streaming in expired and queued not in expired
    assert streaming not in live


def test_ending_a_turn_no_worker_streams_keeps_its_text_and_follows_the_transitions(store, owner) -> None:
    turn_id = _queued_turn(store, owner)
    with store.unit_of_work() as repo:
        repo.start_attempt(owner, turn_id, "m", T0, LEASE_A)
        repo.save_progress(owner, turn_id, "Half an ans", 4, lease=LEASE_A, now=T0)
    outcome = TurnOutcome(
        TurnStatus.FAILED, "", 3, error_code="dead_lettered", output_tokens=3, usage_estimated=True
    )
    with store.unit_of_work() as repo:
        turn = repo.lock_turn(owner, turn_id)
        assert turn is not None
        repo.end_turn(turn, outcome, 2, T0 + timedelta(minutes=1))
    turn = _turn(store, owner, turn_id)
    assert (turn.status, turn.attempt, turn.last_seq, turn.assistant_text) == ("failed", 2, 3, "Half an ans")
    assert (turn.error_code, turn.output_tokens, turn.usage_estimated) == ("dead_lettered", 3, True)
    with pytest.raises(TurnNotOpen), store.unit_of_work() as repo:  # a finished turn stays finished
        turn = repo.lock_turn(owner, turn_id)
        assert turn is not None
        repo.end_turn(turn, outcome, 3, T0 + timedelta(minutes=2))


def test_the_ending_of_a_turn_cancelled_while_queued_is_claimed_once(store, owner) -> None:
    turn_id = _queued_turn(store, owner)
    with store.unit_of_work() as repo:
        repo.request_cancel(owner, turn_id, T0)
    with store.unit_of_work() as repo:
        assert repo.announce_ending_once(owner, turn_id, 1, 1)
    with store.unit_of_work() as repo:
        assert not repo.announce_ending_once(owner, turn_id, 1, 1)  # a redelivered record sends nothing
    turn = _turn(store, owner, turn_id)
    assert (turn.status, turn.attempt, turn.last_seq) == ("cancelled", 1, 1)
    with pytest.raises(TurnNotOpen), store.unit_of_work() as repo:
        repo.start_attempt(owner, turn_id, "m", T0, LEASE_A)
