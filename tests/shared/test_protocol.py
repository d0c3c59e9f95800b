"""The wire protocol: the models parse what clients send, refuse the rest, and match the docs."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel, ValidationError

from courier_shared import protocol
from courier_shared.schemas import generate

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "protocol.md").read_text()


def _first_column(heading: str) -> set[str]:
    """The backticked names in the first column of the table under a heading of docs/protocol.md."""
    section = DOC.split(heading, 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def test_checked_in_json_schemas_are_what_the_models_generate():
    for name, text in generate().items():
        path = ROOT / "docs" / "schemas" / name
        assert path.exists(), f"{path} missing: run `make schemas`"
        assert path.read_text() == text, f"{path} is stale: run `make schemas`"


def test_documented_actions_frames_and_parts_are_exactly_the_models():
    assert _first_column("## Client → server frames") == set(protocol.CLIENT_ACTIONS)
    server_types = {
        model.model_fields["type"].default
        for model in (
            protocol.Ack,
            protocol.Chunk,
            protocol.Snapshot,
            protocol.History,
            protocol.Conversations,
            protocol.Pong,
            protocol.Error,
        )
    }
    assert _first_column("## Server → client frames") == server_types
    documented_parts = {
        part
        for cell in _first_column("## The chunk parts")
        for part in re.findall(r'"type":"([a-z-]+)"', cell)
    }
    part_types = {arg.model_fields["type"].default for arg in protocol.ChunkPart.__origin__.__args__}
    assert documented_parts == part_types
    assert {code.value for code in protocol.ErrorCode} == set(
        re.findall(r"`([a-z_]+)`", DOC.split("Error codes at least:", 1)[1].split("\n\n", 1)[0])
    )


def test_documented_ai_sdk_chat_frames_are_exactly_the_models():
    section = DOC.split("## AI SDK chat frames", 1)[1].split("\n## ", 1)[0]
    first_columns = [
        re.findall(r"^`([a-z-]+)`", line.split("|")[1].strip())
        for line in section.splitlines()
        if line.startswith("| `")
    ]
    documented = {name for names in first_columns for name in names}
    chat_response_types = {
        model.model_fields["type"].default for model in get_args(get_args(protocol.ChatResponse)[0])
    }
    assert documented == set(protocol.CHAT_REQUEST_TYPES) | chat_response_types


def _wire_fields(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def test_documented_history_turn_and_tool_fields_are_exactly_the_models():
    row = next(line for line in DOC.splitlines() if line.startswith("| `history` |"))
    documented_turn = set(re.findall(r"`([a-zA-Z]+)`", row.split("`turns`", 1)[1].split("`nextCursor`")[0]))
    assert documented_turn == _wire_fields(protocol.HistoryTurn)
    tools = DOC.split("- **Tools in history**", 1)[1].split("\n- ", 1)[0]
    documented_tool = set(re.findall(r'"([a-zA-Z]+)"', tools.split("`{", 1)[1].split("}`", 1)[0]))
    assert documented_tool == _wire_fields(protocol.HistoryTool)
    assert {f"`{state}`" for state in get_args(protocol.HistoryToolState)} <= set(
        re.findall(r"`[a-z-]+`", tools)
    )


def test_a_send_message_frame_parses_with_camel_case_fields():
    client_message_id = uuid.uuid4()
    frame = protocol.parse_client_frame(
        json.dumps({"action": "sendMessage", "clientMessageId": str(client_message_id), "text": "hi"})
    )
    assert isinstance(frame, protocol.SendMessage)
    assert frame.client_message_id == client_message_id and frame.conversation_id is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("not json", "not a JSON object"),
        ('{"action": "fly"}', "Unknown action"),
        ('{"text": "hi"}', "Missing required field 'action'"),
        ('{"action": "ping", "user": "admin"}', "Unknown field 'user'"),
        ('{"action": "cancel"}', "Missing required field 'turnId'"),
        ('{"action": "cancel", "turnId": "nope"}', "Invalid 'turnId'"),
        (
            # A fixed id: a test's id must be the same in every process (pytest-xdist compares them).
            json.dumps(
                {
                    "action": "getHistory",
                    "conversationId": "9bb39ea9-6e1f-4a90-ab29-f831827bf8f6",
                    "limit": 1000,
                }
            ),
            "Invalid 'limit'",
        ),
    ],
)
def test_off_contract_frames_are_refused_with_a_message_a_person_can_act_on(raw, expected):
    with pytest.raises(ValidationError) as error:
        protocol.parse_client_frame(raw)
    assert expected in protocol.describe_validation_error(error.value)


def test_server_frames_round_trip_through_the_wire_format():
    turn_id = uuid.uuid4()
    chunk = protocol.Chunk(
        turn_id=turn_id,
        attempt=1,
        seq=0,
        chunk=protocol.TextDeltaPart(id="t0", delta="Hel"),
    )
    wire = json.loads(protocol.dump_frame(chunk))
    assert wire == {
        "type": "chunk",
        "turnId": str(turn_id),
        "attempt": 1,
        "seq": 0,
        "chunk": {"type": "text-delta", "id": "t0", "delta": "Hel"},
    }
    assert protocol.parse_server_frame(json.dumps(wire)) == chunk


def test_the_documented_limits_are_the_protocols():
    assert f"`maxMessageChars` is **{protocol.MAX_MESSAGE_CHARS:,}** characters" in DOC
    assert f"**{protocol.CLIENT_FRAME_BUDGET_BYTES:,} bytes**" in DOC
    assert f"more than {protocol.MAX_CLIENT_FRAME_DEPTH} levels deep" in DOC
    assert f"cut to {protocol.MAX_NAME_CHARS_IN_ERRORS} characters" in DOC
    # The arithmetic the doc gives: the longest message, all control characters, fits one frame.
    worst = protocol.encode_client_frame(
        {
            "action": "sendMessage",
            "clientMessageId": str(uuid.uuid4()),
            "text": "\x01" * protocol.MAX_MESSAGE_CHARS,
            "conversationId": str(uuid.uuid4()),
        }
    )
    assert len(worst.encode()) <= protocol.CLIENT_FRAME_BUDGET_BYTES
    assert (
        protocol.WORST_CASE_BYTES_PER_CHAR * protocol.MAX_MESSAGE_CHARS + 200
        <= protocol.CLIENT_FRAME_BUDGET_BYTES
    )


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        ('{"action": "ping"}', 1),
        ('{"a": [[{"b": 1}]]}', 4),
        ('{"text": "[[[{{{ not structure"}', 1),
        ('{"text": "a \\" [[[ quoted quote"}', 1),
        ("[" * 10_000, 10_000),
        ("not json at all", 0),
    ],
)
def test_nesting_depth_is_measured_without_parsing(raw, depth):
    assert protocol.nesting_depth(raw) == depth
