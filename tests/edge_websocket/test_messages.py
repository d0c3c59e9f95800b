"""Messages: route selection, route responses, handler failures, concurrency, limits and timeouts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from support import wait_until
from websockets.exceptions import ConnectionClosed

from courier_shared.routes import ROUTES, Function, Route

from .conftest import Harness


@pytest.mark.parametrize(
    ("frame", "route_key"),
    [
        ({"action": "sendMessage", "text": "hi"}, "sendMessage"),
        ({"action": "getHistory"}, "getHistory"),
        ({"action": "noSuchAction"}, "$default"),
        ({"action": "$connect"}, "$default"),
        ({"action": 42}, "$default"),
        ({"text": "no action"}, "$default"),
        ("not json at all", "$default"),
        (["a", "list"], "$default"),
    ],
)
def test_route_selection_by_action_with_default_fallback(
    harness: Harness, frame: object, route_key: str
) -> None:
    body = frame if isinstance(frame, str) else json.dumps(frame)
    with harness.connect() as ws:
        ws.send(body)
        answer = json.loads(ws.recv(timeout=5))
    assert answer["route"] == route_key
    assert answer["body"] == body  # the raw frame text, unparsed
    [event] = harness.gateway.events_for(route_key)
    assert event["requestContext"]["eventType"] == "MESSAGE"


def test_every_message_event_carries_the_authorizer_context_from_connect(harness: Harness) -> None:
    with harness.connect() as ws:
        for action in ("ping", "sendMessage", "whatever"):
            ws.send(json.dumps({"action": action}))
            answer = json.loads(ws.recv(timeout=5))
            assert answer["authorizer"] == {
                "principalId": "user-1",
                "userId": "user-1",
                "tenantId": "tenant-1",
                "admin": False,
                "n": 3,
            }


def test_a_one_way_route_discards_the_handler_result(start_gateway: Callable[..., Harness]) -> None:
    one_way = tuple(Route(r.key, r.function, two_way=False) for r in ROUTES)
    harness = start_gateway(routes=one_way)
    with harness.connect() as ws:
        ws.send(json.dumps({"action": "ping"}))
        wait_until(lambda: len(harness.gateway.events_for("ping")) == 1)
        time.sleep(0.1)  # a route response, if any, would be on its way now
        harness.management_client().post_to_connection(
            ConnectionId=harness.connection_id_of_last_connect(), Data=b"posted"
        )
        assert ws.recv(timeout=5) == "posted"  # the first frame: nothing came back for "ping"


def test_a_raising_handler_produces_the_aws_internal_server_error_frame(harness: Harness) -> None:
    with harness.connect() as ws:
        ws.send(json.dumps({"action": "sendMessage", "raise": True}))
        answer = json.loads(ws.recv(timeout=5))
        ws.send(json.dumps({"action": "ping"}))  # the connection survives
        assert json.loads(ws.recv(timeout=5))["route"] == "ping"
    assert answer == {
        "message": "Internal server error",
        "connectionId": harness.connection_id_of_last_connect(),
        "requestId": answer["requestId"],
    }
    assert answer["requestId"]


def test_a_handler_slower_than_the_integration_timeout_gets_the_timeout_frame(
    start_gateway: Callable[..., Harness],
) -> None:
    harness = start_gateway(integration_timeout_s=0.3)
    with harness.connect() as ws:
        ws.send(json.dumps({"action": "sendMessage", "hold": True}))  # never answers in time
        answer = json.loads(ws.recv(timeout=5))
    harness.gateway.release.set()
    assert answer["message"] == "Endpoint request timed out"


def test_a_slow_handler_blocks_neither_the_connection_nor_other_connections(harness: Harness) -> None:
    with harness.connect() as slow_client, harness.connect() as other_client:
        # The handler answers only once released, which happens after both pings are answered:
        # if it blocked either connection, a ping would never come back.
        slow_client.send(json.dumps({"action": "sendMessage", "hold": True}))
        wait_until(lambda: len(harness.gateway.events_for("sendMessage")) == 1)
        other_client.send(json.dumps({"action": "ping"}))
        assert json.loads(other_client.recv(timeout=5))["route"] == "ping"
        slow_client.send(json.dumps({"action": "ping"}))
        assert json.loads(slow_client.recv(timeout=5))["route"] == "ping"  # overtakes the slow one
        harness.gateway.release.set()
        assert json.loads(slow_client.recv(timeout=5))["route"] == "sendMessage"


def closed_code(ws_recv: Callable[[], object]) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        ws_recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def disconnect_code(harness: Harness) -> int:
    wait_until(lambda: len(harness.gateway.events_for("$disconnect")) == 1)
    return int(harness.gateway.events_for("$disconnect")[0]["requestContext"]["disconnectStatusCode"])


def test_a_frame_over_32_kb_closes_the_connection_with_1009(harness: Harness) -> None:
    with harness.connect() as ws:
        ws.send(json.dumps({"action": "ping", "pad": "x" * (32 * 1024)}))
        assert closed_code(lambda: ws.recv(timeout=5)) == 1009
    assert disconnect_code(harness) == 1009
    assert harness.gateway.events_for("ping") == []


def test_a_message_up_to_128_kb_may_arrive_in_32_kb_frames_and_one_beyond_closes_with_1009(
    harness: Harness,
) -> None:
    frame_size = 32 * 1024
    with harness.connect(max_size=(1024 * 1024, frame_size)) as ws:
        # 100 KB message split in frames of at most 32 KB: accepted, as API Gateway does.
        body = json.dumps({"action": "ping", "pad": "y" * (100 * 1024)})
        ws.send([body[i : i + frame_size] for i in range(0, len(body), frame_size)])
        # The echo is over 100 KB; this client refuses frames over 32 KB, so it proves the
        # gateway split its answer into frames as API Gateway does.
        assert json.loads(ws.recv(timeout=5))["body"] == body

        too_big = json.dumps({"action": "ping", "pad": "z" * (128 * 1024)})
        chunks = [too_big[i : i + frame_size] for i in range(0, len(too_big), frame_size)]
        # The gateway closes as soon as the message passes 128 KB, possibly while frames still go out.
        assert closed_code(lambda: (ws.send(chunks), ws.recv(timeout=5))) == 1009
    assert len(harness.gateway.events_for("ping")) == 1


def test_a_binary_frame_closes_with_1003(harness: Harness) -> None:
    with harness.connect() as ws:
        ws.send(b'{"action": "ping"}')
        assert closed_code(lambda: ws.recv(timeout=5)) == 1003
    assert disconnect_code(harness) == 1003


def test_an_idle_connection_is_closed_and_disconnect_is_reported(
    start_gateway: Callable[..., Harness],
) -> None:
    harness = start_gateway(idle_timeout_s=0.4)
    with harness.connect() as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "Going away (idle)")
    assert disconnect_code(harness) == 1001


def test_activity_defers_the_idle_timeout_but_not_the_maximum_duration(
    start_gateway: Callable[..., Harness],
) -> None:
    # The idle timeout is 3 s, thirty times the gap between messages: only messages that did not
    # count as activity can make it idle, not a slow machine.
    harness = start_gateway(idle_timeout_s=3.0, max_connection_s=6.0)
    with harness.connect() as ws, pytest.raises(ConnectionClosed) as closed:
        while True:  # a message every 0.1 s keeps the connection from going idle
            ws.send(json.dumps({"action": "ping"}))
            ws.recv(timeout=5)
            time.sleep(0.1)
    # The close says which limit ended it: the maximum duration, not idleness.
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        1001,
        "Going away (maximum connection duration)",
    )
    assert disconnect_code(harness) == 1001


def test_a_client_close_invokes_disconnect_with_its_code(harness: Harness) -> None:
    with harness.connect() as ws:
        connection_id = harness.connection_id_of_last_connect()
        assert harness.api.connection_ids() == [connection_id]  # registered before the 101
        ws.close(code=4000, reason="bye")
    wait_until(lambda: len(harness.gateway.events_for("$disconnect")) == 1)
    context = harness.gateway.events_for("$disconnect")[0]["requestContext"]
    assert (context["connectionId"], context["disconnectStatusCode"], context["disconnectReason"]) == (
        connection_id,
        4000,
        "bye",
    )
    assert harness.api.connection_ids() == []


def test_a_failing_disconnect_handler_is_ignored(start_gateway: Callable[..., Harness]) -> None:
    calls: list[str] = []

    def gateway(event: dict[str, object], context: object) -> dict[str, object]:
        route_key = event["requestContext"]["routeKey"]  # type: ignore[index]
        calls.append(str(route_key))
        if route_key == "$disconnect":
            raise RuntimeError("database down")
        return {"statusCode": 200}

    harness = start_gateway(handlers={Function.GATEWAY: gateway})
    with harness.connect(subprotocols=["bearer.good"]):
        pass
    wait_until(lambda: "$disconnect" in calls)
    with harness.connect(subprotocols=["bearer.good"]):  # the gateway keeps serving
        pass
