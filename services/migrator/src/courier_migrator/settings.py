"""The migrator's settings: where the database is (as the master user) and which role the app uses."""

from __future__ import annotations

from pydantic import Field

from courier_shared.settings import DatabaseSettings


class MigratorSettings(DatabaseSettings):
    # Set by the Pulumi program: the role the gateway and worker log in as (see app_role.py).
    # Unset (the local stack, `courier db`), no role is created.
    db_app_user: str | None = Field(default=None, alias="DB_APP_USER", pattern=r"^[a-z][a-z0-9_]{0,62}$")
