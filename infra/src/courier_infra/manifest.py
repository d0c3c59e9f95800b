"""Evaluate the Pulumi program for a stack under Pulumi's mocks and write what it deploys as JSON.

    python -m courier_infra.manifest --stack dev --out .courier/deployment-dev.json

The local stack runs this (in a subprocess, cached by `fingerprint()`) and assembles itself from
the result, so a route, handler, environment variable or queue setting that is wrong in infra is
wrong locally too. Values only AWS has (queue URLs, the API's id, the database host) come from the
mocks in `courier_infra.mocks`; `courier_local.stack` maps them to local stand-ins in one place.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from courier_infra import packaging
from courier_infra.deployment import (
    ApiSpec,
    Deployment,
    EventSourceMappingSpec,
    FunctionSpec,
    QueueSpec,
    RouteSpec,
)

ROOT = packaging.REPO_ROOT
# Everything the evaluation reads: the program, the stack files, and what the program imports.
INPUTS = (
    "Pulumi.yaml",
    "infra/__main__.py",
    "infra/src/courier_infra",
    "shared/src/courier_shared/catalog",
    "shared/src/courier_shared/routes.py",
    "shared/src/courier_shared/lambda_entry.py",
)


def fingerprint(stack: str, root: Path = ROOT) -> str:
    paths = [root / path for path in (*INPUTS, f"Pulumi.{stack}.yaml")]
    return packaging.tree_hash([path for path in paths if path.exists()], root)


def evaluate(stack: str) -> Deployment:
    """Run the program for `stack` (its stack file's config) and read off what it declares."""
    from courier_infra.mocks import ACCOUNT, placeholder_artifacts, run_program, stack_file_config

    with tempfile.TemporaryDirectory(prefix="courier-manifest-") as scratch:
        recorded = run_program(stack, stack_file_config(stack), placeholder_artifacts(Path(scratch)))
    return _read(recorded, stack, ACCOUNT)


def _read(recorded: Any, stack: str, account_id: str) -> Deployment:
    policies = {
        policy.name: json.loads(policy.inputs["policy"])
        for policy in recorded.of_type("aws:iam/rolePolicy:RolePolicy")
    }
    functions: dict[str, FunctionSpec] = {}
    for function in recorded.of_type("aws:lambda/function:Function"):
        inputs = function.inputs
        functions[function.name] = FunctionSpec(
            name=function.name,
            function_name=inputs["name"],
            arn=function.outputs["arn"],
            handler=inputs["handler"],
            runtime=inputs["runtime"],
            timeout_s=int(inputs["timeout"]),
            memory_mb=int(inputs["memorySize"]),
            environment=dict((inputs.get("environment") or {}).get("variables") or {}),
            policy=policies[function.name],
        )
    by_arn = {function.arn: function.name for function in functions.values()}

    def invoked(uri: str) -> str:
        """The function an API Gateway integration or authorizer URI invokes."""
        return by_arn[uri.split("/functions/", 1)[1].removesuffix("/invocations")]

    integrations = {
        integration.id: invoked(integration.inputs["integrationUri"])
        for integration in recorded.of_type("aws:apigatewayv2/integration:Integration")
    }
    (api,) = recorded.of_type("aws:apigatewayv2/api:Api")
    (stage,) = recorded.of_type("aws:apigatewayv2/stage:Stage")
    authorizers = recorded.of_type("aws:apigatewayv2/authorizer:Authorizer")
    route_settings = stage.inputs.get("defaultRouteSettings") or {}
    routes = tuple(
        RouteSpec(
            key=route.inputs["routeKey"],
            function=integrations[route.inputs["target"].removeprefix("integrations/")],
            authorization_type=route.inputs.get("authorizationType", "NONE"),
            route_response_selection_expression=route.inputs.get("routeResponseSelectionExpression"),
        )
        for route in recorded.of_type("aws:apigatewayv2/route:Route")
    )
    burst = route_settings.get("throttlingBurstLimit")
    api_spec = ApiSpec(
        api_id=api.id,
        execution_arn=api.outputs["executionArn"],
        route_selection_expression=api.inputs["routeSelectionExpression"],
        stage=stage.inputs["name"],
        authorizer=invoked(authorizers[0].inputs["authorizerUri"]) if authorizers else None,
        routes=routes,
        throttling_rate_limit=route_settings.get("throttlingRateLimit"),
        throttling_burst_limit=int(burst) if burst is not None else None,
    )
    queues = []
    for queue in recorded.of_type("aws:sqs/queue:Queue"):
        inputs = queue.inputs
        redrive = json.loads(inputs["redrivePolicy"]) if inputs.get("redrivePolicy") else {}
        queues.append(
            QueueSpec(
                name=inputs["name"],
                url=queue.outputs["url"],
                arn=queue.outputs["arn"],
                fifo=bool(inputs.get("fifoQueue", False)),
                content_based_deduplication=bool(inputs.get("contentBasedDeduplication", False)),
                visibility_timeout_s=int(inputs.get("visibilityTimeoutSeconds", 30)),  # SQS's default
                message_retention_s=int(inputs.get("messageRetentionSeconds", 345_600)),
                dead_letter_target_arn=redrive.get("deadLetterTargetArn"),
                max_receive_count=redrive.get("maxReceiveCount"),
            )
        )
    mappings = []
    for mapping in recorded.of_type("aws:lambda/eventSourceMapping:EventSourceMapping"):
        inputs = mapping.inputs
        concurrency = (inputs.get("scalingConfig") or {}).get("maximumConcurrency")
        mappings.append(
            EventSourceMappingSpec(
                queue_arn=inputs["eventSourceArn"],
                function=by_arn[inputs["functionName"]],
                batch_size=int(inputs.get("batchSize", 10)),
                function_response_types=tuple(inputs.get("functionResponseTypes") or ()),
                maximum_concurrency=int(concurrency) if concurrency is not None else None,
            )
        )
    return Deployment(
        stack=stack,
        region=recorded.config.region,
        account_id=account_id,
        functions=functions,
        api=api_spec,
        queues=tuple(queues),
        event_source_mappings=tuple(mappings),
        buckets=tuple(bucket.outputs["bucket"] for bucket in recorded.of_type("aws:s3/bucket:Bucket")),
        fingerprint=fingerprint(stack),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    deployment = evaluate(args.stack)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, suffix=".partial", delete=False) as partial:
        partial.write(deployment.model_dump_json(indent=2))
    Path(partial.name).replace(args.out)  # atomic: concurrent readers see the old file or the new one
    return 0


if __name__ == "__main__":
    sys.exit(main())
