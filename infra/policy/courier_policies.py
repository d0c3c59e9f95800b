"""Courier's CrossGuard rules, as plain functions over engine properties (camelCase inputs).

Every rule is MANDATORY: a violation fails `pulumi preview/up --policy-pack infra/policy`.
The rule functions take (args, report_violation), so tests call them directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

# Actions with no resource-level permissions: the only ones allowed on Resource "*".
# Keep equal to courier_infra.iam.RESOURCELESS_ACTIONS (a test checks).
RESOURCELESS_ACTIONS = frozenset(
    {
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    }
)
# Access-log variables that would copy the caller's token (query string or headers) into logs.
TOKEN_BEARING_LOG_FIELDS = ("$request.querystring", "$request.header", "$request.multivalue", "$input.")
IAM_POLICY_TYPES = frozenset(
    {"aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy", "aws:iam/userPolicy:UserPolicy"}
)

Rule = Callable[[ResourceValidationArgs, ReportViolation], None]


def rds_not_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == "aws:rds/instance:Instance" and args.props.get("publiclyAccessible"):
        report("RDS instances must not be publicly accessible.")


def rds_encrypted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == "aws:rds/instance:Instance" and not args.props.get("storageEncrypted"):
        report("RDS instances must encrypt their storage (storageEncrypted).")
    if args.resource_type == "aws:rds/proxy:Proxy" and not args.props.get("requireTls"):
        report("RDS proxies must require TLS.")


def queues_encrypted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    encrypted = args.props.get("sqsManagedSseEnabled") or args.props.get("kmsMasterKeyId")
    if args.resource_type == "aws:sqs/queue:Queue" and not encrypted:
        report("SQS queues must use server-side encryption (SQS-managed or KMS).")
    if args.resource_type == "aws:sns/topic:Topic" and not args.props.get("kmsMasterKeyId"):
        report("SNS topics must be encrypted with a KMS key.")


def queues_have_dlq(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "aws:sqs/queue:Queue":
        return
    if "dlq" in str(args.props.get("name") or args.name):
        return  # a dead-letter queue is the end of the line
    redrive = args.props.get("redrivePolicy")
    target = json.loads(redrive).get("deadLetterTargetArn") if isinstance(redrive, str) and redrive else None
    if not target:
        report("SQS queues must have a redrive policy to a dead-letter queue.")


def _statements(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, str):
        document = json.loads(document)
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    return [statements] if isinstance(statements, dict) else list(statements)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def iam_least_privilege(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in IAM_POLICY_TYPES or not isinstance(args.props.get("policy"), str):
        return
    for statement in _statements(args.props["policy"]):
        if statement.get("Effect") != "Allow":
            continue
        actions = [str(action) for action in _as_list(statement.get("Action"))]
        if statement.get("NotAction") is not None or statement.get("NotResource") is not None:
            report(f"Statement {statement.get('Sid', '?')}: NotAction/NotResource grant too much.")
        wildcard = [action for action in actions if "*" in action]
        if wildcard:
            report(f"Statement {statement.get('Sid', '?')}: wildcard actions {wildcard}.")
        if "*" in _as_list(statement.get("Resource")):
            scoped = sorted(set(actions) - RESOURCELESS_ACTIONS)
            if scoped:
                report(
                    f"Statement {statement.get('Sid', '?')}: Resource '*' for {scoped}, which take resources."
                )


def log_retention_set(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == "aws:cloudwatch/logGroup:LogGroup" and not args.props.get("retentionInDays"):
        report("Log groups must set retentionInDays.")


def token_not_logged(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "aws:apigatewayv2/stage:Stage":
        return
    settings = args.props.get("accessLogSettings") or {}
    log_format = str(settings.get("format") or "")
    if not log_format:
        report("API stages must write access logs.")
    leaked = [field for field in TOKEN_BEARING_LOG_FIELDS if field in log_format]
    if leaked or "token" in log_format.lower():
        report(f"Access logs must not record the token: the format uses {leaked or ['token']}.")
    route_settings = [args.props.get("defaultRouteSettings") or {}, *(args.props.get("routeSettings") or [])]
    if any(item.get("dataTraceEnabled") for item in route_settings):
        report("dataTraceEnabled logs full requests, tokens included: turn it off.")


def no_private_execute_api_endpoint(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "aws:ec2/vpcEndpoint:VpcEndpoint":
        return
    if str(args.props.get("serviceName", "")).endswith(".execute-api") and args.props.get(
        "privateDnsEnabled"
    ):
        report("An execute-api endpoint with private DNS breaks the public WebSocket API's @connections.")


def buckets_private_and_encrypted(args: StackValidationArgs, report: ReportViolation) -> None:
    """Every bucket has an encryption configuration and a full public access block."""
    by_type: dict[str, list[Any]] = {}
    for resource in args.resources:
        by_type.setdefault(resource.resource_type, []).append(resource)

    def bucket_names(type_: str, check: Callable[[dict[str, Any]], bool]) -> set[str]:
        return {str(r.props.get("bucket")) for r in by_type.get(type_, []) if check(r.props)}

    encrypted = bucket_names(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        lambda props: bool(props.get("rules")),
    )
    blocked = bucket_names(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        lambda props: all(
            props.get(key)
            for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        ),
    )
    for bucket in by_type.get("aws:s3/bucket:Bucket", []):
        name = str(bucket.props.get("bucket") or "")
        if name not in encrypted:
            report(f"Bucket {bucket.name} has no server-side encryption configuration.", bucket.urn)
        if name not in blocked:
            report(f"Bucket {bucket.name} does not block all public access.", bucket.urn)


def _resource_policy(name: str, description: str, rule: Rule) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name, description=description, validate=rule, enforcement_level=EnforcementLevel.MANDATORY
    )


RESOURCE_RULES: dict[str, tuple[str, Rule]] = {
    "rds-not-public": ("RDS instances are private.", rds_not_public),
    "rds-encrypted": ("RDS storage is encrypted; proxies require TLS.", rds_encrypted),
    "queues-encrypted": ("SQS queues and SNS topics are encrypted.", queues_encrypted),
    "queues-have-dlq": ("Every SQS source queue has a dead-letter queue.", queues_have_dlq),
    "iam-least-privilege": (
        "No wildcard IAM actions; no '*' resources where resources exist.",
        iam_least_privilege,
    ),
    "log-retention-set": ("Every log group expires its logs.", log_retention_set),
    "token-not-logged": ("API access logs never include the token.", token_not_logged),
    "no-private-execute-api-endpoint": (
        "No execute-api interface endpoint with private DNS.",
        no_private_execute_api_endpoint,
    ),
}


def _all_policies() -> Iterable[ResourceValidationPolicy | StackValidationPolicy]:
    for name, (description, rule) in RESOURCE_RULES.items():
        yield _resource_policy(name, description, rule)
    yield StackValidationPolicy(
        name="buckets-private-and-encrypted",
        description="S3 buckets are encrypted and block public access.",
        validate=buckets_private_and_encrypted,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


ALL_POLICIES = list(_all_policies())
