"""Reconnecting is bounded: a server that keeps dropping the connection, or closes it because of what
was sent, makes `courier chat` give up with a clear message and its exit code, never loop."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.server import ServerConnection, serve

from courier_local.chat_client import ChatConnection, ConnectionLost, MessageTooLarge
from courier_local.edge import LocalWebSocketApi
from courier_local.edge import serve as serve_asgi
from courier_shared.db.engine import build_engine
from courier_shared.db.store import ChatStore
from courier_shared.routes import Function

from .test_limits import courier_chat


class Misbehaving:
    """A WebSocket server that answers every sendMessage by dropping the connection, or closing it
    with `close_code`."""

    def __init__(self, close_code: int | None = None) -> None:
        self.close_code = close_code
        self.sends = 0
        self.connections = 0

    def handler(self, websocket: ServerConnection) -> None:
        self.connections += 1
        for raw in websocket:
            if json.loads(raw).get("action") == "sendMessage":
                self.sends += 1
                if self.close_code is None:
                    websocket.socket.close()  # a dropped network connection, no close frame
                else:
                    websocket.close(self.close_code, "too big")
                return


@pytest.fixture
def misbehaving(request: pytest.FixtureRequest) -> Iterator[tuple[str, Misbehaving]]:
    script = Misbehaving(**getattr(request, "param", {}))
    with serve(script.handler, "127.0.0.1", 0, subprotocols=["courier.v1"]) as server:  # type: ignore[list-item]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/", script
        server.shutdown()
        thread.join(5)


def run_turn(url: str, **options: Any) -> Any:
    async def turn() -> Any:
        connection = ChatConnection(url, "any", reconnect_delay_s=0.01, **options)
        await connection.open()
        try:
            return await asyncio.wait_for(connection.run_turn("hello"), 30)
        finally:
            await connection.close()

    return asyncio.run(turn())


def test_a_connection_that_keeps_dropping_is_given_up_after_a_bounded_number_of_tries(
    misbehaving: tuple[str, Misbehaving],
) -> None:
    url, script = misbehaving

    with pytest.raises(ConnectionLost, match="dropped 4 times in a row"):
        run_turn(url, max_drops_without_progress=3)

    assert script.sends == 4  # the first send and three resends, no more


@pytest.mark.parametrize("misbehaving", [{"close_code": 1009}], indirect=True)
def test_a_close_for_a_message_too_big_is_not_retried(misbehaving: tuple[str, Misbehaving]) -> None:
    url, script = misbehaving

    with pytest.raises(MessageTooLarge, match="1009"):
        run_turn(url)

    assert script.sends == 1


def test_courier_chat_exits_3_with_a_clear_message_when_the_connection_keeps_dropping(
    misbehaving: tuple[str, Misbehaving],
) -> None:
    url, script = misbehaving

    result = courier_chat(url, "hello")

    assert result.returncode == 3, result.stderr
    assert "dropped 6 times in a row without getting anywhere: giving up" in result.stderr
    assert script.sends == 6


def test_a_database_outage_at_connect_is_a_server_error_that_courier_chat_calls_unavailable() -> None:
    from courier_gateway.composition import build_gateway
    from courier_gateway.settings import GatewaySettings

    class NoQueue:
        def send(self, request: Any) -> None:
            raise AssertionError("nothing is queued without a database")

    # A database nobody listens on: every connection attempt is refused at once.
    store = ChatStore(build_engine("postgresql+psycopg://courier@127.0.0.1:9/courier"))
    settings = GatewaySettings.model_validate(
        {"TURN_QUEUE_URL": "https://sqs.invalid/q.fifo", "CURSOR_SIGNING_KEY": "k" * 32}
    )
    gateway = build_gateway(settings, store=store, queue=NoQueue())

    def allow(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        statement = {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}
        return {
            "principalId": "alice",
            "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
            "context": {"userId": "alice", "tenantId": "acme"},
        }

    api = LocalWebSocketApi(authorizer=allow, handlers={Function.GATEWAY: gateway.handle})
    with serve_asgi(api.app) as server:
        result = courier_chat(server.ws_url, "hello")

    assert result.returncode == 3, result.stderr
    assert "Courier is unavailable right now (HTTP 500)" in result.stderr
    assert "token" not in result.stderr
