"""Reading an API Gateway WebSocket proxy event, and building the responses API Gateway expects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from courier_shared.db.store import Owner
from courier_shared.protocol import SUBPROTOCOL


@dataclass(frozen=True)
class WebSocketEvent:
    route_key: str
    connection_id: str
    # From requestContext.authorizer: the identity the $connect authorizer verified. Never from the body.
    owner: Owner | None
    body: str | None
    # Where a worker posts frames back to this connection (https://{domainName}/{stage}).
    callback_url: str | None
    offered_subprotocols: tuple[str, ...]

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> WebSocketEvent:
        context = event.get("requestContext")
        if not isinstance(context, Mapping):
            context = {}
        domain, stage = context.get("domainName"), context.get("stage")
        body = event.get("body")
        return cls(
            route_key=str(context.get("routeKey", "")),
            connection_id=str(context.get("connectionId", "")),
            owner=_owner(context.get("authorizer")),
            body=body if isinstance(body, str) else None,
            callback_url=_callback_url(domain, stage),
            offered_subprotocols=_offered_subprotocols(event.get("headers")),
        )


def _callback_url(domain: object, stage: object) -> str | None:
    if isinstance(domain, str) and domain and isinstance(stage, str) and stage:
        return f"https://{domain}/{stage}"
    return None


def _owner(authorizer: object) -> Owner | None:
    if not isinstance(authorizer, Mapping):
        return None
    user_id, tenant_id = authorizer.get("userId"), authorizer.get("tenantId")
    if isinstance(user_id, str) and user_id and isinstance(tenant_id, str) and tenant_id:
        return Owner(tenant_id=tenant_id, user_id=user_id)
    return None


def _offered_subprotocols(headers: object) -> tuple[str, ...]:
    if not isinstance(headers, Mapping):
        return ()
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == "sec-websocket-protocol" and isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
    return ()


def connect_response(offered_subprotocols: tuple[str, ...]) -> dict[str, Any]:
    """Accept the upgrade; name `courier.v1` only if the client offered it (browsers insist on that)."""
    if SUBPROTOCOL in offered_subprotocols:
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": SUBPROTOCOL}}
    return {"statusCode": 200}


def refuse_connect(status: int, reason: str) -> dict[str, Any]:
    """Refuse the upgrade with `status`; the reason is for the local stack and logs (API Gateway is
    not documented to pass a $connect body on to the client)."""
    return {"statusCode": status, "body": reason}


def frame_response(body: str) -> dict[str, Any]:
    """A two-way route's answer: API Gateway sends `body` to the client as one frame."""
    return {"statusCode": 200, "body": body}
