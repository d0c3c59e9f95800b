"""Lambda entry point of the $connect authorizer (`courier_shared.lambda_entry` convention).

The first invocation validates `AuthorizerSettings` from the environment and builds the
Authorizer (its JWKS is fetched then); every later invocation of the container reuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from courier_authorizer.observability import logger
from courier_shared.lambda_entry import Invoke, LambdaEntry


def build(environ: Mapping[str, str]) -> Invoke:
    from courier_authorizer.composition import build_authorizer
    from courier_authorizer.settings import AuthorizerSettings

    authorizer = build_authorizer(AuthorizerSettings.model_validate(environ), logger=logger)

    def authorize(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        return authorizer.authorize(event)

    return authorize


lambda_handler = LambdaEntry(logger, build)
