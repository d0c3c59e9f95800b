"""`courier page`: the chat page for a deployed stack, ready for any static host.

It copies the page shipped in this package (the same build `courier dev` serves) and writes its
config.json from the stack's outputs (`pulumi stack output --json`): the WebSocket URL, the
message limit, and the Cognito app client the page signs users in with. docs/deploy.md shows how to
host it (e.g. S3 + CloudFront).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from courier_local.stack import WEB_DIR

EXIT_BAD_OUTPUTS = 2


class StackOutputs(BaseModel):
    """The outputs the page needs (infra/src/courier_infra/stack.py exports them)."""

    model_config = ConfigDict(extra="ignore")

    websocket_url: str = Field(alias="websocketUrl", pattern=r"^wss?://")
    max_message_chars: int = Field(alias="maxMessageChars", ge=1)
    user_pool_id: str | None = Field(default=None, alias="userPoolId", pattern=r"^[a-z]{2}(-[a-z]+)+-\d_\w+$")
    user_pool_client_id: str | None = Field(default=None, alias="userPoolClientId")


def page_config(outputs: StackOutputs) -> dict[str, Any]:
    """config.json for web/src/config.ts: no dev tokens; Cognito sign-in when the stack has a pool."""
    config: dict[str, Any] = {
        "wsUrl": outputs.websocket_url,
        "devTokens": False,
        "maxMessageChars": outputs.max_message_chars,
    }
    if outputs.user_pool_id and outputs.user_pool_client_id:
        region = outputs.user_pool_id.split("_", 1)[0]  # a pool id is "<region>_<id>"
        config["cognito"] = {"region": region, "clientId": outputs.user_pool_client_id}
    return config


def page(
    outputs: Annotated[
        Path,
        typer.Option(
            "--outputs", help="The stack's outputs as JSON (`pulumi stack output --json`); - for stdin."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="The directory to write the page to (replaced).")],
) -> None:
    """Write the chat page for a deployed stack: the built page plus its config.json."""
    try:
        raw = sys.stdin.read() if str(outputs) == "-" else outputs.read_text()
        stack_outputs = StackOutputs.model_validate_json(raw)
    except (OSError, ValidationError) as error:
        typer.echo(f"courier page: cannot read the stack outputs from {outputs}: {error}", err=True)
        raise typer.Exit(EXIT_BAD_OUTPUTS) from None
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(WEB_DIR, out)
    (out / "config.json").write_text(json.dumps(page_config(stack_outputs), indent=2) + "\n")
    typer.echo(f"The page for {stack_outputs.websocket_url} is in {out}/ (host it as static files).")
