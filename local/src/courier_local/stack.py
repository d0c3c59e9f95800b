"""The whole of Courier on one machine: what `courier dev` runs and the end-to-end tests start.

One process holds: moto (SQS FIFO + DLQ, S3), the local API Gateway (WebSocket + @connections) with
the authorizer and gateway Lambdas behind it, an event source mapping running the worker Lambda, the
database (SQLite under .courier/ unless a URL is given; migrated to head on start), the dev token
issuer, and the web page, served on the same port as the WebSocket.

The running stack writes `.courier/dev.json` so `courier chat` finds it; `read_stack_info()` reads it.
Heavy imports (moto, Strands, the services) happen in `LocalStack.start`, so `courier chat` stays quick.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from courier_infra.deployment import Deployment, FunctionSpec

STATE_DIR = Path(".courier")
STATE_FILE_NAME = "dev.json"
WEB_DIR = Path(__file__).resolve().parent / "web"
DEFAULT_PORT = 8000
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
    stack: str = "dev"  # the Pulumi stack whose program is run locally
    database_url: str | None = None  # None: DATABASE_URL, else the embedded SQLite file
    # "offline": the stack's model id through Strands' BedrockModel against a local ConverseStream
    # endpoint that answers like the offline model; "local-bedrock:<id>": the same with another id;
    # "bedrock:<id>": real Bedrock with your AWS credentials.
    model: str = "offline"
    token_rate: float = 30.0  # the local model's tokens per second
    grace_s: float = 5.0  # how long a turn keeps generating with no listener
    state_dir: Path = STATE_DIR
    flush_interval_ms: int = 100
    worker_concurrency: int | None = None  # None: the event source mapping's maximum concurrency
    # False: the declared event source mappings are not started (the queues are still created), so
    # a test can poll the turn queue with a worker it builds itself (scripted model, fake clock...).
    start_mappings: bool = True
    db_pool_size: int | None = None  # None: each function's default (DB_POOL_SIZE)
    aws_calls_log: Path | None = None  # record every AWS call the functions make (IAM evaluation)
    # The token issuer the authorizer trusts instead of the stack's Cognito pool. None: the dev issuer
    # (`courier token`, the page's sign-in). Any OIDC issuer works, a real Cognito pool included.
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # added to every function's environment
    # The worker's extended-thinking budget instead of the stack's courier:thinkingBudgetTokens
    # (None: the stack's), so the page and `courier chat` can show reasoning without a stack file.
    thinking_budget_tokens: int | None = None

    @property
    def bedrock_model_id(self) -> str | None:
        """The model id `--model` names; None: the one the stack declares."""
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


# ---------------------------------------------------------------- the deployment, localised


def load_deployment(stack: str) -> Deployment:
    """What the Pulumi program declares for `stack`, evaluated under Pulumi's mocks (in a subprocess,
    as it takes over Pulumi's global runtime) and cached in the repository's .courier/ until infra/,
    the stack file or the catalog change."""
    from courier_infra import manifest

    cache = manifest.ROOT / STATE_DIR / f"deployment-{stack}.json"
    fingerprint = manifest.fingerprint(stack)
    try:
        cached = Deployment.model_validate_json(cache.read_text())
        if cached.fingerprint == fingerprint:
            return cached
    except (OSError, ValueError):
        pass
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "courier_infra.manifest", "--stack", stack, "--out", str(cache)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"The Pulumi program failed for stack {stack!r}:\n{result.stderr.strip()}")
    return Deployment.model_validate_json(cache.read_text())


@dataclass(frozen=True)
class LocalEndpoints:
    """Where the local stand-ins listen: what AWS-only values in the declared environment become."""

    database_url: str
    queue_urls: dict[str, str]  # declared queue URL -> local (moto) queue URL
    sqs_endpoint_url: str
    s3_endpoint_url: str
    connections_url: str  # the local @connections endpoint, stage included
    jwks_url: str  # the dev issuer's keys, served by the page
    bedrock_endpoint_url: str | None  # None: real Bedrock
    model_id: str | None  # None: the declared MODEL_ID
    cursor_signing_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))  # new per stack


def localize(function: FunctionSpec, local: LocalEndpoints, options: StackOptions) -> dict[str, str]:
    """A function's declared environment with every AWS-only value mapped to its local stand-in.

    The one place where the local stack departs from what Pulumi declares; everything else (names,
    limits, timeouts, flags) passes through unchanged. A value naming AWS that no rule here maps
    stops the stack, so a new variable in infra gets a deliberate local meaning.
    """
    from courier_authorizer.settings import DEV_AUDIENCE, DEV_ISSUER
    from courier_infra.config import thinking_environment

    environment: dict[str, str] = {}
    for key, value in function.environment.items():
        if key.startswith("DB_"):
            continue  # the RDS host, port, name and credentials: the local database URL instead
        if value in local.queue_urls:
            environment[key] = local.queue_urls[value]
            environment["SQS_ENDPOINT_URL"] = local.sqs_endpoint_url
        elif key == "BODY_BUCKET":
            environment[key] = value  # the same bucket name, in moto
            environment["S3_ENDPOINT_URL"] = local.s3_endpoint_url
        elif key == "CONNECTIONS_ENDPOINT_URL":
            environment[key] = local.connections_url
        elif key == "JWT_ISSUER":
            environment[key] = options.jwt_issuer or DEV_ISSUER  # the dev issuer: `courier token`, the page
        elif key == "JWT_AUDIENCE":
            environment[key] = options.jwt_audience or DEV_AUDIENCE
        elif key == "JWKS_URL":
            if options.jwt_issuer is None:
                environment[key] = local.jwks_url
        elif key == "MODEL_ID":
            environment[key] = local.model_id or value
            if local.bedrock_endpoint_url is not None:
                environment["BEDROCK_ENDPOINT_URL"] = local.bedrock_endpoint_url
        elif key == "CURSOR_KEY_SECRET_ARN":
            environment["CURSOR_SIGNING_KEY"] = local.cursor_signing_key  # the key itself, not a secret ARN
        elif key == "LISTENER_GRACE_S":
            environment[key] = str(options.grace_s)
        elif key == "FLUSH_INTERVAL_MS":
            environment[key] = str(options.flush_interval_ms)
        elif "amazonaws.com" in value or value.startswith("arn:aws"):
            if value.startswith("arn:aws:sqs:"):
                environment[key] = value  # moto's queue ARNs are the declared ones (same account, Region)
                environment["SQS_ENDPOINT_URL"] = local.sqs_endpoint_url
                continue
            raise StackError(
                f"{function.name}: {key}={value} names AWS and has no local stand-in "
                "(add a rule to courier_local.stack.localize)"
            )
        else:
            environment[key] = value
    if options.thinking_budget_tokens is not None and function.name == "worker":  # its Pulumi name
        for key in ("THINKING_BUDGET_TOKENS", "MAX_OUTPUT_TOKENS"):
            environment.pop(key, None)
        environment.update(thinking_environment(options.thinking_budget_tokens))
    if any(key.startswith("DB_") for key in function.environment):
        environment["DATABASE_URL"] = local.database_url
        if options.db_pool_size is not None:
            environment["DB_POOL_SIZE"] = str(options.db_pool_size)
    return {**environment, **options.extra_env}


def offline_answers(token_rate: float) -> Callable[[Mapping[str, Any]], Any]:
    """The offline model's answers (tool triggers, "lorem N", echo) as local ConverseStream scripts."""
    from courier_local.edge.bedrock import BedrockScript, ToolCall, split_words
    from courier_local.offline_model import OfflineModel

    model = OfflineModel(tokens_per_second=token_rate)

    def answer(body: Mapping[str, Any]) -> BedrockScript:
        offered = [tool["toolSpec"]["name"] for tool in (body.get("toolConfig") or {}).get("tools", [])]
        turn = model.respond(body.get("messages") or [], offered)
        if turn.throttled:
            return BedrockScript(throttled=True)
        words = split_words(turn.text)
        tool = None
        if turn.tool is not None:
            tool = ToolCall(turn.tool.name, turn.tool.input, tool_use_id=f"tooluse_{uuid.uuid4().hex[:16]}")
        reasoning = split_words(turn.reasoning)  # streamed when the request asks for thinking
        return BedrockScript(tokens=words, tool_use=tool, tokens_after_tool=words, reasoning=reasoning)

    return answer


