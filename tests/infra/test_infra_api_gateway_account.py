"""API Gateway's CloudWatch role is one setting per account and region: at most one shipped stack in a
region owns it, and the stack that owns it never resets it on destroy (retained on delete).

With pulumi-aws 7, deleting `aws.apigateway.Account` resets the account's role, so if dev and prod
(both eu-west-1) both managed it, `pulumi destroy -s dev` would break prod's access logging.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml
from infra_harness import AwsMocks, Recorded, RecordingMonitor, load, run_program, stack_file_config

from courier_infra import packaging

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_TYPE = "aws:apigateway/account:Account"
LOGGING_RESOURCES = {
    (ACCOUNT_TYPE, "websocket-account"),
    ("aws:iam/role:Role", "websocket-cloudwatch"),
    ("aws:iam/rolePolicy:RolePolicy", "websocket-cloudwatch"),
}


class RetentionMonitor(RecordingMonitor):
    """Also records which registrations asked to be retained on delete."""

    def __init__(self, region: str) -> None:
        super().__init__(AwsMocks(region))
        self.retained: set[tuple[str, str]] = set()

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.HasField("retainOnDelete") and request.retainOnDelete:
            self.retained.add((request.type, request.name))
        return response


def shipped_stacks() -> list[str]:
    return sorted(path.name.split(".")[1] for path in ROOT.glob("Pulumi.*.yaml"))


def run(
    stack: str, artifacts: Mapping[str, packaging.Artifact], **overrides: str
) -> tuple[Recorded, set[Any]]:
    values = {**stack_file_config(stack), **overrides}
    monitor = RetentionMonitor(values["aws:region"])
    return run_program(stack, values, artifacts, monitor=monitor), monitor.retained


def test_at_most_one_shipped_stack_per_region_owns_the_account_role(
    artifacts: Mapping[str, packaging.Artifact],
) -> None:
    assert shipped_stacks() == ["dev", "prod"]
    owners: Counter[tuple[str, str]] = Counter()
    for stack in shipped_stacks():
        recorded, _ = run(stack, artifacts)
        region = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["aws:region"]
        accounts = recorded.of_type(ACCOUNT_TYPE)
        assert len(accounts) == int(load(stack).api_gateway_logging_role)
        owners[("same account", region)] += len(accounts)
    assert owners == {("same account", "eu-west-1"): 1}
    assert load("prod").api_gateway_logging_role and not load("dev").api_gateway_logging_role


def test_the_owned_role_and_account_setting_are_retained_on_delete(
    artifacts: Mapping[str, packaging.Artifact],
) -> None:
    recorded, retained = run("prod", artifacts)
    # Exactly these: a destroy still removes the rest of the stage.
    assert retained == LOGGING_RESOURCES
    api_stage = recorded.one("aws:apigatewayv2/stage:Stage", "websocket")
    assert recorded.depends_on(api_stage, recorded.one(ACCOUNT_TYPE, "websocket-account"))


def test_the_account_role_may_write_every_courier_stages_access_logs(
    artifacts: Mapping[str, packaging.Artifact], dev: Recorded
) -> None:
    prod, _ = run("prod", artifacts)
    document = json.loads(prod.one("aws:iam/rolePolicy:RolePolicy", "websocket-cloudwatch").inputs["policy"])
    write = next(s for s in document["Statement"] if s["Sid"] == "WriteApiLogs")
    for recorded in (dev, prod):  # prod's role serves dev's stage too: it is the region's one role
        group = recorded.one("aws:apigatewayv2/stage:Stage", "websocket").inputs["accessLogSettings"]
        stream = f"{group['destinationArn']}:log-stream:abc"
        assert any(fnmatchcase(stream, pattern) for pattern in write["Resource"]), stream
    assert not any(
        fnmatchcase("arn:aws:logs:eu-west-1:123456789012:log-group:/other:log-stream:a", p)
        for p in write["Resource"]
    )


def test_a_dev_stack_alone_in_its_region_can_own_the_role(
    artifacts: Mapping[str, packaging.Artifact],
) -> None:
    recorded, retained = run("dev", artifacts, **{"courier:apiGatewayLoggingRole": "true"})
    assert len(recorded.of_type(ACCOUNT_TYPE)) == 1
    assert retained == LOGGING_RESOURCES
