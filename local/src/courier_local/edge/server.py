"""Run an ASGI app on uvicorn in a background thread, on a free port, and stop it cleanly.

Tests, benchmarks and the local stack use this for every local stand-in that speaks HTTP or
WebSocket. `serve()` returns once the server accepts connections; leaving the `with` block (or
calling `stop()`) shuts it down and joins the thread.

WebSocket framing follows API Gateway rather than uvicorn's defaults:
- incoming messages are limited per message and per frame (both close the socket with 1009), using
  the `(max_message_size, max_fragment_size)` form of the `websockets` library's `max_size`;
- outgoing messages larger than the frame limit are split into continuation frames, as API Gateway
  splits messages over 32 KB ("this applies to @connections commands" in the quota table);
- no permessage-deflate and no server pings (API Gateway negotiates neither);
- a text message that is not UTF-8 closes with 1007, logged as one line (uvicorn logs a traceback);
- an upgrade whose request line or headers are too large (over 8 KiB a line, e.g. a huge token) is
  answered at once with 414 or 431 (uvicorn would leave it hanging until the client gives up);
- the WebSocket protocol never logs header values, whatever the log level (a subprotocol may carry
  a bearer token).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.server import ServerProtocol

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebSocketLimits:
    """Incoming WebSocket size limits, in bytes; outgoing messages are split at `max_frame_bytes`."""

    max_message_bytes: int
    max_frame_bytes: int


class _FragmentingServerProtocol(ServerProtocol):
    """A `websockets` server protocol that sends a large message as several frames."""

    def __init__(self, *, max_frame_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_frame_bytes = max_frame_bytes

    def send_text(self, data: bytes | bytearray | memoryview, fin: bool = True) -> None:
        payload = bytes(data)
        if not fin or len(payload) <= self._max_frame_bytes:
            super().send_text(payload, fin)
            return
        size = self._max_frame_bytes
        super().send_text(payload[:size], fin=False)
        for start in range(size, len(payload), size):
            self.send_continuation(payload[start : start + size], fin=start + size >= len(payload))

    def send_binary(self, data: bytes | bytearray | memoryview, fin: bool = True) -> None:
        payload = bytes(data)
        if not fin or len(payload) <= self._max_frame_bytes:
            super().send_binary(payload, fin)
            return
        size = self._max_frame_bytes
        super().send_binary(payload[:size], fin=False)
        for start in range(size, len(payload), size):
            self.send_continuation(payload[start : start + size], fin=start + size >= len(payload))


def _protocol_class(limits: WebSocketLimits) -> type[asyncio.Protocol]:
    class ApiGatewayFramingProtocol(WebSocketsSansIOProtocol):
        def __init__(
            self,
            config: uvicorn.Config,
            server_state: ServerState,
            app_state: dict[str, Any],
            _loop: asyncio.AbstractEventLoop | None = None,
        ) -> None:
            super().__init__(config, server_state, app_state, _loop)
            self.conn = _FragmentingServerProtocol(
                max_frame_bytes=limits.max_frame_bytes,
                extensions=self.conn.available_extensions,
                max_size=(limits.max_message_bytes, limits.max_frame_bytes),
                logger=self.conn.logger,
            )
            self.conn.debug = False  # its debug lines include every request header's value

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self.handshake_initiated and self.conn.handshake_exc is not None:
                # The protocol has queued its refusal (414/431) but uvicorn only writes responses
                # for a parsed request: send it, and close.
                self.transport.write(b"".join(self.conn.data_to_send()))
                self.transport.close()

        async def send(self, message: Any) -> None:
            await super().send(message)
            if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
                # A refused upgrade is a finished handshake; uvicorn would log an error for each one.
                self.handshake_complete = True

        def send_receive_event_to_app(self) -> None:
            if self.curr_msg_data_type == "text" and not self.close_sent:
                try:
                    b"".join(self.frames).decode()
                except UnicodeDecodeError:
                    self.frames = []
                    logger.warning("a text message was not valid UTF-8: closing the WebSocket with 1007")
                    self.conn.send_close(1007, "Invalid UTF-8 in a text message")
                    self.handle_parser_exception()
                    return
            super().send_receive_event_to_app()

    return ApiGatewayFramingProtocol


class RunningServer:
    """A uvicorn server running in a daemon thread. Use as a context manager, or call `stop()`."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket, stage: str | None) -> None:
        self._server = server
        self._socket = sock
        self._stage = stage
        self.host, self.port = sock.getsockname()[:2]
        self.forced_to_stop = False  # stop() had to force the server out (its graceful window ran out)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{self.port}", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://{self._url_host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The WebSocket URL clients connect to (the root path; `/{stage}` works too)."""
        return f"ws://{self._url_host}:{self.port}/"

    @property
    def callback_url(self) -> str:
        """The `endpoint_url` for boto3's `apigatewaymanagementapi` client: `http://host:port/{stage}`."""
        if self._stage is None:
            raise AttributeError("this app has no stage, so it has no @connections callback URL")
        return f"{self.base_url}/{self._stage}"

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def start(self, timeout_s: float = 10.0) -> RunningServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                self._socket.close()
                raise RuntimeError(f"uvicorn on port {self.port} exited during startup")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"uvicorn on port {self.port} did not start within {timeout_s} s")
            time.sleep(0.005)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving: gracefully (open connections closed) within `timeout_s`, else forced
        (`forced_to_stop` says which)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():  # open connections outlived the graceful window
                self.forced_to_stop = True
                self._server.force_exit = True
                self._thread.join(timeout_s)
        self._socket.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    stage: str | None = None,
    websocket_limits: WebSocketLimits | None = None,
    log_level: str = "warning",
    graceful_shutdown_s: int = 2,
) -> RunningServer:
    """Start `app` on uvicorn in a background thread and return once it accepts connections.

    `stage` and `websocket_limits` default to `app.state.stage` / `app.state.websocket_limits` when the
    app sets them (`LocalWebSocketApi.app` does), so `serve(api.app)` needs nothing else.
    `port=0` binds a free port; read it from `.port`.
    """
    app_state = getattr(app, "state", None)
    if stage is None:
        stage = getattr(app_state, "stage", None)
    if websocket_limits is None:
        websocket_limits = getattr(app_state, "websocket_limits", None)
    if websocket_limits is None:
        websocket_limits = WebSocketLimits(
            max_message_bytes=16 * 1024 * 1024, max_frame_bytes=16 * 1024 * 1024
        )

    config = uvicorn.Config(
        app,
        ws=_protocol_class(websocket_limits),
        ws_ping_interval=None,
        ws_per_message_deflate=False,
        log_config=None,  # leave the process's logging configuration alone
        log_level=log_level,
        access_log=False,
        lifespan="auto",
        timeout_graceful_shutdown=graceful_shutdown_s,
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return RunningServer(uvicorn.Server(config), sock, stage).start()
