"""`courier chat`: talk to Courier from a terminal.

`courier chat "question"` sends one message, prints the answer as it streams (the model's reasoning,
tool activity and the closing usage line go to stderr, dimmed on a terminal, so stdout is just the
answer) and exits. Without a question it is an
interactive session in one conversation. Exit codes are stable, for scripts: see `ExitCode`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from courier_local.chat_client import (
    AuthRejected,
    AwaitingRetry,
    ChatConnection,
    ConnectFailed,
    ConnectionLost,
    CourierError,
    MessageTooLarge,
    ReasoningAppended,
    RequestFailed,
    TextAppended,
    TextReplaced,
    ToolFailed,
    ToolFinished,
    ToolStarted,
    ToolStatus,
    TurnResult,
    Update,
)
from courier_local.stack import read_stack_info


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # anything unexpected
    USAGE = 2  # bad options (typer's own code)
    # Nothing listening, unreachable, Courier unavailable (HTTP 5xx), or the connection was lost for
    # good (it could not be re-established, or kept dropping: reconnects are bounded).
    CONNECT_FAILED = 3
    AUTH_REJECTED = 4  # the token was refused (HTTP 401/403), or no token could be had
    TURN_FAILED = 5  # the turn ended with an error, the server refused the message, or it is too long
    STOPPED = 6  # the turn was cancelled (Ctrl-C) or interrupted


STATUS_EXIT = {
    "completed": ExitCode.OK,
    "failed": ExitCode.TURN_FAILED,
    "cancelled": ExitCode.STOPPED,
    "interrupted": ExitCode.STOPPED,
}


class Fatal(Exception):
    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _dim(text: str) -> str:
    return f"\x1b[2m{text}\x1b[0m" if sys.stderr.isatty() else text


def resolve_target(url: str | None, token: str | None, user: str, tenant: str) -> tuple[str, str]:
    """The WebSocket URL and a token: given, or found from the local stack's .courier/dev.json."""
    if url is not None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("ws", "wss"):
            fixed = urllib.parse.urlsplit(url)._replace(scheme="wss" if scheme == "https" else "ws").geturl()
            raise Fatal(f"--url must be a WebSocket URL (ws:// or wss://), e.g. {fixed}", ExitCode.USAGE)
    info = read_stack_info()
    if url is None:
        if info is None:
            raise Fatal(
                "No local Courier stack found (.courier/dev.json). Start one with `make dev`, "
                "or pass --url wss://… --token ….",
                ExitCode.CONNECT_FAILED,
            )
        url = info.ws_url
    if token is None:
        if info is None or not info.serves(url):
            raise Fatal(
                "No token: pass --token (or set COURIER_TOKEN) for a remote stack.", ExitCode.AUTH_REJECTED
            )
        token = mint_dev_token(info.dev_token_url, user, tenant)
    return url, token


def mint_dev_token(dev_token_url: str, user: str, tenant: str) -> str:
    """Ask the local stack's dev issuer for a token (only a local dev stack serves this)."""
    query = urllib.parse.urlencode({"user": user, "tenant": tenant})
    try:
        with urllib.request.urlopen(f"{dev_token_url}?{query}", timeout=5) as response:  # noqa: S310
            return str(json.loads(response.read())["token"])
    except (urllib.error.URLError, OSError) as error:
        raise Fatal(
            f"The local stack at {dev_token_url} did not answer ({error}). Is `make dev` still running?",
            ExitCode.CONNECT_FAILED,
        ) from error


