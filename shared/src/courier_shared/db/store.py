"""The chat store: a repository over the chat-turn schema, opened as a unit of work.

Every read and write a service makes is scoped by an `Owner` (tenant + user, from a verified token
or a queued turn request), so one user can never reach another user's rows: a foreign id simply
matches nothing and reads as "not found".
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import ColumnElement, Engine, and_, delete, func, or_, select, update
from sqlalchemy import Connection as SAConnection
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from courier_shared.db.models import (
    AgentSessionRecord,
    Connection,
    Conversation,
    ToolInvocation,
    Turn,
    TurnListener,
)
from courier_shared.turn_states import REMEMBERED, TERMINAL, TurnStatus, sources, values

T = TypeVar("T")
TITLE_CHARS = 80


class Owner(NamedTuple):
    tenant_id: str
    user_id: str


class InvalidCursor(ValueError):
    """A pagination cursor that Courier did not issue."""


class ClientMessageIdReused(ValueError):
    """A clientMessageId already used for another message (another text or conversation)."""


class TurnNotOpen(Exception):
    """A worker tried to move a turn that is no longer queued or streaming (or no longer its own)."""


class LeaseHeld(Exception):
    """Another worker holds a live lease on the turn; try again once it has expired."""

    def __init__(self, turn_id: uuid.UUID, expires_at: datetime) -> None:
        super().__init__(f"turn {turn_id} is leased until {expires_at.isoformat()}")
        self.expires_at = expires_at


@dataclass(frozen=True)
class Lease:
    """Who works on a turn, until when: taken by `start_attempt`, renewed by every save."""

    owner: str
    duration: timedelta

    def until(self, now: datetime) -> datetime:
        return now + self.duration


@dataclass(frozen=True)
class AbandonedTurn:
    owner: Owner
    turn_id: uuid.UUID


def in_progress_condition(now: datetime) -> ColumnElement[bool]:
    """SQL for `turn_states.in_progress`: queued, or streaming under a live lease.

    What "an answer in progress" means for the open-turn limit: a turn whose worker died stops
    counting as soon as its lease expires.
    """
    return or_(
        Turn.status == TurnStatus.QUEUED,
        and_(Turn.status == TurnStatus.STREAMING, Turn.lease_expires_at > now),
    )


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class Listener:
    """Who hears a turn: a connection, and when it is an AI SDK chat transport, the request it
    asked in (its frames carry that `requestId`)."""

    connection_id: str
    request_id: str | None = None


@dataclass(frozen=True)
class TurnControl:
    """What a streaming worker polls: has the user asked to stop, and who is listening."""

    cancel_requested: bool
    listeners: tuple[Listener, ...]


@dataclass(frozen=True)
class TurnOutcome:
    """How a turn ended, as the worker stores it."""

    status: TurnStatus
    assistant_text: str
    last_seq: int
    reasoning_text: str = ""  # the model's reasoning, stored beside the answer, never in it
    body_ref: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: int | None = None
    time_to_first_token_ms: int | None = None
    stop_reason: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    usage_estimated: bool = False  # the tokens are an estimate: the stream was cut before the model's report


@dataclass
class ToolCallRecord:
    """One tool call of an attempt, as a tool_invocations row (the worker fills it in as it runs)."""

    seq: int
    tool_call_id: str
    tool_name: str
    tool_input: dict[str, Any]
    output_summary: str | None = None
    status: str = "running"
    duration_ms: int | None = None
    text_offset: int = 0  # the characters of answer text sent before the call (where it sits)


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, uuid.UUID(row_id)
    except ValueError as error:
        raise InvalidCursor("The cursor is not one Courier issued.") from error


class ChatRepository:
    """All reads and writes of one unit of work. Get one from `ChatStore.unit_of_work()`."""

    def __init__(self, session: Session) -> None:
        self._session = session

    # ---------------------------------------------------------------- connections

    def register_connection(self, owner: Owner, connection_id: str, now: datetime) -> None:
        existing = self._session.get(Connection, connection_id)
        if existing is None:
            self._session.add(
                Connection(
                    connection_id=connection_id,
                    tenant_id=owner.tenant_id,
                    user_id=owner.user_id,
                    connected_at=now,
                )
            )
        elif (existing.tenant_id, existing.user_id) == owner:
            existing.disconnected_at = None

    def unregister_connection(self, connection_id: str, now: datetime) -> None:
        self._session.execute(
            update(Connection)
            .where(Connection.connection_id == connection_id, Connection.disconnected_at.is_(None))
            .values(disconnected_at=now)
        )
        self._session.execute(delete(TurnListener).where(TurnListener.connection_id == connection_id))

    def live_connections(self, owner: Owner) -> list[str]:
        rows = self._session.scalars(
            select(Connection.connection_id).where(
                Connection.tenant_id == owner.tenant_id,
                Connection.user_id == owner.user_id,
                Connection.disconnected_at.is_(None),
            )
        )
        return list(rows)

    # ---------------------------------------------------------------- conversations

    def find_conversation(self, owner: Owner, conversation_id: uuid.UUID) -> Conversation | None:
        return self._session.scalar(
            select(Conversation).where(
                Conversation.id == conversation_id,
                Conversation.tenant_id == owner.tenant_id,
                Conversation.user_id == owner.user_id,
            )
        )

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
        self._session.add(conversation)
        self._session.flush()
        return conversation

    def list_conversations(
        self, owner: Owner, before: str | None = None, limit: int = 20
    ) -> Page[Conversation]:
        """Newest first. `next_cursor` continues with older conversations; None when there are none."""
        query = select(Conversation).where(
            Conversation.tenant_id == owner.tenant_id, Conversation.user_id == owner.user_id
        )
        if before is not None:
            at, row_id = decode_cursor(before)
            query = query.where(
                or_(
                    Conversation.updated_at < at,
                    and_(Conversation.updated_at == at, Conversation.id < row_id),
                )
            )
        rows = list(
            self._session.scalars(
                query.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit + 1)
            )
        )
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor(rows[-1].updated_at, rows[-1].id) if more else None
        return Page(rows, cursor)

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
        """The one place a message becomes a turn, idempotent by (owner, client_message_id).

        Returns (turn, created):
        - a clientMessageId seen before, with the same text (and conversation, when one is given):
          (that turn, False), and `origin_connection_id` becomes one of its listeners, so a client
          retrying from a new connection hears the answer; with another text or conversation,
          ClientMessageIdReused;
        - else (the new queued turn, True), in `conversation`, or in a new conversation titled by
          the text when it is None, with `origin_connection_id` listening. `admit`, when given, is
          called first, only for a new turn: it may raise to refuse it, and nothing is written.
        `request_id`: the AI SDK chat request the origin connection asked in, if it is one.
        Safe under concurrent retries without any lock: the unique constraint decides, and the
        loser gets the winner's turn (and whatever conversation it made is rolled back).
        """
        existing = self.find_turn_by_client_message_id(owner, client_message_id)
        if existing is not None:
            retried = self._retried(
                owner, existing, conversation, user_text, origin_connection_id, request_id
            )
            return retried, False
        if conversation is not None:
            # History orders by created_at: never before the conversation's last turn, even if
            # this process's clock is behind the one that stored it.
            now = max(now, conversation.updated_at + timedelta(microseconds=1))
        if admit is not None:
            admit()
        try:
            with self._session.begin_nested():
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
                )
                self._session.add(turn)
                if origin_connection_id is not None:
                    self._session.add(
                        TurnListener(
                            turn_id=turn.id, connection_id=origin_connection_id, request_id=request_id
                        )
                    )
        except IntegrityError:
            raced = self.find_turn_by_client_message_id(owner, client_message_id)
            if raced is None:
                raise
            return self._retried(
                owner, raced, conversation, user_text, origin_connection_id, request_id
            ), False
        target.updated_at = now
        return turn, True

    def _retried(
        self,
        owner: Owner,
        turn: Turn,
        conversation: Conversation | None,
        user_text: str,
        origin_connection_id: str | None,
        request_id: str | None,
    ) -> Turn:
        other_conversation = conversation is not None and conversation.id != turn.conversation_id
        if turn.user_text != user_text or other_conversation:
            raise ClientMessageIdReused(str(turn.client_message_id))
        if origin_connection_id is not None:
            self.add_listener(owner, turn.id, origin_connection_id, request_id)
        return turn

    def find_turn(self, owner: Owner, turn_id: uuid.UUID) -> Turn | None:
        return self._session.scalar(
            select(Turn).where(
                Turn.id == turn_id, Turn.tenant_id == owner.tenant_id, Turn.user_id == owner.user_id
            )
        )

    def find_turn_by_client_message_id(self, owner: Owner, client_message_id: uuid.UUID) -> Turn | None:
        return self._session.scalar(
            select(Turn).where(
                Turn.client_message_id == client_message_id,
                Turn.tenant_id == owner.tenant_id,
                Turn.user_id == owner.user_id,
            )
        )

    def mark_enqueued(self, owner: Owner, turn_id: uuid.UUID, now: datetime) -> None:
        self._session.execute(
            update(Turn)
            .where(Turn.id == turn_id, Turn.tenant_id == owner.tenant_id, Turn.user_id == owner.user_id)
            .values(enqueued_at=now)
        )

    def count_turns_since(self, owner: Owner, since: datetime) -> int:
        """Turns the owner created at or after `since` (the send rate limit)."""
        return self._count_turns(owner, Turn.created_at >= since)

    def count_open_turns_since(self, owner: Owner, since: datetime, now: datetime) -> int:
        """Turns in progress at `now` (queued, or streaming under a live lease) created at or after
        `since` (an older queued turn is presumed lost, e.g. dead-lettered before its first attempt)."""
        return self._count_turns(owner, in_progress_condition(now), Turn.created_at >= since)

    def _count_turns(self, owner: Owner, *conditions: ColumnElement[bool]) -> int:
        query = select(func.count()).select_from(Turn)
        query = query.where(Turn.tenant_id == owner.tenant_id, Turn.user_id == owner.user_id, *conditions)
        return self._session.scalar(query) or 0

    def add_listener(
        self, owner: Owner, turn_id: uuid.UUID, connection_id: str, request_id: str | None = None
    ) -> Turn | None:
        """Make the connection a listener of the owner's turn. Returns the turn, or None if not theirs.

        Idempotent, also when the same connection asks twice at once (INSERT … ON CONFLICT); asked
        again with another AI SDK `request_id`, the connection listens as that request from now on.
        The turn row is share-locked: a worker ending the turn at this moment either sees the new
        listener (it reads them after its final write) or has already committed, and the turn read
        here is the ended one. Without the lock a resume could get a `streaming` snapshot and then
        nothing, ever.
        """
        turn = self._session.scalar(
            select(Turn)
            .where(Turn.id == turn_id, Turn.tenant_id == owner.tenant_id, Turn.user_id == owner.user_id)
            .with_for_update(read=True)
        )
        if turn is None:
            return None
        insert = sqlite_insert if self._session.get_bind().dialect.name == "sqlite" else postgresql_insert
        row = insert(TurnListener).values(turn_id=turn_id, connection_id=connection_id, request_id=request_id)
        self._session.execute(
            row.on_conflict_do_update(
                index_elements=[TurnListener.turn_id, TurnListener.connection_id],
                set_={"request_id": row.excluded.request_id},
            )
        )
        return turn

    def find_request_turn(self, owner: Owner, connection_id: str, request_id: str) -> Turn | None:
        """The owner's turn that this connection listens to as AI SDK request `request_id`."""
        return self._session.scalar(
            select(Turn)
            .join(TurnListener, TurnListener.turn_id == Turn.id)
            .where(
                TurnListener.connection_id == connection_id,
                TurnListener.request_id == request_id,
                Turn.tenant_id == owner.tenant_id,
                Turn.user_id == owner.user_id,
            )
            .order_by(Turn.created_at.desc())
            .limit(1)
        )

    def open_turn_of(self, owner: Owner, conversation_id: uuid.UUID, now: datetime) -> Turn | None:
        """The conversation's newest turn still in progress at `now` (what a chat resumes), or None."""
        return self._session.scalar(
            select(Turn)
            .where(
                Turn.conversation_id == conversation_id,
                Turn.tenant_id == owner.tenant_id,
                Turn.user_id == owner.user_id,
                in_progress_condition(now),
            )
            .order_by(Turn.created_at.desc(), Turn.id.desc())
            .limit(1)
        )

    def request_cancel(self, owner: Owner, turn_id: uuid.UUID, now: datetime) -> Turn | None:
        """Ask the worker to stop the turn; a queued turn is cancelled at once. None if not theirs."""
        turn = self.find_turn(owner, turn_id)
        if turn is not None:
            apply_cancel(turn, now)
        return turn

    def history(
        self, owner: Owner, conversation_id: uuid.UUID, before: str | None = None, limit: int = 20
    ) -> Page[Turn]:
        """The `limit` turns before the cursor (newest page first), returned oldest first."""
        query = select(Turn).where(
            Turn.conversation_id == conversation_id,
            Turn.tenant_id == owner.tenant_id,
            Turn.user_id == owner.user_id,
        )
        if before is not None:
            at, row_id = decode_cursor(before)
            query = query.where(or_(Turn.created_at < at, and_(Turn.created_at == at, Turn.id < row_id)))
        rows = list(
            self._session.scalars(query.order_by(Turn.created_at.desc(), Turn.id.desc()).limit(limit + 1))
        )
        more = len(rows) > limit
        rows = rows[:limit]
        rows.reverse()
        cursor = encode_cursor(rows[0].created_at, rows[0].id) if more else None
        return Page(rows, cursor)

    # ---------------------------------------------------------------- turns (worker side)

    def recent_turns(self, owner: Owner, turn: Turn, window: int) -> list[Turn]:
        """The finished turns before `turn` (at most `window`), oldest first: the agent's memory."""
        rows = self._session.scalars(
            select(Turn)
            .where(
                Turn.conversation_id == turn.conversation_id,
                Turn.tenant_id == owner.tenant_id,
                Turn.user_id == owner.user_id,
                Turn.id != turn.id,
                Turn.status.in_(values(REMEMBERED)),
                or_(
                    Turn.created_at < turn.created_at,
                    and_(Turn.created_at == turn.created_at, Turn.id < turn.id),
                ),
            )
            .order_by(Turn.created_at.desc(), Turn.id.desc())
            .limit(window)
        )
        return list(reversed(list(rows)))

    def lock_turn(self, owner: Owner, turn_id: uuid.UUID) -> Turn | None:
        """The owner's turn, locked until the unit of work ends (SELECT … FOR UPDATE)."""
        return self._session.scalar(
            select(Turn)
            .where(Turn.id == turn_id, Turn.tenant_id == owner.tenant_id, Turn.user_id == owner.user_id)
            .with_for_update()
        )

    def start_attempt(
        self, owner: Owner, turn_id: uuid.UUID, model_id: str, now: datetime, lease: Lease | None = None
    ) -> Turn:
        """queued|streaming → streaming with the next attempt number, leased to `lease.owner`
        (workers always pass a lease; without one the turn is left unleased).

        Raises TurnNotOpen for a finished turn, LeaseHeld while another worker's lease is live.
        """
        turn = self.lock_turn(owner, turn_id)
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
        """Store the text (and the reasoning, when given) so far and renew the lease (from `now`).
        False: the lease is lost (the turn was taken over or ended by someone else), so the caller
        must stop writing."""
        query = update(Turn).where(
            Turn.id == turn_id,
            Turn.tenant_id == owner.tenant_id,
            Turn.user_id == owner.user_id,
            Turn.status == TurnStatus.STREAMING,
        )
        changes: dict[str, Any] = {"assistant_text": text, "last_seq": last_seq}
        if reasoning_text is not None:
            changes["reasoning_text"] = reasoning_text
        if lease is not None:
            if now is None:
                raise ValueError("renewing a lease needs `now`")
            query = query.where(Turn.lease_owner == lease.owner)
            changes["lease_expires_at"] = lease.until(now)
        result = self._session.execute(query.values(**changes))
        return getattr(result, "rowcount", 1) > 0

    def turn_control(self, owner: Owner, turn_id: uuid.UUID) -> TurnControl:
        cancel_requested_at = self._session.scalar(
            select(Turn.cancel_requested_at).where(
                Turn.id == turn_id, Turn.tenant_id == owner.tenant_id, Turn.user_id == owner.user_id
            )
        )
        rows = self._session.execute(
            select(TurnListener.connection_id, TurnListener.request_id)
            .join(Turn, Turn.id == TurnListener.turn_id)
            .where(Turn.id == turn_id, Turn.tenant_id == owner.tenant_id, Turn.user_id == owner.user_id)
            .order_by(TurnListener.added_at, TurnListener.connection_id)
        )
        listeners = tuple(Listener(connection_id, request_id) for connection_id, request_id in rows)
        return TurnControl(cancel_requested_at is not None, listeners)

    def remove_listener(self, turn_id: uuid.UUID, connection_id: str) -> None:
        self._session.execute(
            delete(TurnListener).where(
                TurnListener.turn_id == turn_id, TurnListener.connection_id == connection_id
            )
        )

    def finish_turn(
        self,
        owner: Owner,
        turn_id: uuid.UUID,
        outcome: TurnOutcome,
        now: datetime,
        lease: Lease | None = None,
    ) -> None:
        """streaming → a terminal status, with everything the attempt produced, while `lease` is
        still the turn's. Raises TurnNotOpen when it is finished or another worker took it over."""
        if not outcome.status.is_terminal:
            raise ValueError(f"{outcome.status} is not a terminal status")
        query = update(Turn).where(
            Turn.id == turn_id,
            Turn.tenant_id == owner.tenant_id,
            Turn.user_id == owner.user_id,
            Turn.status.in_(values(sources(outcome.status))),
        )
        if lease is not None:
            query = query.where(Turn.lease_owner == lease.owner)
        result = self._session.execute(query.values(**finished_values(outcome, now)))
        if getattr(result, "rowcount", 1) == 0:
            raise TurnNotOpen(str(turn_id))
        self._touch_conversation(turn_id, now)
        self.delete_session_records(turn_id)

    def end_turn(self, turn: Turn, outcome: TurnOutcome, attempt: int, now: datetime) -> None:
        """End a turn no worker is streaming (dead-lettered, abandoned, cancelled before it ran):
        `turn` comes from `lock_turn`; its text so far is kept unless the outcome carries more."""
        apply_end(turn, outcome, attempt, now)
        self._session.flush()
        self._touch_conversation(turn.id, now)
        self.delete_session_records(turn.id)

    # ---------------------------------------------------------------- agent sessions (worker side)

    def put_session_record(
        self, turn_id: uuid.UUID, kind: str, agent_id: str, message_id: int, data: dict[str, Any]
    ) -> None:
        """Create or replace one record of the turn's agent session (see AgentSessionRecord)."""
        insert = sqlite_insert if self._session.get_bind().dialect.name == "sqlite" else postgresql_insert
        row = insert(AgentSessionRecord).values(
            turn_id=turn_id, kind=kind, agent_id=agent_id, message_id=message_id, data=data
        )
        key = [AgentSessionRecord.turn_id, AgentSessionRecord.kind, AgentSessionRecord.agent_id]
        self._session.execute(
            row.on_conflict_do_update(
                index_elements=[*key, AgentSessionRecord.message_id], set_={"data": row.excluded.data}
            )
        )

    def session_record(
        self, turn_id: uuid.UUID, kind: str, agent_id: str, message_id: int
    ) -> dict[str, Any] | None:
        return self._session.scalar(
            select(AgentSessionRecord.data).where(
                AgentSessionRecord.turn_id == turn_id,
                AgentSessionRecord.kind == kind,
                AgentSessionRecord.agent_id == agent_id,
                AgentSessionRecord.message_id == message_id,
            )
        )

    def session_messages(
        self, turn_id: uuid.UUID, agent_id: str, offset: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The agent's messages in order (message_id), from `offset`."""
        query = (
            select(AgentSessionRecord.data)
            .where(
                AgentSessionRecord.turn_id == turn_id,
                AgentSessionRecord.kind == "message",
                AgentSessionRecord.agent_id == agent_id,
            )
            .order_by(AgentSessionRecord.message_id)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        return list(self._session.scalars(query))

    def delete_session_records(self, turn_id: uuid.UUID) -> None:
        self._session.execute(delete(AgentSessionRecord).where(AgentSessionRecord.turn_id == turn_id))

    def announce_ending_once(self, owner: Owner, turn_id: uuid.UUID, attempt: int, last_seq: int) -> bool:
        """Record that the ending of a turn finished before any attempt (cancelled while queued) is
        being sent, as `attempt`; True for the one caller that gets to send it."""
        result = self._session.execute(
            update(Turn)
            .where(
                Turn.id == turn_id,
                Turn.tenant_id == owner.tenant_id,
                Turn.user_id == owner.user_id,
                Turn.status.in_(values(TERMINAL)),
                Turn.attempt == 0,
            )
            .values(attempt=attempt, last_seq=last_seq)
        )
        return getattr(result, "rowcount", 1) > 0

    def abandoned_turns(self, now: datetime, limit: int = 100) -> list[AbandonedTurn]:
        """Streaming turns whose lease has expired (their worker died), oldest lease first.

        Not owner-scoped: recovery is a system task; each turn is then handled under its owner.
        """
        rows = self._session.execute(
            select(Turn.tenant_id, Turn.user_id, Turn.id)
            .where(
                Turn.status == TurnStatus.STREAMING,
                or_(Turn.lease_expires_at.is_(None), Turn.lease_expires_at <= now),
            )
            .order_by(Turn.lease_expires_at, Turn.id)
            .limit(limit)
        )
        return [AbandonedTurn(Owner(tenant, user), turn_id) for tenant, user, turn_id in rows]

    def _touch_conversation(self, turn_id: uuid.UUID, now: datetime) -> None:
        self._session.execute(
            update(Conversation)
            .where(
                Conversation.id == select(Turn.conversation_id).where(Turn.id == turn_id).scalar_subquery()
            )
            .values(updated_at=now)
        )

    def record_tool_invocation(self, turn_id: uuid.UUID, call: ToolCallRecord) -> None:
        self._session.add(
            ToolInvocation(
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

    def tool_invocations(self, owner: Owner, turn_id: uuid.UUID) -> Sequence[ToolInvocation]:
        return self._session.scalars(
            select(ToolInvocation)
            .join(Turn, Turn.id == ToolInvocation.turn_id)
            .where(Turn.id == turn_id, Turn.tenant_id == owner.tenant_id, Turn.user_id == owner.user_id)
            .order_by(ToolInvocation.seq)
        ).all()

    def tool_invocations_of(
        self, owner: Owner, turn_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ToolInvocation]]:
        """The owner's tool calls of several turns (a history page) in one query: turn id → its
        calls in the order they were made. A turn without calls (or not the owner's) is absent."""
        if not turn_ids:
            return {}
        rows = self._session.scalars(
            select(ToolInvocation)
            .join(Turn, Turn.id == ToolInvocation.turn_id)
            .where(
                ToolInvocation.turn_id.in_(list(turn_ids)),
                Turn.tenant_id == owner.tenant_id,
                Turn.user_id == owner.user_id,
            )
            .order_by(ToolInvocation.turn_id, ToolInvocation.seq)
        )
        calls: dict[uuid.UUID, list[ToolInvocation]] = {}
        for row in rows:
            calls.setdefault(row.turn_id, []).append(row)
        return calls


# ---------------------------------------------------------------- the moves of one turn
# The state changes the repository makes on a loaded turn, here once for every store (the unit
# tier's in-memory fake makes them with the same functions).


def apply_cancel(turn: Turn, now: datetime) -> None:
    """Ask the worker to stop; a queued turn (no worker has it) is cancelled at once."""
    if turn.status.is_terminal:
        return
    if turn.cancel_requested_at is None:
        turn.cancel_requested_at = now
    if turn.status is TurnStatus.QUEUED:
        turn.status = TurnStatus.CANCELLED
        turn.stop_reason = "cancelled"
        turn.completed_at = now


def apply_start(turn: Turn, model_id: str, now: datetime, lease: Lease | None) -> None:
    """queued|streaming → streaming, next attempt, leased to `lease.owner` (None: unleased).
    Raises TurnNotOpen for a finished turn, LeaseHeld while another worker's lease is live."""
    if not turn.status.may_become(TurnStatus.STREAMING):
        raise TurnNotOpen(str(turn.id))
    expires, holder = turn.lease_expires_at, turn.lease_owner
    mine = lease is not None and holder == lease.owner
    if holder is not None and not mine and expires is not None and expires > now:
        raise LeaseHeld(turn.id, expires)
    turn.status = TurnStatus.STREAMING
    turn.attempt += 1
    turn.model_id = model_id
    turn.assistant_text = ""
    turn.reasoning_text = ""
    turn.last_seq = -1
    turn.started_at = turn.started_at or now
    turn.lease_owner = lease.owner if lease is not None else None
    turn.lease_expires_at = lease.until(now) if lease is not None else None


def apply_end(turn: Turn, outcome: TurnOutcome, attempt: int, now: datetime) -> None:
    """Open → `outcome.status` (terminal) as `attempt`; the text so far is kept unless the outcome
    carries more. Raises TurnNotOpen when the turn may not move there."""
    if not turn.status.may_become(outcome.status) or not outcome.status.is_terminal:
        raise TurnNotOpen(str(turn.id))
    turn.status = outcome.status
    turn.attempt = attempt
    turn.last_seq = outcome.last_seq
    turn.assistant_text = outcome.assistant_text or turn.assistant_text
    turn.reasoning_text = outcome.reasoning_text or turn.reasoning_text
    turn.input_tokens = outcome.input_tokens
    turn.output_tokens = outcome.output_tokens
    turn.usage_estimated = outcome.usage_estimated
    turn.stop_reason = outcome.stop_reason
    turn.error_code = outcome.error_code
    turn.error_message = outcome.error_message
    turn.completed_at = now
    turn.lease_expires_at = None


def finished_values(outcome: TurnOutcome, now: datetime) -> dict[str, Any]:
    """The columns `finish_turn` writes: everything the attempt produced."""
    return {
        "status": outcome.status,
        "assistant_text": outcome.assistant_text,
        "reasoning_text": outcome.reasoning_text,
        "last_seq": outcome.last_seq,
        "body_ref": outcome.body_ref,
        "input_tokens": outcome.input_tokens,
        "output_tokens": outcome.output_tokens,
        "latency_ms": outcome.latency_ms,
        "time_to_first_token_ms": outcome.time_to_first_token_ms,
        "stop_reason": outcome.stop_reason,
        "error_code": outcome.error_code,
        "error_message": outcome.error_message,
        "usage_estimated": outcome.usage_estimated,
        "completed_at": now,
        "lease_expires_at": None,
    }


def _owner_key(owner: Owner) -> int:
    """A signed 64-bit key for the owner's advisory lock (a collision only serialises two users)."""
    digest = hashlib.blake2b(f"{owner.tenant_id}\x00{owner.user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def make_title(text: str) -> str:
    """A conversation's title: its first message on one line, cut at a word near TITLE_CHARS."""
    line = " ".join(text.split())
    if len(line) <= TITLE_CHARS:
        return line or "New conversation"
    cut = line[:TITLE_CHARS].rsplit(" ", 1)[0]
    return cut + "…"


class ChatStore:
    """Opens units of work over one engine. Built once per process, in the composition root."""

    def __init__(self, engine: Engine, *, _connection: SAConnection | None = None) -> None:
        self.engine = engine
        self._sessions = sessionmaker(_connection or engine, expire_on_commit=False)
        # SQLite's stand-in for Postgres' advisory locks: the local stack is one process.
        self._local_locks = [threading.Lock() for _ in range(64)]

    @contextmanager
    def owner_serialized(self, owner: Owner, *, wait_s: float = 10.0) -> Iterator[ChatStore]:
        """A store whose units of work run while no other `owner_serialized` block of this owner runs.

        The lock is held across several units of work and whatever runs between them (the gateway
        counts, stores and enqueues a user's turns in one order). Postgres: a session-level advisory
        lock on the one connection the block's units of work use, so any number of gateway
        processes agree; SQLite: a lock in this process. Raises after `wait_s` without the lock.
        """
        if self.engine.dialect.name != "postgresql":
            lock = self._local_locks[_owner_key(owner) % len(self._local_locks)]
            if not lock.acquire(timeout=wait_s):
                raise TimeoutError("another request of this user holds its lock")
            try:
                yield self
            finally:
                lock.release()
            return
        key = _owner_key(owner)
        with self.engine.connect() as connection:
            connection.execute(select(func.set_config("lock_timeout", f"{int(wait_s * 1000)}ms", True)))
            connection.execute(select(func.pg_advisory_lock(key)))
            connection.commit()  # the lock is the session's: it outlives this transaction
            try:
                yield ChatStore(self.engine, _connection=connection)
            finally:
                try:
                    connection.rollback()
                    connection.execute(select(func.pg_advisory_unlock(key)))
                    connection.commit()
                except Exception:
                    connection.invalidate()  # a lost session's locks are released by the server

    @contextmanager
    def unit_of_work(self) -> Iterator[ChatRepository]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions.begin() as session:
            yield ChatRepository(session)
