"""The @connections API, driven by the unmodified boto3 `apigatewaymanagementapi` client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from support import wait_until
from websockets.exceptions import ConnectionClosed

from courier_local.edge import EdgeEvent

from .conftest import Harness


def test_post_get_delete_then_gone(harness: Harness) -> None:
    client = harness.management_client()
    with harness.connect() as ws:
        connection_id = harness.connection_id_of_last_connect()
        assert "=" in connection_id  # boto3 sends it URL-encoded (%3D); the gateway decodes it

        client.post_to_connection(ConnectionId=connection_id, Data=b'{"type": "pong"}')
        client.post_to_connection(ConnectionId=connection_id, Data="second, ünïcode".encode())
        assert ws.recv(timeout=5) == '{"type": "pong"}'  # one POST, one text frame, in order
        assert ws.recv(timeout=5) == "second, ünïcode"

        info = client.get_connection(ConnectionId=connection_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"
        assert info["Identity"]["UserAgent"].startswith("Python/")
        now = datetime.now(UTC)
        assert now - timedelta(seconds=10) < info["ConnectedAt"] <= info["LastActiveAt"] <= now

        client.delete_connection(ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000

    wait_until(lambda: len(harness.gateway.events_for("$disconnect")) == 1)
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"late")
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=connection_id)
    with pytest.raises(client.exceptions.GoneException):
        client.delete_connection(ConnectionId=connection_id)


def test_unknown_connection_is_gone_with_the_aws_error_shape(harness: Harness) -> None:
    client = harness.management_client()
    with pytest.raises(client.exceptions.GoneException) as gone:
        client.post_to_connection(ConnectionId="R1kmxc2VNjMCFIA=", Data=b"x")
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    assert gone.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "GoneException"


def test_a_client_that_left_is_gone(harness: Harness) -> None:
    client = harness.management_client()
    with harness.connect():
        connection_id = harness.connection_id_of_last_connect()
    wait_until(lambda: harness.api.connection_ids() == [])
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"anyone there?")


def test_posts_up_to_128_kb_are_delivered_and_larger_ones_are_payload_too_large(harness: Harness) -> None:
    client = harness.management_client()
    with harness.connect(max_size=(1024 * 1024, 32 * 1024)) as ws:
        connection_id = harness.connection_id_of_last_connect()
        largest = "a" * (128 * 1024)
        client.post_to_connection(ConnectionId=connection_id, Data=largest.encode())
        # Delivered whole, as frames of at most 32 KB (this client refuses larger frames).
        assert ws.recv(timeout=5) == largest

        with pytest.raises(client.exceptions.PayloadTooLargeException):
            client.post_to_connection(ConnectionId=connection_id, Data=b"b" * (128 * 1024 + 1))
        client.post_to_connection(ConnectionId=connection_id, Data=b"still open")
        assert ws.recv(timeout=5) == "still open"


def test_posts_count_as_activity_for_the_idle_timeout(start_gateway: Callable[..., Harness]) -> None:
    # Posts 0.1 s apart for twice the idle timeout. The timeout is 3 s, thirty gaps' worth, so only
    # a post that did not count as activity can close the connection, not a slow machine.
    harness = start_gateway(idle_timeout_s=3.0)
    client = harness.management_client()
    with harness.connect() as ws:
        connection_id = harness.connection_id_of_last_connect()
        until = time.monotonic() + 2 * 3.0
        while time.monotonic() < until:
            client.post_to_connection(ConnectionId=connection_id, Data=b"tick")
            assert ws.recv(timeout=5) == "tick"
            time.sleep(0.1)
        assert harness.api.connection_ids() == [connection_id]


def test_the_on_event_hook_sees_route_responses_and_posts(start_gateway: Callable[..., Harness]) -> None:
    seen: list[EdgeEvent] = []
    harness = start_gateway(on_event=seen.append)
    client = harness.management_client()
    with harness.connect() as ws:
        connection_id = harness.connection_id_of_last_connect()
        ws.send(json.dumps({"action": "ping"}))
        ws.recv(timeout=5)
        for _ in range(3):
            client.post_to_connection(ConnectionId=connection_id, Data=b"12345")
            ws.recv(timeout=5)
    wait_until(lambda: harness.api.counters["disconnect"] == 1)
    assert [e.kind for e in seen] == ["connect", "message", "response", "post", "post", "post", "disconnect"]
    assert [e.size for e in seen if e.kind == "post"] == [5, 5, 5]
    assert harness.api.counters["post"] == 3
