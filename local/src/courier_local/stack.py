"""The whole of Courier on one machine: what `courier dev` runs and the end-to-end tests start.

One process holds: moto (SQS FIFO + DLQ, S3), the local API Gateway (WebSocket + @connections) with
the authorizer and gateway Lambdas behind it, an event source mapping running the worker Lambda, the
database (SQLite under .courier/ unless a URL is given; migrated to head on start), the dev token
issuer, and the web page, served on the same port as the WebSocket.

The running stack writes `.courier/dev.json` so `courier chat` finds it; `read_stack_info()` reads it.
Heavy imports (moto, Strands, the services) happen in `LocalStack.start`, so `courier chat` stays quick.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

STATE_DIR = Path(".courier")
STATE_FILE_NAME = "dev.json"
WEB_DIR = Path(__file__).resolve().parent / "web"
DEFAULT_PORT = 8000
DEFAULT_REGION = "us-east-1"
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
Progress = Callable[[str], None]


# ---------------------------------------------------------------- the state file (.courier/dev.json)


@dataclass(frozen=True)
class StackInfo:
    """What a client needs to find a running local stack."""

    ws_url: str
    page_url: str
    dev_token_url: str
    callback_url: str
    database: str
    model: str
    pid: int

    def serves(self, url: str) -> bool:
        """True when `url` is this stack's WebSocket (so a dev token from it will be accepted)."""
        mine, theirs = urlsplit(self.ws_url), urlsplit(url)
        return (mine.hostname, mine.port) == (theirs.hostname, theirs.port)


def state_file(state_dir: Path = STATE_DIR) -> Path:
    return state_dir / STATE_FILE_NAME


