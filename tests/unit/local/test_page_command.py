"""`courier page`: the deployed page's config.json comes from the stack's outputs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from courier_local.cli import app

OUTPUTS = {
    "websocketUrl": "wss://abc123.execute-api.eu-west-1.amazonaws.com/prod",
    "maxMessageChars": 4000,
    "userPoolId": "eu-west-1_AbCdEf123",
    "userPoolClientId": "5n0clientid",
    "modelId": "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
}


def test_the_page_gets_the_stacks_url_limit_and_cognito_client(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(OUTPUTS))
    out = tmp_path / "site"

    result = CliRunner().invoke(app, ["page", "--outputs", str(outputs), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text()) == {
        "wsUrl": "wss://abc123.execute-api.eu-west-1.amazonaws.com/prod",
        "devTokens": False,
        "maxMessageChars": 4000,
        "cognito": {"region": "eu-west-1", "clientId": "5n0clientid"},
    }
    assert (out / "index.html").is_file()
    assert any((out / "assets").glob("index-*.js"))


def test_a_stack_with_an_external_issuer_gets_no_cognito_sign_in(tmp_path: Path) -> None:
    outputs = {key: OUTPUTS[key] for key in ("websocketUrl", "maxMessageChars")}
    result = CliRunner().invoke(
        app, ["page", "--outputs", "-", "--out", str(tmp_path / "site")], input=json.dumps(outputs)
    )
    assert result.exit_code == 0, result.output
    assert "cognito" not in json.loads((tmp_path / "site" / "config.json").read_text())


def test_outputs_without_the_websocket_url_are_refused_plainly(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["page", "--outputs", "-", "--out", str(tmp_path / "site")],
        input=json.dumps({"maxMessageChars": 5}),
    )
    assert result.exit_code == 2
    assert "websocketUrl" in result.output
    assert not (tmp_path / "site").exists()
