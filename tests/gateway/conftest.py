"""The gateway Lambda called with API Gateway-shaped events, over real databases (SQLite and Postgres).

The queue is an in-memory recorder here (the SQS adapter is exercised against moto in test_sqs.py).
"""

from __future__ import annotations

import io
import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from sqlalchemy import func, select

from courier_gateway.composition import build_gateway
from courier_gateway.gateway import Gateway
from courier_gateway.settings import GatewaySettings
from courier_shared.db.models import Connection, Conversation, ToolInvocation, Turn, TurnListener
from courier_shared.db.store import ChatStore, Owner
from courier_shared.queue import TurnRequest
from courier_shared.routes import select_route


@pytest.fixture(autouse=True)
def _dummy_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


@dataclass
class RecordingQueue:
    """The TurnQueue port in memory. `fail_next` sends raise, as an SQS outage would."""

    sent: list[TurnRequest] = field(default_factory=list)
    fail_next: int = 0

    def send(self, request: TurnRequest) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("SQS is unreachable")
        self.sent.append(request)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)  # every reading later than the last, as in real life
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


_connection_numbers = itertools.count(1)


@dataclass
class Client:
    """One WebSocket connection of one user, as the gateway Lambda sees it through API Gateway."""

    gateway: Gateway
    owner: Owner | None
    connection_id: str = field(
        default_factory=lambda: f"conn-{next(_connection_numbers)}-{uuid.uuid4().hex[:6]}="
    )

    def _context(self, route_key: str, event_type: str) -> dict[str, Any]:
        context: dict[str, Any] = {
            "routeKey": route_key,
            "eventType": event_type,
            "connectionId": self.connection_id,
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "stage": "prod",
            "apiId": "abc123",
            "requestId": uuid.uuid4().hex,
            "connectedAt": 1_767_600_000_000,
            "requestTimeEpoch": 1_767_600_000_000,
            "messageDirection": "IN",
            "identity": {"sourceIp": "127.0.0.1"},
        }
        if self.owner is not None:
            context["authorizer"] = {
                "principalId": self.owner.user_id,
                "userId": self.owner.user_id,
                "tenantId": self.owner.tenant_id,
            }
        return context

    def connect(self, protocol: str | None = "courier.v1, bearer.x.y.z") -> dict[str, Any]:
        headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com"}
        if protocol is not None:
            headers["Sec-WebSocket-Protocol"] = protocol
        event = {
            "requestContext": self._context("$connect", "CONNECT"),
            "headers": headers,
            "isBase64Encoded": False,
        }
        return self.gateway.handle(event, None)

    def disconnect(self) -> dict[str, Any]:
        context = {**self._context("$disconnect", "DISCONNECT"), "disconnectStatusCode": 1001}
        return self.gateway.handle({"requestContext": context, "isBase64Encoded": False}, None)

    def raw(self, body: str, route_key: str | None = None) -> dict[str, Any]:
        """Send a raw frame; returns the Lambda response (statusCode + body)."""
        if route_key is None:
            try:
                document = json.loads(body)
            except (ValueError, RecursionError):  # API Gateway routes what it cannot read to $default
                document = None
            route_key = select_route(document.get("action") if isinstance(document, dict) else None)
        event = {
            "requestContext": {**self._context(route_key, "MESSAGE"), "messageId": uuid.uuid4().hex},
            "body": body,
            "isBase64Encoded": False,
        }
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
    store: ChatStore
    queue: RecordingQueue
    clock: FakeClock
    log: io.StringIO

    def client(self, owner: Owner | None) -> Client:
        return Client(self.gateway, owner)


TEST_CURSOR_KEY = "test-cursor-signing-key-" + "k" * 16


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


@pytest.fixture
def make_harness(store: ChatStore) -> Callable[..., GatewayHarness]:
    def make(**settings: Any) -> GatewayHarness:
        queue, clock, log = RecordingQueue(), FakeClock(), io.StringIO()
        logger = Logger(service=f"gateway-test-{uuid.uuid4().hex[:6]}", stream=log)
        gateway = build_gateway(
            gateway_settings(**settings), store=store, queue=queue, clock=clock, logger=logger
        )
        return GatewayHarness(gateway, store, queue, clock, log)

    return make


@pytest.fixture
def harness(make_harness: Callable[..., GatewayHarness]) -> GatewayHarness:
    return make_harness()


TABLES = (Conversation, Turn, Connection, TurnListener, ToolInvocation)


def row_counts(store: ChatStore) -> dict[str, int]:
    """How many rows each table holds: to prove a refused frame wrote nothing."""
    with store.engine.connect() as connection:
        return {
            table.__tablename__: connection.scalar(select(func.count()).select_from(table)) or 0
            for table in TABLES
        }


@pytest.fixture
def counts(store: ChatStore) -> Iterator[Callable[[], dict[str, int]]]:
    yield lambda: row_counts(store)
