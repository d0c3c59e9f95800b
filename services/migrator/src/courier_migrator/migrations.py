"""Running Courier's Alembic migrations from code: the migrator Lambda, `courier db` and the tests.

`root` is the folder holding `alembic.ini` and `migrations/`: the repository locally, the unpacked
zip (LAMBDA_TASK_ROOT) in AWS. The caller's engine is used as it is, so an engine that logs in
with an IAM token per connection migrates the same way as one with a password in its URL.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine


def alembic_config(root: Path, *, log_steps: bool = False, stdout: TextIO | None = None) -> Config:
    """Alembic's config for Courier's migrations; `log_steps` prints each migration as it runs."""
    config = Config(str(root / "alembic.ini"), stdout=stdout or sys.stdout)
    config.set_main_option("script_location", str(root / "migrations"))
    config.attributes["configure_logging"] = log_steps
    return config


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(root: Path, engine: Engine, revision: str = "head", *, log_steps: bool = False) -> str | None:
    """Migrate to `revision` in one transaction; returns the revision the database is at afterwards."""
    config = alembic_config(root, log_steps=log_steps)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return current_revision(engine)
