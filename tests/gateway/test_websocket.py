"""The authorizer and gateway behind the local API Gateway, driven by a real `websockets` client.

The local stack as `courier dev` assembles it from the Pulumi program (every function through its
declared Handler and environment, the declared routes, queues and mappings), in this process, on
real Postgres; the authorizer trusts a test OIDC issuer serving its JWKS over HTTP, as it would
trust a Cognito pool.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from authorizer.issuer import ISSUER_AUDIENCE, LocalIssuer, new_rsa_key, serve_issuer
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from courier_local.stack import LocalStack, StackOptions

pytestmark = pytest.mark.postgres

TOKENS_PER_SECOND = 40.0  # "lorem 120" then takes 3 s: time to drop and resume mid-answer
TERMINAL_PARTS = ("finish", "abort", "error")


@dataclass
class Stack:
    ws_url: str
    issuer: LocalIssuer

    def connect(self, token: str | None, *, via: str = "subprotocol") -> ClientConnection:
        if token is None:
            return connect(self.ws_url, subprotocols=["courier.v1"], open_timeout=10)  # type: ignore[list-item]
        if via == "query":
            return connect(f"{self.ws_url}?token={token}", open_timeout=10)
        return connect(self.ws_url, subprotocols=["courier.v1", f"bearer.{token}"], open_timeout=10)  # type: ignore[list-item]


@pytest.fixture(scope="module")
def stack(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with serve_issuer(new_rsa_key()) as issuer:
        options = StackOptions(
            port=0,
            database_url=postgres_url,
            state_dir=tmp_path_factory.mktemp("stack"),
            token_rate=TOKENS_PER_SECOND,
            flush_interval_ms=50,
            jwt_issuer=issuer.url,
            jwt_audience=ISSUER_AUDIENCE,
            extra_env={"MAX_OPEN_TURNS": "10"},
        )
        with LocalStack(options) as local:
            assert local.info is not None
            yield Stack(local.info.ws_url, issuer)


def refused_status(open_connection: Callable[[], ClientConnection]) -> int:
    with pytest.raises(InvalidStatus) as refused:
        open_connection().close()
    return refused.value.response.status_code


def receive(ws: ClientConnection, timeout_s: float = 20) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv(timeout=timeout_s))
    return frame


def send_message(ws: ClientConnection, text: str) -> dict[str, Any]:
    frame = {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": text}
    ws.send(json.dumps(frame))
    return frame


# ---------------------------------------------------------------- who may connect


def test_connect_is_refused_without_a_valid_token(stack: Stack) -> None:
    issuer = stack.issuer
    assert refused_status(lambda: stack.connect(None)) == 401
    assert refused_status(lambda: stack.connect(issuer.token(key=new_rsa_key()))) == 401  # bad signature
    assert refused_status(lambda: stack.connect(issuer.token(expires_in=-300))) == 401
    assert refused_status(lambda: stack.connect(issuer.token(audience="another-client"))) == 401
    assert refused_status(lambda: stack.connect(issuer.token(issuer="https://elsewhere.example"))) == 401
    assert refused_status(lambda: stack.connect("not.a.jwt", via="query")) == 401


def test_an_issuer_token_opens_a_connection_with_the_courier_subprotocol(stack: Stack) -> None:
    with stack.connect(stack.issuer.token(sub=f"u-{uuid.uuid4().hex[:6]}")) as ws:
        assert ws.subprotocol == "courier.v1"
        ws.send(json.dumps({"action": "ping"}))
        assert receive(ws)["type"] == "pong"


def test_a_token_in_the_query_string_opens_a_connection(stack: Stack) -> None:
    with stack.connect(stack.issuer.token(sub="alice"), via="query") as ws:
        ws.send(json.dumps({"action": "listConversations"}))
        assert receive(ws)["type"] == "conversations"


def test_bad_frames_over_the_wire_get_an_error_answer_and_the_connection_stays(stack: Stack) -> None:
    with stack.connect(stack.issuer.token(sub="bob")) as ws:
        for body in ("hello", '{"action": "dance"}', '{"action": "ping", "x": 1}'):
            ws.send(body)
            answer = receive(ws)
            assert (answer["type"], answer["code"]) == ("error", "bad_request")
        ws.send(json.dumps({"action": "ping"}))
        assert receive(ws)["type"] == "pong"


# ---------------------------------------------------------------- with the worker


class TurnReader:
    """A client's view of one turn per the protocol: snapshots replace, chunks append without gaps."""

    def __init__(self) -> None:
        self.turn_id: str | None = None
        self.attempt = 0
        self.last_seq = -1
        self.text = ""
        self.parts: list[str] = []
        self.end: str | None = None

    def read(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "snapshot":
            if frame["attempt"] >= self.attempt and frame["seq"] >= self.last_seq:
                self.attempt, self.last_seq, self.text = frame["attempt"], frame["seq"], frame["text"]
            return
        assert frame["type"] == "chunk", frame
        if frame["attempt"] > self.attempt:
            self.attempt, self.last_seq, self.text = frame["attempt"], -1, ""
        if frame["seq"] <= self.last_seq:
            return  # a duplicate the snapshot already holds
        assert frame["seq"] == self.last_seq + 1, f"gap: {self.last_seq} → {frame['seq']}"
        self.last_seq = frame["seq"]
        part = frame["chunk"]
        self.parts.append(part["type"])
        if part["type"] == "text-delta":
            self.text += part["delta"]
        if part["type"] in TERMINAL_PARTS:
            self.end = part["type"]


def read_turn(ws: ClientConnection, reader: TurnReader, *, stop: Callable[[TurnReader], bool]) -> None:
    while not stop(reader):
        frame = receive(ws)
        if frame["type"] in ("chunk", "snapshot"):
            reader.read(frame)


def stored_turn(ws: ClientConnection, conversation_id: str) -> dict[str, Any]:
    ws.send(json.dumps({"action": "getHistory", "conversationId": conversation_id}))
    history = receive(ws)
    while history["type"] != "history":  # late chunks of the turn may still be in flight
        history = receive(ws)
    turn: dict[str, Any] = history["turns"][-1]
    return turn


def test_send_message_acks_then_streams_the_answer_to_its_finish(stack: Stack) -> None:
    with stack.connect(stack.issuer.token(sub=f"u-{uuid.uuid4().hex[:6]}")) as ws:
        sent = send_message(ws, "Hello, Courier")
        first = receive(ws)
        reader = TurnReader()
        while first["type"] == "chunk":  # the worker may beat the route response; keep them
            reader.read(first)
            first = receive(ws)
        assert first["type"] == "ack" and first["clientMessageId"] == sent["clientMessageId"], first

        read_turn(ws, reader, stop=lambda r: r.end is not None)

        assert reader.parts[0] == "start" and reader.parts[-1] == "finish" and "text-delta" in reader.parts
        assert reader.text.strip()
        turn = stored_turn(ws, first["conversationId"])
        assert (turn["turnId"], turn["status"], turn["assistantText"]) == (
            first["turnId"],
            "completed",
            reader.text,
        )


def test_a_client_that_reconnects_mid_answer_resumes_with_a_snapshot_and_the_rest(stack: Stack) -> None:
    token = stack.issuer.token(sub=f"u-{uuid.uuid4().hex[:6]}")
    with stack.connect(token) as first_connection:
        send_message(first_connection, "lorem 120")
        ack = receive(first_connection)
        assert ack["type"] == "ack"
        before_drop = TurnReader()
        read_turn(first_connection, before_drop, stop=lambda r: len(r.text.split()) >= 10)
    assert before_drop.end is None, "the answer finished before the connection dropped: nothing to resume"

    with stack.connect(token) as second_connection:
        second_connection.send(json.dumps({"action": "resume", "turnId": ack["turnId"]}))
        snapshot = receive(second_connection)
        while (
            snapshot["type"] != "snapshot"
        ):  # a stray frame for this connection cannot come first, but be exact
            snapshot = receive(second_connection)
        assert snapshot["turnId"] == ack["turnId"] and snapshot["status"] == "streaming"
        resumed = TurnReader()
        resumed.read(snapshot)
        read_turn(second_connection, resumed, stop=lambda r: r.end is not None)

        assert resumed.end == "finish"
        assert resumed.text.startswith(before_drop.text[: len(snapshot["text"])])
        turn = stored_turn(second_connection, ack["conversationId"])
    assert turn["status"] == "completed"
    assert resumed.text == turn["assistantText"]
    assert len(turn["assistantText"].split()) >= 120
