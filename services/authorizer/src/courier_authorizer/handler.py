"""Lambda entry point of the $connect authorizer: adapts the event to `Authorizer.authorize`.

Importing this module does nothing but define the handler; settings are read and the authorizer
built on the first invocation and reused for the container's life (the JWKS is fetched once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from courier_authorizer.authorizer import Authorizer

_authorizer: Authorizer | None = None


def _build() -> Authorizer:
    from courier_authorizer.composition import build_authorizer
    from courier_authorizer.settings import AuthorizerSettings

    return build_authorizer(AuthorizerSettings())


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    global _authorizer
    if _authorizer is None:
        _authorizer = _build()
    return _authorizer.authorize(event)
