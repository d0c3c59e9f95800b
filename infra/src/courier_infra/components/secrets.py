"""Secrets the stage generates for itself: the key that signs the gateway's pagination cursors.

A Secrets Manager secret whose value is generated here, on the first deployment, and then kept
(`ignore_changes`): later runs of the program generate another value that is never applied, so
cursors stay valid across deployments. The value never appears in a Lambda's environment: the
gateway gets the secret's ARN and reads the value once per cold start, with GetSecretValue on
this one secret only. To change the key, put a new value in the secret (`aws secretsmanager
put-secret-value`); cursors issued with the old one are then refused as not Courier's, and a
client starts paging again from the newest page.
"""

from __future__ import annotations

import secrets

import pulumi
import pulumi_aws as aws

from courier_infra import iam
from courier_infra.config import StackConfig

CURSOR_KEY_BYTES = 48


class CursorKey(pulumi.ComponentResource):
    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("courier:secrets:CursorKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.secret = aws.secretsmanager.Secret(
            name,
            name_prefix=f"courier-{config.stage}-cursor-key-",
            description="Signs the pagination cursors of Courier's WebSocket gateway",
            recovery_window_in_days=0 if config.profile == "dev" else 7,
            tags={"courier:stage": config.stage},
            opts=child,
        )
        self.version = aws.secretsmanager.SecretVersion(
            name,
            secret_id=self.secret.id,
            secret_string=pulumi.Output.secret(secrets.token_urlsafe(CURSOR_KEY_BYTES)),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["secret_string"]),
        )
        self.arn = self.secret.arn
        self.register_outputs({"arn": self.arn})

    def read_statements(self) -> list[iam.Statement]:
        """The gateway's: read this secret, and no other."""
        return [iam.statement("ReadCursorKey", ["secretsmanager:GetSecretValue"], self.secret.arn)]
