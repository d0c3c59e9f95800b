"""`serve`: a real uvicorn in a background thread on a free port, stopped cleanly by the caller."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import wait_until
from websockets.exceptions import ConnectionClosed

from courier_local.edge import serve

from .conftest import Harness


def test_serve_runs_any_asgi_app_on_a_free_port_and_stops() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/hello", hello)])
    with serve(app) as first, serve(app) as second:
        assert first.port != second.port
        with urllib.request.urlopen(f"{first.base_url}/hello", timeout=5) as response:
            assert response.read() == b"hello"
        with pytest.raises(AttributeError):
            _ = first.callback_url  # no stage: not a WebSocket API
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{first.base_url}/hello", timeout=1)


def test_stopping_with_open_connections_closes_them_and_reports_disconnect(
    start_gateway: Callable[..., Harness],
) -> None:
    harness = start_gateway()
    ws = harness.connect()
    ws.send(json.dumps({"action": "ping"}))
    ws.recv(timeout=5)
    # Shut down within the graceful window, not forced after it: the server closed the open
    # connection itself. 60 s bounds a hang; it measures nothing.
    harness.server.stop(timeout_s=60)
    assert not harness.server.forced_to_stop
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)
    ws.close()
    wait_until(lambda: len(harness.gateway.events_for("$disconnect")) == 1)
    assert harness.gateway.events_for("$disconnect")[0]["requestContext"]["disconnectStatusCode"] == 1012
