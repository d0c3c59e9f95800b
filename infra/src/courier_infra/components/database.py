"""Database: RDS PostgreSQL in the private subnets, encrypted, TLS-only, password managed by RDS.

RDS generates the master password and keeps it in a Secrets Manager secret it rotates; the
Lambdas get the secret's ARN (`DB_SECRET_ARN`) and read it at cold start. Prod: Multi-AZ,
deletion protection, a final snapshot (`courier-<stage>-final-<8 hex digits>`), 7 days of backups.

Optional (`courier:rdsProxy: true`): an RDS Proxy that requires TLS and IAM auth from clients and
uses the same secret towards the database. Functions then connect to the proxy endpoint with an
IAM token (`DB_IAM_AUTH=true`, `DB_USER`) and psycopg's `prepare_threshold=None`, because
protocol-level prepared statements pin proxy sessions.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random

from courier_infra import iam
from courier_infra.components.network import Network
from courier_infra.config import StackConfig


class Database(pulumi.ComponentResource):
    def __init__(
        self, name: str, config: StackConfig, network: Network, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("courier:database:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"courier:stage": config.stage}
        major = config.db_engine_version.split(".")[0]

        subnet_group = aws.rds.SubnetGroup(name, subnet_ids=network.private_subnet_ids, tags=tags, opts=child)
        parameters = aws.rds.ParameterGroup(
            name,
            family=f"postgres{major}",
            parameters=[{"name": "rds.force_ssl", "value": "1"}],  # refuse unencrypted connections
            tags=tags,
            opts=child,
        )
        identifier = f"courier-{config.stage}"
        final_snapshot: pulumi.Output[str] | None = None
        if not config.db_skip_final_snapshot:
            # RDS refuses a final snapshot whose name exists, so a fixed name makes the second teardown
            # of a stage (or replacing its database) fail. The suffix is drawn once per instance: the
            # keepers are the settings whose change replaces the instance, and so draw a new one.
            suffix = pulumi_random.RandomId(
                f"{name}-final-snapshot",
                byte_length=4,
                keepers={
                    "identifier": identifier,
                    "dbName": config.db_name,
                    "username": config.db_master_username,
                },
                opts=child,
            )
            final_snapshot = suffix.hex.apply(lambda digits: f"{identifier}-final-{digits}")
        self.instance = aws.rds.Instance(
            name,
            identifier=identifier,
            engine="postgres",
            engine_version=config.db_engine_version,
            instance_class=config.db_instance_class,
            allocated_storage=config.db_allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            db_name=config.db_name,
            username=config.db_master_username,
            manage_master_user_password=True,
            iam_database_authentication_enabled=False,
            publicly_accessible=False,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[network.database_security_group.id],
            parameter_group_name=parameters.name,
            multi_az=config.db_multi_az,
            deletion_protection=config.deletion_protection,
            backup_retention_period=config.db_backup_retention_days,
            skip_final_snapshot=config.db_skip_final_snapshot,
            final_snapshot_identifier=final_snapshot,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            apply_immediately=config.profile == "dev",
            tags=tags,
            opts=child,
        )
        self.secret_arn: pulumi.Output[str] = self.instance.master_user_secrets.apply(
            lambda secrets: secrets[0]["secret_arn"] if secrets else ""
        )
        self.host: pulumi.Output[str] = self.instance.address
        self.port: pulumi.Output[int] = self.instance.port
        self.name = config.db_name
        self.user = config.db_master_username
        self.proxy: aws.rds.Proxy | None = None

        if config.rds_proxy:
            if network.proxy_security_group is None:
                raise ValueError("courier:rdsProxy needs the network's proxy security group")
            role = aws.iam.Role(
                f"{name}-proxy",
                assume_role_policy=iam.assume_role_policy("rds.amazonaws.com"),
                tags=tags,
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-proxy",
                role=role.id,
                policy=iam.policy_json(
                    [iam.statement("ReadDatabaseSecret", ["secretsmanager:GetSecretValue"], self.secret_arn)]
                ),
                opts=child,
            )
            self.proxy = aws.rds.Proxy(
                name,
                name=f"courier-{config.stage}",
                engine_family="POSTGRESQL",
                role_arn=role.arn,
                require_tls=True,
                vpc_subnet_ids=network.private_subnet_ids,
                vpc_security_group_ids=[network.proxy_security_group.id],
                auths=[{"auth_scheme": "SECRETS", "iam_auth": "REQUIRED", "secret_arn": self.secret_arn}],
                tags=tags,
                opts=child,
            )
            target_group = aws.rds.ProxyDefaultTargetGroup(name, db_proxy_name=self.proxy.name, opts=child)
            aws.rds.ProxyTarget(
                name,
                db_proxy_name=self.proxy.name,
                target_group_name=target_group.name,
                db_instance_identifier=self.instance.identifier,
                opts=child,
            )
            self.host = self.proxy.endpoint

        self.register_outputs({"host": self.host, "secretArn": self.secret_arn})

    def environment(self) -> dict[str, pulumi.Input[str]]:
        """The DB_* settings every database user reads (see courier_shared.settings.DatabaseSettings)."""
        env: dict[str, pulumi.Input[str]] = {
            "DB_HOST": self.host,
            "DB_PORT": self.port.apply(str),
            "DB_NAME": self.name,
            "DB_SECRET_ARN": self.secret_arn,
        }
        if self.proxy is not None:
            env |= {"DB_IAM_AUTH": "true", "DB_USER": self.user}
        return env

    def access_statements(self, config: StackConfig, account_id: pulumi.Input[str]) -> list[iam.Statement]:
        """What a function needs to log in: the secret, or rds-db:connect through the proxy."""
        if self.proxy is None:
            return [iam.statement("ReadDatabaseSecret", ["secretsmanager:GetSecretValue"], self.secret_arn)]
        proxy_id = self.proxy.arn.apply(lambda arn: arn.rsplit(":", 1)[-1])
        resource = pulumi.Output.concat(
            f"arn:{iam.partition_of(config.region)}:rds-db:{config.region}:",
            account_id,
            ":dbuser:",
            proxy_id,
            f"/{self.user}",
        )
        return [iam.statement("ConnectThroughProxy", ["rds-db:connect"], resource)]
