"""The whole pipeline as a user meets it: `courier dev` in a subprocess, real WebSocket clients, and
`courier chat` processes. Offline model; nothing here reaches AWS or the internet."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from courier_local.chat_client import ChatConnection, TextAppended, Update
from e2e.devstack import DevStack, courier_command, port_is_free, stack_env, start_dev_stack

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

# What the offline model does with them (courier_local.offline_model): a tool call, then filler words.
TOOL_PROMPT = "What is the time in Asia/Tokyo?"
LONG_PROMPT = "lorem 120"  # 3 s at the stack's 40 tokens/s: long enough to cancel or drop mid-answer
CANCEL_WORDS = 4_000  # 100 s at 40 tokens/s: only a cancel ends it within the test's hang guard


def user() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


async def test_a_complete_turn_streams_and_is_stored(dev_stack: DevStack) -> None:
    deltas: list[str] = []

    def collect(update: Update) -> None:
        if isinstance(update, TextAppended):
            deltas.append(update.delta)

    async with ChatConnection(dev_stack.ws_url, dev_stack.token(user())) as connection:
        result = await asyncio.wait_for(connection.run_turn("hello there, Courier", on_update=collect), 30)
        history = await connection.history(result.conversation_id)

    assert result.status == "completed"
    assert result.text.strip()
    assert len(deltas) > 1, "the answer arrived in one piece: it was not streamed"
    assert "".join(deltas) == result.text
    assert result.metadata["usage"]["outputTokens"] > 0
    assert result.metadata["latencyMs"] >= 0
    [stored] = history["turns"]
    assert (stored["status"], stored["userText"], stored["assistantText"]) == (
        "completed",
        "hello there, Courier",
        result.text,
    )


async def test_a_tool_call_is_shown_and_answered(dev_stack: DevStack) -> None:
    async with ChatConnection(dev_stack.ws_url, dev_stack.token(user())) as connection:
        result = await asyncio.wait_for(connection.run_turn(TOOL_PROMPT), 30)
    assert result.status == "completed"
    [tool] = result.tools
    assert tool.tool_name == "current_time"
    assert tool.done and tool.output, "the tool's output never arrived"
    assert tool.summary, "no human sentence about the tool call"
    assert result.text.strip()


async def test_cancel_stops_the_answer_and_keeps_the_partial_text(dev_stack: DevStack) -> None:
    cancel = asyncio.Event()

    def cancel_after_some_text(update: Update) -> None:
        if isinstance(update, TextAppended):
            cancel.set()

    async with ChatConnection(dev_stack.ws_url, dev_stack.token(user())) as connection:
        # 60 s bounds a hang (an answer the cancel did not stop takes 100 s); it measures nothing.
        result = await asyncio.wait_for(
            connection.run_turn(
                f"lorem {CANCEL_WORDS}", on_update=cancel_after_some_text, cancel_event=cancel
            ),
            60,
        )
        history = await connection.history(result.conversation_id)

    assert result.status == "cancelled"
    assert result.text, "the partial text was lost"
    [stored] = history["turns"]
    assert stored["status"] == "cancelled"
    assert stored["assistantText"] == result.text
    assert len(result.text.split()) < CANCEL_WORDS  # stopped before its end


async def test_a_dropped_connection_resumes_the_turn_without_gaps(dev_stack: DevStack) -> None:
    connection = ChatConnection(dev_stack.ws_url, dev_stack.token(user()), reconnect_delay_s=0.1)
    await connection.open()
    dropped = False

    def drop_once(update: Update) -> None:
        nonlocal dropped
        if isinstance(update, TextAppended) and not dropped:
            dropped = True
            asyncio.get_running_loop().create_task(connection.drop())

    try:
        result = await asyncio.wait_for(connection.run_turn(LONG_PROMPT, on_update=drop_once), 40)
        history = await connection.history(result.conversation_id)
    finally:
        await connection.close()

    assert dropped
    assert result.reconnects >= 1
    assert result.status == "completed"
    [stored] = history["turns"]
    assert stored["status"] == "completed"
    assert result.text == stored["assistantText"], "the resumed text has a gap or a duplicate"


def test_courier_chat_streams_an_answer_and_exits_0(dev_stack: DevStack) -> None:
    done = dev_stack.chat("hello from a terminal", "--user", user())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert "completed" in done.stderr and "tokens in" in done.stderr


def test_courier_chat_shows_tool_activity(dev_stack: DevStack) -> None:
    done = dev_stack.chat(TOOL_PROMPT, "--user", user())
    assert done.returncode == 0, done.stderr
    assert "current_time" in done.stderr


def test_courier_chat_json_prints_raw_frames(dev_stack: DevStack) -> None:
    done = dev_stack.chat("--json", "hello", "--user", user())
    assert done.returncode == 0, done.stderr
    frames = [json.loads(line) for line in done.stdout.splitlines()]
    assert frames[0]["type"] == "ack"
    assert frames[-1]["type"] == "chunk" and frames[-1]["chunk"]["type"] == "finish"


def test_courier_chat_interactive_keeps_one_conversation(dev_stack: DevStack) -> None:
    done = subprocess.run(
        [*courier_command(), "chat", "--user", user()],
        cwd=dev_stack.workdir,
        env=stack_env(),
        input="first message\nsecond message\n",
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("completed") == 2


def test_ctrl_c_cancels_the_turn_and_exits_6(dev_stack: DevStack) -> None:
    process = dev_stack.chat_process(LONG_PROMPT, "--user", user())
    try:
        assert process.stdout is not None
        process.stdout.read(1)  # the answer has started
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 6, err
    assert "cancelled" in err


def test_courier_chat_exit_codes_for_unreachable_and_refused(dev_stack: DevStack) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = dev_stack.chat("hi", "--url", f"ws://127.0.0.1:{closed_port}/", "--token", "x")
    assert unreachable.returncode == 3, unreachable.stderr
    refused = dev_stack.chat("hi", "--url", dev_stack.ws_url, "--token", "not-a-jwt")
    assert refused.returncode == 4, refused.stderr


def test_postgres_and_local_bedrock_then_a_clean_shutdown(
    tmp_path: Path, postgres_database_factory: Callable[[], str]
) -> None:
    """A second stack: a fresh Postgres database and Strands' BedrockModel over botocore against the
    local ConverseStream endpoint. A turn works; then Ctrl-C exits 0, frees the port, removes dev.json."""
    url = postgres_database_factory()
    stack = start_dev_stack(
        tmp_path / "pg",
        "--database-url",
        url,
        "--model",
        "local-bedrock:claude-haiku-4-5",
        "--token-rate",
        "200",
    )
    try:
        done = stack.chat("hello postgres", "--user", user())
        assert done.returncode == 0, done.stderr + stack.logs()
        assert done.stdout == "You said: hello postgres\n"
    finally:
        code = stack.stop()
    assert code == 0, stack.logs()
    assert port_is_free(stack.port), "the port is still taken after shutdown"
    assert not (stack.workdir / ".courier" / "dev.json").exists()
