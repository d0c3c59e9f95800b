"""The chat-turn schema as SQLAlchemy 2.0 typed models. Alembic (migrations/) owns its history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from courier_shared.protocol import TurnStatus

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every engine: SQLite forgets the zone, so it is put back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: pass an aware UTC datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


JSONDocument = JSON().with_variant(JSONB(), "postgresql")
# A VARCHAR(16) with CHECK (status IN (...)) named ck_turns_status_valid, on every engine: the schema
# migrations 0001/0002 made, so the column reads and writes TurnStatus with no schema change.
TurnStatusColumn = Enum(
    TurnStatus,
    native_enum=False,
    length=16,
    values_callable=lambda statuses: [status.value for status in statuses],
    create_constraint=True,
    validate_strings=True,
    name="status_valid",
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, uuid.UUID: Uuid(), dict[str, Any]: JSONDocument}


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index(None, "tenant_id", "user_id", "updated_at", "id"),)


class Turn(Base):
    __tablename__ = "turns"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    client_message_id: Mapped[uuid.UUID]
    origin_connection_id: Mapped[str | None] = mapped_column(String(128))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[TurnStatus] = mapped_column(TurnStatusColumn, default=TurnStatus.QUEUED)
    user_text: Mapped[str] = mapped_column(Text)
    assistant_text: Mapped[str] = mapped_column(Text, default="")
    # The model's reasoning (extended thinking) before and between its answer's steps, never shown
    # as the answer: streamed as reasoning parts, returned in history beside the answer.
    reasoning_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    body_ref: Mapped[str | None] = mapped_column(String(1024))
    model_id: Mapped[str | None] = mapped_column(String(200))
    input_tokens: Mapped[int | None]
    output_tokens: Mapped[int | None]
    latency_ms: Mapped[int | None]
    time_to_first_token_ms: Mapped[int | None]
    stop_reason: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    cancel_requested_at: Mapped[datetime | None]
    last_seq: Mapped[int] = mapped_column(Integer, default=-1)
    enqueued_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    # The worker holding the turn and until when; renewed with each save (see courier_shared.turn_states).
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    # True when the tokens are the worker's estimate (the stream was cut before the model reported usage).
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id", "client_message_id"),
        Index(None, "conversation_id", "created_at", "id"),
        Index(None, "tenant_id", "user_id", "created_at"),
        Index(None, "status", "lease_expires_at"),
    )


class Connection(Base):
    __tablename__ = "connections"

    connection_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    connected_at: Mapped[datetime] = mapped_column(default=utcnow)
    disconnected_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "tenant_id", "user_id", "disconnected_at"),)


class TurnListener(Base):
    """A connection that receives a turn's chunks: the one that sent it, and every one that resumed it."""

    __tablename__ = "turn_listeners"

    turn_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"), primary_key=True)
    connection_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # Set when the listener is a request of the AI SDK's WebSocket chat transport: its frames carry
    # this `requestId` and a per-request `sequence` (docs/protocol.md, "AI SDK chat frames").
    request_id: Mapped[str | None] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentSessionRecord(Base):
    """The agent's session of one turn (Strands' RepositorySessionManager): the session, its agent's
    state and every message of the agent loop, saved as each is added, so a retried attempt goes on
    from the last completed step instead of starting over (no tool runs twice, no step is paid for
    twice). Deleted when the turn ends."""

    __tablename__ = "agent_session_records"

    turn_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # session | agent | message
    agent_id: Mapped[str] = mapped_column(String(128), primary_key=True)  # "" for the session
    message_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # -1 unless a message
    data: Mapped[dict[str, Any]]


class ToolInvocation(Base):
    __tablename__ = "tool_invocations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    turn_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    seq: Mapped[int]
    tool_call_id: Mapped[str] = mapped_column(String(128))
    tool_name: Mapped[str] = mapped_column(String(128))
    input: Mapped[dict[str, Any]]
    output_summary: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[int | None]
    # How many characters (code points) of the answer the worker had sent when the call was made:
    # where the call sits in the answer's text (history draws it there).
    text_offset: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("turn_id", "seq"),)
