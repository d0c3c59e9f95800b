"""The whole stage: resolves the model, builds the Lambda zips, declares every component.

Order matters and is explicit: the model is resolved before any resource is declared (an
unknown or retired model fails the program with the catalog's message); the migrator runs
(`Migrations`) after the database exists and before the gateway and worker code is rolled out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from courier_infra import iam, packaging
from courier_infra.components.auth import Auth
from courier_infra.components.database import Database
from courier_infra.components.event_source import WorkerTrigger
from courier_infra.components.functions import LambdaFunction
from courier_infra.components.network import Network
from courier_infra.components.observability import Alarms
from courier_infra.components.queue import TurnQueue
from courier_infra.components.release import Migrations
from courier_infra.components.secrets import CursorKey
from courier_infra.components.storage import BodyStorage
from courier_infra.components.websocket_api import (
    WebSocketApi,
    connections_endpoint,
    manage_connections_arn,
)
from courier_infra.config import ConfigError, StackConfig
from courier_shared.routes import ROUTE_SELECTION_EXPRESSION

ArtifactBuilder = Callable[[str, packaging.Architecture], packaging.Artifact]
CONSUME_QUEUE_ACTIONS = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
]


def resolve_model(config: StackConfig) -> Any:
    """The catalog's ResolvedModel for `courier:model`, or a ConfigError naming the key (also when
    `courier:thinkingBudgetTokens` asks a model to think that the catalog says cannot)."""
    from courier_shared import catalog

    try:
        model = catalog.resolve(config.model, config.model_region, scope=config.model_scope)
    except catalog.CatalogError as error:
        raise ConfigError(
            f"courier:model {config.model!r} (scope {config.model_scope!r}) cannot be used in "
            f"{config.model_region}: {error}"
        ) from None
    if config.thinking_budget_tokens and not model.supports_thinking:
        today = datetime.now(UTC).date()
        thinkers = ", ".join(
            m.key
            for m in catalog.catalog_models()
            if m.thinking and m.lifecycle(today) is catalog.Lifecycle.ACTIVE
        )
        raise ConfigError(
            f"courier:thinkingBudgetTokens is {config.thinking_budget_tokens}, but courier:model "
            f"{config.model!r} ({model.name}) does not support extended thinking with a budget. "
            f"Set it to 0, or use one of: {thinkers}"
        )
    return model


def bedrock_statements(model: Any, region: str, account_id: str) -> list[iam.Statement]:
    """Exactly the catalog's invoke statements for the resolved model."""
    from courier_shared import catalog

    return list(catalog.invoke_policy(model, region, account_id))


def default_builder(out_dir: Path = packaging.REPO_ROOT / "build") -> ArtifactBuilder:
    def build(service: str, architecture: packaging.Architecture) -> packaging.Artifact:
        return packaging.build(service, architecture, out_dir)

    return build


def migrations_hash(root: Path = packaging.REPO_ROOT) -> str:
    return packaging.tree_hash([root / "migrations", root / "alembic.ini"], root)