class TerminalPrinter:
    """Prints a turn as it streams: answer text on stdout; the model's reasoning (before the answer)
    and tool activity on stderr, dimmed on a terminal."""

    def __init__(self) -> None:
        self.mid_line = False
        self.reasoning_open = False  # reasoning is being printed on stderr, its line not ended

    def __call__(self, update: Update) -> None:
        if isinstance(update, ReasoningAppended):
            if not self.reasoning_open:
                self._newline()
                self.reasoning_open = True
            sys.stderr.write(_dim(update.delta))
            sys.stderr.flush()
            return
        if self.reasoning_open:  # anything else ends the reasoning's line
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.reasoning_open = False
        if isinstance(update, TextAppended):
            sys.stdout.write(update.delta)
            sys.stdout.flush()
            self.mid_line = not update.delta.endswith("\n")
        elif isinstance(update, TextReplaced):
            self._newline()
            note = "the answer restarted (retry)" if update.reason == "retry" else "resumed"
            _err(_dim(f"  … {note}"))
            if update.text:
                sys.stdout.write(update.text)
                sys.stdout.flush()
                self.mid_line = not update.text.endswith("\n")
        elif isinstance(update, ToolStarted):
            self._newline()
            args = ", ".join(f"{k}={v!r}" for k, v in update.input.items())
            _err(_dim(f"  ⚙ {update.tool_name}({args})"))
        elif isinstance(update, ToolStatus):
            _err(_dim(f"    {update.summary}"))
        elif isinstance(update, ToolFinished):
            output = json.dumps(update.output, default=str)
            _err(_dim(f"    ✓ {output[:200]}"))
        elif isinstance(update, ToolFailed):
            _err(_dim(f"    ✗ {update.error_text}"))
        elif isinstance(update, AwaitingRetry):
            # The attempt failed but the turn is not over: say so, and keep waiting for the retry.
            self._newline()
            _err(_dim(f"  … {update.error_text or 'This attempt failed.'} Waiting for the retry…"))

    def _newline(self) -> None:
        if self.mid_line:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.mid_line = False

    def finish(self, result: TurnResult) -> None:
        if self.reasoning_open:
            sys.stderr.write("\n")
            self.reasoning_open = False
        self._newline()
        _err(_dim(summary_line(result)))


def summary_line(result: TurnResult) -> str:
    """One line: how the turn ended, tokens, time to first token, total time.

    The time to first token is Courier's own (the `finish` metadata's `timeToFirstTokenMs`: from the
    moment Courier accepted the message to its first answer text posted), the same figure the page
    and history show; a turn that ended without it (cancelled, interrupted) shows none."""
    parts = [result.status]
    usage = result.metadata.get("usage") or {}
    if usage:
        parts.append(f"{usage.get('inputTokens', 0)} tokens in, {usage.get('outputTokens', 0)} out")
    first_token_ms = result.metadata.get("timeToFirstTokenMs")
    if isinstance(first_token_ms, int) and not isinstance(first_token_ms, bool):
        parts.append(f"first token {first_token_ms} ms")
    parts.append(f"{result.elapsed_s:.2f} s")
    if result.tools:
        parts.append(f"{len(result.tools)} tool call{'s' if len(result.tools) > 1 else ''}")
    if result.reconnects:
        parts.append(f"resumed after {result.reconnects} reconnect{'s' if result.reconnects > 1 else ''}")
    line = "[" + " · ".join(parts) + "]"
    if result.error_text:
        line = f"error: {result.error_text}\n{line}"
    return line


async def _one_turn(
    connection: ChatConnection, text: str, conversation_id: str | None, as_json: bool
) -> TurnResult:
    """Run one turn; the first Ctrl-C sends `cancel`, a second one gives up at once."""
    loop = asyncio.get_running_loop()
    cancel = asyncio.Event()
    this_task = asyncio.current_task()

    def on_sigint() -> None:
        if cancel.is_set() and this_task is not None:
            this_task.cancel()
        else:
            if not as_json:
                _err(_dim("\n  stopping… (Ctrl-C again to quit now)"))
            cancel.set()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    printer = None if as_json else TerminalPrinter()
    try:
        result = await connection.run_turn(text, conversation_id, on_update=printer, cancel_event=cancel)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if printer is not None:
        printer.finish(result)
    return result


def _print_frame(frame: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(frame) + "\n")
    sys.stdout.flush()


