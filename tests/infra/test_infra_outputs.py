"""The stack outputs an operator reads after `make up` (docs/deploy.md, "Connecting to the deployed stack").

Runs `infra/__main__.py` as `pulumi up` would, under the mocks, and reads the root stack's outputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
import pytest
from infra_harness import config_for
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import Stack
from pulumi.runtime.sync_await import _sync_await

from courier_infra import mocks
from courier_infra import stack as stack_module
from courier_local.commands.page import StackOutputs, page_config


def exported(
    stack: str, config: Mapping[str, str], artifacts: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], mocks.RecordingMonitor]:
    """Run the entry point; return the root Stack's outputs, resolved, and what was declared."""
    monkeypatch.setattr(stack_module, "default_builder", lambda: lambda service, arch: artifacts[service])
    monitor = mocks.run_entry_point(stack, config)
    root = pulumi_settings.get_root_resource()
    assert isinstance(root, Stack)
    return {
        name: _sync_await(pulumi.Output.from_input(value).future()) for name, value in root.outputs.items()
    }, monitor


def test_outputs_name_the_user_pool_and_its_client(artifacts: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, monitor = exported("dev", config_for("dev"), artifacts, monkeypatch)

    client = next(
        d for d in monitor.declared.values() if d.type == "aws:cognito/userPoolClient:UserPoolClient"
    )
    # The mocks give the pool and client these physical ids (courier_infra.mocks.AwsMocks).
    assert outputs["userPoolId"] == "eu-west-1_AbCdEfGhI"
    assert outputs["userPoolClientId"] == "1example23456789" == outputs["jwtAudience"]
    assert outputs["jwtIssuer"] == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEfGhI"
    assert outputs["websocketUrl"].startswith("wss://") and outputs["websocketUrl"].endswith("/dev")
    # `courier login` and `aws cognito-idp initiate-auth` sign in with USER_PASSWORD_AUTH.
    assert "ALLOW_USER_PASSWORD_AUTH" in client.inputs["explicitAuthFlows"]


def test_an_external_issuer_exports_no_user_pool(artifacts: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = {
        "issuer": "https://idp.example.com/",
        "audience": "courier",
        "jwksUrl": "https://idp.example.com/jwks",
    }
    config = config_for("dev", **{"courier:auth": json.dumps(auth)})

    outputs, _ = exported("dev", config, artifacts, monkeypatch)

    assert "userPoolId" not in outputs
    assert "userPoolClientId" not in outputs
    assert outputs["jwtIssuer"] == "https://idp.example.com/"
    assert outputs["jwtAudience"] == "courier"


def test_courier_page_reads_what_the_stack_exports(artifacts: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # `make page` feeds these outputs to `courier page`: the page's limit is the deployed gateway's.
    outputs, monitor = exported(
        "dev", config_for("dev", **{"courier:maxMessageChars": "4000"}), artifacts, monkeypatch
    )

    (gateway,) = [
        d
        for d in monitor.declared.values()
        if d.type == "aws:lambda/function:Function" and d.name == "gateway"
    ]
    config = page_config(StackOutputs.model_validate(json.loads(json.dumps(outputs))))
    assert config["wsUrl"] == outputs["websocketUrl"]
    assert (
        config["maxMessageChars"]
        == int(gateway.inputs["environment"]["variables"]["MAX_MESSAGE_CHARS"])
        == 4000
    )
    assert config["cognito"] == {"region": "eu-west-1", "clientId": outputs["userPoolClientId"]}
