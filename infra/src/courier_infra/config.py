"""The stack's settings: every `courier:*` key of `Pulumi.<stack>.yaml`, validated in one Pydantic model.

Each key has a default per profile (`dev` or `prod`; the profile is the stack name unless
`courier:profile` says otherwise), so a stack file only holds what differs. Unknown keys and bad
values fail the program before any resource is declared, with the key named in the message.

Stack file shape (values may be strings, numbers, booleans, lists or objects):

    config:
      aws:region: eu-west-1
      courier:model: claude-haiku-4-5        # resolved by courier_shared.catalog
      courier:modelScope: auto               # optional: auto | <a scope the catalog knows>
      courier:thinkingBudgetTokens: 2048     # optional: extended thinking (0 = off, the default)
      courier:natGateways: 2
      courier:interfaceEndpoints: [bedrock-runtime, secretsmanager]
      courier:auth: {issuer: https://idp.example.com/, audience: courier, jwksUrl: https://.../jwks}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from courier_shared.protocol import DEFAULT_MAX_MESSAGE_CHARS, MAX_MESSAGE_CHARS

NAMESPACE = "courier"

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
INTERFACE_ENDPOINT_SERVICES = frozenset({"bedrock-runtime", "sqs", "secretsmanager"})
MIN_THINKING_BUDGET_TOKENS = 1024  # Bedrock refuses a smaller extended-thinking budget
# With thinking on, the worker's output limit is the budget plus this: the answer keeps the room it
# has without thinking (the worker's MAX_OUTPUT_TOKENS default), as Bedrock wants max_tokens > budget.
ANSWER_TOKENS = 2048
PLACEHOLDER_MAIL_DOMAINS = frozenset({"example.com", "example.net", "example.org"})
RESERVED_TLDS = frozenset({"example", "test", "invalid", "localhost"})

Profile = Literal["dev", "prod"]
Architecture = Literal["arm64", "x86_64"]

# What each profile starts from. Prod: HA NAT, Multi-AZ, protected, longer retention, alarms to SNS.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "dev": {
        "nat_gateways": 1,
        "db_instance_class": "db.t4g.micro",
        "db_multi_az": False,
        "deletion_protection": False,
        "db_backup_retention_days": 1,
        "db_skip_final_snapshot": True,
        "log_retention_days": 7,
        "log_level": "DEBUG",
        "worker_max_concurrency": 2,
        "body_expiration_days": 7,
        "alarm_topic": False,
        "api_gateway_logging_role": False,
        "throttle_rate_limit": 20,
        "throttle_burst_limit": 40,
    },
    "prod": {
        "nat_gateways": 2,
        "db_instance_class": "db.t4g.small",
        "db_multi_az": True,
        "deletion_protection": True,
        "db_backup_retention_days": 7,
        "db_skip_final_snapshot": False,
        "log_retention_days": 30,
        "log_level": "INFO",
        "worker_max_concurrency": 10,
        "body_expiration_days": 30,
        "alarm_topic": True,
        "api_gateway_logging_role": True,
        "throttle_rate_limit": 200,
        "throttle_burst_limit": 400,
    },
}


class ConfigError(ValueError):
    """The stack configuration is invalid; the message names each bad `courier:` key."""


class ExternalAuth(BaseModel):
    """An external OIDC issuer instead of the Cognito user pool this stack would otherwise create."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    issuer: str
    audience: str
    jwks_url: str

    @field_validator("issuer", "jwks_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL")
        return value


