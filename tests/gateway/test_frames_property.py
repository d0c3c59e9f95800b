"""Thousands of random and mutated frames: each gets one well-formed answer, nothing raises, and a
refused frame writes nothing."""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from courier_shared.db.store import encode_cursor
from courier_shared.protocol import ErrorCode, parse_server_frame

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
cursors = st.one_of(
    st.text(max_size=30),
    st.builds(encode_cursor, st.datetimes(timezones=st.timezones()), st.uuids()),
)
limits = st.integers(min_value=-2, max_value=102)
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
    mutation = draw(st.sampled_from(["none", "none", "none", "none", "drop", "add", "replace", "action"]))
    if mutation == "drop":
        frame.pop(draw(st.sampled_from(sorted(frame))))
    elif mutation == "add":
        frame[draw(st.text(max_size=15))] = draw(json_values)
    elif mutation == "replace":
        frame[draw(st.sampled_from(sorted(frame)))] = draw(json_values)
    elif mutation == "action":
        frame["action"] = draw(st.one_of(st.text(max_size=20), json_values))
    body = json.dumps(frame, ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 5)) == 0:  # now and then, cut it short
        body = body[: draw(st.integers(0, len(body)))]
    return body


bodies = st.one_of(
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
    seen: Counter[str] = Counter()

    def check_one_frame(body: str) -> None:
        for placeholder, real in zip(PLACEHOLDER_IDS, real_ids, strict=True):
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
            assert answer.message
            assert row_counts(harness.store) == before, f"refused frame wrote rows: {body!r}"
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
