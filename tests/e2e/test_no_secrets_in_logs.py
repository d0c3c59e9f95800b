"""No token and no message text in any log: `courier dev` (every Lambda, the local API Gateway, the
worker, at the dev stage's DEBUG level) is put through a representative set of flows, good and
hostile, and everything it wrote to stdout and stderr is searched for the secrets it was given."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from courier_local.dev_issuer import DevIssuer
from e2e.devstack import DevStack, start_dev_stack

pytestmark = [pytest.mark.slow]


def secret(label: str) -> str:
    return f"secret-{label}-{uuid.uuid4().hex}"


def open_socket(stack: DevStack, token: str, subprotocols: list[str] | None = None) -> ClientConnection:
    offered = subprotocols if subprotocols is not None else ["courier.v1", f"bearer.{token}"]
    return connect(stack.ws_url, subprotocols=offered, open_timeout=10)  # type: ignore[arg-type]


def answer(ws: ClientConnection, frame: dict[str, object] | str) -> dict[str, object]:
    """Send a frame and return its answer: the next frame back that is not a turn's chunk (a
    snapshot only answers a resume)."""
    ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    resuming = isinstance(frame, dict) and frame.get("action") == "resume"
    while True:
        reply: dict[str, object] = json.loads(ws.recv(timeout=15))
        if reply.get("type") == "chunk" or (reply.get("type") == "snapshot" and not resuming):
            continue
        return reply


def refused(stack: DevStack, token: str, subprotocols: list[str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as error:
        open_socket(stack, token, subprotocols).close()
    return error.value.response.status_code


def until_finished(ws: ClientConnection, turn_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        frame = json.loads(ws.recv(timeout=30))
        ending = frame.get("type") == "chunk" and frame["chunk"]["type"] in ("finish", "abort", "error")
        if frame.get("turnId") == turn_id and ending:
            return
    pytest.fail("the turn did not finish")


@pytest.fixture
def logged_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """A stack of its own: its logs hold only this test's flows."""
    stack = start_dev_stack(tmp_path_factory.mktemp("courier-logs"), "--token-rate", "200", "--grace", "1")
    yield stack
    stack.stop()


def test_no_token_and_no_message_text_reach_any_log(logged_stack: DevStack) -> None:
    stack = logged_stack
    user = f"logs-{uuid.uuid4().hex[:8]}"
    token = stack.token(user)
    issuer = DevIssuer(Path(stack.workdir) / ".courier" / "dev-issuer")
    expired = issuer.issue(user, "e2e", ttl_s=-300)
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    texts = {
        label: secret(label) for label in ("turn", "echoed", "too-long", "field", "garbage", "cli", "nul")
    }

    # A whole turn, its history, the conversation list, a resume and a cancel.
    with open_socket(stack, token) as ws:
        ack = answer(
            ws, {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": texts["turn"]}
        )
        assert ack["type"] == "ack", ack
        until_finished(ws, str(ack["turnId"]))
        conversation = str(ack["conversationId"])
        assert answer(ws, {"action": "getHistory", "conversationId": conversation})["type"] == "history"
        assert answer(ws, {"action": "listConversations"})["type"] == "conversations"
        assert answer(ws, {"action": "resume", "turnId": ack["turnId"]})["type"] == "snapshot"
        second = answer(
            ws,
            {
                "action": "sendMessage",
                "clientMessageId": str(uuid.uuid4()),
                "text": f"lorem 200 {texts['echoed']}",
                "conversationId": conversation,
            },
        )
        assert answer(ws, {"action": "cancel", "turnId": second["turnId"]})["type"] == "ack"

        # Frames that are refused, each carrying a secret where a careless log line would copy it.
        too_long = {
            "action": "sendMessage",
            "clientMessageId": str(uuid.uuid4()),
            "text": texts["too-long"] * 200,
        }
        assert answer(ws, too_long)["code"] == "too_large"
        assert answer(ws, json.dumps({"action": "ping", texts["field"]: 1}))["code"] == "bad_request"
        assert answer(ws, f"not json {texts['garbage']}")["code"] == "bad_request"
        nul = {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": f"{texts['nul']}\x00"}
        assert answer(ws, nul)["code"] == "bad_request"
        assert (
            answer(ws, {"action": "getHistory", "conversationId": conversation, "before": token})["code"]
            == "bad_request"
        )

    # A text frame that is not UTF-8 closes the socket.
    with open_socket(stack, token) as ws:
        with ws.protocol_mutex:
            ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff" + texts["garbage"].encode()))
            ws.send_data()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)

    # Connections refused: expired, forged, a token in the query string, and no courier.v1 offered.
    assert refused(stack, expired) == 401
    assert refused(stack, forged) == 401
    with pytest.raises(InvalidStatus):
        connect(f"{stack.ws_url}?token={forged}", open_timeout=10).close()
    assert refused(stack, token, subprotocols=[f"bearer.{token}"]) == 400

    # And `courier chat`, as a person uses it.
    result = stack.chat(texts["cli"], "--user", user)
    assert result.returncode == 0, result.stderr

    time.sleep(1.5)  # let the cancelled turn and the last log lines land
    logs = stack.logs()
    assert "connect refused" in logs or "frame refused" in logs, "the stack logged nothing: wrong files?"
    for name, value in {"token": token, "expired": expired, "forged": forged, **texts}.items():
        assert value not in logs, f"{name} is in the logs"
    for part in (signature, expired.split(".")[2], forged.split(".")[2]):
        assert part not in logs, "a token's signature is in the logs"