class StackConfig(BaseModel):
    """All `courier:*` settings of one stack, after per-profile defaults are applied."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    stage: str = Field(pattern=r"^[a-z][a-z0-9-]{0,19}$")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    profile: Profile

    # The model: one value, resolved by the catalog (see courier_shared.catalog.resolve).
    model: str = Field(min_length=1)
    model_scope: str = "auto"
    bedrock_region: str | None = None
    # Extended thinking: the model may reason in up to this many tokens before answering (streamed
    # and stored beside the answer). 0 = off. Only for a model the catalog says can think.
    thinking_budget_tokens: int = Field(default=0, ge=0, le=32_000)

    architecture: Architecture = "arm64"

    # Network: NAT is needed for @connections (no execute-api endpoint may be used, see docs).
    vpc_cidr: str = "10.0.0.0/16"
    nat_gateways: int = Field(ge=1, le=2)
    interface_endpoints: tuple[str, ...] = ()

    # Database.
    db_instance_class: str
    db_engine_version: str = "17"
    db_allocated_storage_gb: int = Field(default=20, ge=20, le=1000)
    db_multi_az: bool
    deletion_protection: bool  # the database and the user pool
    db_backup_retention_days: int = Field(ge=1, le=35)
    db_skip_final_snapshot: bool
    db_name: str = Field(default="courier", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    db_master_username: str = Field(default="courier_admin", pattern=r"^[a-z][a-z0-9_]{0,15}$")
    # The gateway's and worker's login (IAM auth), created and granted by the migrator.
    db_app_user: str = Field(default="courier_app", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    rds_proxy: bool = False

    # Functions.
    log_retention_days: int
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    worker_timeout_seconds: int = Field(default=120, ge=10, le=900)
    worker_memory_mb: int = Field(default=1024, ge=128, le=10240)
    worker_max_concurrency: int = Field(ge=2, le=1000)
    worker_batch_size: int = Field(default=1, ge=1, le=10)
    gateway_memory_mb: int = Field(default=512, ge=128, le=10240)
    # The protocol's bound: a longer message might not fit one 32 KB client frame (docs/protocol.md).
    max_message_chars: int = Field(default=DEFAULT_MAX_MESSAGE_CHARS, ge=1, le=MAX_MESSAGE_CHARS)
    send_rate_per_minute: int = Field(default=20, ge=1)
    max_open_turns: int = Field(default=3, ge=1)
    flush_interval_ms: int = Field(default=100, ge=10, le=2000)
    listener_grace_s: int = Field(default=5, ge=0, le=600)

    # WebSocket API: API Gateway's CloudWatch role is one per account and region, so exactly one
    # stack per account and region may own it: prod by default (the shipped stacks share
    # eu-west-1). A dev stack alone in an account/region sets `apiGatewayLoggingRole: true`.
    api_gateway_logging_role: bool
    # WebSocket API stage throttling.
    throttle_rate_limit: float = Field(gt=0)
    throttle_burst_limit: int = Field(gt=0)

    # Auth: Cognito user pool unless an external issuer is configured.
    auth: ExternalAuth | None = None
    tenant_claim: str = "custom:tenant_id"

    # Storage and observability.
    body_expiration_days: int = Field(ge=1, le=3650)
    alarm_topic: bool
    # Optional: subscribed to the alarm topic when set; unset, alarms reach the topic only.
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")

    @field_validator("log_retention_days")
    @classmethod
    def _known_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch accepts only {sorted(LOG_RETENTION_DAYS)}")
        return value

    @field_validator("thinking_budget_tokens")
    @classmethod
    def _bedrock_minimum(cls, value: int) -> int:
        if 0 < value < MIN_THINKING_BUDGET_TOKENS:
            raise ValueError(f"must be 0 (off) or at least {MIN_THINKING_BUDGET_TOKENS}, Bedrock's minimum")
        return value

    @field_validator("interface_endpoints")
    @classmethod
    def _known_endpoints(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "execute-api" in value:
            # With private DNS it captures *.execute-api.* and @connections calls then fail with 403.
            raise ValueError("execute-api must not have an interface endpoint: it breaks @connections")
        unknown = set(value) - INTERFACE_ENDPOINT_SERVICES
        if unknown:
            raise ValueError(
                f"unknown services {sorted(unknown)}; choose from {sorted(INTERFACE_ENDPOINT_SERVICES)}"
            )
        return tuple(sorted(set(value)))

    @field_validator("alarm_email")
    @classmethod
    def _not_a_placeholder(cls, value: str | None) -> str | None:
        # RFC 2606 reserves these for examples: nobody reads mail sent there.
        domain = (value or "").rpartition("@")[2].lower()
        if domain in PLACEHOLDER_MAIL_DOMAINS or domain.rpartition(".")[2] in RESERVED_TLDS:
            raise ValueError(
                f"{value} is a placeholder address: set a mailbox someone reads, or leave it unset"
            )
        return value

    @model_validator(mode="after")
    def _app_user_is_not_the_master(self) -> StackConfig:
        if self.db_app_user == self.db_master_username:
            raise ValueError(
                "dbAppUser must differ from dbMasterUsername: the application never logs in as master"
            )
        return self

    @model_validator(mode="after")
    def _alarm_email_needs_topic(self) -> StackConfig:
        if self.alarm_email is not None and not self.alarm_topic:
            raise ValueError("alarmEmail is set but alarmTopic is false: alarms would have nowhere to go")
        return self

    @property
    def model_region(self) -> str:
        """Where the worker calls Bedrock: the stack's region unless `courier:bedrockRegion` is set."""
        return self.bedrock_region or self.region

    @property
    def thinking_environment(self) -> dict[str, str]:
        return thinking_environment(self.thinking_budget_tokens)

    @property
    def queue_visibility_timeout_seconds(self) -> int:
        """Lambda's rule for SQS event sources: at least 6 x the function timeout."""
        return 6 * self.worker_timeout_seconds


def thinking_environment(budget: int) -> dict[str, str]:
    """The worker's thinking settings: none when off (the worker's default is off)."""
    if not budget:
        return {}
    return {"THINKING_BUDGET_TOKENS": str(budget), "MAX_OUTPUT_TOKENS": str(budget + ANSWER_TOKENS)}


def _decode(value: object) -> object:
    """Pulumi hands structured values (lists, objects) to the program as JSON strings."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def load_stack_config(stack: str, values: Mapping[str, object]) -> StackConfig:
    """Validate one stack's configuration.

    `values` is the stack's config map as Pulumi gives it to the program: fully-qualified keys
    (`courier:natGateways`, `aws:region`) to strings. Keys of other namespaces are ignored except
    `aws:region`.
    """
    settings: dict[str, object] = {}
    for key, value in values.items():
        namespace, _, name = key.partition(":")
        if namespace == NAMESPACE:
            settings[name] = _decode(value)
    region = values.get("aws:region")
    profile = settings.pop("profile", stack)
    if profile not in PROFILE_DEFAULTS:
        raise ConfigError(
            f"stack {stack!r}: courier:profile must be one of {sorted(PROFILE_DEFAULTS)} "
            f"(it defaults to the stack name), got {profile!r}"
        )
    if not region:
        raise ConfigError(f"stack {stack!r}: aws:region is not set")
    defaults = {to_camel(name): value for name, value in PROFILE_DEFAULTS[str(profile)].items()}
    merged = {**defaults, **settings, "stage": stack, "region": region, "profile": profile}
    try:
        return StackConfig.model_validate(merged)
    except ValidationError as error:
        problems = "; ".join(
            f"{NAMESPACE}:{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
            for issue in error.errors()
        )
        raise ConfigError(f"stack {stack!r} has invalid configuration: {problems}") from None


def config_from_pulumi() -> StackConfig:
    """The running Pulumi program's configuration (what the CLI passes in, or what tests set)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    values: dict[str, object] = dict(runtime_config.get_config_env())
    values.update(runtime_config.CONFIG.get())
    return load_stack_config(pulumi.get_stack(), values)
