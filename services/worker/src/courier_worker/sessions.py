"""Durable attempts: the turn's agent loop saved step by step in the database, through Strands' own
session management (`RepositorySessionManager` over a `SessionRepository` backed by the chat store).

The session is the turn (`session_id` = turn id) and holds only the turn's own messages: the user's
question, each assistant message (its text and tool calls) and each tool result, saved as the agent
adds them. The conversation's earlier turns are the agent's history, loaded fresh by every attempt
and put in front. A retried attempt restores the saved messages and goes on from the last completed
step: a tool whose result was saved never runs again, and a step already answered is not asked of
the model again. The records are deleted when the turn ends.

Nothing is written until the agent calls its first tool: before that, a retry has nothing to gain
(it asks the model again either way), so a plain answer costs no writes. From the first tool call
on, everything so far is written, then each record as it comes.

Saving is best effort and never stops the answer: when a write fails (the database is away) the
attempt stops saving, and a retry goes on from the last step that was saved.
"""

from __future__ import annotations

import uuid
from typing import Any

from strands.session.session_repository import SessionRepository
from strands.types.session import Session, SessionAgent, SessionMessage

from courier_worker.failures import is_database_outage
from courier_worker.observability import logger
from courier_worker.ports import TurnStore


class TurnSessionRepository(SessionRepository):
    """Strands' SessionRepository over the chat store, for one turn."""

    def __init__(self, store: TurnStore, turn_id: uuid.UUID, *, restore: bool = True) -> None:
        self.store = store
        self.turn_id = turn_id
        self.restore = restore  # False: nothing can be saved yet (a first attempt), so reads are skipped
        self.saving = True  # False after a failed write: later steps are not saved (no gaps)
        self.held: dict[tuple[str, str, int], dict[str, Any]] | None = {}  # None: writing through

    # ------------------------------------------------------------ reads (when the agent is built)

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        data = self._read("session", "", -1)
        return None if data is None else Session.from_dict(data)

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        data = self._read("agent", agent_id, -1)
        return None if data is None else SessionAgent.from_dict(data)

    def read_message(
        self, session_id: str, agent_id: str, message_id: int, **kwargs: Any
    ) -> SessionMessage | None:
        data = self._read("message", agent_id, message_id)
        return None if data is None else SessionMessage.from_dict(data)

    def list_messages(
        self, session_id: str, agent_id: str, limit: int | None = None, offset: int = 0, **kwargs: Any
    ) -> list[SessionMessage]:
        if not self.restore:
            return []
        with self.store.unit_of_work() as repo:
            rows = repo.session_messages(self.turn_id, agent_id, offset, limit)
        return [SessionMessage.from_dict(row) for row in rows]

    # ------------------------------------------------------------ writes (as the agent goes)

    def create_session(self, session: Session, **kwargs: Any) -> Session:
        self._write("session", "", -1, session.to_dict())
        return session

    def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        self._write("agent", session_agent.agent_id, -1, session_agent.to_dict())

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        self._write("agent", session_agent.agent_id, -1, session_agent.to_dict())

    def create_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        self._write("message", agent_id, session_message.message_id, session_message.to_dict())

    def update_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        self._write("message", agent_id, session_message.message_id, session_message.to_dict())

    def _read(self, kind: str, agent_id: str, message_id: int) -> dict[str, Any] | None:
        if not self.restore:
            return None
        with self.store.unit_of_work() as repo:
            return repo.session_record(self.turn_id, kind, agent_id, message_id)

    def _write(self, kind: str, agent_id: str, message_id: int, data: dict[str, Any]) -> None:
        if not self.saving:
            return
        records = {(kind, agent_id, message_id): data}
        if self.held is not None:
            self.held.update(records)
            if not (kind == "message" and _calls_a_tool(data)):
                return
            records, self.held = self.held, None  # the first tool call: write all, then through
        try:
            with self.store.unit_of_work() as repo:
                for (kind_, agent_id_, message_id_), data_ in records.items():
                    repo.put_session_record(self.turn_id, kind_, agent_id_, message_id_, data_)
        except Exception as error:
            if not is_database_outage(error):
                raise
            self.saving = False
            logger.warning(
                "database unavailable: the agent's steps are no longer saved for a retry",
                extra={"error_type": type(error).__name__},
            )


def _calls_a_tool(session_message: dict[str, Any]) -> bool:
    message = session_message.get("message") or {}
    return any("toolUse" in block for block in message.get("content", []))
