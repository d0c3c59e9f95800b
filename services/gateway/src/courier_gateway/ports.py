"""What the gateway needs from the chat store, as small interfaces (no SQLAlchemy session here).

`courier_shared.db.store.ChatStore` implements them over a database; the unit tests use an in-memory
fake (tests/fakes.py) that implements the same ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from courier_shared.db.models import Conversation, ToolInvocation, Turn
from courier_shared.db.store import Owner, Page


class GatewayRepository(Protocol):
    """The reads and writes of one unit of work the gateway makes, each scoped by its owner."""

    def register_connection(self, owner: Owner, connection_id: str, now: datetime) -> None: ...

    def unregister_connection(self, connection_id: str, now: datetime) -> None: ...

    def find_conversation(self, owner: Owner, conversation_id: uuid.UUID) -> Conversation | None: ...

    def create_conversation(
        self, owner: Owner, title: str, now: datetime, conversation_id: uuid.UUID | None = None
    ) -> Conversation: ...

    def list_conversations(
        self, owner: Owner, before: str | None = None, limit: int = 20
    ) -> Page[Conversation]: ...

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
        """The idempotent sendMessage (see ChatRepository.create_turn); raises ClientMessageIdReused."""
        ...

    def mark_enqueued(self, owner: Owner, turn_id: uuid.UUID, now: datetime) -> None: ...

    def count_turns_since(self, owner: Owner, since: datetime) -> int: ...

    def count_open_turns_since(self, owner: Owner, since: datetime, now: datetime) -> int: ...

    def add_listener(
        self, owner: Owner, turn_id: uuid.UUID, connection_id: str, request_id: str | None = None
    ) -> Turn | None: ...

    def find_request_turn(self, owner: Owner, connection_id: str, request_id: str) -> Turn | None: ...

    def remove_listener(self, turn_id: uuid.UUID, connection_id: str) -> None: ...

    def open_turn_of(self, owner: Owner, conversation_id: uuid.UUID, now: datetime) -> Turn | None: ...

    def request_cancel(self, owner: Owner, turn_id: uuid.UUID, now: datetime) -> Turn | None: ...

    def history(
        self, owner: Owner, conversation_id: uuid.UUID, before: str | None = None, limit: int = 20
    ) -> Page[Turn]:
        """Raises InvalidCursor for a cursor the store did not issue."""
        ...

    def tool_invocations_of(
        self, owner: Owner, turn_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ToolInvocation]]:
        """The tool calls of several turns in one query: turn id → its calls in the order made."""
        ...


class GatewayStore(Protocol):
    def unit_of_work(self) -> AbstractContextManager[GatewayRepository]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        ...

    def owner_serialized(self, owner: Owner) -> AbstractContextManager[GatewayStore]:
        """A store whose units of work run while no other such block of this owner runs."""
        ...
