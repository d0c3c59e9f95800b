"""The local API Gateway under abuse: floods, broken UTF-8, huge upgrades, refusals, and its logs."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from support import wait_until
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode

from courier_shared.routes import Function

from .conftest import FakeGateway, Harness


def test_a_flood_on_one_connection_never_takes_the_threads_other_connections_need(
    start_gateway: Callable[..., Harness],
) -> None:
    release = threading.Event()
    fake = FakeGateway()
    flood_started: list[int] = []

    def gateway(event: dict[str, Any], context: Any) -> Any:
        if '"flood"' in (event.get("body") or ""):
            flood_started.append(1)
            release.wait(10)  # every flood frame holds its handler thread until the test lets go
        return fake(event, context)

    harness = start_gateway(handlers={Function.GATEWAY: gateway}, handler_threads=16)
    try:
        with harness.connect() as flooder, harness.connect() as other:
            for _ in range(200):
                flooder.send(json.dumps({"action": "ping", "flood": True}))
            wait_until(lambda: len(flood_started) >= harness.api.max_in_flight_per_connection)

            other.send(json.dumps({"action": "ping"}))
            # Answered while the flood still holds its handlers: no timing involved.
            answer = json.loads(other.recv(timeout=5))
            assert answer["route"] == "ping" and not release.is_set()
            assert len(flood_started) == harness.api.max_in_flight_per_connection  # the rest wait their turn
            release.set()
            for _ in range(200):  # the flood is served too, once its turn comes
                assert json.loads(flooder.recv(timeout=10))["route"] == "ping"
    finally:
        release.set()


def test_a_text_message_that_is_not_utf8_closes_with_1007_and_one_log_line(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with harness.connect() as ws:
        with ws.protocol_mutex:
            ws.protocol.send_frame(Frame(Opcode.TEXT, b'{"action": "ping", "x": "\xff\xfe"}'))
            ws.send_data()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    assert harness.gateway.events_for("ping") == []
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "a text message was not valid UTF-8: closing the WebSocket with 1007"
    ]
    assert all(r.exc_info is None for r in caplog.records)  # no traceback


def test_an_upgrade_with_a_huge_token_is_refused_at_once(harness: Harness) -> None:
    with pytest.raises(InvalidStatus) as refused:
        harness.connect(subprotocols=["courier.v1", "bearer." + "a" * 24_000])
    assert refused.value.response.status_code == 431
    assert harness.authorizer.events == []


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        ({"statusCode": 500}, 500, "Internal Server Error"),
        ({"statusCode": 503, "body": "The database is down."}, 503, "The database is down."),
        ({"statusCode": 400, "body": "Offer courier.v1."}, 400, "Offer courier.v1."),
    ],
)
def test_a_connect_refusal_keeps_the_handler_status_and_reason(
    start_gateway: Callable[..., Harness], answer: dict[str, Any], status: int, reason: str
) -> None:
    def gateway(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return answer

    harness = start_gateway(handlers={Function.GATEWAY: gateway})
    with pytest.raises(InvalidStatus) as refused:
        harness.connect()
    response = refused.value.response
    assert response.status_code == status
    assert json.loads(response.body) == {"message": reason}


def test_header_values_never_reach_the_log(
    start_gateway: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # whatever a developer turns on

    def gateway(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200}  # accepts, but names no subprotocol

    harness = start_gateway(handlers={Function.GATEWAY: gateway})
    with harness.connect(subprotocols=["bearer.good", "x-secret-subprotocol"]):
        pass
    with pytest.raises(InvalidStatus):
        harness.connect(token="forged-token-value")

    # What the server side logged (the test's own websockets client logs its headers at DEBUG).
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client"))
    assert "offered subprotocols but $connect answered none" in logged
    for value in ("bearer.good", "x-secret-subprotocol", "forged-token-value"):
        assert value not in logged
    assert [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ] == []  # a refusal is no error
