"""`getHistory` with tool calls and timings, over the in-memory store: each stored call comes back
as the page draws it (state, output or error, where it sits in the answer), in the order made."""

from __future__ import annotations

import json
import uuid
from typing import Any

from gateway_client import GatewayHarness, make_owner

from courier_gateway.gateway import HISTORY_TOOL_INPUT_MAX_BYTES, HISTORY_TOOLS_MAX_BYTES
from courier_shared.db.store import Owner, ToolCallRecord, TurnOutcome
from courier_shared.protocol import TurnStatus, parse_server_frame

ANSWER = "Let me look. It is noon in Paris."


def stored_turn(
    harness: GatewayHarness,
    owner: Owner,
    calls: list[ToolCallRecord],
    *,
    outcome: TurnOutcome | None = None,
    conversation_id: str | None = None,
) -> tuple[str, str]:
    """A turn sent by `owner`, answered and stored with `calls` as the worker stores them."""
    fields = {"conversationId": conversation_id} if conversation_id else {}
    ack = harness.client(owner).send_message("What time is it in Paris?", **fields)
    turn_id = uuid.UUID(ack["turnId"])
    with harness.store.unit_of_work() as repo:
        repo.start_attempt(owner, turn_id, "scripted", harness.clock())
        repo.finish_turn(
            owner, turn_id, outcome or TurnOutcome(TurnStatus.COMPLETED, ANSWER, 12), harness.clock()
        )
        for call in calls:
            repo.record_tool_invocation(turn_id, call)
    return ack["conversationId"], ack["turnId"]


def history(harness: GatewayHarness, owner: Owner, conversation_id: str) -> dict[str, Any]:
    frame = harness.client(owner).send({"action": "getHistory", "conversationId": conversation_id})
    parse_server_frame(json.dumps(frame))  # exactly the protocol's shape
    return frame


def test_a_tool_turn_comes_back_with_its_calls_in_order_each_where_it_sits_in_the_answer(
    harness: GatewayHarness,
) -> None:
    owner = make_owner()
    calls = [
        ToolCallRecord(0, "t1", "lookup", {"city": "Paris"}, '{"time": "12:00"}', "success", 7, 13),
        ToolCallRecord(1, "t2", "lookup", {"city": "Atlantis"}, '{"error": "No such city."}', "error", 2, 13),
        ToolCallRecord(
            2,
            "t3",
            "lookup",
            {"city": "Oslo"},
            '{"error": "The tool failed unexpectedly."}',
            "crashed",
            1,
            13,
        ),
        ToolCallRecord(3, "t4", "slow", {}, None, "running", None, 33),
    ]
    outcome = TurnOutcome(
        TurnStatus.COMPLETED, ANSWER, 20, latency_ms=900, time_to_first_token_ms=340, input_tokens=5
    )
    conversation_id, _ = stored_turn(harness, owner, calls, outcome=outcome)

    [turn] = history(harness, owner, conversation_id)["turns"]

    assert (turn["timeToFirstTokenMs"], turn["latencyMs"]) == (340, 900)
    assert turn["tools"] == [
        {
            "toolCallId": "t1",
            "toolName": "lookup",
            "input": {"city": "Paris"},
            "state": "output-available",
            "output": {"time": "12:00"},
            "errorText": None,
            "textOffset": 13,
            "durationMs": 7,
        },
        {
            "toolCallId": "t2",
            "toolName": "lookup",
            "input": {"city": "Atlantis"},
            "state": "output-error",  # a failed call reads as failed, never as a success
            "output": None,
            "errorText": "No such city.",
            "textOffset": 13,
            "durationMs": 2,
        },
        {
            "toolCallId": "t3",
            "toolName": "lookup",
            "input": {"city": "Oslo"},
            "state": "output-error",
            "output": None,
            "errorText": "The tool failed unexpectedly.",
            "textOffset": 13,
            "durationMs": 1,
        },
        {
            "toolCallId": "t4",
            "toolName": "slow",
            "input": {},
            "state": "input-available",  # it never finished
            "output": None,
            "errorText": None,
            "textOffset": 33,
            "durationMs": None,
        },
    ]
    assert ANSWER[: turn["tools"][0]["textOffset"]] == "Let me look. "


def test_a_turn_without_tool_calls_or_timings_has_empty_tools_and_null_timings(
    harness: GatewayHarness,
) -> None:
    owner = make_owner()
    conversation_id, _ = stored_turn(harness, owner, [])
    harness.client(owner).send_message("and now?", conversationId=conversation_id)  # still queued

    done, queued = history(harness, owner, conversation_id)["turns"]

    assert (done["tools"], done["timeToFirstTokenMs"], done["latencyMs"]) == ([], None, None)
    assert (queued["status"], queued["tools"], queued["timeToFirstTokenMs"]) == ("queued", [], None)


def test_each_turn_of_a_page_gets_its_own_calls(harness: GatewayHarness) -> None:
    owner = make_owner()
    conversation_id, first = stored_turn(
        harness, owner, [ToolCallRecord(0, "a", "lookup", {}, "1", "success")]
    )
    _, second = stored_turn(
        harness,
        owner,
        [
            ToolCallRecord(0, "b", "lookup", {}, "2", "success"),
            ToolCallRecord(1, "c", "x", {}, "3", "success"),
        ],
        conversation_id=conversation_id,
    )

    turns = history(harness, owner, conversation_id)["turns"]

    assert [(t["turnId"], [tool["toolCallId"] for tool in t["tools"]]) for t in turns] == [
        (first, ["a"]),
        (second, ["b", "c"]),
    ]


def test_a_turn_with_many_large_tool_calls_still_fits_one_history_frame(harness: GatewayHarness) -> None:
    owner = make_owner()
    big = {"text": "x" * (HISTORY_TOOL_INPUT_MAX_BYTES + 10)}  # stored (under 16 KiB), too big for history
    medium = {"text": "y" * 1500}
    output = json.dumps("z" * 1000)
    calls = [ToolCallRecord(0, "big", "echo", big, output, "success", 1, 0)]
    calls += [ToolCallRecord(i, f"m{i}", "echo", medium, output, "success", 1, i) for i in range(1, 40)]
    calls.append(ToolCallRecord(40, "failed", "echo", medium, '{"error": "Nope."}', "error", 1, 40))
    conversation_id, _ = stored_turn(harness, owner, calls)

    [turn] = history(harness, owner, conversation_id)["turns"]

    tools = turn["tools"]
    assert [t["toolCallId"] for t in tools] == [c.tool_call_id for c in calls]  # every call keeps its place
    assert tools[0]["input"] == {"truncated": True} and tools[0]["output"] == "z" * 1000
    assert tools[1]["input"] == medium  # small enough, within the turn's budget: whole
    assert tools[-2]["input"] == {"truncated": True} and tools[-2]["output"] is None  # past the budget
    assert (tools[-1]["state"], tools[-1]["errorText"], tools[-1]["textOffset"]) == (
        "output-error",
        "Nope.",
        40,
    )
    size = sum(len(json.dumps(t, separators=(",", ":"), ensure_ascii=False).encode()) for t in tools)
    assert size <= HISTORY_TOOLS_MAX_BYTES + 41 * 300
