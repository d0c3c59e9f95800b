"""Local stand-ins for the AWS edge (dev and test code only: no Lambda package imports this).

- `websocket_api.LocalWebSocketApi`: API Gateway WebSocket API + @connections on one port.
- `server.serve`: run any ASGI app on uvicorn in a background thread on a free port.
"""

from courier_local.edge.server import RunningServer, WebSocketLimits, serve
from courier_local.edge.websocket_api import EdgeEvent, LambdaHandler, LocalWebSocketApi

__all__ = [
    "EdgeEvent",
    "LambdaHandler",
    "LocalWebSocketApi",
    "RunningServer",
    "WebSocketLimits",
    "serve",
]
