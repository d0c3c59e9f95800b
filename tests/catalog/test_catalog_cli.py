"""`courier models` and `courier models resolve`, run through the real Typer app."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from courier_local.cli import app
from courier_shared.catalog import Lifecycle, catalog_models

runner = CliRunner()


@pytest.mark.parametrize("command", [["models"], ["models", "list"]])
def test_models_lists_the_catalog_with_lifecycle_and_successors(command):
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:2] == ["NAME", "MODEL"]
    haiku = next(line for line in lines if line.startswith("claude-haiku-4-5 "))
    assert "anthropic.claude-haiku-4-5-20251001-v1:0" in haiku and "global, us, eu, jp, au" in haiku
    retired = next(line for line in lines if line.startswith("claude-3-5-sonnet "))
    assert "end-of-life" in retired and "use claude-sonnet-4-6" in retired
    assert "Catalog checked 2026-11-21" in result.output


def test_resolve_prints_the_id_and_a_policy_document():
    result = runner.invoke(
        app, ["models", "resolve", "haiku-4.5", "--region", "ap-northeast-1", "--account", "111122223333"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "model id:     jp.anthropic.claude-haiku-4-5-20251001-v1:0"
    document = json.loads(result.output[result.output.index("{") :])
    assert document["Version"] == "2012-10-17"
    assert document["Statement"][0]["Resource"] == [
        "arn:aws:bedrock:ap-northeast-1:111122223333:inference-profile/jp.anthropic.claude-haiku-4-5-20251001-v1:0"
    ]


def test_resolve_honours_scope_and_warns_about_the_placeholder_account():
    result = runner.invoke(app, ["models", "resolve", "nova-pro", "-r", "us-east-1", "--scope", "bare"])
    assert result.exit_code == 0, result.output
    assert "model id:     amazon.nova-pro-v1:0" in result.output
    assert "placeholder" in result.output  # stderr is mixed into output by CliRunner


def test_resolve_refusal_exits_non_zero_with_the_reason():
    result = runner.invoke(app, ["models", "resolve", "claude-3-5-sonnet", "--region", "us-east-1"])
    assert result.exit_code == 1
    assert "end of life" in result.output and "claude-sonnet-4-6" in result.output
    assert "{" not in result.output  # no policy for a refused model


def test_allow_legacy_reaches_resolve():
    # The CLI judges lifecycle on the real date, so pick whichever model is Legacy today.
    today = datetime.now(UTC).date()
    legacy = [
        model for model in catalog_models() if model.lifecycle(today) is Lifecycle.LEGACY and model.profiles
    ]
    if not legacy:
        pytest.skip("no Legacy model in the catalog today")
    model = legacy[0]
    region = next(iter(model.profiles.values())).sources[0]

    refused = runner.invoke(app, ["models", "resolve", model.key, "-r", region])
    assert refused.exit_code == 1 and "Legacy" in refused.output

    allowed = runner.invoke(app, ["models", "resolve", model.key, "-r", region, "--allow-legacy"])
    assert allowed.exit_code == 0, allowed.output
    assert model.model_id in allowed.output and "lifecycle:    legacy" in allowed.output
