"""A local API Gateway WebSocket API: the WebSocket and the @connections HTTP API on one port.

It calls the same Lambda handlers AWS would, with API Gateway-shaped events, and applies the same
route table (`courier_shared.routes`), route selection, limits and route responses, so the services
and the unmodified boto3 `apigatewaymanagementapi` client run against it as they do against AWS.
Facts and sources: shared/notes/aws.md §A. What it does, step by step:

- `$connect`: the REQUEST authorizer (if any) runs first. Raising `Exception("Unauthorized")` refuses
  the upgrade with HTTP 401; any other exception or a malformed result with 500; a policy that does
  not allow `execute-api:Invoke` on the `methodArn` (explicit Deny, or no matching Allow) with 403.
  Then the `$connect` handler gets a CONNECT event; a `statusCode` outside 2xx refuses the upgrade
  with that status (AWS documents refusal only by example; clients are reported to see the
  handler's status, e.g. wscat's "Unexpected server response: 500" ⚠️), with the handler's `body`
  as the reason when it gave one (⚠️ API Gateway may not forward it); a response without a
  `statusCode` refuses with 502. A `Sec-WebSocket-Protocol` response header is the subprotocol the
  server answers (a browser offering `courier.v1, bearer.<jwt>` needs `courier.v1`). Header values
  are never logged: a subprotocol may be a bearer token.
- Messages: text frames only (a binary frame closes with 1003, as in AWS). The route is
  `select_route(body)` (the declared selection expression); the route's `function` picks the
  handler; the MESSAGE event carries the raw body, a `messageId` and the authorizer context from
  `$connect`. Handlers run in worker threads, concurrently (AWS gives no ordering between
  invocations either), at most `max_in_flight_per_connection` (8) messages of one connection at a
  time: the socket is not read meanwhile, so one client's flood queues on its own connection
  instead of taking every handler thread from everyone else (in AWS, Lambda scales out instead;
  API Gateway documents no such bound). A two-way route sends the handler's returned `body` back
  as one text frame. A handler that raises produces
  `{"message": "Internal server error", "connectionId": ..., "requestId": ...}`; one slower than the
  integration timeout (29 s) produces `{"message": "Endpoint request timed out", ...}` (⚠️ text
  unconfirmed for WebSocket APIs) and its late result is dropped.
- Limits: a message over 128 KB or a frame over 32 KB closes with 1009 (frames are checked by the
  server protocol that `edge.server.serve` installs; messages are checked here too); a text message
  that is not UTF-8 closes with 1007 (⚠️ AWS's code unconfirmed), logged as one line. Idle timeout
  (10 min, activity = a message in either direction) and maximum duration (2 h) close with 1001.
- `$disconnect`: after the socket closes, best effort, with the close code and reason seen.
- @connections on the same port, `/{stage}/@connections/{connectionId}` (id URL-decoded):
  POST delivers the body as one message (UTF-8 as a text frame, anything else binary; over 32 KB it
  goes out as continuation frames of at most 32 KB, which is how the quota page's "must be split into
  frames ... applies to @connections" reads, rather than an error); GET returns connectedAt,
  lastActiveAt (ISO 8601) and identity; DELETE closes the socket (1000) and answers 204. An unknown or
  closed connection answers 410 `GoneException`; a POST body over 128 KB answers 413
  `PayloadTooLargeException` (the service model's `Data` maximum is 131072 bytes). Error bodies are
  `{"message": ...}` with the `x-amzn-ErrorType` header, which is how botocore picks the exception.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import json
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from courier_local.edge.lambda_context import LambdaContext
from courier_local.edge.server import WebSocketLimits
from courier_shared.routes import ROUTE_SELECTION_EXPRESSION, ROUTES, Function
from courier_shared.routes import Route as ApiRoute

logger = logging.getLogger(__name__)

LambdaHandler = Callable[[dict[str, Any], Any], Mapping[str, Any] | None]
"""A Lambda handler: `(event, context) -> response`."""

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"
MAX_MESSAGE_BYTES = 128 * 1024
MAX_FRAME_BYTES = 32 * 1024
IDLE_TIMEOUT_S = 10 * 60
MAX_CONNECTION_S = 2 * 60 * 60
INTEGRATION_TIMEOUT_S = 29.0
AUTHORIZER_RESULT_MAX_BYTES = 8 * 1024

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_NO_STATUS = 1005
CLOSE_MESSAGE_TOO_BIG = 1009

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def new_aws_id() -> str:
    """An id shaped like API Gateway's connection and request ids, e.g. `R1kmxc2VNjMCFIA=`."""
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode("ascii")


