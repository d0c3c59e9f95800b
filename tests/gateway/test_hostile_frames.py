"""Frames built to knock the gateway over: deep nesting, coerced types, snake_case, huge names.

Each gets exactly one `bad_request` (or `too_large`) answer, nothing is written, nothing raises.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from courier_shared.protocol import MAX_NAME_CHARS_IN_ERRORS

from .conftest import GatewayHarness, make_owner

CONVERSATION = "6f1c2b0e-2a8e-4c57-9d51-2f0b8f3c9a10"


@pytest.mark.parametrize(
    ("route_key", "body"),
    [
        pytest.param("$default", "[" * 10_000 + "]" * 10_000, id="bare-array"),
        pytest.param("ping", '{"action": "ping", "x": ' + "[" * 10_000 + "]" * 10_000 + "}", id="in-a-field"),
        pytest.param(
            "ping", '{"action": "ping", "x": ' + '{"a":' * 10_000 + "1" + "}" * 10_001, id="objects"
        ),
        pytest.param("$default", "[" * 10_000, id="unclosed"),
    ],
)
def test_ten_thousand_levels_of_nesting_are_a_bad_request(
    harness: GatewayHarness, counts: Any, route_key: str, body: str
) -> None:
    before = counts()

    response = harness.client(make_owner()).raw(body, route_key=route_key)  # as API Gateway routes it

    assert response["statusCode"] == 200
    answer = json.loads(response["body"])

    assert (answer["type"], answer["code"]) == ("error", "bad_request")
    assert "levels deep" in answer["message"]
    assert counts() == before


def test_brackets_inside_strings_do_not_count_as_nesting(harness: GatewayHarness) -> None:
    answer = harness.client(make_owner()).send_message("[" * 50 + '"{' * 20)
    assert answer["type"] == "ack"


@pytest.mark.parametrize(
    ("field", "value"),
    [("limit", "20"), ("limit", True), ("limit", 20.0), ("limit", "twenty")],
)
def test_wrong_types_are_refused_not_coerced(
    harness: GatewayHarness, counts: Any, field: str, value: Any
) -> None:
    before = counts()
    frame = {"action": "getHistory", "conversationId": CONVERSATION, field: value}

    answer = harness.client(make_owner()).send(frame)

    assert (answer["type"], answer["code"], answer["action"]) == ("error", "bad_request", "getHistory")
    assert f"'{field}'" in answer["message"]
    assert counts() == before


def test_after_seq_as_a_string_is_refused(harness: GatewayHarness) -> None:
    client = harness.client(make_owner())
    turn_id = client.send_message("hi")["turnId"]
    answer = client.send({"action": "resume", "turnId": turn_id, "afterSeq": "3"})
    assert (answer["code"], answer["action"]) == ("bad_request", "resume")
    assert "'afterSeq'" in answer["message"]


def test_snake_case_field_names_are_unknown_fields_and_store_nothing(
    harness: GatewayHarness, counts: Any
) -> None:
    before = counts()
    frame = {"action": "sendMessage", "client_message_id": str(uuid.uuid4()), "text": "hi"}

    answer = harness.client(make_owner()).send(frame)

    assert (answer["type"], answer["code"], answer["action"]) == ("error", "bad_request", "sendMessage")
    assert answer["message"] == (
        "Unknown field 'client_message_id'. Field names are camelCase: 'clientMessageId'."
    )
    assert counts() == before and harness.queue.sent == []


def test_a_huge_unknown_field_name_is_not_echoed_back(harness: GatewayHarness) -> None:
    name = "n" * 30_000

    answer = harness.client(make_owner()).send(json.dumps({"action": "ping", name: 1}))

    assert (answer["code"], answer["action"]) == ("bad_request", "ping")
    assert "n" * MAX_NAME_CHARS_IN_ERRORS + "…" in answer["message"]
    assert len(answer["message"]) < 200


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"requestContext": None},
        {"requestContext": "MESSAGE"},
        {"requestContext": {"routeKey": "ping", "authorizer": ["x"]}, "body": 5},
        {"requestContext": {"routeKey": "ping", "domainName": 7, "stage": {}}, "body": '{"action":"ping"}'},
        {"requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "authorizer": "x"}},
    ],
)
def test_the_handler_never_raises_on_a_malformed_event(harness: GatewayHarness, event: Any) -> None:
    response = harness.gateway.handle(event, None)
    assert isinstance(response["statusCode"], int)


def test_a_connect_offering_subprotocols_without_courier_v1_is_refused_with_a_reason(
    harness: GatewayHarness, counts: Any
) -> None:
    before = counts()

    response = harness.client(make_owner()).connect(protocol="bearer.x.y.z")

    assert response["statusCode"] == 400
    assert "courier.v1" in response["body"]
    assert counts() == before


def test_a_connect_offering_no_subprotocol_is_accepted(harness: GatewayHarness) -> None:
    assert harness.client(make_owner()).connect(protocol=None)["statusCode"] == 200  # ?token= clients
