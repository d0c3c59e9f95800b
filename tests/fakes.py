"""In-memory fakes of Courier's ports, for the unit tier (no database, no network).

`MemoryChatStore` implements the gateway's `GatewayStore` and the worker's `TurnStore` the way
`courier_shared.db.store.ChatStore` does over a database: tests/shared/test_store.py and
test_turn_leases.py run against both, so the fake cannot drift from the real store unnoticed.
A unit of work runs on a copy of the rows, committed when the block ends and dropped if it raises;
units of work run one at a time (as if serializable).
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import inspect

from courier_shared.db.models import Connection, Conversation, ToolInvocation, Turn
from courier_shared.db.store import (
    AbandonedTurn,
    ClientMessageIdReused,
    Lease,
    Listener,
    Owner,
    Page,
    ToolCallRecord,
    TurnControl,
    TurnNotOpen,
    TurnOutcome,
    apply_cancel,
    apply_end,
    apply_start,
    decode_cursor,
    encode_cursor,
    finished_values,
    make_title,
)
from courier_shared.queue import TurnRequest
from courier_shared.turn_states import REMEMBERED, TERMINAL, TurnStatus, in_progress, sources

Row = TypeVar("Row", Conversation, Turn, Connection, ToolInvocation)


def _copy(row: Row) -> Row:
    """A detached copy of an ORM row (every column attribute)."""
    return type(row)(**{attr.key: getattr(row, attr.key) for attr in inspect(type(row)).column_attrs})


@dataclass
class _Rows:
    conversations: dict[uuid.UUID, Conversation] = field(default_factory=dict)
    turns: dict[uuid.UUID, Turn] = field(default_factory=dict)
    connections: dict[str, Connection] = field(default_factory=dict)
    # (turn, connection) → (the order added, the AI SDK request id or None)
    listeners: dict[tuple[uuid.UUID, str], tuple[int, str | None]] = field(default_factory=dict)
    tool_invocations: list[ToolInvocation] = field(default_factory=list)
    # (turn, kind, agent id, message id) → the record's JSON document
    session_records: dict[tuple[uuid.UUID, str, str, int], dict[str, Any]] = field(default_factory=dict)

    def copy(self) -> _Rows:
        return _Rows(
            {key: _copy(row) for key, row in self.conversations.items()},
            {key: _copy(row) for key, row in self.turns.items()},
            {key: _copy(row) for key, row in self.connections.items()},
            dict(self.listeners),
            [_copy(row) for row in self.tool_invocations],
            {key: json.loads(json.dumps(data)) for key, data in self.session_records.items()},
        )


def _owns(row: Conversation | Turn | Connection, owner: Owner) -> bool:
    return (row.tenant_id, row.user_id) == owner


class MemoryRepository:
    """The repository of one in-memory unit of work: ChatRepository's methods, same semantics."""

    def __init__(self, rows: _Rows, listener_order: Iterator[int]) -> None:
        self._rows = rows
        self._order = listener_order

    # ---------------------------------------------------------------- connections

    def register_connection(self, owner: Owner, connection_id: str, now: datetime) -> None:
        existing = self._rows.connections.get(connection_id)
        if existing is None:
            self._rows.connections[connection_id] = Connection(
                connection_id=connection_id,
                tenant_id=owner.tenant_id,
                user_id=owner.user_id,
                connected_at=now,
                disconnected_at=None,
            )
        elif _owns(existing, owner):
            existing.disconnected_at = None

    def unregister_connection(self, connection_id: str, now: datetime) -> None:
        connection = self._rows.connections.get(connection_id)
        if connection is not None and connection.disconnected_at is None:
            connection.disconnected_at = now
        for key in [key for key in self._rows.listeners if key[1] == connection_id]:
            del self._rows.listeners[key]

    def live_connections(self, owner: Owner) -> list[str]:
        return [
            c.connection_id
            for c in self._rows.connections.values()
            if _owns(c, owner) and c.disconnected_at is None
        ]

    # ---------------------------------------------------------------- conversations

    def find_conversation(self, owner: Owner, conversation_id: uuid.UUID) -> Conversation | None:
        conversation = self._rows.conversations.get(conversation_id)
        return conversation if conversation is not None and _owns(conversation, owner) else None

    def create_conversation(
        self, owner: Owner, title: str, now: datetime, conversation_id: uuid.UUID | None = None
    ) -> Conversation:
        conversation = Conversation(
            id=conversation_id or uuid.uuid4(),
            tenant_id=owner.tenant_id,
            user_id=owner.user_id,
            title=make_title(title),
            created_at=now,
            updated_at=now,
        )
        self._rows.conversations[conversation.id] = conversation
        return conversation

    def list_conversations(
        self, owner: Owner, before: str | None = None, limit: int = 20
    ) -> Page[Conversation]:
        rows = [c for c in self._rows.conversations.values() if _owns(c, owner)]
        if before is not None:
            position = decode_cursor(before)
            rows = [c for c in rows if (c.updated_at, c.id) < position]
        rows.sort(key=lambda c: (c.updated_at, c.id), reverse=True)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, encode_cursor(rows[-1].updated_at, rows[-1].id) if more else None)

    # ---------------------------------------------------------------- turns (gateway side)

    def create_turn(
        self,
        owner: Owner,
        conversation: Conversation | None,
        client_message_id: uuid.UUID,
        user_text: str,
        origin_connection_id: str | None,
        now: datetime,
        *,
        admit: Callable[[], None] | None = None,
        request_id: str | None = None,
    ) -> tuple[Turn, bool]:
        existing = self.find_turn_by_client_message_id(owner, client_message_id)
        if existing is not None:
            other_conversation = conversation is not None and conversation.id != existing.conversation_id
            if existing.user_text != user_text or other_conversation:
                raise ClientMessageIdReused(str(client_message_id))
            if origin_connection_id is not None:
                self.add_listener(owner, existing.id, origin_connection_id, request_id)
            return existing, False
        if conversation is not None:
            now = max(now, conversation.updated_at + timedelta(microseconds=1))
        if admit is not None:
            admit()
        target = conversation or self.create_conversation(owner, user_text, now)
        turn = Turn(
            id=uuid.uuid4(),
            conversation_id=target.id,
            tenant_id=owner.tenant_id,
            user_id=owner.user_id,
            client_message_id=client_message_id,
            origin_connection_id=origin_connection_id,
            user_text=user_text,
            created_at=now,
            attempt=0,
            status=TurnStatus.QUEUED,
            assistant_text="",
            last_seq=-1,
            usage_estimated=False,
        )
        self._rows.turns[turn.id] = turn
        if origin_connection_id is not None:
            self._rows.listeners[(turn.id, origin_connection_id)] = (next(self._order), request_id)
        target.updated_at = now
        return turn, True

    def find_turn(self, owner: Owner, turn_id: uuid.UUID) -> Turn | None:
        turn = self._rows.turns.get(turn_id)
        return turn if turn is not None and _owns(turn, owner) else None

    def find_turn_by_client_message_id(self, owner: Owner, client_message_id: uuid.UUID) -> Turn | None:
        return next(
            (
                t
                for t in self._rows.turns.values()
                if _owns(t, owner) and t.client_message_id == client_message_id
            ),
            None,
        )

    def mark_enqueued(self, owner: Owner, turn_id: uuid.UUID, now: datetime) -> None:
        if (turn := self.find_turn(owner, turn_id)) is not None:
            turn.enqueued_at = now

    def count_turns_since(self, owner: Owner, since: datetime) -> int:
        return sum(1 for t in self._rows.turns.values() if _owns(t, owner) and t.created_at >= since)

    def count_open_turns_since(self, owner: Owner, since: datetime, now: datetime) -> int:
        return sum(
            1
            for t in self._rows.turns.values()
            if _owns(t, owner) and t.created_at >= since and in_progress(t.status, t.lease_expires_at, now)
        )

    def add_listener(
        self, owner: Owner, turn_id: uuid.UUID, connection_id: str, request_id: str | None = None
    ) -> Turn | None:
        turn = self.find_turn(owner, turn_id)
        if turn is not None:
            order, _ = self._rows.listeners.get((turn_id, connection_id), (next(self._order), None))
            self._rows.listeners[(turn_id, connection_id)] = (order, request_id)
        return turn

    def find_request_turn(self, owner: Owner, connection_id: str, request_id: str) -> Turn | None:
        turns = [
            self._rows.turns[t]
            for (t, c), (_, r) in self._rows.listeners.items()
            if c == connection_id and r == request_id and _owns(self._rows.turns[t], owner)
        ]
        return max(turns, key=lambda t: t.created_at, default=None)

    def open_turn_of(self, owner: Owner, conversation_id: uuid.UUID, now: datetime) -> Turn | None:
        turns = [
            t
            for t in self._rows.turns.values()
            if _owns(t, owner)
            and t.conversation_id == conversation_id
            and in_progress(t.status, t.lease_expires_at, now)
        ]
        return max(turns, key=lambda t: (t.created_at, t.id), default=None)

    def request_cancel(self, owner: Owner, turn_id: uuid.UUID, now: datetime) -> Turn | None:
        turn = self.find_turn(owner, turn_id)
        if turn is not None:
            apply_cancel(turn, now)
        return turn

    def history(
        self, owner: Owner, conversation_id: uuid.UUID, before: str | None = None, limit: int = 20
    ) -> Page[Turn]:
        rows = [
            t for t in self._rows.turns.values() if _owns(t, owner) and t.conversation_id == conversation_id
        ]
        if before is not None:
            position = decode_cursor(before)
            rows = [t for t in rows if (t.created_at, t.id) < position]
        rows.sort(key=lambda t: (t.created_at, t.id), reverse=True)
        more = len(rows) > limit
        rows = rows[:limit]
        rows.reverse()
        return Page(rows, encode_cursor(rows[0].created_at, rows[0].id) if more else None)

    # ---------------------------------------------------------------- turns (worker side)

    def recent_turns(self, owner: Owner, turn: Turn, window: int) -> list[Turn]:
        rows = [
            t
            for t in self._rows.turns.values()
            if _owns(t, owner)
            and t.conversation_id == turn.conversation_id
            and t.id != turn.id
            and t.status in REMEMBERED
            and (t.created_at, t.id) < (turn.created_at, turn.id)
        ]
        rows.sort(key=lambda t: (t.created_at, t.id), reverse=True)
        return list(reversed(rows[:window]))

    def lock_turn(self, owner: Owner, turn_id: uuid.UUID) -> Turn | None:
        return self.find_turn(owner, turn_id)  # units of work already run one at a time

    def start_attempt(
        self, owner: Owner, turn_id: uuid.UUID, model_id: str, now: datetime, lease: Lease | None = None
    ) -> Turn:
        turn = self.find_turn(owner, turn_id)
        if turn is None:
            raise TurnNotOpen(str(turn_id))
        apply_start(turn, model_id, now, lease)
        return turn

    def save_progress(
        self,
        owner: Owner,
        turn_id: uuid.UUID,
        text: str,
        last_seq: int,
        *,
        lease: Lease | None = None,
        now: datetime | None = None,
        reasoning_text: str | None = None,
    ) -> bool:
        if lease is not None and now is None:
            raise ValueError("renewing a lease needs `now`")
        turn = self.find_turn(owner, turn_id)
        if turn is None or turn.status is not TurnStatus.STREAMING:
            return False
        if lease is not None:
            if turn.lease_owner != lease.owner:
                return False
            assert now is not None
            turn.lease_expires_at = lease.until(now)
        turn.assistant_text, turn.last_seq = text, last_seq
        if reasoning_text is not None:
            turn.reasoning_text = reasoning_text
        return True

    def turn_control(self, owner: Owner, turn_id: uuid.UUID) -> TurnControl:
        turn = self.find_turn(owner, turn_id)
        if turn is None:
            return TurnControl(False, ())
        listening = sorted(
            (order, Listener(c, request_id))
            for (t, c), (order, request_id) in self._rows.listeners.items()
            if t == turn_id
        )
        return TurnControl(turn.cancel_requested_at is not None, tuple(c for _, c in listening))

    def remove_listener(self, turn_id: uuid.UUID, connection_id: str) -> None:
        self._rows.listeners.pop((turn_id, connection_id), None)

    def finish_turn(
        self,
        owner: Owner,
        turn_id: uuid.UUID,
        outcome: TurnOutcome,
        now: datetime,
        lease: Lease | None = None,
    ) -> None:
        if not outcome.status.is_terminal:
            raise ValueError(f"{outcome.status} is not a terminal status")
        turn = self.find_turn(owner, turn_id)
        if (
            turn is None
            or turn.status not in sources(outcome.status)
            or (lease is not None and turn.lease_owner != lease.owner)
        ):
            raise TurnNotOpen(str(turn_id))
        for column, value in finished_values(outcome, now).items():
            setattr(turn, column, value)
        self._rows.conversations[turn.conversation_id].updated_at = now
        self.delete_session_records(turn_id)

    def end_turn(self, turn: Turn, outcome: TurnOutcome, attempt: int, now: datetime) -> None:
        apply_end(turn, outcome, attempt, now)
        self._rows.conversations[turn.conversation_id].updated_at = now
        self.delete_session_records(turn.id)

    def put_session_record(
        self, turn_id: uuid.UUID, kind: str, agent_id: str, message_id: int, data: dict[str, Any]
    ) -> None:
        self._rows.session_records[(turn_id, kind, agent_id, message_id)] = json.loads(json.dumps(data))

    def session_record(
        self, turn_id: uuid.UUID, kind: str, agent_id: str, message_id: int
    ) -> dict[str, Any] | None:
        return self._rows.session_records.get((turn_id, kind, agent_id, message_id))

    def session_messages(
        self, turn_id: uuid.UUID, agent_id: str, offset: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        keys = sorted(k for k in self._rows.session_records if k[:3] == (turn_id, "message", agent_id))
        keys = keys[offset:] if limit is None else keys[offset : offset + limit]
        return [self._rows.session_records[k] for k in keys]

    def delete_session_records(self, turn_id: uuid.UUID) -> None:
        for key in [k for k in self._rows.session_records if k[0] == turn_id]:
            del self._rows.session_records[key]

    def announce_ending_once(self, owner: Owner, turn_id: uuid.UUID, attempt: int, last_seq: int) -> bool:
        turn = self.find_turn(owner, turn_id)
        if turn is None or turn.status not in TERMINAL or turn.attempt != 0:
            return False
        turn.attempt, turn.last_seq = attempt, last_seq
        return True

    def abandoned_turns(self, now: datetime, limit: int = 100) -> list[AbandonedTurn]:
        rows = [
            t
            for t in self._rows.turns.values()
            if t.status is TurnStatus.STREAMING and (t.lease_expires_at is None or t.lease_expires_at <= now)
        ]
        # Postgres' order: by lease expiry, unleased (NULL) last.
        rows.sort(key=lambda t: (t.lease_expires_at is None, t.lease_expires_at or now, t.id))
        return [AbandonedTurn(Owner(t.tenant_id, t.user_id), t.id) for t in rows[:limit]]

    def record_tool_invocation(self, turn_id: uuid.UUID, call: ToolCallRecord) -> None:
        self._rows.tool_invocations.append(
            ToolInvocation(
                id=uuid.uuid4(),
                turn_id=turn_id,
                seq=call.seq,
                tool_call_id=call.tool_call_id,
                tool_name=call.tool_name,
                input=call.tool_input,
                output_summary=call.output_summary,
                status=call.status,
                duration_ms=call.duration_ms,
                text_offset=call.text_offset,
            )
        )

    def tool_invocations(self, owner: Owner, turn_id: uuid.UUID) -> list[ToolInvocation]:
        if self.find_turn(owner, turn_id) is None:
            return []
        return sorted((r for r in self._rows.tool_invocations if r.turn_id == turn_id), key=lambda r: r.seq)

    def tool_invocations_of(
        self, owner: Owner, turn_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ToolInvocation]]:
        calls = {turn_id: self.tool_invocations(owner, turn_id) for turn_id in turn_ids}
        return {turn_id: found for turn_id, found in calls.items() if found}


