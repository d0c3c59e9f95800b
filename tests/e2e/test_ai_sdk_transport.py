"""A stock AI SDK client against the whole local stack: the `ai` package's own
`WebSocketChatTransport` and `AbstractChat` (what `useChat` runs), in Node, with no Courier code on
the client side (tests/ai_sdk/drive.mjs; `make e2e` installs it with `npm ci` from its lockfile).

Each test runs one scenario of the driver against `courier dev` and checks what a user of that chat
would see against what Courier stored (its own `getHistory`). Offline model at the stack's 40
tokens/s; what it does with each prompt is in courier_local.offline_model.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from courier_local.chat_client import ChatConnection
from courier_worker.failures import FAILURES
from e2e.devstack import DevStack

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

AI_SDK = Path(__file__).resolve().parents[1] / "ai_sdk"
TOOL_PROMPT = "What is the time in Europe/Paris?"  # current_time(time_zone="Europe/Paris")
FAILING_TOOL_PROMPT = "What is the time in Europe?"  # current_time fails: a region, not a zone
LONG_PROMPT = "lorem 400"  # 10 s at 40 tokens/s: stopped, cancelled or dropped after a few words
RESUMED_PROMPT = "lorem 120"  # 3 s: dropped after a few words, then resumed to its end
# A tool turn with a 3 s tail: dropped after the tool's output, resumed to its end.
RESUMED_TOOL_PROMPT = "What is the time in Europe/Paris? Then lorem 120"
THROTTLED_PROMPT = "fail: throttled"  # every model call is refused with ThrottlingException
SCENARIO_TIMEOUT_S = 30  # only ends a stuck scenario (the driver prints what it waited for)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def user() -> str:
    return f"ai-sdk-{uuid.uuid4().hex[:8]}"


def node() -> str:
    found = shutil.which("node")
    if found is None:
        message = "Node.js is not installed: the AI SDK tests need `node` (and `npm ci` in tests/ai_sdk)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    if not (AI_SDK / "node_modules" / "ai").is_dir():
        pytest.fail("tests/ai_sdk is not installed: `make e2e` runs `npm ci` there (or run it yourself)")
    return found


def drive(
    stack: DevStack,
    scenario: str,
    prompt: str,
    *,
    owner: str,
    chat_id: str | None = None,
    then: str | None = None,
    prior_turns: int = 0,
    trim: bool = False,
    after_words: int | None = None,
) -> dict[str, Any]:
    """Run one scenario of tests/ai_sdk/drive.mjs; its JSON result (fails the test if it got stuck)."""
    command = [
        node(),
        str(AI_SDK / "drive.mjs"),
        scenario,
        "--url",
        stack.ws_url,
        "--token",
        stack.token(owner),
        "--prompt",
        prompt,
        "--timeout-s",
        str(SCENARIO_TIMEOUT_S),
        *(["--chat-id", chat_id] if chat_id else []),
        *(["--then", then] if then else []),
        *(["--prior-turns", str(prior_turns)] if prior_turns else []),
        *(["--trim"] if trim else []),
        *(["--after-words", str(after_words)] if after_words else []),
    ]
    done = subprocess.run(
        command, cwd=AI_SDK, capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S + 15, check=False
    )
    lines = done.stdout.strip().splitlines()
    if not lines:
        pytest.fail(f"drive.mjs {scenario} printed nothing (exit {done.returncode})\n{done.stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    if result.get("timedOut"):
        pytest.fail(
            f"drive.mjs {scenario}: stuck waiting for {result['timedOutWaitingFor']} "
            f"after {SCENARIO_TIMEOUT_S} s\n{wire(result)}"
        )
    if done.returncode != 0:
        pytest.fail(f"drive.mjs {scenario} failed: {result.get('failure')}\n{wire(result)}\n{done.stderr}")
    return result


def wire(result: dict[str, Any]) -> str:
    """What the SDK's sockets sent and received, compactly (runs of one kind counted), for a failure."""

    def kind(frame: dict[str, Any]) -> str:
        chunk = frame.get("chunk")
        return f"{frame.get('type')}:{chunk.get('type')}" if isinstance(chunk, dict) else json.dumps(frame)

    received: list[str] = []
    count = 0
    for index, frame in enumerate(result.get("received", [])):
        count += 1
        following = result["received"][index + 1] if index + 1 < len(result["received"]) else None
        if following is None or kind(following) != kind(frame):
            received.append(kind(frame) + (f" x{count}" if count > 1 else ""))
            count = 0
    return f"sent {[frame.get('type') for frame in result.get('sent', [])]}\nreceived {received}"