def read_stack_info(state_dir: Path | None = None) -> StackInfo | None:
    """The running stack's info, or None when there is no state file or its process is gone.

    Without `state_dir`, looks for .courier/dev.json in the working directory and its parents, so
    `courier chat` finds the stack from anywhere inside the repository.
    """
    if state_dir is not None:
        candidates = [state_file(state_dir)]
    else:
        here = Path.cwd()
        candidates = [state_file(folder / STATE_DIR) for folder in (here, *here.parents)]
    for path in candidates:
        try:
            info = StackInfo(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if _process_alive(info.pid):
            return info
    return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------- options


@dataclass(frozen=True)
class StackOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    database_url: str | None = None  # None: DATABASE_URL, else the embedded SQLite file
    model: str = "offline"  # "offline" or "bedrock:<model id>"
    token_rate: float = 30.0  # offline model, tokens per second
    grace_s: float = 5.0  # how long a turn keeps generating with no listener
    state_dir: Path = STATE_DIR
    region: str = field(default_factory=lambda: os.environ.get("AWS_REGION") or DEFAULT_REGION)
    flush_interval_ms: int = 100
    worker_concurrency: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def bedrock_model_id(self) -> str | None:
        """The Bedrock model id for `bedrock:<id>` and `local-bedrock:<id>`; None for the offline model."""
        if self.model == "offline":
            return None
        prefix, _, model_id = self.model.partition(":")
        if prefix not in ("bedrock", "local-bedrock") or not model_id:
            raise ValueError(
                "--model must be 'offline', 'bedrock:<model id>' (real Bedrock) or "
                f"'local-bedrock:<model id>' (the local ConverseStream endpoint), not {self.model!r}"
            )
        return model_id

    @property
    def uses_real_aws(self) -> bool:
        return self.model.startswith("bedrock:")


class StackError(Exception):
    """A stack that cannot start, with a message a person can act on."""


# ---------------------------------------------------------------- the stack


class LocalStack:
    """Start with `start()` (returns the StackInfo), stop with `stop()`; every part is stopped in reverse."""

    def __init__(self, options: StackOptions, progress: Progress = lambda _: None) -> None:
        self.options = options
        self.progress = progress
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self.info: StackInfo | None = None
        self.dev_issuer: Any = None
        self.api: Any = None
        self.esm: Any = None

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _step(self, what: str) -> float:
        self.progress(f"{what}…")
        return time.monotonic()

    def start(self) -> StackInfo:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackInfo:
        options = self.options
        model_id = options.bedrock_model_id  # validates --model before anything starts
        options.state_dir.mkdir(parents=True, exist_ok=True)
        existing = read_stack_info(options.state_dir)
        if existing is not None and existing.pid != os.getpid():
            raise StackError(
                f"A Courier stack is already running here (pid {existing.pid}, {existing.page_url}). "
                "Stop it first, or use another working directory."
            )
        self._configure_aws(model_id if options.uses_real_aws else None)

        # 1. The database, migrated to head.
        from courier_local.commands.db import shown, upgrade_database
        from courier_shared.db.engine import build_engine
        from courier_shared.db.store import ChatStore
        from courier_shared.settings import DatabaseSettings, embedded_database_url

        database_url = (
            options.database_url
            or DatabaseSettings().database_url
            or embedded_database_url(options.state_dir)
        )
        self._step(f"Migrating the database {shown(database_url)} to head")
        upgrade_database(database_url, quiet=True)
        engine = build_engine(database_url, pool_size=5)
        self._stops.append(("database", engine.dispose))
        store = ChatStore(engine)
        os.environ["DATABASE_URL"] = database_url  # every service's settings read the same database

        # 2. The dev token issuer (its JWKS is what the authorizer trusts).
        from courier_local.dev_issuer import DevIssuer

        self.dev_issuer = DevIssuer(options.state_dir / "dev-issuer")
        jwks_path = self.dev_issuer.ensure_key()

        # 3. moto: the turn queue with its DLQ, and the bucket for large answers.
        self._step("Starting local SQS and S3 (moto)")
        from courier_local.edge.sqs import LocalMoto, create_turn_queues

        moto = LocalMoto(region=options.region).start()
        self._stops.append(("moto", moto.stop))
        sqs = moto.client("sqs")
        suffix = uuid.uuid4().hex[:8]  # moto's state is process-global: unique names keep stacks apart
        queues = create_turn_queues(
            sqs, f"courier-turns-{suffix}", visibility_timeout_s=120, max_receive_count=5
        )
        bucket = f"courier-bodies-{suffix}"
        moto.client("s3").create_bucket(Bucket=bucket)

        # 4. The local API Gateway with the authorizer and gateway Lambdas, and the page, on one port.
        self._step("Starting the local WebSocket gateway")
        from courier_local.edge.server import serve
        from courier_local.edge.websocket_api import LocalWebSocketApi
        from courier_shared.routes import Function

        authorizer_handler = _build_authorizer(jwks_path)
        gateway_handler = _build_gateway(store, sqs, queues.queue_url, moto.endpoint_url)
        self.api = LocalWebSocketApi(
            authorizer=authorizer_handler, handlers={Function.GATEWAY: gateway_handler}, stage="local"
        )
        app = StackApp(self.api.app, page_app(self))
        try:
            server = serve(
                app,
                options.host,
                options.port,
                stage=self.api.stage,
                websocket_limits=self.api.app.state.websocket_limits,
            )
        except OSError as error:
            raise StackError(
                f"Cannot listen on {options.host}:{options.port} ({error.strerror}). "
                "Is another `courier dev` running? Pick another port with --port."
            ) from error
        self._stops.append(("web server", server.stop))

        # 5. The worker behind an event source mapping on the turn queue.
        self._step("Starting the worker")
        from courier_local.edge.sqs import EventSourceMapping

        bedrock_endpoint_url = None
        if model_id is not None and not options.uses_real_aws:
            # botocore and Strands' BedrockModel, unchanged, against a local ConverseStream endpoint.
            from courier_local.edge.bedrock import LocalBedrock

            bedrock = LocalBedrock(tokens_per_second=options.token_rate, region=options.region).start()
            self._stops.append(("local Bedrock", bedrock.stop))
            bedrock_endpoint_url = bedrock.endpoint_url
        worker_handler = _build_worker(
            options,
            store,
            moto,
            bucket,
            server.callback_url,
            model_id=model_id,
            bedrock_endpoint_url=bedrock_endpoint_url,
        )
        self.esm = EventSourceMapping(
            sqs,
            queues.queue_url,
            worker_handler,
            batch_size=1,
            max_concurrency=options.worker_concurrency,
            wait_time_s=0.5,
            function_timeout_s=900,
        ).start()
        # Stopped after the web server (so before it in this list): closing the sockets first lets an
        # answer in progress see its listeners gone and end as `interrupted` within the grace period.
        esm = self.esm
        worker_stop_s = options.grace_s + 5.0

        def stop_worker() -> None:
            if getattr(esm, "_batches_in_flight", 0):  # the poller's count of batches being handled
                self.progress(f"Letting answers in progress end (up to {worker_stop_s:.0f} s)…")
            esm.stop(timeout=worker_stop_s)

        self._stops.insert(len(self._stops) - 1, ("worker", stop_worker))

        ws_url = server.ws_url
        self.info = StackInfo(
            ws_url=ws_url,
            page_url=f"{server.base_url}/",
            dev_token_url=f"{server.base_url}/dev/token",
            callback_url=server.callback_url,
            database=shown(database_url),
            model=options.model,
            pid=os.getpid(),
        )
        path = state_file(options.state_dir)
        path.write_text(json.dumps(asdict(self.info), indent=2))
        self._stops.append(("state file", lambda: path.unlink(missing_ok=True)))
        return self.info

    def _configure_aws(self, model_id: str | None) -> None:
        """Local endpoints get dummy credentials; real Bedrock keeps the real ones from the environment."""
        os.environ.setdefault("AWS_REGION", self.options.region)
        os.environ.setdefault("AWS_DEFAULT_REGION", os.environ["AWS_REGION"])
        if model_id is None:
            # Everything is local: make sure no client can reach real AWS with real credentials.
            os.environ["AWS_ACCESS_KEY_ID"] = DUMMY_CREDENTIALS["aws_access_key_id"]
            os.environ["AWS_SECRET_ACCESS_KEY"] = DUMMY_CREDENTIALS["aws_secret_access_key"]
            os.environ.pop("AWS_SESSION_TOKEN", None)
            os.environ.pop("AWS_PROFILE", None)
            return
        import boto3

        if boto3.Session().get_credentials() is None:
            raise StackError(
                f"--model bedrock:{model_id} needs AWS credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID…). "
                "Use --model offline to run without AWS."
            )

    def issue_token(self, user: str = "dev-user", tenant: str = "dev") -> str:
        return str(self.dev_issuer.issue(user, tenant))

    def stop(self) -> None:
        """Stop every part that started, newest first; a part that fails to stop doesn't stop the rest."""
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
            except Exception as error:
                self.progress(f"warning: stopping the {name} failed: {error}")


# ---------------------------------------------------------------- the services, composed


def _build_authorizer(jwks_path: Path) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    from courier_authorizer.composition import build_authorizer
    from courier_authorizer.settings import AuthorizerSettings

    settings = AuthorizerSettings.model_validate(
        {"DEV_ISSUER_ENABLED": True, "DEV_JWKS_PATH": str(jwks_path)}
    )
    authorizer = build_authorizer(settings)
    return lambda event, _context: authorizer.authorize(event)


def _build_gateway(store: Any, sqs: Any, queue_url: str, sqs_endpoint_url: str) -> Callable[..., Any]:
    from courier_gateway.composition import build_gateway
    from courier_gateway.queue import SqsTurnQueue
    from courier_gateway.settings import GatewaySettings

    settings = GatewaySettings.model_validate(
        {"TURN_QUEUE_URL": queue_url, "SQS_ENDPOINT_URL": sqs_endpoint_url}
    )
    gateway = build_gateway(settings, store=store, queue=SqsTurnQueue(sqs, queue_url))
    return gateway.handle


def _build_worker(
    options: StackOptions,
    store: Any,
    moto: Any,
    bucket: str,
    callback_url: str,
    *,
    model_id: str | None,
    bedrock_endpoint_url: str | None = None,
) -> Callable[..., Any]:
    from courier_worker.adapters import S3BodyStore
    from courier_worker.composition import build_worker
    from courier_worker.settings import WorkerSettings

    values: dict[str, Any] = {
        "CONNECTIONS_ENDPOINT_URL": callback_url,
        "LISTENER_GRACE_S": options.grace_s,
        "FLUSH_INTERVAL_MS": options.flush_interval_ms,
        "BODY_BUCKET": bucket,
        "S3_ENDPOINT_URL": moto.endpoint_url,
        "AWS_REGION": options.region,
    }
    if model_id is not None:
        values["MODEL_ID"] = model_id  # real Bedrock with the environment's credentials, or the local one
    if bedrock_endpoint_url is not None:
        values["BEDROCK_ENDPOINT_URL"] = bedrock_endpoint_url
    settings = WorkerSettings.model_validate(values)
    model = None
    if model_id is None:
        from courier_local.offline_model import OfflineModel

        model = OfflineModel(tokens_per_second=options.token_rate)
    worker = build_worker(
        settings,
        model=model,
        engine=store.engine,
        bodies=S3BodyStore(bucket=bucket, client=moto.client("s3")),  # moto: dummy credentials
    )
    return worker.handle


# ---------------------------------------------------------------- the page and /dev endpoints


class StackApp:
    """One ASGI app on one port: the page and /dev endpoints over plain HTTP, everything else (the
    WebSocket and @connections) to the local API Gateway."""

    def __init__(self, gateway_app: Any, page: Any) -> None:
        self.gateway_app = gateway_app
        self.page = page
        self.state = gateway_app.state
        self._connections_prefix = f"/{gateway_app.state.stage}/@connections/"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(self._connections_prefix):
            await self.page(scope, receive, send)
        else:
            await self.gateway_app(scope, receive, send)


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def page_app(stack: LocalStack) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def index(_: Request) -> Response:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def config(request: Request) -> Response:
        info = stack.info
        ws_url = info.ws_url if info else f"ws://{request.url.netloc}/"
        return JSONResponse({"wsUrl": ws_url, "devTokens": True, "model": stack.options.model})

    async def dev_token(request: Request) -> Response:
        # Dev tokens only for this machine: the stack is a developer's, never a shared server's.
        if not _is_loopback(request.client.host if request.client else None):
            return JSONResponse({"message": "Dev tokens are only issued to this machine."}, 403)
        user = request.query_params.get("user", "dev-user").strip() or "dev-user"
        tenant = request.query_params.get("tenant", "dev").strip() or "dev"
        if len(user) > 128 or len(tenant) > 128:
            return JSONResponse({"message": "user and tenant are at most 128 characters."}, 400)
        return JSONResponse({"token": stack.issue_token(user, tenant), "user": user, "tenant": tenant})

    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/dev/config", config),
            Route("/dev/token", dev_token),
            Route("/healthz", health),
            Mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static"),
        ]
    )
