"""A failed statement's parameters (a message's text, ids) never reach an exception message or a log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from courier_shared.db.models import Turn
from courier_shared.db.store import ChatStore


def test_a_failed_insert_names_no_parameter(store: ChatStore) -> None:
    text = f"my secret diagnosis {uuid.uuid4().hex}"
    turn = Turn(
        id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),  # no such conversation: the foreign key refuses the row
        tenant_id="acme",
        user_id="alice",
        client_message_id=uuid.uuid4(),
        user_text=text,
        created_at=datetime.now(UTC),
    )

    with pytest.raises(IntegrityError) as failed, store.unit_of_work() as repo:
        repo._session.add(turn)
        repo._session.flush()

    assert text not in str(failed.value)
    assert "parameters hidden" in str(failed.value)