# ---------------------------------------------------------------- the stack


class LocalStack:
    """Start with `start()` (returns the StackInfo), stop with `stop()`; every part is stopped in reverse.

    Assembled from the Pulumi program's declarations for `options.stack`: the functions (invoked
    through their Handler, with their environment), the WebSocket API's routes, authorizer and
    selection expression, the queues' settings, the event source mappings and the bucket.
    """

    def __init__(self, options: StackOptions, progress: Progress = lambda _: None) -> None:
        self.options = options
        self.progress = progress
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self.info: StackInfo | None = None
        self.deployment: Deployment | None = None
        self.dev_issuer: Any = None
        self.api: Any = None
        self.bedrock: Any = None  # the local ConverseStream endpoint (None with real Bedrock)
        self.functions: dict[str, Any] = {}
        self.mappings: list[Any] = []
        self.moto: Any = None
        self.queue_urls: dict[str, str] = {}  # declared queue name -> local queue URL

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

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
        self._step(f"Reading what stack {options.stack!r} deploys (the Pulumi program)")
        deployment = self.deployment = load_deployment(options.stack)
        self._configure_aws(deployment.region, model_id if options.uses_real_aws else None)
        if options.aws_calls_log is not None:
            from courier_local.aws_calls import record_calls

            record_calls(options.aws_calls_log)

        # 1. The database, migrated to head (in AWS: the migrator, before any code rolls out).
        from courier_local.commands.db import shown, upgrade_database
        from courier_shared.settings import DatabaseSettings, embedded_database_url

        database_url = (
            options.database_url
            or DatabaseSettings().database_url
            or embedded_database_url(options.state_dir)
        )
        self._step(f"Migrating the database {shown(database_url)} to head")
        upgrade_database(database_url, quiet=True)

        # 2. The dev token issuer: the authorizer fetches its JWKS from the page, as from Cognito's.
        from courier_local.dev_issuer import DevIssuer

        self.dev_issuer = DevIssuer(options.state_dir / "dev-issuer")
        self.dev_issuer.ensure_key()

        # 3. moto: the declared queues (with their settings) and buckets.
        self._step("Starting local SQS and S3 (moto)")
        from courier_local.edge.sqs import LocalMoto, create_declared_queues

        self.moto = LocalMoto(region=deployment.region).start()
        self._stops.append(("moto", self.moto.stop))
        sqs = self.moto.client("sqs")
        self.queue_urls = create_declared_queues(sqs, deployment.queues)
        s3 = self.moto.client("s3")
        for bucket in deployment.buckets:
            # moto's state is per process: an earlier stack in this process (tests) may have made it.
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(
                    Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": deployment.region}
                )

        # 4. The local API Gateway (routes as declared) and the page, on one port.
        self._step("Starting the local WebSocket gateway")
        from courier_local.edge.server import serve
        from courier_local.edge.websocket_api import LocalWebSocketApi
        from courier_shared.routes import Function
        from courier_shared.routes import Route as ApiRoute

        declared_api = deployment.api
        self.api = LocalWebSocketApi(
            authorizer=None,
            handlers={},
            stage=declared_api.stage,
            api_id=declared_api.api_id,
            region=deployment.region,
            account_id=deployment.account_id,
            routes=tuple(
                ApiRoute(route.key, Function(route.function), two_way=route.two_way)
                for route in declared_api.routes
            ),
            route_selection_expression=declared_api.route_selection_expression,
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

        # 5. The model: a local ConverseStream endpoint, unless real Bedrock was asked for.
        bedrock_endpoint_url = None
        if not options.uses_real_aws:
            from courier_local.edge.bedrock import LocalBedrock

            self.bedrock = LocalBedrock(
                offline_answers(options.token_rate), tokens_per_second=options.token_rate
            ).start()
            self._stops.append(("local Bedrock", self.bedrock.stop))
            bedrock_endpoint_url = self.bedrock.endpoint_url

        # 6. Every declared function, with its environment localised.
        from courier_local.lambda_runtime import LocalFunction

        local = LocalEndpoints(
            database_url=database_url,
            queue_urls={queue.url: self.queue_urls[queue.name] for queue in deployment.queues},
            sqs_endpoint_url=self.moto.endpoint_url,
            s3_endpoint_url=self.moto.endpoint_url,
            connections_url=server.callback_url,
            jwks_url=f"{server.base_url}/dev/jwks.json",
            bedrock_endpoint_url=bedrock_endpoint_url,
            model_id=model_id,
        )
        self.functions = {
            spec.name: LocalFunction(
                spec,
                localize(spec, local, options),
                region=deployment.region,
                account_id=deployment.account_id,
                max_containers=max(8, options.worker_concurrency or 0),
            )
            for spec in deployment.functions.values()
            if spec.name != "migrator"  # step 1 ran the migrations
        }
        self.api.attach(
            authorizer=self.functions[declared_api.authorizer] if declared_api.authorizer else None,
            handlers={
                Function(route.function): self.functions[route.function] for route in declared_api.routes
            },
        )

        # 7. The event source mappings, as declared (batch size, concurrency, partial failures).
        self._step("Starting the worker")
        import boto3

        from courier_local.edge.sqs import EventSourceMapping
        from courier_local.lambda_runtime import access_key_of

        for declared in deployment.event_source_mappings if options.start_mappings else ():
            function = self.functions[declared.function]
            queue = deployment.queue_by_arn(declared.queue_arn)
            # Lambda polls with the function's role: the mapping's calls are checked against its policy.
            poller = boto3.client(
                "sqs",
                region_name=deployment.region,
                endpoint_url=self.moto.endpoint_url,
                aws_access_key_id=access_key_of(function.spec.function_name),
                aws_secret_access_key=DUMMY_CREDENTIALS["aws_secret_access_key"],
            )
            self.mappings.append(
                EventSourceMapping(
                    poller,
                    self.queue_urls[queue.name],
                    function,
                    batch_size=declared.batch_size,
                    max_concurrency=options.worker_concurrency or declared.maximum_concurrency or 2,
                    wait_time_s=0.5,
                    report_batch_item_failures="ReportBatchItemFailures" in declared.function_response_types,
                    function_name=function.spec.function_name,
                    function_timeout_s=function.spec.timeout_s,
                ).start()
            )
        # Stopped after the web server (so before it in this list): closing the sockets first lets an
        # answer in progress see its listeners gone and end as `interrupted` within the grace period.
        worker_stop_s = options.grace_s + 5.0

        def stop_mappings() -> None:
            if any(getattr(mapping, "_batches_in_flight", 0) for mapping in self.mappings):
                self.progress(f"Letting answers in progress end (up to {worker_stop_s:.0f} s)…")
            for mapping in self.mappings:
                mapping.stop(timeout=worker_stop_s)

        self._stops.insert(len(self._stops) - 1, ("worker", stop_mappings))

        # Like provisioned concurrency: containers initialised before the first request, off the clock.
        threading.Thread(target=self._warm_up, name="courier-warm-up", daemon=True).start()

        self.info = StackInfo(
            ws_url=server.ws_url,
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

    def _warm_up(self) -> None:
        for function in self.functions.values():
            try:
                function.cold_start()
            except Exception as error:  # the first invocation will fail the same way, visibly
                self.progress(f"warning: {function.name} failed to initialise: {error}")
        self._end_abandoned_turns()

    def _end_abandoned_turns(self) -> None:
        """The local queue lives in this process: a stack that was killed took the records of its
        streaming turns with it, so no retry will come. End those turns (their lease has lapsed)."""
        worker = self.functions.get("worker")
        invoke = worker.cold_start().cold_start() if worker is not None else None  # the Worker's handle
        recover = getattr(getattr(invoke, "__self__", None), "end_abandoned_turns", None)
        if recover is None:
            return
        try:
            ended = recover()
        except Exception as error:
            self.progress(f"warning: ending abandoned turns failed: {error}")
            return
        if ended:
            self.progress(f"Ended {len(ended)} answer(s) a previous run left unfinished.")

    @property
    def esm(self) -> Any:
        """The turn queue's event source mapping (the first declared)."""
        return self.mappings[0]

    def _step(self, what: str) -> float:
        self.progress(f"{what}…")
        return time.monotonic()

    def _configure_aws(self, region: str, model_id: str | None) -> None:
        """Local endpoints get dummy credentials; real Bedrock keeps the real ones from the environment."""
        os.environ.setdefault("AWS_REGION", region)  # the functions get the stack's Region themselves
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

    from courier_shared.protocol import DEFAULT_MAX_MESSAGE_CHARS
    from courier_shared.routes import Function

    async def index(_: Request) -> Response:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def config(request: Request) -> Response:
        # The page's settings (web/src/config.ts); docs/deploy.md writes the same file for a stack.
        info = stack.info
        ws_url = info.ws_url if info else f"ws://{request.url.netloc}/"
        declared = stack.deployment.function(Function.GATEWAY).environment if stack.deployment else {}
        max_chars = int(declared.get("MAX_MESSAGE_CHARS", DEFAULT_MAX_MESSAGE_CHARS))
        return JSONResponse(
            {"wsUrl": ws_url, "devTokens": True, "maxMessageChars": max_chars, "model": stack.options.model},
            headers={"Cache-Control": "no-store"},
        )

    async def dev_token(request: Request) -> Response:
        # Dev tokens only for this machine: the stack is a developer's, never a shared server's.
        if not _is_loopback(request.client.host if request.client else None):
            return JSONResponse({"message": "Dev tokens are only issued to this machine."}, 403)
        # ... and only to this stack's own page: a page elsewhere (or one that rebinds its DNS name
        # to 127.0.0.1) names another Host, or another Origin.
        host = request.headers.get("host", "")
        origin = request.headers.get("origin")
        if not _is_loopback(urlsplit(f"//{host}").hostname) or (
            origin is not None and urlsplit(origin).netloc != host
        ):
            return JSONResponse({"message": "Dev tokens are only issued to this stack's own page."}, 403)
        user = request.query_params.get("user", "dev-user").strip() or "dev-user"
        tenant = request.query_params.get("tenant", "dev").strip() or "dev"
        if len(user) > 128 or len(tenant) > 128:
            return JSONResponse({"message": "user and tenant are at most 128 characters."}, 400)
        return JSONResponse({"token": stack.issue_token(user, tenant), "user": user, "tenant": tenant})

    async def jwks(_: Request) -> Response:
        # What the authorizer fetches at cold start, as it fetches Cognito's in AWS.
        return FileResponse(stack.dev_issuer.jwks_path, media_type="application/json")

    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/config.json", config),
            Route("/dev/token", dev_token),
            Route("/dev/jwks.json", jwks),
            Route("/healthz", health),
            Mount("/assets", StaticFiles(directory=WEB_DIR / "assets"), name="assets"),
        ]
    )