def _clf_time(epoch_s: float) -> str:
    """API Gateway's `requestTime`: `20/Jan/2024:11:55:00 +0000` (independent of the locale)."""
    t = time.gmtime(epoch_s)
    day = f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}"
    return f"{day}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def _iso8601(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class EdgeEvent:
    """Something the local gateway did, for tests and benchmarks (`on_event` hook)."""

    kind: str  # connect | refuse | message | response | post | post_gone | delete | disconnect
    connection_id: str
    route_key: str | None = None
    size: int = 0
    status: int | None = None


@dataclass
class _Connection:
    connection_id: str
    websocket: WebSocket
    domain_name: str
    source_ip: str
    user_agent: str | None
    connected_at_ms: int
    authorizer: dict[str, Any] | None
    in_flight: anyio.Semaphore
    connected_monotonic: float = field(default_factory=time.monotonic)
    last_active_monotonic: float = field(default_factory=time.monotonic)
    last_active_at: float = field(default_factory=time.time)
    closing: bool = False
    accepted: anyio.Event = field(default_factory=anyio.Event)

    def touch(self) -> None:
        self.last_active_monotonic = time.monotonic()
        self.last_active_at = time.time()

    def identity(self) -> dict[str, str]:
        identity = {"sourceIp": self.source_ip}
        if self.user_agent is not None:
            identity["userAgent"] = self.user_agent
        return identity


