"""The client rules of docs/protocol.md, as TurnView (used by `courier chat`) applies them."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from courier_local.chat_client import (
    TextAppended,
    TextReplaced,
    ToolFailed,
    ToolFinished,
    ToolStarted,
    TurnEnded,
    TurnView,
)

TURN = "6f1c7c1e-5a8e-4d8a-9a51-8e4a2f0f0b11"


def chunk(seq: int, part: dict[str, Any], attempt: int = 1, turn: str = TURN) -> dict[str, Any]:
    return {"type": "chunk", "turnId": turn, "attempt": attempt, "seq": seq, "chunk": part}


def delta(text: str) -> dict[str, Any]:
    return {"type": "text-delta", "id": "t0", "delta": text}


def start(attempt: int = 1) -> dict[str, Any]:
    return {"type": "start", "messageId": TURN, "messageMetadata": {"model": "offline", "attempt": attempt}}


FINISH = {
    "type": "finish",
    "messageMetadata": {
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 4},
        "latencyMs": 120,
        "timeToFirstTokenMs": 10,
    },
}


def answer_frames(words: list[str], attempt: int = 1) -> list[dict[str, Any]]:
    parts = [start(attempt), {"type": "start-step"}, {"type": "text-start", "id": "t0"}]
    parts += [delta(w) for w in words]
    parts += [{"type": "text-end", "id": "t0"}, {"type": "finish-step"}, FINISH]
    return [chunk(seq, part, attempt) for seq, part in enumerate(parts)]


def test_a_whole_turn_in_order_gives_the_text_and_the_usage() -> None:
    view = TurnView(TURN)
    updates = [u for frame in answer_frames(["Hel", "lo", " there"]) for u in view.apply(frame)]
    assert view.text == "Hello there"
    assert [u.delta for u in updates if isinstance(u, TextAppended)] == ["Hel", "lo", " there"]
    assert view.ended == TurnEnded("completed", metadata=FINISH["messageMetadata"])
    assert view.model == "offline"


def test_duplicates_are_dropped() -> None:
    view = TurnView(TURN)
    frames = answer_frames(["a", "b", "c"])
    for frame in frames[:5]:
        view.apply(frame)
    assert view.apply(frames[3]) == []  # already applied
    assert view.text == "ab"


def test_a_gap_waits_until_it_is_filled() -> None:
    view = TurnView(TURN)
    frames = answer_frames(["a", "b", "c"])
    for frame in frames[:3]:
        view.apply(frame)
    assert view.apply(frames[4]) == []  # seq 4 before seq 3: held back
    assert view.text == ""
    updates = view.apply(frames[3])
    assert [u.delta for u in updates if isinstance(u, TextAppended)] == ["a", "b"]
    assert view.last_seq == 4


def test_a_new_attempt_discards_the_partial_text_of_the_old_one() -> None:
    view = TurnView(TURN)
    for frame in answer_frames(["stale ", "words"])[:4]:
        view.apply(frame)
    assert view.text == "stale "
    retry = answer_frames(["fresh"], attempt=2)
    updates = view.apply(retry[0])
    assert updates == [TextReplaced("", "retry")]
    for frame in retry[1:]:
        view.apply(frame)
    assert view.text == "fresh"
    # A late frame of attempt 1 changes nothing.
    assert view.apply(answer_frames(["stale ", "words"])[4]) == []
    assert view.attempt == 2


def test_a_snapshot_replaces_the_text_and_later_chunks_continue_it() -> None:
    view = TurnView(TURN)
    frames = answer_frames(["one ", "two ", "three"])
    for frame in frames[:4]:  # up to "one "
        view.apply(frame)
    snapshot = {
        "type": "snapshot",
        "turnId": TURN,
        "attempt": 1,
        "seq": 4,
        "status": "streaming",
        "text": "one two ",
    }
    assert view.apply(snapshot) == [TextAppended("two ")]
    # The live stream re-sends seq 4 (already in the snapshot): dropped; seq 5 continues.
    assert view.apply(frames[4]) == []
    assert view.apply(frames[5]) == [TextAppended("three")]
    for frame in frames[6:]:
        view.apply(frame)
    assert view.text == "one two three"
    assert view.ended is not None and view.ended.status == "completed"


def test_an_older_snapshot_after_newer_chunks_does_not_roll_the_text_back() -> None:
    view = TurnView(TURN)
    for frame in answer_frames(["a", "b", "c"])[:6]:
        view.apply(frame)
    stale = {"type": "snapshot", "turnId": TURN, "attempt": 1, "seq": 3, "status": "streaming", "text": "a"}
    assert view.apply(stale) == []
    assert view.text == "abc"


def test_a_terminal_snapshot_ends_the_turn() -> None:
    view = TurnView(TURN)
    snapshot = {
        "type": "snapshot",
        "turnId": TURN,
        "attempt": 1,
        "seq": 9,
        "status": "interrupted",
        "text": "par",
    }
    updates = view.apply(snapshot)
    assert updates[-1] == TurnEnded("interrupted")
    assert view.text == "par"


def test_abort_and_error_end_the_turn_with_their_status() -> None:
    cancelled = TurnView(TURN)
    for frame in [
        chunk(0, start()),
        chunk(1, delta("x")),
        chunk(2, {"type": "abort", "reason": "cancelled"}),
    ]:
        cancelled.apply(frame)
    assert cancelled.ended == TurnEnded("cancelled")
    interrupted = TurnView(TURN)
    for frame in [chunk(0, start()), chunk(1, {"type": "abort", "reason": "interrupted"})]:
        interrupted.apply(frame)
    assert interrupted.ended == TurnEnded("interrupted")
    failed = TurnView(TURN)
    for frame in [chunk(0, start()), chunk(1, {"type": "error", "errorText": "The model is busy."})]:
        failed.apply(frame)
    assert failed.ended == TurnEnded("failed", error_text="The model is busy.")


def test_tool_activity_is_reported() -> None:
    view = TurnView(TURN)
    parts = [
        start(),
        {
            "type": "tool-input-available",
            "toolCallId": "c1",
            "toolName": "current_time",
            "input": {"tz": "UTC"},
        },
        {"type": "data-tool-status", "data": {"toolCallId": "c1", "summary": "Looking up the time in UTC…"}},
        {"type": "tool-output-available", "toolCallId": "c1", "output": "12:00"},
    ]
    updates = [u for seq, part in enumerate(parts) for u in view.apply(chunk(seq, part))]
    assert isinstance(updates[0], ToolStarted) and updates[0].tool_name == "current_time"
    assert isinstance(updates[-1], ToolFinished) and updates[-1].output == "12:00"
    assert view.tools["c1"].summary == "Looking up the time in UTC…" and view.tools["c1"].done


def test_a_failed_tool_is_done_with_its_error_text() -> None:
    view = TurnView(TURN)
    parts = [
        start(),
        {"type": "tool-input-available", "toolCallId": "c1", "toolName": "current_time", "input": {}},
        {"type": "tool-output-error", "toolCallId": "c1", "errorText": "Unknown time zone 'Europe'."},
    ]
    updates = [u for seq, part in enumerate(parts) for u in view.apply(chunk(seq, part))]
    assert updates[-1] == ToolFailed("c1", "Unknown time zone 'Europe'.")
    assert view.tools["c1"].done and view.tools["c1"].error_text == "Unknown time zone 'Europe'."
    assert view.ended is None  # the answer goes on


def test_a_later_attempt_after_an_error_starts_the_turn_over() -> None:
    view = TurnView(TURN)
    failed = [start(), delta("stale "), {"type": "error", "errorText": "The answer will be retried."}]
    for seq, part in enumerate(failed):
        view.apply(chunk(seq, part))
    assert view.ended == TurnEnded("failed", error_text="The answer will be retried.")
    assert view.may_retry

    assert view.apply(chunk(1, delta("late duplicate"))) == []  # the failed attempt stays ended
    updates = [u for frame in answer_frames(["fresh"], attempt=2) for u in view.apply(frame)]

    assert updates[0] == TextReplaced("", "retry")
    assert view.text == "fresh"
    assert view.ended is not None and view.ended.status == "completed"
    assert not view.may_retry


def test_a_settled_error_and_other_endings_are_final() -> None:
    settled = TurnView(TURN)
    for seq, part in enumerate([start(), {"type": "error", "errorText": "The model is busy."}]):
        settled.apply(chunk(seq, part))
    settled.settle()  # the stored turn says failed
    assert settled.apply(chunk(0, start(2), attempt=2)) == []
    for ending in ({"type": "abort"}, FINISH):
        view = TurnView(TURN)
        view.apply(chunk(0, start()))
        view.apply(chunk(1, ending))
        assert not view.may_retry
        assert view.apply(chunk(0, start(2), attempt=2)) == []
    stored_failed = TurnView(TURN)
    stored_failed.apply(
        {"type": "snapshot", "turnId": TURN, "attempt": 1, "seq": 0, "status": "failed", "text": ""}
    )
    assert not stored_failed.may_retry


def test_frames_of_another_turn_are_ignored() -> None:
    view = TurnView(TURN)
    assert view.apply(chunk(0, delta("x"), turn="00000000-0000-0000-0000-000000000000")) == []


@given(st.permutations(list(range(10))), st.lists(st.integers(0, 9), max_size=6))
def test_any_order_with_duplicates_gives_the_same_text(order: list[int], repeats: list[int]) -> None:
    frames = answer_frames(["a", "b", "c", "d"])
    view = TurnView(TURN)
    for index in order + repeats:
        view.apply(frames[index])
    assert view.text == "abcd"
    assert view.ended is not None and view.ended.status == "completed"
