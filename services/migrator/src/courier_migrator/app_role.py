"""The application's database role: what the gateway and worker log in as, instead of the master user.

The migrator (logged in as the master user, which owns every table) runs this after each upgrade.
It is idempotent: it creates the role if it is missing and re-applies the grants, so tables added
by a migration are covered (and future ones by default privileges). The role may read and write
rows and use sequences in the `public` schema; it owns nothing, so it cannot drop or alter tables,
create roles or databases, or touch Alembic's version table.

On RDS the role logs in with IAM database authentication: it is granted `rds_iam` (a role only RDS
has; elsewhere, e.g. a local Postgres, that step is skipped and the caller logs in as it sees fit).
Not an Alembic revision on purpose: roles are cluster-wide, not part of the schema's history.
"""

from __future__ import annotations

import re

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, text

ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_PRIVILEGES = "USAGE, SELECT, UPDATE"
SCHEMA = "public"
RDS_IAM_ROLE = "rds_iam"


class AppRole(BaseModel):
    """What `ensure_app_role` did, for the migrator's result."""

    role: str
    created: bool
    iam_auth: bool


def _exists(connection: Connection, role: str) -> bool:
    return bool(connection.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}))


def ensure_app_role(engine: Engine, role: str) -> AppRole:
    """Create `role` if missing and grant it exactly the application's privileges (one transaction)."""
    if not ROLE_NAME.fullmatch(role):
        raise ValueError(f"invalid application role name {role!r}: lower-case letters, digits and _")
    with engine.begin() as connection:
        quote = connection.dialect.identifier_preparer.quote
        name, schema = quote(role), quote(SCHEMA)
        database = quote(str(connection.scalar(text("SELECT current_database()"))))
        created = not _exists(connection, role)
        if created:
            connection.execute(text(f"CREATE ROLE {name} LOGIN"))
        statements = [
            f"GRANT CONNECT ON DATABASE {database} TO {name}",
            f"GRANT USAGE ON SCHEMA {schema} TO {name}",
            f"GRANT {TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA {schema} TO {name}",
            f"GRANT {SEQUENCE_PRIVILEGES} ON ALL SEQUENCES IN SCHEMA {schema} TO {name}",
            # Tables and sequences later migrations create (as this same user) get the same grants.
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT {TABLE_PRIVILEGES} ON TABLES TO {name}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCES TO {name}",
        ]
        for statement in statements:
            connection.execute(text(statement))
        if connection.scalar(text("SELECT to_regclass('alembic_version')")) is not None:
            connection.execute(text(f"REVOKE ALL ON TABLE alembic_version FROM {name}"))
        iam_auth = _exists(connection, RDS_IAM_ROLE)
        if iam_auth:
            connection.execute(text(f"GRANT {quote(RDS_IAM_ROLE)} TO {name}"))
    return AppRole(role=role, created=created, iam_auth=iam_auth)
