"""The stack files and the config model: per-profile defaults and clear errors for bad values."""

from __future__ import annotations

import pytest
from infra_harness import load, stack_file_config

from courier_infra.config import ConfigError, load_stack_config


def test_each_stack_file_is_valid_and_gets_its_profile_defaults() -> None:
    dev, prod = load("dev"), load("prod")
    assert (dev.profile, prod.profile) == ("dev", "prod")
    assert (dev.nat_gateways, prod.nat_gateways) == (1, 2)
    assert (dev.db_multi_az, prod.db_multi_az) == (False, True)
    assert (dev.deletion_protection, prod.deletion_protection) == (False, True)
    assert dev.log_retention_days < prod.log_retention_days
    assert (dev.alarm_topic, prod.alarm_topic) == (False, True)
    assert dev.architecture == prod.architecture == "arm64"
    # Structured values arrive as JSON strings, as the Pulumi CLI passes them.
    assert prod.interface_endpoints == ("bedrock-runtime", "secretsmanager")
    assert prod.alarm_email is None  # optional: no placeholder address ships


def test_stack_file_values_override_defaults() -> None:
    config = load_stack_config("dev", {**stack_file_config("dev"), "courier:natGateways": "2"})
    assert config.nat_gateways == 2


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("courier:logRetentionDays", "10", "courier:logRetentionDays"),
        ("courier:natGateways", "0", "courier:natGateways"),
        ("courier:architecture", "ppc64", "courier:architecture"),
        ("courier:interfaceEndpoints", '["execute-api"]', "breaks @connections"),
        ("courier:interfaceEndpoints", '["dynamodb"]', "unknown services"),
        ("courier:workerMaxConcurrency", "1", "courier:workerMaxConcurrency"),
        ("courier:workerBatchSize", "11", "courier:workerBatchSize"),
        ("courier:natGatewys", "2", "courier:natGatewys"),  # typo: unknown keys are refused
        ("courier:alarmEmail", "ops@acme.io", "alarmTopic is false"),
        ("courier:auth", '{"issuer": "http://idp", "audience": "a", "jwksUrl": "https://idp/jwks"}', "https"),
        ("courier:model", "", "courier:model"),
        ("courier:thinkingBudgetTokens", "512", "at least 1024"),
    ],
)
def test_bad_values_fail_with_the_key_named(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="dev") as error:
        load_stack_config("dev", {**stack_file_config("dev"), key: value})
    assert message in str(error.value)


def test_missing_model_and_region_and_unknown_profile_are_refused() -> None:
    values = stack_file_config("dev")
    with pytest.raises(ConfigError, match="courier:model"):
        load_stack_config("dev", {k: v for k, v in values.items() if k != "courier:model"})
    with pytest.raises(ConfigError, match="aws:region"):
        load_stack_config("dev", {k: v for k, v in values.items() if k != "aws:region"})
    with pytest.raises(ConfigError, match="courier:profile"):
        load_stack_config("staging", values)
    staging = load_stack_config("staging", {**values, "courier:profile": "prod"})
    assert (staging.stage, staging.db_multi_az) == ("staging", True)


def test_external_oidc_issuer_replaces_cognito() -> None:
    config = load_stack_config(
        "dev",
        {
            **stack_file_config("dev"),
            "courier:auth": '{"issuer": "https://idp.example.com/", "audience": "courier", '
            '"jwksUrl": "https://idp.example.com/jwks"}',
        },
    )
    assert config.auth is not None and config.auth.jwks_url == "https://idp.example.com/jwks"