def answer(result: dict[str, Any]) -> dict[str, Any]:
    """The chat's last message, which must be the assistant's answer."""
    message: dict[str, Any] = result["messages"][-1]
    assert message["role"] == "assistant", f"no answer in the chat\n{wire(result)}"
    return message


def shape(parts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each part's type, state and input: what two runs of a time-tool prompt share (the call's id
    and the time it read differ)."""
    return [(part["type"], part.get("state"), part.get("input")) for part in parts]


def text_of(message: dict[str, Any]) -> str:
    return "".join(part["text"] for part in message["parts"] if part["type"] == "text")


def parts_of(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [part for part in message["parts"] if part["type"] == kind]


async def stored_turn(
    stack: DevStack,
    owner: str,
    result: dict[str, Any],
    message: dict[str, Any] | None = None,
    *,
    until: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The stored turn of an answer (default: the last): the turn whose id is the message's id, in
    the owner's conversations (every test has a user of its own), from Courier's own listConversations
    and getHistory. With `until`, asked again until its status is one of those (the turn's final
    write may land just after the stream ended)."""
    message = message or answer(result)
    deadline = time.monotonic() + 10
    async with ChatConnection(stack.ws_url, stack.token(owner)) as connection:
        while True:
            turns = {}
            for conversation in (await connection.list_conversations())["conversations"]:
                history = await connection.history(conversation["conversationId"])
                turns.update({turn["turnId"]: turn | conversation for turn in history["turns"]})
            assert message["id"] in turns, f"the answer's id {message['id']} is no stored turn: {list(turns)}"
            turn = dict(turns[message["id"]])
            if not until or turn["status"] in until or time.monotonic() > deadline:
                return turn
            await asyncio.sleep(0.2)


