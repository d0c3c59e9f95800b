"""The CrossGuard policy pack: every rule passes a good resource and fails a bad one, and the real
dev and prod stacks pass every rule."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from infra_harness import Recorded
from pulumi_policy import PolicyResource, PolicyResourceOptions, ResourceValidationArgs, StackValidationArgs

from courier_infra.iam import RESOURCELESS_ACTIONS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "infra" / "policy"))
import courier_policies as rules

OPTIONS = PolicyResourceOptions(
    protect=False,
    ignore_changes=[],
    delete_before_replace=None,
    aliases=[],
    custom_timeouts=None,
    additional_secret_outputs=[],
)


def violations(
    rule: Callable[..., None], resource_type: str, props: dict[str, Any], name: str = "r"
) -> list[str]:
    found: list[str] = []
    args = ResourceValidationArgs(
        resource_type, props, f"urn:pulumi:t::courier::{resource_type}::{name}", name, OPTIONS, None
    )
    rule(args, lambda message, urn=None: found.append(message))
    return found


def iam_policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"role": "r", "policy": json.dumps({"Version": "2012-10-17", "Statement": list(statements)})}


QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:q.fifo"
STAGE_OK = {"accessLogSettings": {"format": '{"id": "$context.requestId"}'}, "defaultRouteSettings": {}}

CASES: list[tuple[str, Callable[..., None], str, dict[str, Any], dict[str, Any]]] = [
    # (case, rule, type, passing props, failing props)
    (
        "rds public",
        rules.rds_not_public,
        "aws:rds/instance:Instance",
        {"publiclyAccessible": False},
        {"publiclyAccessible": True},
    ),
    (
        "rds storage",
        rules.rds_encrypted,
        "aws:rds/instance:Instance",
        {"storageEncrypted": True},
        {"storageEncrypted": False},
    ),
    ("proxy tls", rules.rds_encrypted, "aws:rds/proxy:Proxy", {"requireTls": True}, {}),
    ("sqs sse", rules.queues_encrypted, "aws:sqs/queue:Queue", {"sqsManagedSseEnabled": True}, {}),
    (
        "sqs kms",
        rules.queues_encrypted,
        "aws:sqs/queue:Queue",
        {"kmsMasterKeyId": "alias/aws/sqs"},
        {"sqsManagedSseEnabled": False},
    ),
    ("sns kms", rules.queues_encrypted, "aws:sns/topic:Topic", {"kmsMasterKeyId": "alias/aws/sns"}, {}),
    (
        "dlq",
        rules.queues_have_dlq,
        "aws:sqs/queue:Queue",
        {
            "name": "turns.fifo",
            "redrivePolicy": json.dumps({"deadLetterTargetArn": QUEUE_ARN, "maxReceiveCount": 5}),
        },
        {"name": "turns.fifo"},
    ),
    (
        "iam wildcard action",
        rules.iam_least_privilege,
        "aws:iam/rolePolicy:RolePolicy",
        iam_policy({"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": QUEUE_ARN}),
        iam_policy({"Effect": "Allow", "Action": ["sqs:*"], "Resource": QUEUE_ARN}),
    ),
    (
        "iam star action",
        rules.iam_least_privilege,
        "aws:iam/rolePolicy:RolePolicy",
        iam_policy({"Effect": "Deny", "Action": "*", "Resource": "*"}),
        iam_policy({"Effect": "Allow", "Action": "*", "Resource": QUEUE_ARN}),
    ),
    (
        "iam star resource",
        rules.iam_least_privilege,
        "aws:iam/rolePolicy:RolePolicy",
        iam_policy({"Effect": "Allow", "Action": ["ec2:DescribeSubnets"], "Resource": "*"}),
        iam_policy(
            {"Effect": "Allow", "Action": ["sqs:SendMessage", "ec2:DescribeSubnets"], "Resource": ["*"]}
        ),
    ),
    (
        "iam not-action",
        rules.iam_least_privilege,
        "aws:iam/policy:Policy",
        iam_policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}),
        iam_policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b/*"}),
    ),
    (
        "log retention",
        rules.log_retention_set,
        "aws:cloudwatch/logGroup:LogGroup",
        {"retentionInDays": 7},
        {"name": "/aws/lambda/x"},
    ),
    (
        "token in query",
        rules.token_not_logged,
        "aws:apigatewayv2/stage:Stage",
        STAGE_OK,
        {**STAGE_OK, "accessLogSettings": {"format": '{"q": "$request.querystring.token"}'}},
    ),
    (
        "token in header",
        rules.token_not_logged,
        "aws:apigatewayv2/stage:Stage",
        STAGE_OK,
        {**STAGE_OK, "accessLogSettings": {"format": '{"p": "$request.header.Sec-WebSocket-Protocol"}'}},
    ),
    ("no access logs", rules.token_not_logged, "aws:apigatewayv2/stage:Stage", STAGE_OK, {}),
    (
        "data trace",
        rules.token_not_logged,
        "aws:apigatewayv2/stage:Stage",
        STAGE_OK,
        {**STAGE_OK, "defaultRouteSettings": {"dataTraceEnabled": True}},
    ),
    (
        "execute-api endpoint",
        rules.no_private_execute_api_endpoint,
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        {"serviceName": "com.amazonaws.eu-west-1.bedrock-runtime", "privateDnsEnabled": True},
        {"serviceName": "com.amazonaws.eu-west-1.execute-api", "privateDnsEnabled": True},
    ),
]


@pytest.mark.parametrize(
    ("rule", "resource_type", "good", "bad"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule_passes_the_good_resource_and_fails_the_bad_one(
    rule: Callable[..., None], resource_type: str, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    assert violations(rule, resource_type, good) == []
    assert violations(rule, resource_type, bad) != []


def test_dead_letter_queues_need_no_dlq_of_their_own() -> None:
    assert violations(rules.queues_have_dlq, "aws:sqs/queue:Queue", {"name": "turns-dlq.fifo"}) == []


def policy_resource(resource_type: str, props: dict[str, Any], name: str) -> PolicyResource:
    return PolicyResource(resource_type, props, f"urn:x::{name}", name, OPTIONS, None, None, [], {})


def stack_violations(resources: list[PolicyResource]) -> list[str]:
    found: list[str] = []
    rules.buckets_private_and_encrypted(
        StackValidationArgs(resources), lambda message, urn=None: found.append(message)
    )
    return found


def test_buckets_must_be_encrypted_and_block_public_access() -> None:
    bucket = policy_resource("aws:s3/bucket:Bucket", {"bucket": "b"}, "bodies")
    encryption = policy_resource(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        {"bucket": "b", "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
        "bodies",
    )
    block = policy_resource(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        {
            "bucket": "b",
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        },
        "bodies",
    )
    assert stack_violations([bucket, encryption, block]) == []
    assert len(stack_violations([bucket, block])) == 1
    assert len(stack_violations([bucket])) == 2


def test_the_pack_allows_exactly_the_resourceless_actions_the_program_uses() -> None:
    assert rules.RESOURCELESS_ACTIONS == RESOURCELESS_ACTIONS
    assert {policy.name for policy in rules.ALL_POLICIES} == {
        *rules.RESOURCE_RULES,
        "buckets-private-and-encrypted",
    }


def test_the_real_stacks_pass_every_rule(stage: Recorded) -> None:
    found: list[str] = []
    for resource in stage.resources.values():
        for _, rule in rules.RESOURCE_RULES.values():
            found += [
                f"{resource.name}: {m}"
                for m in violations(rule, resource.type, resource.inputs, resource.name)
            ]
    # Buckets: the program's resolved inputs, as the engine would hand them to the stack policy.
    resources = [
        policy_resource(
            r.type, {**r.inputs, **({"bucket": r.outputs["bucket"]} if "bucket" in r.outputs else {})}, r.name
        )
        for r in stage.resources.values()
    ]
    found += stack_violations(resources)
    assert found == []