def run_chat(question: str | None, url: str, token: str, as_json: bool) -> ExitCode:
    connection = ChatConnection(url, token, on_frame=_print_frame if as_json else None)
    with asyncio.Runner() as runner:
        try:
            runner.run(connection.open())
            if question is not None:
                result = runner.run(_one_turn(connection, question, None, as_json))
                return STATUS_EXIT.get(result.status, ExitCode.ERROR)
            return _interactive(runner, connection, as_json)
        except AuthRejected as error:
            _err(f"error: {error} Get a fresh one with `courier token`, or pass --token.")
            return ExitCode.AUTH_REJECTED
        except (ConnectFailed, ConnectionLost) as error:
            _err(f"error: {error}")
            return ExitCode.CONNECT_FAILED
        except RequestFailed as error:
            _err(f"error: {error} ({error.code})")
            return ExitCode.TURN_FAILED
        except MessageTooLarge as error:
            _err(f"error: {error} Nothing was sent.")
            return ExitCode.TURN_FAILED
        except asyncio.CancelledError:
            _err("interrupted")
            return ExitCode.STOPPED
        finally:
            with contextlib.suppress(Exception, asyncio.CancelledError):  # closing is best effort
                runner.run(asyncio.wait_for(connection.close(), 2))


HISTORY_FILE = Path.home() / ".courier_chat_history"
HISTORY_LINES = 1000


@contextlib.contextmanager
def _line_editing() -> Iterator[None]:
    """On a terminal: the prompt edits like a shell's (arrows, Ctrl-A/E, …) and remembers earlier
    messages (↑), across sessions, through the standard library's readline."""
    if not sys.stdin.isatty():
        yield
        return
    import readline  # importing it is what turns line editing on for input()

    with contextlib.suppress(OSError):
        readline.read_history_file(HISTORY_FILE)
    readline.set_history_length(HISTORY_LINES)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            readline.write_history_file(HISTORY_FILE)


def _interactive(runner: asyncio.Runner, connection: ChatConnection, as_json: bool) -> ExitCode:
    if not as_json:
        _err(_dim("Courier chat: one conversation. Ctrl-C stops an answer, Ctrl-D (or 'exit') leaves."))
    with _line_editing():
        return _session(runner, connection, as_json)


def _session(runner: asyncio.Runner, connection: ChatConnection, as_json: bool) -> ExitCode:
    conversation_id: str | None = None
    last = ExitCode.OK
    while True:
        try:
            line = input("you> " if sys.stdin.isatty() else "")
        except (EOFError, KeyboardInterrupt):
            if sys.stdin.isatty():
                _err("")
            return last
        text = line.strip()
        if not text:
            continue
        if text in ("exit", "quit", "/exit", "/quit"):
            return last
        try:
            result = runner.run(_one_turn(connection, text, conversation_id, as_json))
        except RequestFailed as error:
            _err(f"error: {error} ({error.code})")
            last = ExitCode.TURN_FAILED
            continue
        except MessageTooLarge as error:
            _err(f"error: {error} Nothing was sent.")
            last = ExitCode.TURN_FAILED
            continue
        except asyncio.CancelledError:
            _err("interrupted")
            return ExitCode.STOPPED
        conversation_id = result.conversation_id
        last = STATUS_EXIT.get(result.status, ExitCode.ERROR)


def chat(
    question: Annotated[
        str | None, typer.Argument(help="The message. Omit it for an interactive session.")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", envvar="COURIER_URL", help="WebSocket URL. Default: the local stack (`make dev`)."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="COURIER_TOKEN", help="A JWT. Default: a dev token from the local stack."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every frame received, one JSON per line.")
    ] = False,
    user: Annotated[
        str, typer.Option(help="User id of the dev token minted for a local stack.")
    ] = "dev-user",
    tenant: Annotated[str, typer.Option(help="Tenant id of the dev token minted for a local stack.")] = "dev",
) -> None:
    """Chat with Courier from the terminal: streams the answer, shows tool calls, resumes after drops.

    Exit codes: 0 completed, 3 cannot connect (or Courier unavailable, or the connection kept
    dropping), 4 token refused, 5 turn failed or message refused (too long), 6 cancelled or
    interrupted.
    """
    try:
        ws_url, jwt = resolve_target(url, token, user, tenant)
    except Fatal as error:
        _err(f"error: {error}")
        raise typer.Exit(error.code) from None
    try:
        code = run_chat(question, ws_url, jwt, as_json)
    except CourierError as error:  # pragma: no cover - every expected error is mapped in run_chat
        _err(f"error: {error}")
        code = ExitCode.ERROR
    raise typer.Exit(int(code))
