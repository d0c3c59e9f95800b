"""The real Pulumi program, run in-process against Pulumi's mock engine: what a stack declares.

No CLI, no provider plugin, no AWS: `pulumi.runtime.set_mocks` replaces the engine. `AwsMocks`
plays the provider's part for computed outputs (ARNs, URLs, ids) in the shapes AWS uses, and
`RecordingMonitor` records each resource's resolved inputs, outputs, parent and dependencies.
The infra tests assert on this, and the local stack is assembled from it (`courier_infra.manifest`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import runpy
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from courier_infra import packaging
from courier_infra.config import StackConfig, load_stack_config
from courier_infra.stack import CourierStack, resolve_model

ROOT = packaging.REPO_ROOT

ACCOUNT = "123456789012"
MIGRATIONS_HASH = "0" * 64


def stack_file_config(stack: str) -> dict[str, str]:
    """A stack file's config as the Pulumi CLI hands it to the program: strings, JSON for structures."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    values = {}
    for key, value in (document.get("config") or {}).items():
        values[key] = value if isinstance(value, str) else json.dumps(value)
    return values


@dataclass
class Declared:
    """One resource the program registered."""

    type: str
    name: str
    urn: str
    parent: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: list[str]
    id: str = ""


@dataclass
class Recorded:
    """Everything one run of the program declared."""

    config: StackConfig
    stack: CourierStack
    resources: dict[str, Declared] = field(default_factory=dict)  # by URN

    def of_type(self, type_: str) -> list[Declared]:
        return [resource for resource in self.resources.values() if resource.type == type_]

    def one(self, type_: str, name: str) -> Declared:
        matches = [resource for resource in self.of_type(type_) if resource.name == name]
        assert len(matches) == 1, f"expected one {type_} named {name}, found {len(matches)}"
        return matches[0]

    def by_urn(self, urn: str) -> Declared:
        return self.resources[urn]

    def depends_on(self, resource: Declared, other: Declared) -> bool:
        """True if `resource` explicitly depends on `other` (directly or through dependencies)."""
        seen: set[str] = set()
        pending = list(resource.dependencies)
        while pending:
            urn = pending.pop()
            if urn == other.urn:
                return True
            if urn in seen or urn not in self.resources:
                continue
            seen.add(urn)
            pending.extend(self.resources[urn].dependencies)
        return False


class AwsMocks(pulumi.runtime.Mocks):
    """Computed outputs in AWS's shapes for the region under test."""

    def __init__(self, region: str) -> None:
        self.region = region

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        region, name, inputs = self.region, args.name, args.inputs
        outputs = dict(inputs)
        resource_id = f"{name}-id"
        physical = inputs.get("name") or name
        kind = args.typ
        if kind == "aws:sqs/queue:Queue":
            outputs["arn"] = f"arn:aws:sqs:{region}:{ACCOUNT}:{physical}"
            outputs["url"] = f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{physical}"
            outputs["name"] = physical
        elif kind == "aws:apigatewayv2/api:Api":
            resource_id = "a1b2c3d4e5"
            outputs["executionArn"] = f"arn:aws:execute-api:{region}:{ACCOUNT}:{resource_id}"
            outputs["apiEndpoint"] = f"wss://{resource_id}.execute-api.{region}.amazonaws.com"
        elif kind == "aws:lambda/function:Function":
            arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{physical}"
            outputs["arn"] = arn
            outputs["invokeArn"] = (
                f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations"
            )
        elif kind == "aws:rds/instance:Instance":
            outputs["address"] = f"{inputs['identifier']}.abcdefghij.{region}.rds.amazonaws.com"
            outputs["port"] = 5432
            outputs["arn"] = f"arn:aws:rds:{region}:{ACCOUNT}:db:{inputs['identifier']}"
            outputs["resourceId"] = "db-ABCDEFGHIJKLMNOPQRSTUVWXY0"  # DbiResourceId: rds-db:connect ARNs
            outputs["masterUserSecrets"] = [
                {
                    "secretArn": f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:rds!db-1234-AbCdEf",
                    "secretStatus": "active",
                    "kmsKeyId": f"arn:aws:kms:{region}:{ACCOUNT}:key/0000",
                }
            ]
        elif kind == "aws:rds/proxy:Proxy":
            outputs["arn"] = f"arn:aws:rds:{region}:{ACCOUNT}:db-proxy:prx-0123456789abcdef0"
            outputs["endpoint"] = f"{physical}.proxy-abcdefghij.{region}.rds.amazonaws.com"
        elif kind == "aws:cloudwatch/logGroup:LogGroup":
            outputs["arn"] = f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{physical}"
        elif kind == "aws:s3/bucket:Bucket":
            bucket = f"{inputs.get('bucketPrefix', name)}0123456789"
            resource_id = bucket
            outputs["bucket"] = bucket
            outputs["arn"] = f"arn:aws:s3:::{bucket}"
        elif kind == "aws:iam/role:Role":
            outputs["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{name}"
        elif kind == "aws:cognito/userPool:UserPool":
            resource_id = f"{region}_AbCdEfGhI"
            outputs["arn"] = f"arn:aws:cognito-idp:{region}:{ACCOUNT}:userpool/{resource_id}"
        elif kind == "aws:cognito/userPoolClient:UserPoolClient":
            resource_id = "1example23456789"
        elif kind == "aws:sns/topic:Topic":
            outputs["arn"] = f"arn:aws:sns:{region}:{ACCOUNT}:{physical}"
        elif kind == "aws:lambda/invocation:Invocation":
            outputs["result"] = json.dumps({"revision": "head"})
        elif kind == "random:index/randomId:RandomId":
            # Deterministic stand-in for the random bytes: a digest of the name and keepers.
            seed = json.dumps([name, inputs.get("keepers")], sort_keys=True).encode()
            outputs["hex"] = hashlib.sha256(seed).hexdigest()[: 2 * int(inputs["byteLength"])]
        else:
            outputs.setdefault("arn", f"arn:aws:{kind.split(':')[1].split('/')[0]}:{region}:{ACCOUNT}:{name}")
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/deployer",
                "userId": "AIDA0",
                "id": ACCOUNT,
            }, []
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{letter}" for letter in "abc"]
            return {"names": names, "zoneIds": [f"z{n}" for n in range(3)], "id": self.region}, []
        raise AssertionError(f"the program called an unmocked invoke: {args.token}")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also keeping each registration's parent and explicit dependencies."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.declared: dict[str, Declared] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]  # pulumi's is untyped
        if request.type != "pulumi:pulumi:Stack":
            registration = self.resources[response.urn]
            self.declared[response.urn] = Declared(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                inputs=pulumi.runtime.rpc.deserialize_properties(request.object),
                outputs=registration.state,
                dependencies=list(request.dependencies),
                id=registration.id or "",
            )
        return response


