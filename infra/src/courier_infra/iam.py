"""IAM policy documents as plain data, so tests and the policy pack can read every statement."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi

# One definition of a Region's partition, the catalog's; re-exported for iam.partition_of(...).
from courier_shared.catalog import partition_of as partition_of

Statement = dict[str, Any]

POLICY_VERSION = "2012-10-17"

# Actions AWS authorises only on Resource "*" (no resource-level permissions exist for them).
# Every other action in this program names its resources.
RESOURCELESS_ACTIONS = frozenset(
    {
        # What AWSLambdaVPCAccessExecutionRole grants, for the ENIs of a function in a VPC.
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    }
)


def statement(
    sid: str,
    actions: Sequence[str],
    resources: pulumi.Input[Any],
    condition: dict[str, Any] | None = None,
) -> Statement:
    """One Allow statement; `resources` may hold Outputs (rendered by `policy_json`)."""
    result: Statement = {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": resources}
    if condition:
        result["Condition"] = condition
    return result


def assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": POLICY_VERSION,
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def log_statement(log_group_arn: pulumi.Input[str]) -> Statement:
    """Write to the function's own log group only (the group is created by the stack)."""
    return statement(
        "WriteOwnLogs",
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        pulumi.Output.concat(log_group_arn, ":log-stream:*"),
    )


def vpc_statement() -> Statement:
    return statement(
        "ManageVpcNetworkInterfaces",
        [
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSubnets",
            "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
        ],
        "*",
    )


def policy_json(*statement_groups: pulumi.Input[Sequence[Statement]]) -> pulumi.Output[str]:
    """A policy document as a JSON string, from groups of statements that may contain Outputs."""

    def render(groups: list[Sequence[Statement]]) -> str:
        statements = [item for group in groups for item in group]
        return json.dumps({"Version": POLICY_VERSION, "Statement": statements}, indent=1)

    return pulumi.Output.all(*[pulumi.Output.from_input(group) for group in statement_groups]).apply(render)


def dns_suffix_of(region: str) -> str:
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
