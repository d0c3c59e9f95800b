"""Swapping `courier:model` changes the worker's MODEL_ID and its Bedrock statements, and nothing else."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pulumi
import pytest
from infra_harness import ACCOUNT, AwsMocks, Recorded, RecordingMonitor, config_for, run_program

from courier_infra import packaging
from courier_infra.config import ConfigError
from courier_shared.catalog import invoke_policy

WORKER_FUNCTION = (
    "urn:pulumi:dev::courier::courier:functions:LambdaFunction$aws:lambda/function:Function::worker"
)
CURSOR_KEY_VERSION = (
    "urn:pulumi:dev::courier::courier:secrets:CursorKey"
    "$aws:secretsmanager/secretVersion:SecretVersion::cursor-key"
)
WORKER_POLICY = (
    "urn:pulumi:dev::courier::courier:functions:LambdaFunction$aws:iam/rolePolicy:RolePolicy::worker"
)


def differences(before: Any, after: Any, path: str = "") -> Iterator[str]:
    """Paths (a.b.c) where two resolved input trees differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            yield from differences(before.get(key), after.get(key), f"{path}.{key}" if path else key)
    elif isinstance(before, pulumi.FileArchive) and isinstance(after, pulumi.FileArchive):
        if before.path != after.path:  # archives have no __eq__: compare what they point at
            yield path
    elif before != after:
        yield path


def bedrock_statements(recorded: Recorded) -> list[dict[str, Any]]:
    document = json.loads(recorded.resources[WORKER_POLICY].inputs["policy"])
    return [s for s in document["Statement"] if any(a.startswith("bedrock:") for a in s["Action"])]


def other_statements(recorded: Recorded) -> list[dict[str, Any]]:
    document = json.loads(recorded.resources[WORKER_POLICY].inputs["policy"])
    return [s for s in document["Statement"] if not any(a.startswith("bedrock:") for a in s["Action"])]


@pytest.mark.parametrize(
    ("region", "scope", "model_before", "model_after", "prefix_before", "prefix_after"),
    [
        ("ap-southeast-1", "auto", "claude-haiku-4-5", "nova-pro", "global.", "apac."),
        ("ap-southeast-2", "auto", "claude-haiku-4-5", "nova-pro", "au.", "apac."),
        ("us-east-1", "bare", "nova-lite", "nova-pro", "amazon.nova-lite", "amazon.nova-pro"),
        ("eu-west-1", "global", "claude-haiku-4-5", "claude-sonnet-4-6", "global.", "global."),
        ("ap-south-1", "apac", "nova-lite", "nova-pro", "apac.", "apac."),
    ],
)
def test_model_swap_touches_only_the_worker_model_and_its_bedrock_statements(
    artifacts: Mapping[str, packaging.Artifact],
    region: str,
    scope: str,
    model_before: str,
    model_after: str,
    prefix_before: str,
    prefix_after: str,
) -> None:
    base = {"aws:region": region, "courier:modelScope": scope}
    before = run_program("dev", config_for("dev", **base, **{"courier:model": model_before}), artifacts)
    after = run_program("dev", config_for("dev", **base, **{"courier:model": model_after}), artifacts)

    assert set(before.resources) == set(after.resources)
    changed = {
        (urn, path)
        for urn in before.resources
        for path in differences(before.resources[urn].inputs, after.resources[urn].inputs)
        if urn != CURSOR_KEY_VERSION  # generated anew by every run, applied only once (ignore_changes)
    }
    assert changed == {(WORKER_FUNCTION, "environment.variables.MODEL_ID"), (WORKER_POLICY, "policy")}

    model_ids = [
        r.resources[WORKER_FUNCTION].inputs["environment"]["variables"]["MODEL_ID"] for r in (before, after)
    ]
    assert model_ids[0].startswith(prefix_before) and model_ids[1].startswith(prefix_after)
    assert other_statements(before) == other_statements(after)
    for recorded in (before, after):
        expected = invoke_policy(recorded.stack.model, region, ACCOUNT)
        assert bedrock_statements(recorded) == expected
        resources = [
            r
            for s in expected
            for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
        ]
        assert all(resource.startswith("arn:aws:bedrock:") for resource in resources)
        if recorded.stack.model.model_id.startswith("global."):
            assert any(resource.startswith("arn:aws:bedrock:::foundation-model/") for resource in resources)


def test_an_unusable_model_fails_before_any_resource_is_declared(
    artifacts: Mapping[str, packaging.Artifact],
) -> None:
    for model in ("claude-sonnet-4-5", "no-such-model"):  # legacy, unknown
        monitor = RecordingMonitor(AwsMocks("eu-west-1"))
        with pytest.raises(ConfigError, match=f"courier:model '{model}'"):
            run_program("dev", config_for("dev", **{"courier:model": model}), artifacts, monitor=monitor)
        assert monitor.declared == {}
