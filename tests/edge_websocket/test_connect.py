"""$connect: the authorizer decides first, then the connect handler; refusals are real HTTP statuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from courier_shared.routes import Function

from .conftest import FakeGateway, Harness, header


def refused_status(harness: Harness, **connect_options: Any) -> int:
    with pytest.raises(InvalidStatus) as refused:
        harness.connect(**connect_options)
    return refused.value.response.status_code


def test_no_token_is_refused_with_401_and_nothing_behind_the_authorizer_runs(harness: Harness) -> None:
    assert refused_status(harness, token=None) == 401
    assert refused_status(harness, token="forged") == 401

    assert len(harness.authorizer.events) == 2
    assert harness.gateway.events == []
    assert harness.api.connection_ids() == []


def test_an_explicit_deny_policy_is_refused_with_403(harness: Harness) -> None:
    assert refused_status(harness, token="deny") == 403
    assert harness.gateway.events == []


def test_an_allow_for_another_resource_is_no_allow(start_gateway: Callable[..., Harness]) -> None:
    def authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
        other_stage = event["methodArn"].replace("/local/", "/prod/")
        statement = {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": other_stage}
        return {"principalId": "u", "policyDocument": {"Version": "2012-10-17", "Statement": [statement]}}

    harness = start_gateway(authorizer=authorizer)
    assert refused_status(harness) == 403


ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Action": "*", "Effect": "Allow", "Resource": "*"}]}


@pytest.mark.parametrize(
    "bad_result",
    [
        pytest.param(ValueError("bug in the authorizer"), id="raises-something-else"),
        pytest.param(
            {"principalId": "u", "policyDocument": ALLOW_ALL, "context": {"nested": {"no": "objects"}}},
            id="object-in-context",
        ),
        pytest.param({"policyDocument": ALLOW_ALL}, id="no-principal"),
        pytest.param({"principalId": "u", "policyDocument": "Allow"}, id="policy-not-an-object"),
    ],
)
def test_a_broken_authorizer_is_a_500(start_gateway: Callable[..., Harness], bad_result: object) -> None:
    def authorizer(event: dict[str, Any], context: Any) -> object:
        if isinstance(bad_result, Exception):
            raise bad_result
        return bad_result

    harness = start_gateway(authorizer=authorizer)
    assert refused_status(harness) == 500
    assert harness.gateway.events == []


def test_the_connect_handler_refuses_with_a_non_2xx_status(harness: Harness) -> None:
    assert refused_status(harness, query="refuse=1") == 403

    assert len(harness.gateway.events_for("$connect")) == 1
    assert harness.api.connection_ids() == []
    assert harness.gateway.events_for("$disconnect") == []  # a refused connection never existed


def test_a_connect_handler_without_status_code_refuses(start_gateway: Callable[..., Harness]) -> None:
    gateway = FakeGateway()

    def connect_returns_nothing(event: dict[str, Any], context: Any) -> dict[str, Any] | None:
        return None if event["requestContext"]["routeKey"] == "$connect" else gateway(event, context)

    harness = start_gateway(handlers={Function.GATEWAY: connect_returns_nothing})
    assert refused_status(harness) == 502


def test_the_server_answers_only_courier_v1_of_the_offered_subprotocols(harness: Harness) -> None:
    with harness.connect("good") as ws:
        assert ws.subprotocol == "courier.v1"
        assert ws.response is not None
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "courier.v1"
    offered = header(harness.gateway.events_for("$connect")[0], "Sec-WebSocket-Protocol")
    assert offered == "courier.v1, bearer.good"


def test_the_token_may_come_in_the_query_string(harness: Harness) -> None:
    with harness.connect(token=None, query="token=good") as ws:
        assert ws.subprotocol is None
        ws.send(json.dumps({"action": "ping"}))
        assert json.loads(ws.recv(timeout=5))["route"] == "ping"
    assert harness.authorizer.events[0]["queryStringParameters"] == {"token": "good"}


def test_the_stage_path_serves_the_same_api(harness: Harness) -> None:
    with harness.connect(path="local") as ws:
        ws.send(json.dumps({"action": "ping"}))
        assert json.loads(ws.recv(timeout=5))["route"] == "ping"


def test_without_authorizer_or_handlers_the_connection_is_accepted_and_messages_forbidden(
    start_gateway: Callable[..., Harness],
) -> None:
    harness = start_gateway(authorizer=None, handlers={})
    with harness.connect(token=None) as ws:
        ws.send(json.dumps({"action": "ping"}))
        answer = json.loads(ws.recv(timeout=5))
    assert answer["message"] == "Forbidden"
    assert set(answer) == {"message", "connectionId", "requestId"}
