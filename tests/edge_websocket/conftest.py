"""A local WebSocket gateway per test, on a free port, with fake Lambda handlers of the test's own.

The fakes are ordinary Lambda handlers (event, context) -> response that record what they were
called with; the gateway, the uvicorn server, the `websockets` client and boto3 are all real.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from courier_local.edge import LocalWebSocketApi, RunningServer, serve
from courier_shared.routes import Function


def header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


@dataclass
class FakeAuthorizer:
    """A REQUEST authorizer: token "good" allows, "deny" gets a Deny policy, anything else is refused."""

    events: list[dict[str, Any]] = field(default_factory=list)
    context: dict[str, Any] = field(
        default_factory=lambda: {"userId": "user-1", "tenantId": "tenant-1", "admin": False, "n": 3}
    )

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        token = (event.get("queryStringParameters") or {}).get("token")
        for protocol in (header(event, "Sec-WebSocket-Protocol") or "").split(","):
            if protocol.strip().startswith("bearer."):
                token = protocol.strip().removeprefix("bearer.")
        if token not in ("good", "deny"):
            raise Exception("Unauthorized")
        effect = "Allow" if token == "good" else "Deny"
        statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}
        return {
            "principalId": "user-1",
            "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
            "context": self.context,
        }


@dataclass
class FakeGateway:
    """The gateway Lambda's behaviour, reduced to what the edge tests need.

    $connect answers `courier.v1` when offered and refuses with 403 on `?refuse=1`. A message
    `{"raise": true}` raises; `{"hold": true}` waits until the test sets `release`; otherwise the
    answer echoes the route, the body and the authorizer context as the response body.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.events.append(event)
        request_context = event["requestContext"]
        route_key = request_context["routeKey"]
        if route_key == "$connect":
            if (event.get("queryStringParameters") or {}).get("refuse"):
                return {"statusCode": 403}
            offered = [p.strip() for p in (header(event, "Sec-WebSocket-Protocol") or "").split(",")]
            if "courier.v1" in offered:
                return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "courier.v1"}}
            return {"statusCode": 200}
        if route_key == "$disconnect":
            return {"statusCode": 200}
        try:
            body = json.loads(event["body"])
        except ValueError:
            body = None
        if isinstance(body, dict):
            if body.get("raise"):
                raise RuntimeError("the handler failed")
            if body.get("hold"):
                self.release.wait(30)  # bounded only so a failed test can't leave the thread behind
        answer = {"route": route_key, "body": event["body"], "authorizer": request_context.get("authorizer")}
        return {"statusCode": 200, "body": json.dumps(answer)}

    def events_for(self, route_key: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["requestContext"]["routeKey"] == route_key]


@dataclass
class Harness:
    api: LocalWebSocketApi
    server: RunningServer
    authorizer: FakeAuthorizer
    gateway: FakeGateway

    def connect(
        self,
        token: str | None = "good",
        *,
        subprotocols: list[str] | None = None,
        path: str = "",
        query: str = "",
        max_size: int | tuple[int | None, int | None] = 2**20,
    ) -> ClientConnection:
        """Connect as a browser does: `courier.v1, bearer.<token>` unless told otherwise."""
        if subprotocols is None:
            subprotocols = ["courier.v1", f"bearer.{token}"] if token is not None else []
        offered = [Subprotocol(protocol) for protocol in subprotocols] or None
        url = self.server.ws_url + path + (f"?{query}" if query else "")
        return connect(url, subprotocols=offered, open_timeout=5, close_timeout=2, max_size=max_size)

    def connection_id_of_last_connect(self) -> str:
        return str(self.gateway.events_for("$connect")[-1]["requestContext"]["connectionId"])

    def management_client(self) -> Any:
        return boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=self.server.callback_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., Harness]]:
    """Start a gateway with the fake handlers; keyword arguments go to LocalWebSocketApi."""
    with ExitStack() as stack:

        def start(**api_options: Any) -> Harness:
            authorizer, gateway = FakeAuthorizer(), FakeGateway()
            options: dict[str, Any] = {"authorizer": authorizer, "handlers": {Function.GATEWAY: gateway}}
            options.update(api_options)
            api = LocalWebSocketApi(**options)
            server = stack.enter_context(serve(api.app))
            return Harness(api, server, authorizer, gateway)

        yield start


@pytest.fixture
def harness(start_gateway: Callable[..., Harness]) -> Harness:
    return start_gateway()