async def test_a_tool_turn_is_shown_as_stored(dev_stack: DevStack) -> None:
    owner = user()
    result = drive(dev_stack, "send", TOOL_PROMPT, owner=owner)  # the SDK's own chat id: not a UUID
    message = answer(result)
    stored = await stored_turn(dev_stack, owner, result)

    assert (result["status"], result.get("error")) == ("ready", None), wire(result)
    assert result["finishes"] == [
        {
            "messageId": message["id"],
            "isAbort": False,
            "isDisconnect": False,
            "isError": False,
            "finishReason": "stop",
        }
    ]
    assert stored["status"] == "completed"
    assert text_of(message) == stored["assistantText"]
    assert message["id"] == stored["turnId"]
    assert (message["metadata"].get("turnId"), message["metadata"].get("conversationId")) == (
        stored["turnId"],
        stored["conversationId"],
    )
    [tool] = parts_of(message, "tool-current_time")
    assert tool["state"] == "output-available", tool
    assert tool["input"] == {"time_zone": "Europe/Paris"}
    assert tool["output"]["timeZone"] == "Europe/Paris"
    [status] = parts_of(message, "data-tool-status")  # one part, however many updates it had
    assert status["id"] == tool["toolCallId"] == status["data"]["toolCallId"]
    assert status["data"]["summary"]
    usage = message["metadata"]["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert message["metadata"]["status"] == "completed"


async def test_a_failed_tool_is_shown_and_the_answer_goes_on(dev_stack: DevStack) -> None:
    owner = user()
    result = drive(dev_stack, "send", FAILING_TOOL_PROMPT, owner=owner)
    message = answer(result)
    stored = await stored_turn(dev_stack, owner, result)

    assert (result["status"], result.get("error")) == ("ready", None), wire(result)
    assert result["finishes"][-1]["finishReason"] == "stop"
    [tool] = parts_of(message, "tool-current_time")
    assert tool["state"] == "output-error", tool
    assert "region, not a time zone" in tool["errorText"]
    after_tool = message["parts"][message["parts"].index(tool) + 1 :]
    assert "".join(part.get("text", "") for part in after_tool).strip(), (
        "the answer stopped at the failed tool"
    )
    assert text_of(message) == stored["assistantText"]
    assert stored["status"] == "completed"


async def test_a_failed_turn_puts_the_chat_in_error_with_couriers_text(dev_stack: DevStack) -> None:
    owner = user()
    result = drive(dev_stack, "send", THROTTLED_PROMPT, owner=owner)
    stored = await stored_turn(dev_stack, owner, result)

    assert result["status"] == "error", wire(result)
    assert result["error"] == FAILURES["model_throttled"].safe_text
    assert result["finishes"][-1]["isError"] is True
    assert stored["status"] == "failed"


async def test_stop_cancels_the_turn_and_the_sdk_reports_the_abort(dev_stack: DevStack) -> None:
    owner = user()
    result = drive(dev_stack, "stop", LONG_PROMPT, owner=owner, then="hello again")
    stopped, follow_up = result["finishes"]
    message = result["messages"][1]
    stored = await stored_turn(dev_stack, owner, result, message, until=("cancelled", "completed", "failed"))

    assert stopped["isAbort"] is True, stopped
    first_send = next(frame for frame in result["sent"] if frame["type"] == "send")
    assert {"type": "abort", "requestId": first_send["requestId"]} in result["sent"]
    assert stored["status"] == "cancelled", "the stopped turn went on to its end"
    assert text_of(message), "nothing was shown before the stop"
    assert stored["assistantText"].startswith(text_of(message))
    # The chat goes on, on the same socket: no frame about the stopped request made the transport
    # drop its connection (it does on any frame it rejects: "Invalid WebSocket chat response frame.").
    assert (result["status"], result.get("error")) == ("ready", None), wire(result)
    assert text_of(answer(result)) == "You said: hello again"
    assert follow_up["finishReason"] == "stop"
    assert result["socketsOpened"] == 1


async def test_a_cancel_from_another_tab_ends_the_chat_as_not_completed(dev_stack: DevStack) -> None:
    owner = user()
    result = drive(dev_stack, "cancel-elsewhere", LONG_PROMPT, owner=owner)
    message = answer(result)
    stored = await stored_turn(dev_stack, owner, result, until=("cancelled", "completed", "failed"))

    assert [frame.get("type") for frame in result["otherTab"]["received"]] != ["error"], result["otherTab"]
    assert (result["status"], result.get("error")) == ("ready", None), wire(result)
    [finished] = result["finishes"]
    assert finished["finishReason"] == "interrupted", finished
    assert (finished["isAbort"], finished["isError"]) == (False, False)
    assert message["metadata"]["status"] == "cancelled"
    assert stored["status"] == "cancelled"
    assert text_of(message) == stored["assistantText"]


@pytest.mark.parametrize(
    ("prompt", "after_words"),
    [(RESUMED_PROMPT, None), (RESUMED_TOOL_PROMPT, 30)],  # 30 words: past the tool's output
    ids=["text", "tool"],
)
async def test_a_dropped_chat_resumes_to_the_stored_message(
    dev_stack: DevStack, prompt: str, after_words: int | None
) -> None:
    owner = user()
    result = drive(dev_stack, "drop-resume", prompt, owner=owner, after_words=after_words)
    dropped = result["dropped"]
    message = answer(result)
    stored = await stored_turn(dev_stack, owner, result)

    assert dropped["finishes"][-1]["isDisconnect"] is True, "the drop did not look like a network drop"
    assert text_of(dropped["messages"][-1]) != stored["assistantText"], "the answer ended before the drop"
    assert (result["status"], result.get("error")) == ("ready", None), wire(result)
    assert result["finishes"][-1]["finishReason"] == "stop"
    assert [m["role"] for m in result["messages"]] == ["user", "assistant"]
    assert message["id"] == stored["turnId"]
    assert stored["status"] == "completed"
    assert text_of(message) == stored["assistantText"]
    # The same answer as a client that never dropped has it, part for part (tool parts included).
    continuous = answer(drive(dev_stack, "send", prompt, owner=owner))
    assert shape(message["parts"]) == shape(continuous["parts"])
    tools = [part for part in message["parts"] if part["type"].startswith("tool-")]
    if prompt == RESUMED_TOOL_PROMPT:
        dropped_tools = [p for p in dropped["messages"][-1]["parts"] if p["type"].startswith("tool-")]
        assert [p["state"] for p in dropped_tools] == ["output-available"], "dropped before the tool's output"
        assert [(p["type"], p["state"]) for p in tools] == [("tool-current_time", "output-available")]
    else:
        assert message["parts"] == continuous["parts"]
        assert tools == [] and len(stored["assistantText"].split()) == 120


async def test_a_chat_id_names_one_conversation_of_its_user(dev_stack: DevStack) -> None:
    """Any string names a conversation of this user (the same string: the same one, another user's:
    another); a conversation's own id, as listConversations gives it to a page, continues it."""
    owner, other, chat_id = user(), user(), f"my-chat-{uuid.uuid4().hex[:6]}"
    first = drive(dev_stack, "send", "hello once", owner=owner, chat_id=chat_id)
    second = drive(dev_stack, "send", "hello twice", owner=owner, chat_id=chat_id)
    conversation_id = (await stored_turn(dev_stack, owner, first))["conversationId"]
    third = drive(dev_stack, "send", "hello by id", owner=owner, chat_id=conversation_id)
    someone_else = drive(dev_stack, "send", "hello from someone else", owner=other, chat_id=chat_id)

    assert (await stored_turn(dev_stack, owner, second))["conversationId"] == conversation_id
    assert (await stored_turn(dev_stack, owner, third))["conversationId"] == conversation_id
    assert (await stored_turn(dev_stack, other, someone_else))["conversationId"] != conversation_id
    async with ChatConnection(dev_stack.ws_url, dev_stack.token(owner)) as connection:
        history = await connection.history(conversation_id)
    assert [turn["userText"] for turn in history["turns"]] == ["hello once", "hello twice", "hello by id"]


async def test_a_page_load_with_nothing_to_resume_leaves_the_chat_ready(dev_stack: DevStack) -> None:
    """useChat({ resume: true }) asks on every page load; with no answer in progress, nothing happens."""
    result = drive(dev_stack, "resume", "", owner=user(), chat_id=str(uuid.uuid4()))

    assert (result["status"], result.get("error")) == ("ready", None), wire(result)
    assert result["messages"] == []
    assert [frame["type"] for frame in result["received"]] == ["no-active"]


async def test_regenerate_replaces_the_answer_with_a_new_turn(dev_stack: DevStack) -> None:
    owner = user()
    result = drive(dev_stack, "regenerate", "hello, say it again", owner=owner)
    first, again = result["firstAnswer"], answer(result)
    stored_first = await stored_turn(dev_stack, owner, result, first)
    stored_again = await stored_turn(dev_stack, owner, result)

    assert (result["status"], result.get("error")) == ("ready", None), wire(result)
    assert [m["role"] for m in result["messages"]] == ["user", "assistant"]
    assert again["id"] != first["id"]
    assert text_of(again) == stored_again["assistantText"] == "You said: hello, say it again"
    assert stored_first["conversationId"] == stored_again["conversationId"]
    assert stored_again["userText"] == stored_first["userText"] == "hello, say it again"
    assert [f["finishReason"] for f in result["finishes"]] == ["stop", "stop"]


async def test_a_refused_message_shows_couriers_reason_and_the_chat_goes_on(dev_stack: DevStack) -> None:
    result = drive(dev_stack, "send", "x" * 6000, owner=user(), then="shorter")

    refused, answered = result["finishes"]
    assert refused["isError"] is True
    assert result["errors"] == [
        "The message is 6000 characters; the limit is 5000. Shorten it or split it into several messages."
    ]
    assert (result["status"], result.get("error")) == ("ready", None), wire(result)
    assert text_of(answer(result)) == "You said: shorter"
    assert answered["finishReason"] == "stop"
    assert result["socketsOpened"] == 1


async def test_a_long_chat_sends_only_its_last_message_as_the_readme_says(dev_stack: DevStack) -> None:
    """The stock transport sends the whole chat in one frame; API Gateway (and the local stack) close
    the connection on a frame over 32 KB. README's prepareSendMessagesRequest sends the last message
    only (Courier keeps the history), so a long chat goes on."""
    owner = user()
    whole = drive(dev_stack, "send", "hello after a long chat", owner=owner, prior_turns=40)
    trimmed = drive(dev_stack, "send", "hello after a long chat", owner=owner, prior_turns=40, trim=True)

    assert whole["status"] == "error"
    assert "code 1009" in whole["error"]
    assert (trimmed["status"], trimmed.get("error")) == ("ready", None), wire(trimmed)
    assert [len(frame["messages"]) for frame in trimmed["sent"]] == [1]
    assert text_of(answer(trimmed)) == "You said: hello after a long chat"
