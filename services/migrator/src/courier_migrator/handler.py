"""The migrator Lambda (`courier_shared.lambda_entry` convention): `alembic upgrade head` in the VPC.

The zip carries `alembic.ini` and `migrations/` at its root (the packaging step puts them there).
A failed migration raises, the Invocation resource fails, and so does `pulumi up`: the new gateway
and worker code are not rolled out over a schema they don't match.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from courier_migrator.app_role import ensure_app_role
from courier_migrator.migrations import current_revision, upgrade
from courier_migrator.observability import logger
from courier_shared.lambda_entry import Invoke, LambdaEntry


def migrate(root: Path, engine: Engine, *, app_user: str | None = None) -> dict[str, str | None]:
    """Upgrade to head, then keep the application role in shape (when one is named).

    Returns the revisions before and after and the role, for the Invocation's result.
    """
    before = current_revision(engine)
    after = upgrade(root, engine)
    if app_user is not None:
        role = ensure_app_role(engine, app_user)
        logger.info("application role ready", extra={"app_role": role.model_dump()})
    return {"before": before, "after": after, "appRole": app_user}


def build(environ: Mapping[str, str]) -> Invoke:
    from courier_migrator.settings import MigratorSettings
    from courier_shared.db.aws import connect

    settings = MigratorSettings.model_validate(environ)
    root = Path(environ.get("LAMBDA_TASK_ROOT", os.getcwd()))

    def run(_event: dict[str, Any], _context: Any) -> dict[str, str | None]:
        engine = connect(settings, logger=logger)  # per invocation: a release is rare, and nothing stays open
        try:
            revisions = migrate(root, engine, app_user=settings.db_app_user)
        finally:
            engine.dispose()
        logger.info("schema migrated", extra=revisions)
        return revisions

    return run


lambda_handler = LambdaEntry(logger, build)
