"""`courier models`: the Bedrock model catalog, and what one model resolves to in one Region."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated

import typer

from courier_shared.catalog import (
    CatalogError,
    CatalogModel,
    catalog_models,
    invoke_policy,
    load_catalog,
    policy_document,
    resolve,
)

# AWS's documentation account id: the policy is right in shape, but must be re-run with --account.
PLACEHOLDER_ACCOUNT = "123456789012"

models_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    help="The Bedrock model catalog: list it, or resolve a model for a Region with its IAM policy.",
)


@models_app.callback()
def models(ctx: typer.Context) -> None:
    """The catalog (as `courier models list`), unless a command is given."""
    if ctx.invoked_subcommand is None:
        list_models()


@models_app.command("list")
def list_models() -> None:
    """List the catalog: each model's short name, bare id, profile scopes, on-demand Regions and lifecycle."""
    today = datetime.now(UTC).date()
    catalog = load_catalog()
    header = ("NAME", "MODEL ID", "PROFILES", "BARE IN", "STREAM/TOOLS", "LIFECYCLE")
    rows = [header, *(_row(model, today) for model in catalog_models())]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    typer.echo(
        f"\nCatalog checked {catalog.checked.isoformat()}. "
        "`courier models resolve <name> --region <region>` gives the id to call and its IAM policy."
    )


def _row(model: CatalogModel, today: date) -> tuple[str, str, str, str, str, str]:
    lifecycle = model.lifecycle(today).value
    if model.eol is not None:
        lifecycle += f" (eol {model.eol.isoformat()}"
        lifecycle += f", use {model.successor})" if model.successor else ")"
    bare = (
        ", ".join(model.bare_regions)
        if len(model.bare_regions) <= 2
        else f"{len(model.bare_regions)} Regions"
    )
    capabilities = f"{'yes' if model.streaming else 'no'}/{'yes' if model.tools else 'no'}"
    return (model.key, model.model_id, ", ".join(model.profiles) or "-", bare or "-", capabilities, lifecycle)


@models_app.command("resolve")
def resolve_model(
    model: Annotated[
        str, typer.Argument(help="Bare id, profile id, ARN or short name (e.g. claude-haiku-4-5).")
    ],
    region: Annotated[str, typer.Option("--region", "-r", help="The Region the worker calls Bedrock from.")],
    scope: Annotated[
        str, typer.Option(help="auto, geo, global, us, eu, apac, jp, au, us-gov or bare.")
    ] = "auto",
    account: Annotated[
        str | None, typer.Option(help="12-digit AWS account id for the policy's ARNs.")
    ] = None,
    allow_legacy: Annotated[bool, typer.Option("--allow-legacy", help="Accept a Legacy model.")] = False,
) -> None:
    """Print the model id to call from REGION and the IAM policy a runtime role needs for it."""
    try:
        resolved = resolve(model, region, scope, allow_legacy=allow_legacy)
        statements = invoke_policy(resolved, resolved.region, account or PLACEHOLDER_ACCOUNT)
    except CatalogError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from error
    typer.echo(f"model id:     {resolved.model_id}")
    typer.echo(f"scope:        {resolved.scope} ({resolved.partition}, from {resolved.region})")
    typer.echo(f"destinations: {', '.join(resolved.destination_regions)}")
    typer.echo(
        f"lifecycle:    {resolved.lifecycle.value}; streaming {resolved.supports_streaming}, "
        f"tools while streaming {resolved.supports_tools}, extended thinking {resolved.supports_thinking}"
    )
    if account is None:
        typer.echo(f"note: account {PLACEHOLDER_ACCOUNT} is a placeholder; pass --account.", err=True)
    typer.echo(json.dumps(policy_document(statements), indent=2))
