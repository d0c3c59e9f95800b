"""`courier chat` against the local API Gateway (32 KB frames, 1009 beyond): it never sends a frame
the gateway would drop, says plainly when a message is too long, never reconnects for ever, and
tells "Courier is down" from "your token was refused"."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e.devstack import courier_command, stack_env

from courier_local.chat_client import (
    FRAME_BUDGET_BYTES,
    MAX_MESSAGE_CHARS,
    ChatConnection,
    MessageTooLarge,
    ServiceUnavailable,
)
from courier_local.edge import LocalWebSocketApi, serve
from courier_shared import protocol
from courier_shared.routes import Function

TURN = "6f1c7c1e-5a8e-4d8a-9a51-8e4a2f0f0b11"
CONVERSATION = "0b5a8f4e-2c1d-4a7e-9f3b-1d2e3f4a5b6c"


@dataclass
class AckingGateway:
    """A gateway Lambda that acks every sendMessage (and records it); `connect_status` refuses."""

    received: list[dict[str, Any]] = field(default_factory=list)
    connect_status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        route = event["requestContext"]["routeKey"]
        if route == "$connect":
            if self.connect_status != 200:
                return {"statusCode": self.connect_status}
            return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "courier.v1"}}
        if route == "$disconnect":
            return {"statusCode": 200}
        frame = json.loads(event["body"])
        with self.lock:
            self.received.append(frame)
        ack = {
            "type": "ack",
            "action": "sendMessage",
            "clientMessageId": frame.get("clientMessageId"),
            "conversationId": CONVERSATION,
            "turnId": TURN,
        }
        return {"statusCode": 200, "body": json.dumps(ack)}


@pytest.fixture
def edge() -> Iterator[Callable[..., tuple[str, AckingGateway]]]:
    """The local API Gateway (real framing limits) in front of an AckingGateway."""
    servers: list[Any] = []

    def start(**gateway_options: Any) -> tuple[str, AckingGateway]:
        gateway = AckingGateway(**gateway_options)
        api = LocalWebSocketApi(authorizer=None, handlers={Function.GATEWAY: gateway})
        server = serve(api.app)
        servers.append(server)
        return server.ws_url, gateway

    yield start
    for server in servers:
        server.stop()


def courier_chat(url: str, question: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """`courier chat QUESTION` as a person runs it; a client that loops for ever fails the test here."""
    return subprocess.run(
        [*courier_command(), "chat", question, "--url", url, "--token", "any"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=stack_env(),
        cwd=Path(__file__).parent,
        check=False,
    )


def test_the_clients_limits_are_the_protocols() -> None:
    assert MAX_MESSAGE_CHARS == protocol.MAX_MESSAGE_CHARS
    assert FRAME_BUDGET_BYTES == protocol.CLIENT_FRAME_BUDGET_BYTES
    # The page takes the stack's limit from config.json, and this when a host serves none.
    page_config = (Path(__file__).parents[2] / "web/src/config.ts").read_text()
    assert f"const DEFAULT_MAX_MESSAGE_CHARS = {protocol.MAX_MESSAGE_CHARS};" in page_config


@pytest.mark.parametrize("char", ["ж", "😀"], ids=["cyrillic", "emoji"])
def test_a_6000_character_message_is_refused_plainly_and_nothing_is_sent(
    edge: Callable[..., tuple[str, AckingGateway]], char: str
) -> None:
    url, gateway = edge()

    result = courier_chat(url, char * 6_000)

    assert result.returncode == 5, result.stderr
    assert "The message is 6,000 characters; the limit is 5,000" in result.stderr
    assert "Nothing was sent" in result.stderr
    assert gateway.received == []


@pytest.mark.parametrize(
    "char",
    ["ж", "😀", "\x01", '"'],
    ids=["cyrillic-2-bytes", "emoji-4-bytes", "control-6-bytes-escaped", "quote-2-bytes-escaped"],
)
def test_a_message_of_the_maximum_length_fits_one_frame_in_any_encoding(
    edge: Callable[..., tuple[str, AckingGateway]], char: str
) -> None:
    url, gateway = edge()
    text = char * MAX_MESSAGE_CHARS

    async def send() -> dict[str, Any]:
        async with ChatConnection(url, "any") as connection:
            return await connection.send_message(text)

    ack = asyncio.run(send())

    assert ack["turnId"] == TURN
    assert [frame["text"] for frame in gateway.received] == [text]  # one frame, whole, through the edge


def test_the_client_sends_utf8_not_escapes(edge: Callable[..., tuple[str, AckingGateway]]) -> None:
    url, _ = edge()
    frames: list[str] = []

    async def send() -> None:
        async with ChatConnection(url, "any") as connection:
            original = connection.websocket.send

            async def spy(message: Any, *args: Any, **kwargs: Any) -> None:
                frames.append(message)
                await original(message, *args, **kwargs)

            connection.websocket.send = spy  # type: ignore[method-assign]
            await connection.send_message("Привет, мир")

    asyncio.run(send())

    assert "Привет, мир" in frames[0] and "\\u" not in frames[0]


def test_an_oversized_frame_is_refused_before_sending() -> None:
    from courier_local.chat_client import encode_frame

    with pytest.raises(MessageTooLarge, match="32,000"):
        encode_frame({"action": "ping", "pad": "x" * FRAME_BUDGET_BYTES})


def test_a_server_error_at_connect_says_courier_is_unavailable_not_that_the_token_was_refused(
    edge: Callable[..., tuple[str, AckingGateway]],
) -> None:
    url, _ = edge(connect_status=500)

    with pytest.raises(ServiceUnavailable):
        asyncio.run(ChatConnection(url, "any").open())
    result = courier_chat(url, "hello")

    assert result.returncode == 3, result.stderr
    assert "Courier is unavailable right now (HTTP 500)" in result.stderr
    assert "token" not in result.stderr
