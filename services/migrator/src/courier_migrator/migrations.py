"""Running Courier's Alembic migrations from code: the migrator Lambda, `courier db` and the tests.

`root` is the folder holding `alembic.ini` and `migrations/`: the repository locally, the unpacked
zip (LAMBDA_TASK_ROOT) in AWS.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from courier_shared.db.engine import build_engine


def alembic_config(
    root: Path, database_url: str, *, log_steps: bool = False, stdout: TextIO | None = None
) -> Config:
    """Alembic's config for `database_url`; `log_steps` prints each migration as it runs."""
    config = Config(str(root / "alembic.ini"), stdout=stdout or sys.stdout)
    config.set_main_option("script_location", str(root / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = log_steps
    return config


def current_revision(database_url: str) -> str | None:
    """The revision the database is at; None for an empty database."""
    engine = build_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade(root: Path, database_url: str, revision: str = "head", *, log_steps: bool = False) -> str | None:
    """Migrate to `revision`; returns the revision the database is at afterwards."""
    command.upgrade(alembic_config(root, database_url, log_steps=log_steps), revision)
    return current_revision(database_url)
