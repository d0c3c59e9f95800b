"""`courier db upgrade|current|history` on fresh SQLite and Postgres databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from courier_local.cli import app


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_upgrade_then_current_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code, out, err = run("db", "upgrade", "--database-url", url)
    assert code == 0, err
    assert "Migrating" in err and "Done in" in err  # progress for the long step
    assert {"conversations", "turns", "connections"} <= set(inspect(create_engine(url)).get_table_names())
    code, out, _ = run("db", "current", "--database-url", url)
    assert code == 0 and out.strip().endswith("(head)")


def test_current_tells_an_empty_database_to_upgrade(tmp_path: Path) -> None:
    code, out, _ = run("db", "current", "--database-url", f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 0
    assert out.startswith("none") and "courier db upgrade" in out


def test_history_lists_the_migrations(tmp_path: Path) -> None:
    code, out, _ = run("db", "history")
    assert code == 0
    assert "-> 0001" in out


@pytest.mark.postgres
def test_upgrade_on_a_fresh_postgres_database(postgres_database_factory: Callable[[], str]) -> None:
    url = postgres_database_factory()
    code, _, err = run("db", "upgrade", "--database-url", url)
    assert code == 0, err
    assert "Migrating postgresql" in err and "Done in" in err
    code, out, _ = run("db", "current", "--database-url", url)
    assert out.strip().endswith("(head)")


def test_an_unreachable_database_fails_with_a_message() -> None:
    code, _, err = run("db", "upgrade", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert code == 1
    assert "migration failed" in err
