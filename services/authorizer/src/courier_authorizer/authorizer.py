"""The $connect REQUEST authorizer: find the bearer token, verify it, answer API Gateway with a policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger

from courier_authorizer.verifier import Identity, TokenRejected, TokenVerifier

SUBPROTOCOL_HEADER = "sec-websocket-protocol"
BEARER_PREFIX = "bearer."
TOKEN_QUERY_PARAMETER = "token"  # noqa: S105 (a parameter name, not a secret)


class Unauthorized(Exception):
    """Raised with exactly this message, API Gateway refuses the upgrade with 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def token_from_event(event: Mapping[str, Any]) -> str | None:
    """The JWT from `Sec-WebSocket-Protocol: courier.v1, bearer.<jwt>`, else from `?token=<jwt>`."""
    headers = event.get("headers") or {}
    for name, value in headers.items():
        if name.lower() == SUBPROTOCOL_HEADER and isinstance(value, str):
            for offered in value.split(","):
                offered = offered.strip()
                if offered.startswith(BEARER_PREFIX) and len(offered) > len(BEARER_PREFIX):
                    return offered[len(BEARER_PREFIX) :]
    query = event.get("queryStringParameters") or {}
    token = query.get(TOKEN_QUERY_PARAMETER)
    return token if isinstance(token, str) and token else None


def allow_policy(identity: Identity, method_arn: str) -> dict[str, Any]:
    """The authorizer result: Allow on this $connect method, identity in the context for later routes."""
    return {
        "principalId": identity.user_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": method_arn}],
        },
        "context": {"userId": identity.user_id, "tenantId": identity.tenant_id},
    }


class Authorizer:
    def __init__(self, verifier: TokenVerifier, logger: Logger) -> None:
        self._verifier = verifier
        self._logger = logger

    def authorize(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Allow policy for a valid token; raises Unauthorized otherwise (logged without the token)."""
        connection_id = (event.get("requestContext") or {}).get("connectionId")
        token = token_from_event(event)
        if token is None:
            self._logger.info("connect refused", extra={"reason": "no token", "connection_id": connection_id})
            raise Unauthorized
        try:
            identity = self._verifier.verify(token)
        except TokenRejected as rejected:
            self._logger.info(
                "connect refused", extra={"reason": str(rejected), "connection_id": connection_id}
            )
            raise Unauthorized from None
        self._logger.info(
            "connect allowed",
            extra={
                "user_id": identity.user_id,
                "tenant_id": identity.tenant_id,
                "connection_id": connection_id,
            },
        )
        return allow_policy(identity, str(event.get("methodArn", "")))