class MemoryChatStore:
    """ChatStore in memory: GatewayStore and TurnStore, for the unit tier."""

    def __init__(self) -> None:
        self._rows = _Rows()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._owner_locks: dict[Owner, threading.Lock] = {}
        self.units_of_work = 0

    @contextmanager
    def unit_of_work(self) -> Iterator[MemoryRepository]:
        with self._lock:
            rows = self._rows.copy()
            yield MemoryRepository(rows, self._order)
            self._rows = rows  # committed; an exception leaves the rows as they were
            self.units_of_work += 1

    @contextmanager
    def owner_serialized(self, owner: Owner, *, wait_s: float = 10.0) -> Iterator[MemoryChatStore]:
        with self._lock:
            lock = self._owner_locks.setdefault(owner, threading.Lock())
        if not lock.acquire(timeout=wait_s):
            raise TimeoutError("another request of this user holds its lock")
        try:
            yield self
        finally:
            lock.release()

    def row_counts(self) -> dict[str, int]:
        """How many rows each table holds (as tests/gateway/conftest.py's row_counts does)."""
        rows = self._rows
        return {
            "conversations": len(rows.conversations),
            "turns": len(rows.turns),
            "connections": len(rows.connections),
            "turn_listeners": len(rows.listeners),
            "tool_invocations": len(rows.tool_invocations),
        }


@dataclass
class RecordingQueue:
    """The gateway's TurnQueue in memory. `fail_next` sends raise, as an SQS outage would."""

    sent: list[TurnRequest] = field(default_factory=list)
    fail_next: int = 0

    def send(self, request: TurnRequest) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("SQS is unreachable")
        self.sent.append(request)


@dataclass
class RecordingPoster:
    """The worker's ConnectionPoster in memory: every frame posted, by connection, parsed."""

    frames: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, endpoint_url: str, connection_id: str, data: bytes) -> None:
        with self.lock:
            self.frames.setdefault(connection_id, []).append(json.loads(data))
