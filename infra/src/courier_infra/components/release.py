"""Release: run `alembic upgrade head` through the migrator Lambda on every release and whenever the
database is created or replaced.

`aws.lambda_.Invocation` (lifecycle CREATE_ONLY) invokes the migrator when it is created or
replaced, and any change to its `triggers` replaces it. The triggers are:
- `release`: a hash of every Lambda zip (a release is any change to any function's code; the
  migrator's zip carries `migrations/` and `alembic.ini`, so a new migration is one too);
- `migrations`: a hash of `migrations/` and `alembic.ini` (said explicitly, not only via the zip);
- `database`: the instance's RDS resource id (DbiResourceId), which a replaced database changes,
  so a new, empty database is migrated before new code meets it.
A `pulumi up` that changes none of these does not invoke the migrator. A function error fails
the resource and so `pulumi up`; the gateway and worker depend on this resource, so new code
rolls out only after the schema is ready.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from courier_infra.components.database import Database
from courier_infra.components.functions import LambdaFunction

MIGRATOR_EVENT = {"command": "upgrade", "revision": "head"}


class Migrations(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        migrator: LambdaFunction,
        database: Database,
        migrations_hash: str,
        code_hashes: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("courier:release:Migrations", name, None, opts)
        self.invocation = aws.lambda_.Invocation(
            name,
            function_name=migrator.function.name,
            input=json.dumps(MIGRATOR_EVENT),
            triggers={
                "release": release_hash(code_hashes),
                "migrations": migrations_hash,
                "database": database.instance.resource_id,
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[database.instance, migrator.function],  # direct to the instance, never the proxy
            ),
        )
        self.register_outputs({"result": self.invocation.result})


def release_hash(code_hashes: Mapping[str, str]) -> str:
    """One value for the code of every function: changes when any of them does."""
    rows = [f"{service}={digest}" for service, digest in sorted(code_hashes.items())]
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()
