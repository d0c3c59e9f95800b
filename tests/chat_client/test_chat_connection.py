"""ChatConnection against a scripted WebSocket server: the resume-after-drop and retry-before-ack paths.

The server is a small `websockets` server that plays Courier's side of the protocol from a script, so
these tests pin the client's behaviour without the whole stack (the e2e tests run the real one).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from courier_local.chat_client import AuthRejected, ChatConnection, ConnectFailed

TURN = "6f1c7c1e-5a8e-4d8a-9a51-8e4a2f0f0b11"
CONVERSATION = "0b5a8f4e-2c1d-4a7e-9f3b-1d2e3f4a5b6c"
pytestmark = pytest.mark.anyio


def chunk(seq: int, part: dict[str, Any]) -> str:
    return json.dumps({"type": "chunk", "turnId": TURN, "attempt": 1, "seq": seq, "chunk": part})


PARTS = [
    {"type": "start", "messageId": TURN, "messageMetadata": {"model": "offline", "attempt": 1}},
    {"type": "text-start", "id": "t"},
    {"type": "text-delta", "id": "t", "delta": "Hello "},
    {"type": "text-delta", "id": "t", "delta": "again "},
    {"type": "text-delta", "id": "t", "delta": "world"},
    {"type": "text-end", "id": "t"},
    {
        "type": "finish",
        "messageMetadata": {
            "stopReason": "end_turn",
            "usage": {"inputTokens": 2, "outputTokens": 3},
            "latencyMs": 50,
            "timeToFirstTokenMs": 5,
        },
    },
]


class ScriptedCourier:
    """Answers sendMessage with an ack (the same for a repeated clientMessageId), streams PARTS, and
    drops the first connection after `drop_after` chunks; a resume gets a snapshot and the rest."""

    def __init__(self, drop_after: int | None = None, drop_before_ack: bool = False) -> None:
        self.drop_after = drop_after
        self.drop_before_ack = drop_before_ack
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        self.acks: dict[str, str] = {}

    async def handler(self, websocket: ServerConnection) -> None:
        self.connections += 1
        first = self.connections == 1
        async for raw in websocket:
            frame = json.loads(raw)
            self.received.append(frame)
            if frame["action"] == "sendMessage":
                if first and self.drop_before_ack:
                    websocket.transport.abort()  # the message reached us, the ack never leaves
                    return
                self.acks.setdefault(frame["clientMessageId"], TURN)
                await websocket.send(
                    json.dumps(
                        {
                            "type": "ack",
                            "action": "sendMessage",
                            "clientMessageId": frame["clientMessageId"],
                            "conversationId": CONVERSATION,
                            "turnId": self.acks[frame["clientMessageId"]],
                        }
                    )
                )
                for seq, part in enumerate(PARTS):
                    if first and self.drop_after is not None and seq == self.drop_after:
                        websocket.transport.abort()
                        return
                    await websocket.send(chunk(seq, part))
            elif frame["action"] == "resume":
                # The stored text covers seq 0..3; live chunks then continue from seq 3 (one overlap).
                await websocket.send(
                    json.dumps(
                        {
                            "type": "snapshot",
                            "turnId": TURN,
                            "attempt": 1,
                            "seq": 3,
                            "status": "streaming",
                            "text": "Hello again ",
                        }
                    )
                )
                for seq in range(3, len(PARTS)):
                    await websocket.send(chunk(seq, PARTS[seq]))


@pytest.fixture
async def courier_server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, ScriptedCourier]]:
    script = ScriptedCourier(**getattr(request, "param", {}))
    async with serve(script.handler, "127.0.0.1", 0, subprotocols=["courier.v1"]) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", script


async def test_a_turn_streams_to_the_end(courier_server: tuple[str, ScriptedCourier]) -> None:
    url, _ = courier_server
    deltas: list[str] = []
    async with ChatConnection(url, "token") as connection:
        result = await connection.run_turn(
            "hi", on_update=lambda u: deltas.append(getattr(u, "delta", "")) if hasattr(u, "delta") else None
        )
    assert result.status == "completed"
    assert result.text == "Hello again world"
    assert "".join(deltas) == "Hello again world"
    assert result.metadata["usage"] == {"inputTokens": 2, "outputTokens": 3}
    assert result.conversation_id == CONVERSATION


@pytest.mark.parametrize("courier_server", [{"drop_after": 4}], indirect=True)
async def test_a_dropped_connection_is_resumed_without_loss_or_duplicates(
    courier_server: tuple[str, ScriptedCourier],
) -> None:
    url, script = courier_server
    connection = ChatConnection(url, "token", reconnect_delay_s=0.05)
    await connection.open()
    try:
        result = await asyncio.wait_for(connection.run_turn("hi"), 10)
    finally:
        await connection.close()
    assert result.status == "completed"
    assert result.text == "Hello again world"
    assert result.reconnects == 1
    resume = [f for f in script.received if f["action"] == "resume"]
    assert resume == [{"action": "resume", "turnId": TURN, "afterSeq": 3}]


@pytest.mark.parametrize("courier_server", [{"drop_before_ack": True}], indirect=True)
async def test_a_drop_before_the_ack_resends_the_same_client_message_id(
    courier_server: tuple[str, ScriptedCourier],
) -> None:
    url, script = courier_server
    connection = ChatConnection(url, "token", reconnect_delay_s=0.05)
    await connection.open()
    try:
        result = await asyncio.wait_for(connection.run_turn("hi"), 10)
    finally:
        await connection.close()
    sends = [f for f in script.received if f["action"] == "sendMessage"]
    assert len(sends) == 2 and sends[0]["clientMessageId"] == sends[1]["clientMessageId"]
    assert result.text == "Hello again world"


async def test_nothing_listening_is_a_connect_failure() -> None:
    async with serve(lambda ws: None, "127.0.0.1", 0) as server:  # type: ignore[arg-type,return-value]
        port = next(iter(server.sockets)).getsockname()[1]
    with pytest.raises(ConnectFailed):
        await ChatConnection(f"ws://127.0.0.1:{port}/", "token", open_timeout_s=2).open()


async def test_a_refused_upgrade_is_an_auth_failure() -> None:
    def refuse(_connection: ServerConnection, _request: object) -> Response:
        return Response(401, "Unauthorized", Headers(), b"")

    async with serve(lambda ws: None, "127.0.0.1", 0, process_request=refuse) as server:  # type: ignore[arg-type,return-value]
        port = next(iter(server.sockets)).getsockname()[1]
        with pytest.raises(AuthRejected):
            await ChatConnection(f"ws://127.0.0.1:{port}/", "bad").open()
