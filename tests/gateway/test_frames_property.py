"""Thousands of random and mutated frames: each gets one well-formed answer, nothing raises, and a
refused frame writes nothing. Hostile frames among them: deep nesting, coercible types ("20", true),
snake_case and huge field names, forged and borrowed cursors. And the limits as properties: any
message within maxMessageChars fits one client frame; the frame rate limits never admit more than
their buckets hold, and what they refuse writes nothing."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from courier_local.chat_client import encode_frame as client_encode_frame
from courier_shared.db.store import encode_cursor
from courier_shared.protocol import (
    CLIENT_FRAME_BUDGET_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS_IN_ERRORS,
    ErrorCode,
    encode_client_frame,
    parse_client_frame,
    parse_server_frame,
)

from .conftest import make_owner, row_counts

# Thousands in all, ~20 s: SQLite is fast, Postgres gets fewer. COURIER_PROPERTY_EXAMPLES overrides both.
EXAMPLES = {"sqlite": 1500, "postgres": 500}
EXAMPLES_OVERRIDE = os.environ.get("COURIER_PROPERTY_EXAMPLES")
EXPECTED_ANSWER = {
    "sendMessage": "ack",
    "cancel": "ack",
    "resume": "snapshot",
    "getHistory": "history",
    "listConversations": "conversations",
    "ping": "pong",
}

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=6,
)
# Text with everything JSON can carry, lone surrogates and NUL included.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)


# Stand-ins for real ids, swapped for the harness's own after drawing (strategies are built once).
PLACEHOLDER_IDS = [f"00000000-0000-4000-8000-{index:012d}" for index in range(5)]
ids = st.sampled_from(PLACEHOLDER_IDS) | st.sampled_from(PLACEHOLDER_IDS[:2]) | st.uuids().map(str)
# Made-up cursors, unsigned store positions (forged), and REAL_CURSORS, swapped for cursors the
# harness was really issued (valid for one action and conversation, borrowed for the others).
REAL_CURSORS = ["real-cursor-history", "real-cursor-conversations"]
cursors = st.one_of(
    st.text(max_size=30),
    st.builds(encode_cursor, st.datetimes(timezones=st.timezones()), st.uuids()),
    st.sampled_from(REAL_CURSORS),
)
limits = st.one_of(
    st.integers(min_value=-2, max_value=102),
    st.sampled_from(["20", "1", True, False, 20.0, None, [20]]),  # never coerced to an int
)
frames = st.one_of(
    st.fixed_dictionaries(
        {"action": st.just("sendMessage"), "clientMessageId": st.uuids().map(str), "text": any_text},
        optional={"conversationId": ids},
    ),
    st.fixed_dictionaries({"action": st.just("cancel"), "turnId": ids}),
    st.fixed_dictionaries(
        {"action": st.just("resume"), "turnId": ids}, optional={"afterSeq": st.integers(-3, 10**20)}
    ),
    st.fixed_dictionaries(
        {"action": st.just("getHistory"), "conversationId": ids},
        optional={"before": cursors, "limit": limits},
    ),
    st.fixed_dictionaries(
        {"action": st.just("listConversations")}, optional={"before": cursors, "limit": limits}
    ),
    st.just({"action": "ping"}),
)


@st.composite
def mutated_json(draw: st.DrawFn) -> str:
    frame = dict(draw(frames))
    mutation = draw(
        st.sampled_from(
            [
                "none",
                "none",
                "none",
                "none",
                "drop",
                "add",
                "replace",
                "action",
                "snake_case",
                "huge_name",
                "nest",
            ]
        )
    )
    if mutation == "drop":
        frame.pop(draw(st.sampled_from(sorted(frame))))
    elif mutation == "add":
        frame[draw(st.text(max_size=15))] = draw(json_values)
    elif mutation == "replace":
        frame[draw(st.sampled_from(sorted(frame)))] = draw(json_values)
    elif mutation == "action":
        frame["action"] = draw(st.one_of(st.text(max_size=20), json_values))
    elif mutation == "snake_case":
        frame = {
            re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key): value for key, value in frame.items()
        }
    elif mutation == "huge_name":
        frame["n" * draw(st.integers(41, 30_000))] = 1
    elif mutation == "nest":
        depth = draw(st.integers(9, 10_000))
        frame[draw(st.sampled_from(sorted(frame)))] = json.loads("[" * 9 + "]" * 9) if depth < 10 else None
        body = json.dumps(frame)
        return body[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
    body = json.dumps(frame, ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 5)) == 0:  # now and then, cut it short
        body = body[: draw(st.integers(0, len(body)))]
    return body


# Frames the protocol accepts, about alice's own conversation and turn (the first two placeholders)
# with the cursors she was issued: the mutations above make most frames refusals, and without these
# a run of a few hundred examples could miss an answer (a valid getHistory was about 1 in 600).
accepted_frames = st.one_of(
    st.fixed_dictionaries(
        {"action": st.just("getHistory"), "conversationId": st.just(PLACEHOLDER_IDS[0])},
        optional={"before": st.just(REAL_CURSORS[0]), "limit": st.integers(1, 100)},
    ),
    st.fixed_dictionaries(
        {"action": st.just("listConversations")},
        optional={"before": st.just(REAL_CURSORS[1]), "limit": st.integers(1, 100)},
    ),
    st.fixed_dictionaries(
        {"action": st.just("resume"), "turnId": st.just(PLACEHOLDER_IDS[1])},
        optional={"afterSeq": st.integers(-1, 10)},
    ),
    st.fixed_dictionaries({"action": st.just("cancel"), "turnId": st.just(PLACEHOLDER_IDS[1])}),
    st.fixed_dictionaries(
        {"action": st.just("sendMessage"), "clientMessageId": st.uuids().map(str), "text": st.just("hi")},
        optional={"conversationId": st.just(PLACEHOLDER_IDS[0])},
    ),
    st.just({"action": "ping"}),
)

bodies = st.one_of(
    accepted_frames.map(json.dumps),
    mutated_json(),
    mutated_json(),
    mutated_json(),
    json_values.map(json.dumps),
    any_text,
    st.sampled_from(
        ['{"action":"ping"', "{'action': 'ping'}", '{"action":"ping"}{}', "\ufeff{}", "NaN", "1e999"]
    ),
)


def test_every_frame_gets_one_well_formed_answer_and_refused_frames_write_nothing(
    make_harness: Any, database_url: str
) -> None:
    harness = make_harness(SEND_RATE_PER_MINUTE=10**6, MAX_OPEN_TURNS=10**6, MAX_MESSAGE_CHARS=30)
    alice, bob = make_owner(), make_owner()
    a_ack = harness.client(alice).send_message("alice's")
    b_ack = harness.client(bob).send_message("bob's")
    real_ids = [a_ack["conversationId"], a_ack["turnId"], b_ack["conversationId"], b_ack["turnId"]]
    real_ids.append(str(uuid.UUID(int=0)))
    alice_connection = harness.client(alice)
    for _ in range(2):  # pages of one: cursors to borrow
        alice_connection.send_message("more", conversationId=a_ack["conversationId"])
        alice_connection.send_message("another conversation")
    history = alice_connection.send(
        {"action": "getHistory", "conversationId": a_ack["conversationId"], "limit": 1}
    )
    listing = alice_connection.send({"action": "listConversations", "limit": 1})
    real_cursors = [history["nextCursor"], listing["nextCursor"]]
    assert all(real_cursors)
    seen: Counter[str] = Counter()

    def check_one_frame(body: str) -> None:
        for placeholder, real in zip(PLACEHOLDER_IDS, real_ids, strict=True):
            body = body.replace(placeholder, real)
        for placeholder, real in zip(REAL_CURSORS, real_cursors, strict=True):
            body = body.replace(placeholder, real)
        before = row_counts(harness.store)
        queued_before = len(harness.queue.sent)

        response = alice_connection.raw(body)

        assert response["statusCode"] == 200
        answer = parse_server_frame(response["body"])  # well-formed, by the protocol's own models
        kind = answer.type if answer.type != "error" else f"error {answer.code}"
        event(kind)
        seen[kind] += 1
        if answer.type == "error":
            assert answer.code is not ErrorCode.INTERNAL, answer.message
            assert answer.message and len(answer.message) < 400  # nothing long is echoed back
            assert "n" * (MAX_NAME_CHARS_IN_ERRORS + 1) not in answer.message
            assert row_counts(harness.store) == before, f"refused frame wrote rows: {body[:200]!r}"
            assert len(harness.queue.sent) == queued_before
        else:
            assert answer.type == EXPECTED_ANSWER[json.loads(body)["action"]]

    engine = "sqlite" if database_url.startswith("sqlite") else "postgres"
    run = settings(
        max_examples=int(EXAMPLES_OVERRIDE or EXAMPLES[engine]),
        deadline=None,
        database=None,  # the harness's rows differ on every run: replaying saved examples means nothing
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(given(body=bodies)(check_one_frame))
    run()

    # The generator reaches every answer, and the refusals that matter: it is not all noise.
    assert set(EXPECTED_ANSWER.values()) | {"error bad_request", "error not_found"} <= set(seen), seen


# Every character class a message may hold, each at its most expensive on the wire: ASCII (1 byte),
# quotes and backslashes (2, escaped), control characters (6, as \u00XX), 2-, 3- and 4-byte UTF-8.
message_chars = st.one_of(
    st.characters(codec="utf-8", exclude_characters="\x00"),
    st.sampled_from(['"', "\\", "\x01", "\x1f", "\n", "ж", "€", "\u2028", "😀", "\U0010fffd"]),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(char=message_chars, other=st.text(message_chars, max_size=50), conversation=st.booleans())
def test_any_message_within_max_message_chars_fits_one_client_frame(
    char: str, other: str, conversation: bool
) -> None:
    text = (other + char * MAX_MESSAGE_CHARS)[:MAX_MESSAGE_CHARS]
    frame: dict[str, Any] = {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": text}
    if conversation:
        frame["conversationId"] = str(uuid.uuid4())

    for encoded in (encode_client_frame(frame), client_encode_frame(frame)):
        assert len(encoded.encode("utf-8")) <= CLIENT_FRAME_BUDGET_BYTES
        assert parse_client_frame(encoded).text == text  # type: ignore[union-attr]


RATE = {"FRAME_RATE_PER_SECOND": 2, "FRAME_BURST": 4, "USER_FRAME_RATE_PER_SECOND": 3, "USER_FRAME_BURST": 6}
steps = st.lists(
    st.tuples(
        st.integers(0, 2), st.sampled_from([0.0, 0.0, 0.0, 0.1, 0.4, 1.0]), st.sampled_from(["ping", "list"])
    ),
    min_size=1,
    max_size=60,
)


def test_the_frame_rate_limits_never_admit_more_than_their_buckets_hold(make_harness: Any) -> None:
    harness = make_harness(**RATE)

    @settings(max_examples=int(EXAMPLES_OVERRIDE or 60), deadline=None, database=None)
    @given(schedule=steps)
    def run(schedule: list[tuple[int, float, str]]) -> None:
        owner = make_owner()
        connections = [harness.client(owner) for _ in range(3)]
        admitted: list[tuple[int, float]] = []  # (connection, time)
        started = harness.clock.now.timestamp()
        for index, wait_s, kind in schedule:
            harness.clock.advance(wait_s)
            frame = {"action": "ping"} if kind == "ping" else {"action": "listConversations"}
            before = row_counts(harness.store)
            answer = connections[index].send(frame)
            now = harness.clock.now.timestamp()
            if answer["type"] == "error":
                assert (answer["code"], answer["retryable"]) == ("rate_limited", True)
                assert row_counts(harness.store) == before
            else:
                admitted.append((index, now))
            # No window ever holds more than a full bucket plus what it refilled in that window.
            for start in [started, *(at for _, at in admitted)]:
                window = [c for c, at in admitted if at >= start]
                elapsed = now - start + 0.1  # the fake clock moves a little on every reading
                assert len(window) <= RATE["USER_FRAME_BURST"] + elapsed * RATE["USER_FRAME_RATE_PER_SECOND"]
                for connection in range(3):
                    own = window.count(connection)
                    assert own <= RATE["FRAME_BURST"] + elapsed * RATE["FRAME_RATE_PER_SECOND"]
        harness.clock.advance(60)  # the next example starts with full buckets

    run()
