"""`courier token`: print a signed dev token the local stack accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from courier_local.dev_issuer import DEFAULT_DEV_ISSUER_DIR, DEFAULT_TTL_S, DevIssuer


def token(
    user: Annotated[str, typer.Option("--user", help="The user id (the token's sub).")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant id.")],
    ttl: Annotated[
        int, typer.Option("--ttl", min=1, help="Seconds until the token expires.")
    ] = DEFAULT_TTL_S,
    issuer_dir: Annotated[
        Path, typer.Option("--issuer-dir", help="Where the dev signing key and its JWKS live.")
    ] = DEFAULT_DEV_ISSUER_DIR,
) -> None:
    """Print a dev JWT for USER in TENANT (accepted only where DEV_ISSUER_ENABLED=true)."""
    typer.echo(DevIssuer(issuer_dir).issue(user, tenant, ttl_s=ttl))
