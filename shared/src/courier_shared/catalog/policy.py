"""invoke_policy(): exactly the IAM a runtime role needs to call a resolved model with Converse(Stream).

Converse authorises as bedrock:InvokeModel and ConverseStream as bedrock:InvokeModelWithResponseStream;
there is no bedrock:Converse action. No Marketplace permission belongs on a runtime role: models are
enabled once per account, out of band (notes §3.5).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from courier_shared.catalog.errors import CatalogError
from courier_shared.catalog.resolve import ResolvedModel

INVOKE_ACTIONS: tuple[str, ...] = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
_ACCOUNT = re.compile(r"^\d{12}$")


def invoke_policy(resolved: ResolvedModel, region: str, account: str) -> list[dict[str, Any]]:
    """IAM statements allowing Converse and ConverseStream on `resolved` from `region` in `account`.

    - bare id: the foundation model in this Region.
    - geographic profile: the profile ARN, plus the foundation model in every destination Region,
      usable only through that profile (bedrock:InferenceProfileArn).
    - global profile: the three statements AWS requires, the last on the Region-less model ARN
      that IAM evaluates with aws:RequestedRegion = "unspecified".
    """
    if region != resolved.region:
        raise CatalogError(
            f"{resolved.model_id} was resolved for {resolved.region}, not {region}; resolve it for {region}."
        )
    if not _ACCOUNT.match(account):
        raise CatalogError(f"Account {account!r} is not a 12-digit AWS account id.")

    if not resolved.is_profile:
        return [_allow("InvokeFoundationModel", [resolved.foundation_model_arn(region)])]

    profile_arn = resolved.inference_profile_arn(account)
    if resolved.scope == "global":
        return [
            _allow(
                "InvokeGlobalInferenceProfile",
                [profile_arn],
                {"StringEquals": {"aws:RequestedRegion": region}},
            ),
            _allow(
                "InvokeModelInSourceRegionViaGlobalProfile",
                [resolved.foundation_model_arn(region)],
                {"StringEquals": {"aws:RequestedRegion": region, "bedrock:InferenceProfileArn": profile_arn}},
            ),
            _allow(
                "InvokeModelAnywhereViaGlobalProfile",
                [resolved.foundation_model_arn("")],
                {
                    "StringEquals": {
                        "aws:RequestedRegion": "unspecified",
                        "bedrock:InferenceProfileArn": profile_arn,
                    }
                },
            ),
        ]
    return [
        _allow("InvokeInferenceProfile", [profile_arn]),
        _allow(
            "InvokeModelInDestinationRegionsViaProfile",
            [resolved.foundation_model_arn(destination) for destination in resolved.destination_regions],
            {"StringEquals": {"bedrock:InferenceProfileArn": profile_arn}},
        ),
    ]


def policy_document(statements: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A complete IAM policy document around `statements`."""
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(sid: str, resources: list[str], condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(INVOKE_ACTIONS),
        "Resource": resources,
    }
    if condition:
        statement["Condition"] = condition
    return statement
