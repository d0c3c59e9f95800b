"""Prod alarms reach someone: the topic's key lets CloudWatch publish, and no placeholder address ships.

CloudWatch publishes alarm notifications to an encrypted topic only if the key policy lets
cloudwatch.amazonaws.com use the key (kms:Decrypt and kms:GenerateDataKey*); the AWS-managed
`aws/sns` key's policy can't be changed, so it must not be used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from infra_harness import ACCOUNT, Recorded, load, run_program, stack_file_config

from courier_infra import packaging
from courier_infra.config import ConfigError, load_stack_config


def key_policy(recorded: Recorded) -> dict[str, object]:
    key = recorded.one("aws:kms/key:Key", "alarms")
    document: dict[str, object] = json.loads(key.inputs["policy"])
    return document


def test_the_alarm_topic_uses_a_customer_managed_key_not_aws_sns(prod: Recorded) -> None:
    topic = prod.one("aws:sns/topic:Topic", "alarms")
    key = prod.one("aws:kms/key:Key", "alarms")
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    assert not str(topic.inputs["kmsMasterKeyId"]).startswith("alias/aws/")
    assert key.inputs["enableKeyRotation"] is True
    alias = prod.one("aws:kms/alias:Alias", "alarms")
    assert alias.inputs["name"] == "alias/courier-prod-alarms"


def test_the_key_policy_lets_cloudwatch_use_the_key_and_the_account_administer_it(prod: Recorded) -> None:
    statements = key_policy(prod)["Statement"]
    assert isinstance(statements, list)
    by_principal = {json.dumps(s["Principal"], sort_keys=True): s for s in statements}
    cloudwatch = by_principal[json.dumps({"Service": "cloudwatch.amazonaws.com"})]
    assert cloudwatch["Effect"] == "Allow"
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    admin = by_principal[json.dumps({"AWS": f"arn:aws:iam::{ACCOUNT}:root"})]
    assert admin["Effect"] == "Allow" and admin["Action"] == "kms:*"
    assert len(statements) == 2  # nobody else


def test_every_prod_alarm_notifies_the_encrypted_topic(prod: Recorded) -> None:
    topic_arn = prod.one("aws:sns/topic:Topic", "alarms").outputs["arn"]
    alarms = prod.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert alarms
    for alarm in alarms:
        assert alarm.inputs["alarmActions"] == [topic_arn] == alarm.inputs["okActions"]


def test_dev_has_no_topic_and_no_key(dev: Recorded) -> None:
    assert dev.of_type("aws:sns/topic:Topic") == [] and dev.of_type("aws:kms/key:Key") == []


def test_no_stack_file_ships_an_alarm_address_and_prod_subscribes_nobody(prod: Recorded) -> None:
    for stack in ("dev", "prod"):
        assert "courier:alarmEmail" not in stack_file_config(stack)
        assert load(stack).alarm_email is None
    assert prod.of_type("aws:sns/topicSubscription:TopicSubscription") == []


def test_an_alarm_email_when_set_is_subscribed_to_the_topic(
    artifacts: Mapping[str, packaging.Artifact],
) -> None:
    recorded = run_program(
        "prod", {**stack_file_config("prod"), "courier:alarmEmail": "oncall@acme.io"}, artifacts
    )
    subscription = recorded.one("aws:sns/topicSubscription:TopicSubscription", "alarms-email")
    assert subscription.inputs["protocol"] == "email"
    assert subscription.inputs["endpoint"] == "oncall@acme.io"
    assert subscription.inputs["topic"] == recorded.one("aws:sns/topic:Topic", "alarms").outputs["arn"]


@pytest.mark.parametrize("address", ["oncall@example.com", "ops@EXAMPLE.org", "me@team.example", "a@b.test"])
def test_placeholder_addresses_are_refused(address: str) -> None:
    with pytest.raises(ConfigError, match="placeholder"):
        load_stack_config("prod", {**stack_file_config("prod"), "courier:alarmEmail": address})
