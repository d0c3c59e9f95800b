"""`courier dev`: the whole pipeline on this machine (what `make dev` runs). Ctrl-C stops it all."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError

from courier_local import diagnostics
from courier_local.commands.db import check_database_url, database_problem
from courier_local.human_logs import HumanLogs
from courier_local.stack import DEFAULT_PORT, STATE_DIR, LocalStack, StackError, StackOptions


def _progress(message: str) -> None:
    typer.echo(f"  {message}", err=True)


def _chat_command() -> str:
    """How to run `courier chat` from this shell: the same executable that runs this command."""
    executable = Path(sys.argv[0])
    if executable.name == "courier" and executable.is_absolute():
        try:
            relative = executable.relative_to(Path.cwd())
            return shlex.quote(str(relative))
        except ValueError:
            pass
    return "courier"


def dev(
    host: Annotated[
        str, typer.Option(help="Interface to listen on (keep 127.0.0.1 unless you know why).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port of the page and the WebSocket (0: any free port).")
    ] = DEFAULT_PORT,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="SQLAlchemy URL. Default: DATABASE_URL, else .courier/courier.db."
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help="'offline' (no AWS needed), 'bedrock:<model>' (real Bedrock with your AWS credentials), "
            "or 'local-bedrock:<model>' (the real BedrockModel against a local ConverseStream endpoint)."
        ),
    ] = "offline",
    token_rate: Annotated[
        float, typer.Option(min=1, help="Speed of the offline or local-bedrock model, in tokens per second.")
    ] = 30.0,
    grace: Annotated[
        float, typer.Option(min=0, help="Seconds a turn keeps generating after its last listener left.")
    ] = 5.0,
    state_dir: Annotated[
        Path, typer.Option(help="Where the database, dev keys and dev.json live.")
    ] = STATE_DIR,
    stack: Annotated[
        str, typer.Option(help="The Pulumi stack to run locally (its Pulumi.<stack>.yaml).")
    ] = "dev",
    worker_concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Concurrent worker invocations. Default: the stack's maximum concurrency."),
    ] = None,
    db_pool_size: Annotated[
        int | None, typer.Option(min=1, max=50, help="Database connections per function (DB_POOL_SIZE).")
    ] = None,
    thinking_budget: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="The worker's extended-thinking budget in tokens (0: off; at least 1024 to think). "
            "Default: the stack's courier:thinkingBudgetTokens.",
        ),
    ] = None,
    aws_calls_log: Annotated[
        Path | None, typer.Option(hidden=True, help="Record every AWS call the functions make (tests).")
    ] = None,
) -> None:
    """Run Courier locally: WebSocket gateway, queue, worker, database, dev tokens and the web page."""
    started = time.monotonic()
    if sys.stdout.isatty():  # before any function's logger takes the stream
        sys.stdout = HumanLogs(sys.stdout)
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        if stop_requested.is_set():  # a second Ctrl-C: the user is in a hurry
            os._exit(130)
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    typer.echo("Starting Courier…", err=True)
    diagnostics.install()  # kill -USR1 <pid>: every thread's and task's stack, to stderr
    running = LocalStack(
        StackOptions(
            host=host,
            port=port,
            database_url=database_url,
            model=model,
            token_rate=token_rate,
            grace_s=grace,
            state_dir=state_dir,
            stack=stack,
            worker_concurrency=worker_concurrency,
            db_pool_size=db_pool_size,
            thinking_budget_tokens=thinking_budget,
            aws_calls_log=aws_calls_log,
        ),
        progress=_progress,
    )
    try:
        if database_url is not None:
            check_database_url(database_url)
        info = running.start()
    except (StackError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except OperationalError as error:  # e.g. the database does not exist, or nothing listens there
        typer.echo(f"error: {database_problem(database_url or 'the default database', error)}", err=True)
        raise typer.Exit(1) from None
    token = running.issue_token("dev-user", "dev")
    chat = _chat_command()
    ready_s = time.monotonic() - started
    typer.echo(
        f"""
Courier is running ({info.model} model, database {info.database}), ready in {ready_s:.1f} s.

  Web page:   {info.page_url}
  WebSocket:  {info.ws_url}   (subprotocols: courier.v1, bearer.<token>)
  Dev token:  {token}
              (user dev-user, tenant dev, valid 1 h; another: {chat} token --user alice --tenant acme)
  Terminal:   {chat} chat "hello"      (no argument: an interactive session)

Press Ctrl-C to stop everything.""",
    )
    sys.stdout.flush()
    while not stop_requested.wait(0.5):
        pass
    typer.echo("\nStopping Courier…", err=True)
    running.stop()
    typer.echo("Stopped.", err=True)
