"""The migrator Lambda: `alembic upgrade head` inside the VPC, invoked by `pulumi up` on every release.

The zip carries `alembic.ini` and `migrations/` at its root (the packaging step puts them there).
A failed migration raises, the Invocation resource fails, and so does `pulumi up`: the new gateway
and worker code are not rolled out over a schema they don't match.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from sqlalchemy import Engine

from courier_migrator.migrations import current_revision, upgrade
from courier_shared.db.aws import connect
from courier_shared.settings import DatabaseSettings

logger = Logger(service="courier-migrator")


def migrate(root: Path, engine: Engine) -> dict[str, str | None]:
    """Upgrade to head; returns the revisions before and after, for the Invocation's result."""
    before = current_revision(engine)
    after = upgrade(root, engine)
    return {"before": before, "after": after}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str | None]:
    root = Path(os.environ.get("LAMBDA_TASK_ROOT", Path.cwd()))
    engine = connect(DatabaseSettings())
    try:
        revisions = migrate(root, engine)
    finally:
        engine.dispose()
    logger.info("schema migrated", extra=revisions)
    return revisions
