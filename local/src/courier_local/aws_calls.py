"""Every AWS call the local functions make, recorded and checked against their Pulumi-declared IAM.

`record_calls(path)` wraps botocore's one choke point (`BaseClient._make_api_call`, the same place
the AWS X-Ray SDK patches) and appends each call as a JSON line: which function made it (its
clients sign with a per-function access key, see `courier_local.lambda_runtime`), the service,
the operation and the parameters that name its resource.

`evaluate(calls, deployment)` turns each call into what IAM authorizes (action, resource ARN and
the condition keys AWS supplies) and evaluates it against that function's inline policy with
moto's IAM policy evaluator (`moto.iam.access_control.IAMPolicyStatement`: Action/Resource
wildcards and StringEquals/ArnLike-style conditions). Bedrock through an inference profile is
authorized twice, as AWS does: the profile ARN, and the foundation model in each Region the
profile may route to, with `bedrock:InferenceProfileArn` set. The result lists denied calls and the
statements no call exercised.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from courier_infra.deployment import Deployment
from courier_local.lambda_runtime import PROVISIONING_ACCESS_KEY, access_key_of

# The parameters that name a call's resource: nothing else (never message bodies) is written.
_RESOURCE_PARAMS = ("QueueUrl", "Bucket", "Key", "ConnectionId", "modelId", "SecretId")
_lock = threading.Lock()
_installed: dict[str, Any] = {}


@dataclass(frozen=True)
class AwsCall:
    access_key: str
    service: str  # botocore's service name, e.g. "sqs", "apigatewaymanagementapi"
    operation: str  # e.g. "SendMessage"
    region: str
    params: dict[str, str]


def record_calls(path: Path) -> None:
    """Append every botocore call made in this process to `path` (JSON lines). Idempotent."""
    from botocore.client import BaseClient

    with _lock:
        previous = _installed.get("log")
        _installed["log"] = path.open("a", buffering=1)  # line-buffered: one open file, not one per call
        if previous is not None:
            previous.close()
        if "original" in _installed:
            return
        # A private botocore method, so not in botocore-stubs (hence the attr-defined ignores).
        original = BaseClient._make_api_call  # type: ignore[attr-defined]
        _installed["original"] = original

        def make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            _write(self, operation_name, api_params)
            return original(self, operation_name, api_params)

        BaseClient._make_api_call = make_api_call  # type: ignore[attr-defined]


def _write(client: Any, operation: str, params: dict[str, Any]) -> None:
    credentials = client._request_signer._credentials  # None for unsigned clients
    call = {
        "access_key": credentials.access_key if credentials is not None else "",
        "service": client.meta.service_model.service_name,
        "operation": operation,
        "region": client.meta.region_name or "",
        "params": {key: str(params[key]) for key in _RESOURCE_PARAMS if key in params},
    }
    with _lock:
        _installed["log"].write(json.dumps(call) + "\n")


def read_calls(paths: Iterable[Path]) -> list[AwsCall]:
    calls = []
    for path in paths:
        if path.exists():
            calls += [AwsCall(**json.loads(line)) for line in path.read_text().splitlines() if line]
    return calls


# ---------------------------------------------------------------- what IAM authorizes


@dataclass(frozen=True)
class Authorization:
    """One authorization check AWS makes for a call."""

    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)


def authorizations(call: AwsCall, deployment: Deployment) -> list[Authorization]:
    """The checks AWS makes for `call`, in this deployment's account; unknown calls are refused."""
    account, region, params = deployment.account_id, call.region, call.params
    service, operation = call.service, call.operation
    if service == "sqs":
        queue_name = urlsplit(params["QueueUrl"]).path.rstrip("/").rsplit("/", 1)[-1]
        action = operation.removesuffix("Batch")  # SQS authorizes a batch as its single action
        return [Authorization(f"sqs:{action}", f"arn:aws:sqs:{region}:{account}:{queue_name}")]
    if service == "s3":
        action = {"HeadObject": "GetObject"}.get(operation, operation)
        key = params.get("Key")
        resource = f"arn:aws:s3:::{params['Bucket']}" + (f"/{key}" if key is not None else "")
        return [Authorization(f"s3:{action}", resource)]
    if service == "apigatewaymanagementapi":
        method = {"PostToConnection": "POST", "GetConnection": "GET", "DeleteConnection": "DELETE"}[operation]
        api = deployment.api
        resource = f"{api.execution_arn}/{api.stage}/{method}/@connections/{params['ConnectionId']}"
        return [Authorization("execute-api:ManageConnections", resource)]
    if service == "secretsmanager":
        return [Authorization(f"secretsmanager:{operation}", params["SecretId"])]
    if service == "bedrock-runtime":
        return _bedrock_authorizations(call, deployment)
    raise ValueError(f"no IAM mapping for {service}:{operation}: add one to courier_local.aws_calls")


