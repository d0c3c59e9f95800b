"""The migrator Lambda: `alembic upgrade head` inside the VPC, invoked by `pulumi up` on every release.

The zip carries `alembic.ini` and `migrations/` at its root (the packaging step puts them there).
A failed migration raises, the Invocation resource fails, and so does `pulumi up`: the new gateway
and worker code are not rolled out over a schema they don't match.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from sqlalchemy import Engine

from courier_shared.db.engine import build_engine
from courier_shared.settings import DatabaseSettings

logger = Logger(service="courier-migrator")


def alembic_config(root: Path, database_url: str) -> Config:
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(root: Path, database_url: str) -> dict[str, str | None]:
    """Upgrade to head; returns the revisions before and after, for the Invocation's result."""
    engine = build_engine(database_url)
    try:
        before = current_revision(engine)
        command.upgrade(alembic_config(root, database_url), "head")
        after = current_revision(engine)
    finally:
        engine.dispose()
    return {"before": before, "after": after}


def _database_url(settings: DatabaseSettings) -> str:
    secret = None
    if settings.needs_secret and settings.db_secret_arn is not None:
        secrets = boto3.client("secretsmanager")
        secret = secrets.get_secret_value(SecretId=settings.db_secret_arn)["SecretString"]
    return settings.resolved_url(secret)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str | None]:
    root = Path(os.environ.get("LAMBDA_TASK_ROOT", Path.cwd()))
    revisions = upgrade(root, _database_url(DatabaseSettings()))
    logger.info("schema migrated", extra=revisions)
    return revisions
