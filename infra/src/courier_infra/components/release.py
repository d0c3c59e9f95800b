"""Release: run `alembic upgrade head` through the migrator Lambda on every change to migrations/.

`aws.lambda_.Invocation` invokes the migrator when its trigger (a hash of `migrations/` and
`alembic.ini`) changes; a function error fails the resource and so `pulumi up`. The gateway and
worker functions depend on this resource, so new code rolls out only after the schema is ready.
"""

from __future__ import annotations

import json

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
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("courier:release:Migrations", name, None, opts)
        self.invocation = aws.lambda_.Invocation(
            name,
            function_name=migrator.function.name,
            input=json.dumps(MIGRATOR_EVENT),
            triggers={"migrations": migrations_hash},
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[
                    database.instance,
                    migrator.function,
                    *([database.proxy] if database.proxy is not None else []),
                ],
            ),
        )
        self.register_outputs({"result": self.invocation.result})