def _bedrock_authorizations(call: AwsCall, deployment: Deployment) -> list[Authorization]:
    from courier_shared import catalog

    action = {
        "ConverseStream": "bedrock:InvokeModelWithResponseStream",
        "Converse": "bedrock:InvokeModel",
        "InvokeModelWithResponseStream": "bedrock:InvokeModelWithResponseStream",
        "InvokeModel": "bedrock:InvokeModel",
    }[call.operation]
    model_id, region, account = call.params["modelId"], call.region, deployment.account_id
    resolved = catalog.resolve(model_id, region, "auto", allow_legacy=True)
    if not resolved.is_profile:
        return [Authorization(action, resolved.foundation_model_arn(region))]
    profile_arn = resolved.inference_profile_arn(account)

    def routed_to(destination: str) -> Authorization:
        """The foundation-model check in the Region the profile routes to ("" = global, Region-less)."""
        context = {
            "aws:RequestedRegion": destination or "unspecified",
            "bedrock:InferenceProfileArn": profile_arn,
        }
        return Authorization(action, resolved.foundation_model_arn(destination), context)

    checks = [Authorization(action, profile_arn, {"aws:RequestedRegion": region})]
    if resolved.scope == "global":
        return [*checks, routed_to(region), routed_to("")]
    return checks + [routed_to(destination) for destination in resolved.destination_regions]


# ---------------------------------------------------------------- evaluation


@dataclass
class Evaluation:
    denied: list[tuple[str, Authorization]] = field(default_factory=list)  # (function, check)
    unattributed: list[AwsCall] = field(default_factory=list)
    exercised: set[tuple[str, str]] = field(default_factory=set)  # (function, statement Sid)
    statements: list[tuple[str, str]] = field(default_factory=list)  # every (function, Sid)
    calls: int = 0

    @property
    def unexercised(self) -> list[tuple[str, str]]:
        return [statement for statement in self.statements if statement not in self.exercised]

    @property
    def ok(self) -> bool:
        return not self.denied and not self.unattributed

    def report(self) -> Iterator[str]:
        yield f"{self.calls} AWS calls by local functions; {len(self.denied)} denied by their IAM policy."
        for function, check in self.denied:
            yield f"  DENIED {function}: {check.action} on {check.resource} {check.context or ''}"
        for call in self.unattributed:
            yield f"  UNATTRIBUTED (no function's credentials): {call.service}:{call.operation}"
        if self.unexercised:
            yield "IAM statements no call exercised (least privilege: needed in AWS only, or removable):"
            yield from (f"  {function}: {sid}" for function, sid in self.unexercised)


def evaluate(calls: Iterable[AwsCall], deployment: Deployment) -> Evaluation:
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    functions = {access_key_of(spec.function_name): spec for spec in deployment.functions.values()}
    result = Evaluation(
        statements=[
            (spec.name, statement.get("Sid", f"#{index}"))
            for spec in deployment.functions.values()
            for index, statement in enumerate(spec.policy["Statement"])
        ]
    )
    for call in calls:
        if call.access_key == PROVISIONING_ACCESS_KEY:
            continue  # the stack creating what Pulumi creates in AWS
        result.calls += 1
        spec = functions.get(call.access_key)
        if spec is None:
            result.unattributed.append(call)
            continue
        for check in authorizations(call, deployment):
            allowed, denied = False, False
            for index, statement in enumerate(spec.policy["Statement"]):
                outcome = IAMPolicyStatement(statement).is_action_permitted(
                    check.action, check.resource, incoming_condition_values=check.context
                )
                # moto answers DENIED for an Allow whose condition fails; IAM treats that as "no match".
                if statement.get("Effect") == "Deny" and outcome == PermissionResult.DENIED:
                    denied = True
                if statement.get("Effect") == "Allow" and outcome == PermissionResult.PERMITTED:
                    allowed = True
                    result.exercised.add((spec.name, statement.get("Sid", f"#{index}")))
            if denied or not allowed:
                result.denied.append((spec.name, check))
    return result
