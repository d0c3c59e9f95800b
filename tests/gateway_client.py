"""The gateway Lambda driven as API Gateway drives it: one `Client` per WebSocket connection, its
events built from AWS's samples (tests/aws_events.py). Shared by the unit tier (in-memory store)
and the integration tier (SQLite and Postgres)."""

from __future__ import annotations

import io
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aws_events import authorizer_context, websocket_connect, websocket_disconnect, websocket_message
from aws_lambda_powertools import Logger
from fakes import RecordingQueue
from support import FakeClock

from courier_gateway.composition import build_gateway
from courier_gateway.gateway import Gateway
from courier_gateway.ports import GatewayStore
from courier_gateway.settings import GatewaySettings
from courier_shared.db.store import Owner
from courier_shared.routes import select_route

TEST_CURSOR_KEY = "test-cursor-signing-key-" + "k" * 16
_connection_numbers = itertools.count(1)


def make_owner(tenant: str = "acme") -> Owner:
    return Owner(tenant_id=tenant, user_id=f"user-{uuid.uuid4().hex[:8]}")


def gateway_settings(**overrides: Any) -> GatewaySettings:
    return GatewaySettings.model_validate(
        {
            "TURN_QUEUE_URL": "https://sqs.invalid/turns.fifo",
            "CURSOR_SIGNING_KEY": TEST_CURSOR_KEY,
            # Out of the way of tests about other things; test_fair_use.py sets its own.
            "FRAME_BURST": 100_000,
            "USER_FRAME_BURST": 100_000,
            **overrides,
        }
    )


@dataclass
class Client:
    """One WebSocket connection of one user, as the gateway Lambda sees it through API Gateway."""

    gateway: Gateway
    owner: Owner | None
    connection_id: str = field(
        default_factory=lambda: f"conn-{next(_connection_numbers)}-{uuid.uuid4().hex[:6]}="
    )

    @property
    def _authorizer(self) -> dict[str, Any] | None:
        return authorizer_context(self.owner) if self.owner is not None else None

    def connect(self, protocol: str | None = "courier.v1, bearer.x.y.z") -> dict[str, Any]:
        headers = {"Sec-WebSocket-Protocol": protocol} if protocol is not None else {}
        event = websocket_connect(self.connection_id, authorizer=self._authorizer, headers=headers)
        return self.gateway.handle(event, None)

    def disconnect(self) -> dict[str, Any]:
        event = websocket_disconnect(self.connection_id, authorizer=self._authorizer)
        return self.gateway.handle(event, None)

    def raw(self, body: str, route_key: str | None = None) -> dict[str, Any]:
        """Send a raw frame; returns the Lambda response (statusCode + body)."""
        if route_key is None:
            try:
                document = json.loads(body)
            except (ValueError, RecursionError):  # API Gateway routes what it cannot read to $default
                document = None
            route_key = select_route(document.get("action") if isinstance(document, dict) else None)
        event = websocket_message(self.connection_id, body, route_key=route_key, authorizer=self._authorizer)
        return self.gateway.handle(event, None)

    def send(self, frame: dict[str, Any] | str) -> dict[str, Any]:
        """Send a frame; returns the answer frame, parsed."""
        response = self.raw(frame if isinstance(frame, str) else json.dumps(frame))
        assert response["statusCode"] == 200
        answer: dict[str, Any] = json.loads(response["body"])
        return answer

    def send_message(self, text: str = "Hello", **fields: Any) -> dict[str, Any]:
        frame = {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": text, **fields}
        return self.send({key: value for key, value in frame.items() if value is not None})


@dataclass
class GatewayHarness:
    gateway: Gateway
    store: Any  # the GatewayStore the test reads back from (a ChatStore or the in-memory fake)
    queue: RecordingQueue
    clock: FakeClock
    log: io.StringIO

    def client(self, owner: Owner | None) -> Client:
        return Client(self.gateway, owner)


def make_gateway_harness(store: GatewayStore, **settings: Any) -> GatewayHarness:
    """The gateway over `store`, an in-memory queue, a fake clock and a log it writes to."""
    queue, clock, log = RecordingQueue(), FakeClock(tick=timedelta(milliseconds=1)), io.StringIO()
    logger = Logger(service=f"gateway-test-{uuid.uuid4().hex[:6]}", stream=log)
    gateway = build_gateway(
        gateway_settings(**settings), store=store, queue=queue, clock=clock, logger=logger
    )
    return GatewayHarness(gateway, store, queue, clock, log)


HarnessFactory = Callable[..., GatewayHarness]
