"""The migrator Lambda upgrades a real Postgres database to head and reports the revisions."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from courier_migrator.handler import migrate
from courier_shared.db.engine import build_engine

ROOT = Path(__file__).resolve().parents[2]


def test_upgrade_takes_an_empty_postgres_database_to_head_and_is_repeatable(postgres_database_factory):
    url = postgres_database_factory()
    engine = build_engine(url)

    first = migrate(ROOT, engine)
    second = migrate(ROOT, engine)

    assert first["before"] is None and first["after"] is not None
    assert second == {"before": first["after"], "after": first["after"], "appRole": None}
    assert "turns" in inspect(engine).get_table_names()
    engine.dispose()
