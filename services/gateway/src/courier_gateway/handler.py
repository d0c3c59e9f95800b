"""Lambda entry point of every WebSocket route: adapts the event to `Gateway.handle`.

Importing this module does nothing but define the handler; the settings are read and the Gateway
(engine, SQS client) built on the first invocation and reused for the container's life.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from courier_gateway.gateway import Gateway

_gateway: Gateway | None = None


def _build() -> Gateway:
    from courier_gateway.composition import build_gateway
    from courier_gateway.settings import GatewaySettings

    return build_gateway(GatewaySettings())


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    global _gateway
    if _gateway is None:
        _gateway = _build()
    return _gateway.handle(event, context)
