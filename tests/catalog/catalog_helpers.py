"""Helpers for the catalog tests: the raw catalog file, ARN parsing, the IAM linters."""

from __future__ import annotations

import importlib
import importlib.resources
import json
import re
import tomllib
from datetime import date
from typing import Any

# The date the catalog was checked: lifecycle expectations are pinned to it so the suite does not
# change verdict as real time passes (tests that move the date do so explicitly).
TODAY = date(2026, 11, 21)
ACCOUNT = "123456789012"
INVOKE_ACTIONS = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]

# arn:<partition>:bedrock:<region>:<account>:<type>/<id>; ids may contain ':' ("…-v1:0").
BEDROCK_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-us-gov|aws-cn):bedrock:(?P<region>[a-z0-9-]*):(?P<account>\d{12})?:"
    r"(?P<kind>inference-profile|foundation-model)/(?P<id>[A-Za-z0-9.:-]+)$"
)


def raw_catalog() -> dict[str, Any]:
    """models.toml read directly, so expectations don't come from the code under test."""
    text = importlib.resources.files("courier_shared.catalog").joinpath("models.toml").read_text("utf-8")
    return tomllib.loads(text)


def expected_partition(region: str) -> str:
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def parse_arn(arn: str) -> dict[str, str]:
    match = BEDROCK_ARN.match(arn)
    assert match, f"not a Bedrock model/profile ARN: {arn}"
    return {key: value or "" for key, value in match.groupdict().items()}


SEVERITY_RANK = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}


def parliament_findings(statement: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """parliament's findings for one statement, as (issue, severity, detail).

    One known false positive is waived, and only where we can show it is false: parliament reports
    RESOURCE_MISMATCH for bedrock:InvokeModel* whenever a statement does not name *all eight*
    resource types the action accepts (IAM needs one of them), and its ARN matcher rejects ids that
    contain ':' and the Region-less model ARN AWS requires for global profiles. The waiver applies
    only when every resource is a well-formed Bedrock model or profile ARN.
    """
    import parliament  # imported here: it loads its IAM database at import

    policy = parliament.analyze_policy_string(json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    findings = []
    for finding in policy.findings:
        finding = parliament.enhance_finding(finding)
        if finding.issue == "RESOURCE_MISMATCH" and _all_bedrock_model_arns(statement):
            continue
        findings.append((finding.issue, finding.severity, finding.detail))
    return findings


# The two resource shapes bedrock:InvokeModel* accepts here, exactly: a foundation model has no
# account (and no Region for the global-profile check); a profile has both.
_MODEL_ARN = re.compile(
    r"^arn:(aws|aws-us-gov|aws-cn):bedrock:([a-z]{2}(-gov)?-[a-z]+-\d)?::foundation-model/[\w.:-]+$"
)
_PROFILE_ARN = re.compile(
    r"^arn:(aws|aws-us-gov|aws-cn):bedrock:[a-z]{2}(-gov)?-[a-z]+-\d:\d{12}:inference-profile/[\w.:-]+$"
)


def _all_bedrock_model_arns(statement: dict[str, Any]) -> bool:
    resources = statement.get("Resource", [])
    resources = [resources] if isinstance(resources, str) else resources
    return bool(resources) and all(_MODEL_ARN.match(r) or _PROFILE_ARN.match(r) for r in resources)


def above_low(findings: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    return [finding for finding in findings if SEVERITY_RANK.get(finding[1], 99) > SEVERITY_RANK["LOW"]]


# The one LOW finding accepted: StringEquals on bedrock:InferenceProfileArn (an ARN-typed key),
# which is the form AWS's own Bedrock policy examples use (notes §3.2, §3.3).
ACCEPTED_LOW = {"MISMATCHED_TYPE_BUT_USABLE"}


def unaccepted(findings: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    """Findings above LOW, and LOW ones other than the accepted one."""
    return [
        finding for finding in findings if finding in above_low(findings) or finding[0] not in ACCEPTED_LOW
    ]
