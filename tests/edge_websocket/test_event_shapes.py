"""The events the local gateway builds have the shape of AWS's published sample events.

Fixtures in tests/fixtures/aws_events/:
- apigw_websocket_message.json, apigw_websocket_disconnect.json: events captured from API Gateway,
  published in aws/aws-lambda-go `events/testdata/apigw-websocket-request-{send-message,disconnect}.json`.
- apigw_websocket_authorizer.json: the REQUEST authorizer input example of the API Gateway developer
  guide ("Control access to WebSocket APIs with AWS Lambda REQUEST authorizers").
- apigw_websocket_connect.json: the $connect integration event: the same guide's headers, query and
  requestContext, with `requestContext.authorizer` (principalId + context keys) as in aws-lambda-go's
  `apigw-websocket-request.json`.

"Same shape" = the same keys with the same JSON types, recursively; free-form maps (headers, query,
authorizer context) only need the right value types.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aws_events import validate_websocket_event
from support import wait_until

from .conftest import Harness

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "aws_events"
FREE_FORM = {"headers", "multiValueHeaders", "queryStringParameters", "multiValueQueryStringParameters"}
FREE_FORM |= {"stageVariables", "authorizer"}
AWS_ID = re.compile(r"^[A-Za-z0-9_+/-]{15}=$")
CLF_TIME = re.compile(r"^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000$")


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"apigw_websocket_{name}.json").read_text())
    return loaded


def json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", dict: "object", list: "array", type(None): "null"}[type(value)]


def shape_differences(actual: Any, expected: Any, path: str, allowed_extra: set[str]) -> list[str]:
    if json_type(actual) != json_type(expected):
        return [f"{path}: {json_type(actual)} where AWS has {json_type(expected)}"]
    if not isinstance(expected, dict):
        return []
    if path.rsplit(".", 1)[-1] in FREE_FORM:
        scalar = {"string", "number", "boolean", "array"}
        return [
            f"{path}.{key}: {json_type(value)}"
            for key, value in actual.items()
            if json_type(value) not in scalar
        ]
    problems = [f"{path}.{key}: missing" for key in expected if key not in actual]
    problems += [f"{path}.{key}: not in AWS's event" for key in actual if key not in expected]
    problems = [p for p in problems if p.split(":")[0] not in allowed_extra]
    for key in expected.keys() & actual.keys():
        problems += shape_differences(actual[key], expected[key], f"{path}.{key}", allowed_extra)
    return problems


def assert_shaped_like(actual: dict[str, Any], name: str, allowed_extra: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    assert shape_differences(actual, sample(name), "event", allowed_extra) == []


def events_of_one_connection(harness: Harness) -> dict[str, dict[str, Any]]:
    with harness.connect(query="lang=en&lang=de") as ws:
        ws.send('{"action": "sendMessage", "text": "hi"}')
        ws.recv(timeout=5)
    wait_until(lambda: len(harness.gateway.events_for("$disconnect")) == 1)
    return {
        "authorizer": harness.authorizer.events[0],
        "connect": harness.gateway.events_for("$connect")[0],
        "message": harness.gateway.events_for("sendMessage")[0],
        "disconnect": harness.gateway.events_for("$disconnect")[0],
    }


def test_events_have_the_shape_of_the_aws_samples(harness: Harness) -> None:
    events = events_of_one_connection(harness)
    # The sample requests carried no User-Agent; ours does, and AWS then reports it.
    assert_shaped_like(events["authorizer"], "authorizer", {"event.requestContext.identity.userAgent"})
    assert_shaped_like(events["connect"], "connect")
    # Emulator choice (notes §A4): the $connect authorizer context is repeated on later events.
    assert_shaped_like(events["message"], "message", {"event.requestContext.authorizer"})
    assert_shaped_like(events["disconnect"], "disconnect", {"event.requestContext.authorizer"})


def test_event_values_are_consistent_across_one_connection(harness: Harness) -> None:
    events = events_of_one_connection(harness)
    contexts = [events[name]["requestContext"] for name in ("authorizer", "connect", "message", "disconnect")]
    assert len({c["connectionId"] for c in contexts}) == 1
    assert len({c["connectedAt"] for c in contexts}) == 1
    assert all(AWS_ID.match(c["connectionId"]) and AWS_ID.match(c["requestId"]) for c in contexts)
    assert all(CLF_TIME.match(c["requestTime"]) for c in contexts)
    assert all(c["requestTimeEpoch"] >= c["connectedAt"] for c in contexts)
    assert all((c["stage"], c["apiId"], c["messageDirection"]) == ("local", "local", "IN") for c in contexts)
    assert [c["eventType"] for c in contexts] == ["CONNECT", "CONNECT", "MESSAGE", "DISCONNECT"]
    assert AWS_ID.match(events["message"]["requestContext"]["messageId"])
    assert events["message"]["body"] == '{"action": "sendMessage", "text": "hi"}'
    assert (
        events["authorizer"]["methodArn"] == "arn:aws:execute-api:us-east-1:123456789012:local/local/$connect"
    )
    for name in ("authorizer", "connect"):
        assert events[name]["queryStringParameters"] == {"lang": "de"}
        assert events[name]["multiValueQueryStringParameters"] == {"lang": ["en", "de"]}
    assert events["connect"]["requestContext"]["authorizer"]["principalId"] == "user-1"
    assert events["disconnect"]["requestContext"]["disconnectStatusCode"] == 1000


def test_without_a_query_the_connect_event_has_no_query_keys(harness: Harness) -> None:
    with harness.connect():
        pass
    event = harness.gateway.events_for("$connect")[0]
    assert "queryStringParameters" not in event
    assert "multiValueQueryStringParameters" not in event
    assert harness.authorizer.events[0]["queryStringParameters"] is None


def test_every_event_the_local_api_gateway_sends_validates_against_powertools_models(
    harness: Harness,
) -> None:
    """The same models the unit tier's events are checked against (tests/aws_events.py)."""
    with harness.connect(query="lang=en") as ws:
        for frame in ('{"action": "ping"}', '{"action": "sendMessage", "text": "hi"}', "not json"):
            ws.send(frame)
            ws.recv(timeout=5)
    with harness.connect(token=None, subprotocols=["courier.v1", "bearer.good"]):
        pass
    wait_until(lambda: len(harness.gateway.events_for("$disconnect")) == 2)

    events = list(harness.gateway.events)
    assert {e["requestContext"]["eventType"] for e in events} == {"CONNECT", "MESSAGE", "DISCONNECT"}
    assert {e["requestContext"]["routeKey"] for e in events} >= {
        "$connect",
        "ping",
        "sendMessage",
        "$default",
    }
    for event in events:
        validate_websocket_event(event)  # raises on the first field Powertools would refuse
