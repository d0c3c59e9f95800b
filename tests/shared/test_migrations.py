"""Alembic owns the schema: upgrade and downgrade work from the repo root, and models never drift."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateTable

from courier_shared.db.models import Base, Turn

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC = str(Path(sys.executable).parent / "alembic")


def _alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [ALEMBIC, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("postgres_database_factory")()


def test_upgrade_head_creates_the_schema_and_downgrade_base_removes_it(empty_database_url):
    upgraded = _alembic(empty_database_url, "upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stderr
    engine = create_engine(empty_database_url)
    tables = set(inspect(engine).get_table_names())
    assert {"conversations", "turns", "connections", "turn_listeners", "tool_invocations"} <= tables

    downgraded = _alembic(empty_database_url, "downgrade", "base")
    assert downgraded.returncode == 0, downgraded.stderr
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_models_and_migrations_do_not_drift(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == []


def test_the_status_enum_column_is_the_migrated_varchar_and_check() -> None:
    """Turn.status is a TurnStatus Enum stored as 0001 made it: VARCHAR(16) + ck_turns_status_valid."""
    migration = (ROOT / "migrations/versions/0001_chat_turn_schema.py").read_text()
    ddl = str(CreateTable(Turn.__table__).compile(dialect=postgresql.dialect()))

    assert "status VARCHAR(16) NOT NULL" in ddl and "sa.Column('status', sa.String(length=16)" in migration
    check = "status IN ('queued', 'streaming', 'completed', 'failed', 'interrupted', 'cancelled')"
    assert f"CONSTRAINT ck_turns_status_valid CHECK ({check})" in ddl
    assert f"sa.CheckConstraint(\"{check}\", name=op.f('ck_turns_status_valid'))" in migration


def test_the_database_refuses_a_status_the_enum_does_not_know(database_url: str) -> None:
    engine = create_engine(database_url)
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO conversations (id, tenant_id, user_id, title, created_at, updated_at) "
                "VALUES ('00000000-0000-0000-0000-0000000000c1', 't', 'u', 'x', "
                "'2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO turns (id, conversation_id, tenant_id, user_id, client_message_id, attempt, "
                "status, user_text, assistant_text, last_seq, created_at, usage_estimated) VALUES "
                "('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000c1', 't', "
                "'u', '00000000-0000-0000-0000-0000000000e1', 0, 'paused', 'hi', '', -1, "
                "'2026-01-01 00:00:00+00', false)"
            )
        )
    engine.dispose()