class CourierStack:
    """Every component of one stage, kept as attributes for outputs and tests."""

    def __init__(
        self,
        config: StackConfig,
        model: Any,
        *,
        build_artifact: ArtifactBuilder,
        migrations_hash: str,
    ) -> None:
        self.config = config
        self.model = model
        self.account_id = aws.get_caller_identity_output().account_id
        artifacts = {service: build_artifact(service, config.architecture) for service in packaging.SERVICES}

        self.network = Network("network", config)
        self.database = Database("database", config, self.network, account_id=self.account_id)
        self.queue = TurnQueue("turns", config)
        self.storage = BodyStorage("bodies", config)
        self.auth = Auth("auth", config)
        self.cursor_key = CursorKey("cursor-key", config)
        database_access = self.database.access_statements(config, self.account_id)

        self.migrator = LambdaFunction(
            "migrator",
            config,
            service="migrator",
            artifact=artifacts["migrator"],
            timeout_seconds=300,
            memory_mb=512,
            environment=self.database.migrator_environment(),
            statements=[self.database.migrator_statements()],
            network=self.network,
        )
        self.migrations = Migrations(
            "migrations",
            migrator=self.migrator,
            database=self.database,
            migrations_hash=migrations_hash,
            code_hashes={service: artifact.sha256 for service, artifact in artifacts.items()},
        )
        new_code_after_migrations = [self.migrations.invocation]

        self.authorizer = LambdaFunction(
            "authorizer",
            config,
            service="authorizer",
            artifact=artifacts["authorizer"],
            timeout_seconds=10,
            memory_mb=256,
            environment={
                "JWT_ISSUER": self.auth.issuer,
                "JWT_AUDIENCE": self.auth.audience,
                "JWKS_URL": self.auth.jwks_url,
                "TENANT_CLAIM": config.tenant_claim,
                "DEV_ISSUER_ENABLED": "false",
            },
        )
        self.gateway = LambdaFunction(
            "gateway",
            config,
            service="gateway",
            artifact=artifacts["gateway"],
            timeout_seconds=15,
            memory_mb=config.gateway_memory_mb,
            environment={
                **self.database.environment(),
                "TURN_QUEUE_URL": self.queue.queue.url,
                "MAX_MESSAGE_CHARS": str(config.max_message_chars),
                "SEND_RATE_PER_MINUTE": str(config.send_rate_per_minute),
                "MAX_OPEN_TURNS": str(config.max_open_turns),
                "CURSOR_KEY_SECRET_ARN": self.cursor_key.arn,
            },
            statements=[
                database_access,
                [iam.statement("EnqueueTurns", ["sqs:SendMessage"], self.queue.queue.arn)],
                self.cursor_key.read_statements(),
            ],
            network=self.network,
            depends_on=new_code_after_migrations,
        )

        self.api = aws.apigatewayv2.Api(
            "websocket",
            name=f"courier-{config.stage}",
            protocol_type="WEBSOCKET",
            route_selection_expression=ROUTE_SELECTION_EXPRESSION,
            tags={"courier:stage": config.stage},
        )
        self.worker = LambdaFunction(
            "worker",
            config,
            service="worker",
            artifact=artifacts["worker"],
            timeout_seconds=config.worker_timeout_seconds,
            memory_mb=config.worker_memory_mb,
            environment={
                **self.database.environment(),
                "MODEL_ID": model.model_id,
                "BEDROCK_REGION": config.model_region,
                "CONNECTIONS_ENDPOINT_URL": connections_endpoint(self.api, config),
                "BODY_BUCKET": self.storage.bucket.bucket,
                "FLUSH_INTERVAL_MS": str(config.flush_interval_ms),
                "LISTENER_GRACE_S": str(config.listener_grace_s),
                "DEAD_LETTER_QUEUE_ARN": self.queue.dead_letter_queue.arn,
                **config.thinking_environment,
            },
            statements=[
                database_access,
                [
                    # ChangeMessageVisibility: a record given up for a temporary reason is
                    # retried in seconds, not after the visibility timeout.
                    iam.statement("ConsumeTurns", CONSUME_QUEUE_ACTIONS, self.queue.queue.arn),
                    iam.statement(
                        "ConsumeDeadLetters", CONSUME_QUEUE_ACTIONS, self.queue.dead_letter_queue.arn
                    ),
                    iam.statement(
                        "PostToConnections",
                        ["execute-api:ManageConnections"],
                        manage_connections_arn(self.api, config),
                    ),
                    iam.statement(
                        "ReadWriteBodies", ["s3:GetObject", "s3:PutObject"], self.storage.body_objects_arn
                    ),
                ],
                self.account_id.apply(
                    lambda account: bedrock_statements(model, config.model_region, account)
                ),
            ],
            network=self.network,
            depends_on=new_code_after_migrations,
        )
        self.websocket = WebSocketApi(
            "websocket",
            config,
            api=self.api,
            functions={"gateway": self.gateway},
            authorizer=self.authorizer,
            account_id=self.account_id,
        )
        self.worker_trigger = WorkerTrigger("worker-trigger", config, queue=self.queue, worker=self.worker)
        self.alarms = Alarms(
            "alarms", config, queue=self.queue, worker=self.worker, account_id=self.account_id
        )
        self.artifacts = artifacts

    def export(self) -> None:
        pulumi.export("websocketUrl", self.websocket.url)
        pulumi.export("modelId", self.model.model_id)
        pulumi.export("maxMessageChars", self.config.max_message_chars)  # the page's limit (courier page)
        pulumi.export("jwtIssuer", self.auth.issuer)
        pulumi.export("jwtAudience", self.auth.audience)
        if self.auth.user_pool is not None and self.auth.client is not None:
            # What an operator needs to create users and sign them in (docs/deploy.md).
            pulumi.export("userPoolId", self.auth.user_pool.id)
            pulumi.export("userPoolClientId", self.auth.client.id)
        pulumi.export("turnQueueUrl", self.queue.queue.url)
        pulumi.export("deadLetterQueueUrl", self.queue.dead_letter_queue.url)
        pulumi.export("bodyBucket", self.storage.bucket.bucket)
        pulumi.export("databaseHost", self.database.host)
        pulumi.export("databaseSecretArn", self.database.secret_arn)
        pulumi.export("migratorFunction", self.migrator.function.name)
        if self.alarms.topic is not None:
            pulumi.export("alarmTopicArn", self.alarms.topic.arn)