@dataclass(frozen=True)
class _Upgrade:
    """What API Gateway takes from the HTTP upgrade request."""

    headers: dict[str, str]
    multi_value_headers: dict[str, list[str]]
    query: dict[str, str] | None
    multi_value_query: dict[str, list[str]] | None
    source_ip: str
    user_agent: str | None
    domain_name: str

    @classmethod
    def from_websocket(cls, websocket: WebSocket) -> _Upgrade:
        headers: dict[str, str] = {}
        multi_value_headers: dict[str, list[str]] = {}
        for raw_name, raw_value in websocket.scope["headers"]:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = value
            multi_value_headers.setdefault(name, []).append(value)
        query: dict[str, str] | None = None
        multi_value_query: dict[str, list[str]] | None = None
        pairs = parse_qsl(websocket.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if pairs:
            query, multi_value_query = {}, {}
            for name, value in pairs:
                query[name] = value
                multi_value_query.setdefault(name, []).append(value)
        lower = {name.lower(): value for name, value in headers.items()}
        client = websocket.client
        return cls(
            headers=headers,
            multi_value_headers=multi_value_headers,
            query=query,
            multi_value_query=multi_value_query,
            source_ip=client.host if client else "127.0.0.1",
            user_agent=lower.get("user-agent"),
            domain_name=lower.get("host", "localhost"),
        )


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _IntegrationTimeout(Exception):
    pass


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Refused"


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policy_allows(policy: object, method_arn: str) -> bool:
    """IAM-style evaluation of an authorizer's policy for `execute-api:Invoke` on `method_arn`."""
    if not isinstance(policy, Mapping):
        raise ValueError("policyDocument must be an object")
    allowed = False
    for statement in _as_list(policy.get("Statement", [])):
        if not isinstance(statement, Mapping):
            raise ValueError("each policy Statement must be an object")
        actions = [str(action) for action in _as_list(statement.get("Action", []))]
        resources = [str(resource) for resource in _as_list(statement.get("Resource", []))]
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", action) for action in actions):
            continue
        if not any(fnmatch.fnmatchcase(method_arn, resource) for resource in resources):
            continue
        effect = statement.get("Effect")
        if effect == "Deny":
            return False  # an explicit Deny always wins
        if effect == "Allow":
            allowed = True
    return allowed


class LocalWebSocketApi:
    """The local stand-in for an API Gateway WebSocket API with its stage. Serve `.app` on uvicorn."""

    def __init__(
        self,
        *,
        authorizer: LambdaHandler | None,
        handlers: Mapping[Function, LambdaHandler],
        stage: str = "local",
        api_id: str = "local",
        region: str | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connection_s: float = MAX_CONNECTION_S,
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
        handler_threads: int = 64,
        max_in_flight_per_connection: int = 8,
        on_event: Callable[[EdgeEvent], None] | None = None,
        routes: tuple[ApiRoute, ...] = ROUTES,
        route_selection_expression: str = ROUTE_SELECTION_EXPRESSION,
    ) -> None:
        self._authorizer = authorizer
        self._handlers = dict(handlers)
        self.stage = stage
        self.api_id = api_id
        self.region = (
            region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        )
        self.account_id = account_id
        self.max_message_bytes = max_message_bytes
        self.max_frame_bytes = max_frame_bytes
        self.idle_timeout_s = idle_timeout_s
        self.max_connection_s = max_connection_s
        self.integration_timeout_s = integration_timeout_s
        self._routes = {route.key: route for route in routes}
        # API Gateway's `$request.body.<field>`: the one form of selection expression Courier uses.
        if not route_selection_expression.startswith("$request.body."):
            raise ValueError(f"unsupported route selection expression {route_selection_expression!r}")
        self._selection_field = route_selection_expression.removeprefix("$request.body.")
        self._on_event = on_event
        self._connections: dict[str, _Connection] = {}
        # Handlers get their own threads so slow ones never starve anyio's default pool.
        self._limiter = anyio.CapacityLimiter(handler_threads)
        self.max_in_flight_per_connection = max_in_flight_per_connection
        self.counters: Counter[str] = Counter()

        self.app = Starlette(
            routes=[
                WebSocketRoute("/", self._websocket),
                WebSocketRoute(f"/{stage}", self._websocket),
                Route(
                    f"/{stage}/@connections/{{connection_id:path}}",
                    self._connections_api,
                    methods=["POST", "GET", "DELETE"],
                ),
            ]
        )
        # Read by edge.server.serve, so `serve(api.app)` applies the frame limits and knows the stage.
        self.app.state.stage = stage
        self.app.state.websocket_limits = WebSocketLimits(max_message_bytes, max_frame_bytes)

    def attach(self, *, authorizer: LambdaHandler | None, handlers: Mapping[Function, LambdaHandler]) -> None:
        """Set the integrations (once the functions' environment, which names this API's URL, is known)."""
        self._authorizer = authorizer
        self._handlers = dict(handlers)

    def select_route(self, body: str) -> str:
        """Route selection as API Gateway does it: the selected field's value if it names a route (other
        than the $-routes), else $default (also for a body that is not a JSON object)."""
        try:
            value = json.loads(body).get(self._selection_field)
        except (ValueError, AttributeError, RecursionError):
            return "$default"
        if isinstance(value, str) and value in self._routes and not value.startswith("$"):
            return value
        return "$default"

    # ----- observation -------------------------------------------------------------------------

    def connection_ids(self) -> list[str]:
        """Ids of the connections that are open now (accepted and not yet closed)."""
        return list(self._connections)

    def _emit(self, event: EdgeEvent) -> None:
        self.counters[event.kind] += 1
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                logger.exception("on_event hook failed")

    # ----- events --------------------------------------------------------------------------------

    def _request_context(
        self,
        *,
        route_key: str,
        event_type: str,
        connection_id: str,
        domain_name: str,
        connected_at_ms: int,
        identity: dict[str, str],
        request_id: str,
    ) -> dict[str, Any]:
        now = time.time()
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": _clf_time(now),
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": connected_at_ms,
            "requestTimeEpoch": int(now * 1000),
            "identity": dict(identity),
            "requestId": request_id,
            "domainName": domain_name,
            "connectionId": connection_id,
            "apiId": self.api_id,
        }

    def _method_arn(self) -> str:
        return f"arn:aws:execute-api:{self.region}:{self.account_id}:{self.api_id}/{self.stage}/$connect"

    def _authorizer_event(
        self, upgrade: _Upgrade, connection_id: str, connected_at_ms: int, identity: dict[str, str]
    ) -> dict[str, Any]:
        return {
            "type": "REQUEST",
            "methodArn": self._method_arn(),
            "headers": dict(upgrade.headers),
            "multiValueHeaders": {name: list(values) for name, values in upgrade.multi_value_headers.items()},
            "queryStringParameters": dict(upgrade.query) if upgrade.query is not None else None,
            "multiValueQueryStringParameters": (
                {name: list(values) for name, values in upgrade.multi_value_query.items()}
                if upgrade.multi_value_query is not None
                else None
            ),
            "stageVariables": {},
            "requestContext": self._request_context(
                route_key="$connect",
                event_type="CONNECT",
                connection_id=connection_id,
                domain_name=upgrade.domain_name,
                connected_at_ms=connected_at_ms,
                identity=identity,
                request_id=new_aws_id(),
            ),
        }

    def _connect_event(
        self,
        upgrade: _Upgrade,
        connection_id: str,
        connected_at_ms: int,
        identity: dict[str, str],
        authorizer: dict[str, Any] | None,
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "headers": dict(upgrade.headers),
            "multiValueHeaders": {name: list(values) for name, values in upgrade.multi_value_headers.items()},
        }
        if upgrade.query is not None and upgrade.multi_value_query is not None:
            event["queryStringParameters"] = dict(upgrade.query)
            event["multiValueQueryStringParameters"] = {
                name: list(values) for name, values in upgrade.multi_value_query.items()
            }
        context = self._request_context(
            route_key="$connect",
            event_type="CONNECT",
            connection_id=connection_id,
            domain_name=upgrade.domain_name,
            connected_at_ms=connected_at_ms,
            identity=identity,
            request_id=new_aws_id(),
        )
        if authorizer is not None:
            context["authorizer"] = dict(authorizer)
        event["requestContext"] = context
        event["isBase64Encoded"] = False
        return event

    def _message_event(
        self, connection: _Connection, route_key: str, body: str, request_id: str
    ) -> dict[str, Any]:
        context = self._request_context(
            route_key=route_key,
            event_type="MESSAGE",
            connection_id=connection.connection_id,
            domain_name=connection.domain_name,
            connected_at_ms=connection.connected_at_ms,
            identity=connection.identity(),
            request_id=request_id,
        )
        context["messageId"] = new_aws_id()
        if connection.authorizer is not None:
            context["authorizer"] = dict(connection.authorizer)
        return {"requestContext": context, "body": body, "isBase64Encoded": False}

    def _disconnect_event(self, connection: _Connection, code: int, reason: str) -> dict[str, Any]:
        # AWS sends these few headers on $disconnect (captured sample in aws-lambda-go's testdata).
        headers = {"Host": connection.domain_name, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
        context = self._request_context(
            route_key="$disconnect",
            event_type="DISCONNECT",
            connection_id=connection.connection_id,
            domain_name=connection.domain_name,
            connected_at_ms=connection.connected_at_ms,
            identity=connection.identity(),
            request_id=new_aws_id(),
        )
        context["disconnectStatusCode"] = code
        context["disconnectReason"] = reason
        if connection.authorizer is not None:
            context["authorizer"] = dict(connection.authorizer)
        return {
            "headers": headers,
            "multiValueHeaders": {name: [value] for name, value in headers.items()},
            "requestContext": context,
            "isBase64Encoded": False,
        }

    # ----- invoking handlers ---------------------------------------------------------------------

    async def _invoke(self, function_name: str, handler: LambdaHandler, event: dict[str, Any]) -> Any:
        context = LambdaContext(
            function_name=f"courier-{function_name}",
            timeout_s=self.integration_timeout_s,
            region=self.region,
            account_id=self.account_id,
        )
        with anyio.move_on_after(self.integration_timeout_s) as scope:
            # abandon_on_cancel: API Gateway stops waiting; the Lambda (thread) runs on regardless.
            return await anyio.to_thread.run_sync(
                handler, event, context, abandon_on_cancel=True, limiter=self._limiter
            )
        if scope.cancelled_caught:
            raise _IntegrationTimeout(f"{function_name} ran longer than {self.integration_timeout_s} s")
        raise AssertionError("unreachable")  # pragma: no cover

    async def _authorize(
        self, upgrade: _Upgrade, connection_id: str, connected_at_ms: int, identity: dict[str, str]
    ) -> dict[str, Any] | None:
        """Run the authorizer; return `{principalId, **context}`, or raise `_Refused`."""
        if self._authorizer is None:
            return None
        event = self._authorizer_event(upgrade, connection_id, connected_at_ms, identity)
        try:
            result = await self._invoke(Function.AUTHORIZER, self._authorizer, event)
        except _IntegrationTimeout as error:
            logger.warning("authorizer timed out: %s", error)
            raise _Refused(500, "Internal Server Error") from error
        except Exception as error:
            if str(error) == "Unauthorized":
                raise _Refused(401, "Unauthorized") from error
            logger.exception("authorizer raised")
            raise _Refused(500, "Internal Server Error") from error
        try:
            if not isinstance(result, Mapping):
                raise ValueError("the authorizer must return an object")
            if len(json.dumps(result, default=str).encode()) > AUTHORIZER_RESULT_MAX_BYTES:
                raise ValueError(f"the authorizer result is over {AUTHORIZER_RESULT_MAX_BYTES} bytes")
            principal_id = result.get("principalId")
            if not isinstance(principal_id, str):
                raise ValueError("principalId must be a string")
            context = result.get("context") or {}
            if not isinstance(context, Mapping) or not all(
                isinstance(value, str | int | float | bool) for value in context.values()
            ):
                raise ValueError("context values must be strings, numbers or booleans")
            allowed = _policy_allows(result.get("policyDocument"), event["methodArn"])
        except ValueError as error:
            logger.error("invalid authorizer result: %s", error)
            raise _Refused(500, "Internal Server Error") from error
        if not allowed:
            raise _Refused(403, "Forbidden")
        return {"principalId": principal_id, **context}

    async def _connect(
        self,
        upgrade: _Upgrade,
        connection_id: str,
        connected_at_ms: int,
        identity: dict[str, str],
        authorizer: dict[str, Any] | None,
    ) -> str | None:
        """Run the $connect handler; return the subprotocol to answer, or raise `_Refused`."""
        route = self._routes.get("$connect")
        handler = self._handlers.get(route.function) if route else None
        if route is None or handler is None:
            return None  # no $connect integration: API Gateway accepts
        event = self._connect_event(upgrade, connection_id, connected_at_ms, identity, authorizer)
        try:
            result = await self._invoke(route.function, handler, event)
        except Exception as error:
            logger.exception("$connect handler failed")
            raise _Refused(500, "Internal Server Error") from error
        status = result.get("statusCode") if isinstance(result, Mapping) else None
        if not isinstance(status, int) or not 100 <= status < 600:
            logger.error("$connect handler returned no valid statusCode: refusing the connection")
            raise _Refused(502, "Bad Gateway")
        assert isinstance(result, Mapping)
        if not 200 <= status < 300:
            reason = result.get("body")
            raise _Refused(status, reason if isinstance(reason, str) and reason else _phrase(status))
        response_headers = result.get("headers") or {}
        for name, value in response_headers.items():
            if name.lower() == "sec-websocket-protocol":
                return str(value)
        return None

    # ----- the WebSocket -----------------------------------------------------------------------

    async def _websocket(self, websocket: WebSocket) -> None:
        connection_id = new_aws_id()
        connected_at_ms = int(time.time() * 1000)
        upgrade = _Upgrade.from_websocket(websocket)
        identity = {"sourceIp": upgrade.source_ip}
        if upgrade.user_agent is not None:
            identity["userAgent"] = upgrade.user_agent
        try:
            authorizer = await self._authorize(upgrade, connection_id, connected_at_ms, identity)
            subprotocol = await self._connect(upgrade, connection_id, connected_at_ms, identity, authorizer)
        except _Refused as refusal:
            self._emit(EdgeEvent("refuse", connection_id, "$connect", status=refusal.status))
            await websocket.send_denial_response(JSONResponse({"message": refusal.message}, refusal.status))
            return
        if websocket.scope.get("subprotocols") and subprotocol is None:
            # Never the offered values: one of them may be a bearer token.
            logger.warning("the client offered subprotocols but $connect answered none: browsers will fail")
        connection = _Connection(
            connection_id=connection_id,
            websocket=websocket,
            domain_name=upgrade.domain_name,
            source_ip=upgrade.source_ip,
            user_agent=upgrade.user_agent,
            connected_at_ms=connected_at_ms,
            authorizer=authorizer,
            in_flight=anyio.Semaphore(self.max_in_flight_per_connection),
        )
        # Registered before the 101 goes out, so a client that sees its upgrade answered can be
        # posted to at once; sends wait for `accepted`.
        self._connections[connection_id] = connection
        try:
            await websocket.accept(subprotocol=subprotocol)
        except BaseException:
            self._connections.pop(connection_id, None)
            connection.closing = True
            raise
        finally:
            connection.accepted.set()
        self._emit(EdgeEvent("connect", connection_id, "$connect"))
        code, reason = CLOSE_NO_STATUS, ""
        try:
            async with anyio.create_task_group() as task_group:
                code, reason = await self._receive_loop(connection, task_group)
        finally:
            self._connections.pop(connection_id, None)
            # Best effort, like AWS; shielded (briefly) so a server shutdown still reports it.
            with anyio.move_on_after(min(self.integration_timeout_s, 5.0), shield=True):
                await self._disconnect(connection, code, reason)

    async def _receive_loop(self, connection: _Connection, task_group: TaskGroup) -> tuple[int, str]:
        websocket = connection.websocket
        while True:
            message: Mapping[str, Any] | None = None
            if connection.closing:
                message = await websocket.receive()  # the server closed: the disconnect is queued
            else:
                idle_deadline = connection.last_active_monotonic + self.idle_timeout_s
                duration_deadline = connection.connected_monotonic + self.max_connection_s
                timeout = max(0.0, min(idle_deadline, duration_deadline) - time.monotonic())
                with anyio.move_on_after(timeout):
                    message = await websocket.receive()
                if message is None:
                    if time.monotonic() < connection.last_active_monotonic + self.idle_timeout_s and (
                        time.monotonic() < duration_deadline
                    ):
                        continue  # a post to the client while we waited: not idle after all
                    expired = (
                        "maximum connection duration" if time.monotonic() >= duration_deadline else "idle"
                    )
                    await self._close(connection, CLOSE_GOING_AWAY, f"Going away ({expired})")
                    continue
            if message["type"] == "websocket.disconnect":
                return int(message.get("code") or CLOSE_NO_STATUS), str(message.get("reason") or "")
            text = message.get("text")
            if text is None:
                await self._close(connection, CLOSE_UNSUPPORTED_DATA, "Binary frames are not supported")
                continue
            if len(text.encode("utf-8")) > self.max_message_bytes:
                await self._close(connection, CLOSE_MESSAGE_TOO_BIG, "Message too big")
                continue
            connection.touch()
            await connection.in_flight.acquire()  # at most N of this connection's messages at a time
            task_group.start_soon(self._handle_message_then_release, connection, text)

    async def _close(self, connection: _Connection, code: int, reason: str) -> None:
        if connection.closing:
            return
        connection.closing = True
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # already gone
            await connection.websocket.close(code, reason)

    async def _send(self, connection: _Connection, data: str | bytes) -> bool:
        """Send one message; False when the socket is already closed."""
        await connection.accepted.wait()
        if connection.closing:
            return False
        try:
            if isinstance(data, str):
                await connection.websocket.send_text(data)
            else:
                await connection.websocket.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError):
            return False
        connection.touch()
        return True

    def _error_frame(self, message: str, connection: _Connection, request_id: str) -> str:
        return json.dumps(
            {"message": message, "connectionId": connection.connection_id, "requestId": request_id}
        )

    async def _handle_message_then_release(self, connection: _Connection, body: str) -> None:
        try:
            await self._handle_message(connection, body)
        finally:
            connection.in_flight.release()

    async def _handle_message(self, connection: _Connection, body: str) -> None:
        route_key = self.select_route(body)
        route = self._routes.get(route_key)
        handler = self._handlers.get(route.function) if route else None
        request_id = new_aws_id()
        self._emit(EdgeEvent("message", connection.connection_id, route_key, size=len(body)))
        if route is None or handler is None:
            # No integration for the selected route: API Gateway answers "Forbidden".
            await self._send(connection, self._error_frame("Forbidden", connection, request_id))
            return
        event = self._message_event(connection, route_key, body, request_id)
        try:
            result = await self._invoke(route.function, handler, event)
        except _IntegrationTimeout as error:
            logger.warning("%s: %s", route_key, error)
            await self._send(
                connection, self._error_frame("Endpoint request timed out", connection, request_id)
            )
            return
        except Exception:
            logger.exception("handler for %s raised", route_key)
            await self._send(connection, self._error_frame("Internal server error", connection, request_id))
            return
        if not route.two_way or not isinstance(result, Mapping):
            return  # one-way route: API Gateway discards the return value
        response_body = result.get("body")
        if response_body is None:
            return
        if not isinstance(response_body, str):
            response_body = json.dumps(response_body)
        if await self._send(connection, response_body):
            self._emit(EdgeEvent("response", connection.connection_id, route_key, size=len(response_body)))

    async def _disconnect(self, connection: _Connection, code: int, reason: str) -> None:
        self._emit(EdgeEvent("disconnect", connection.connection_id, "$disconnect", status=code))
        route = self._routes.get("$disconnect")
        handler = self._handlers.get(route.function) if route else None
        if route is None or handler is None:
            return
        try:
            await self._invoke(route.function, handler, self._disconnect_event(connection, code, reason))
        except Exception:
            logger.exception("$disconnect handler failed (ignored, as API Gateway does)")

    # ----- the @connections API ------------------------------------------------------------------

    @staticmethod
    def _aws_error(status: int, error_type: str, message: str) -> Response:
        return JSONResponse({"message": message}, status, headers={"x-amzn-ErrorType": error_type})

    def _gone(self, connection_id: str) -> Response:
        self._emit(EdgeEvent("post_gone", connection_id))
        return self._aws_error(410, "GoneException", "")

    async def _connections_api(self, request: Request) -> Response:
        connection_id = request.path_params["connection_id"]
        if request.method == "POST":
            data = bytearray()
            async for chunk in request.stream():
                data += chunk
                if len(data) > self.max_message_bytes:
                    return self._aws_error(
                        413,
                        "PayloadTooLargeException",
                        f"Message is larger than {self.max_message_bytes} bytes",
                    )
            connection = self._connections.get(connection_id)
            if connection is None:
                return self._gone(connection_id)
            try:
                payload: str | bytes = data.decode("utf-8")
            except UnicodeDecodeError:
                payload = bytes(data)
            if not await self._send(connection, payload):
                return self._gone(connection_id)
            self._emit(EdgeEvent("post", connection_id, size=len(data)))
            return Response(status_code=200)
        connection = self._connections.get(connection_id)
        if connection is None or connection.closing:
            return self._gone(connection_id)
        if request.method == "GET":
            return JSONResponse(
                {
                    "connectedAt": _iso8601(connection.connected_at_ms / 1000),
                    "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent or ""},
                    "lastActiveAt": _iso8601(connection.last_active_at),
                }
            )
        await self._close(connection, CLOSE_NORMAL, "")
        self._emit(EdgeEvent("delete", connection_id))
        return Response(status_code=204)