def placeholder_artifacts(directory: Path) -> dict[str, packaging.Artifact]:
    """Stand-in zips with no code at all, so they cannot stand in for a handler: whether each declared
    Handler exists is proven on the real builds (tests/infra/test_handler_resolution.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for service in packaging.SERVICES:
        path = directory / f"courier-{service}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(
                zipfile.ZipInfo("PLACEHOLDER", packaging.ZIP_TIMESTAMP), "not a Lambda package\n"
            )
        data = path.read_bytes()
        artifacts[service] = packaging.Artifact(
            service=service,
            architecture="arm64",
            path=path,
            sha256=hashlib.sha256(data).hexdigest(),
            zipped_bytes=len(data),
            unzipped_bytes=len(data),
        )
    return artifacts


def run_program(
    stack: str,
    config_values: Mapping[str, str],
    artifacts: Mapping[str, packaging.Artifact],
    monitor: RecordingMonitor | None = None,
) -> Recorded:
    """Run the Courier program for `stack` with the given config; return what it declared."""
    monitor = monitor or RecordingMonitor(AwsMocks(config_values["aws:region"]))
    # Pulumi's runtime needs a current event loop; an earlier async test may have cleared it.
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi_settings.ROOT.set(None)  # a fresh root Stack per run
    pulumi.runtime.set_mocks(monitor.mocks, project="courier", stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config_values), secret_keys=[])
    built: list[CourierStack] = []

    def program() -> None:
        from courier_infra.config import config_from_pulumi

        config = config_from_pulumi()
        model = resolve_model(config)
        built.append(
            CourierStack(
                config,
                model,
                build_artifact=lambda service, architecture: artifacts[service],
                migrations_hash=MIGRATIONS_HASH,
            )
        )

    _run(program)
    recorded = Recorded(config=built[0].config, stack=built[0])
    recorded.resources = dict(monitor.declared)
    return recorded


def _run(program: Callable[[], None]) -> None:
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    _sync_await(run_pulumi_func(program))


def run_entry_point(stack: str, config_values: Mapping[str, str]) -> RecordingMonitor:
    """Run infra/__main__.py itself, as `pulumi up` would, under the mocks."""
    monitor = RecordingMonitor(AwsMocks(config_values["aws:region"]))
    # As in run_program: an earlier asyncio.run() in this process (test order decides) leaves no loop.
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(monitor.mocks, project="courier", stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config_values), secret_keys=[])

    def program() -> None:
        runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__")

    _run(program)
    return monitor


def config_for(stack: str, **overrides: str) -> dict[str, str]:
    """The stack file's config with some keys replaced (fully-qualified keys, string values)."""
    return {**stack_file_config(stack), **overrides}


def load(stack: str) -> StackConfig:
    return load_stack_config(stack, stack_file_config(stack))
