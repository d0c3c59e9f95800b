"""Test events as AWS sends them: built from the real samples in tests/fixtures/aws_events/ and
checked against Powertools' parser models, so no test hands a handler an event AWS could not send.

Only what a test cares about is passed in (connection, route, body, identity, SQS body); the rest
is the sample's, with fresh request ids. Every WebSocket and SQS event is validated before it is
returned; the $connect authorizer's input has no Powertools model and is checked in
tests/edge_websocket/test_event_shapes.py against the same sample.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
    SqsModel,
)
from pydantic import BaseModel

from courier_shared.db.store import Owner

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "aws_events"
DOMAIN_NAME = "abc123.execute-api.us-east-1.amazonaws.com"
STAGE = "prod"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:turns.fifo"
WEBSOCKET_MODELS: dict[str, type[BaseModel]] = {
    "CONNECT": APIGatewayWebSocketConnectEventModel,
    "MESSAGE": APIGatewayWebSocketMessageEventModel,
    "DISCONNECT": APIGatewayWebSocketDisconnectEventModel,
}


@cache
def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def sample(name: str) -> dict[str, Any]:
    """A fresh copy of tests/fixtures/aws_events/<name>.json."""
    return copy.deepcopy(_load(name))


def aws_id() -> str:
    """An id shaped like API Gateway's (connection, request and message ids): 15 characters and '='."""
    return base64.b64encode(uuid.uuid4().bytes[:11]).decode()[:15] + "="


def authorizer_context(owner: Owner) -> dict[str, Any]:
    """`requestContext.authorizer` as API Gateway passes on Courier's authorizer's answer."""
    return {"principalId": owner.user_id, "userId": owner.user_id, "tenantId": owner.tenant_id}


def validate_websocket_event(event: Mapping[str, Any]) -> None:
    """Raises pydantic's ValidationError unless Powertools' model of its eventType accepts it."""
    WEBSOCKET_MODELS[event["requestContext"]["eventType"]].model_validate(event)


def _request_context(
    name: str, connection_id: str, authorizer: Mapping[str, Any] | None, domain_name: str, stage: str
) -> dict[str, Any]:
    context: dict[str, Any] = sample(name)["requestContext"]
    context.pop("authorizer", None)
    request_id = aws_id()
    context.update(
        connectionId=connection_id,
        requestId=request_id,
        extendedRequestId=request_id,
        domainName=domain_name,
        stage=stage,
        apiId=domain_name.split(".", 1)[0],
    )
    if authorizer is not None:
        context["authorizer"] = dict(authorizer)
    return context


def websocket_connect(
    connection_id: str,
    *,
    authorizer: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None = None,
    domain_name: str = DOMAIN_NAME,
    stage: str = STAGE,
) -> dict[str, Any]:
    """The $connect integration event (after the authorizer allowed it, when `authorizer` is given)."""
    event = sample("apigw_websocket_connect")
    event.pop("queryStringParameters", None)
    event.pop("multiValueQueryStringParameters", None)
    all_headers = {"Host": domain_name, **(headers or {})}
    event["headers"] = all_headers
    event["multiValueHeaders"] = {name: [value] for name, value in all_headers.items()}
    event["requestContext"] = _request_context(
        "apigw_websocket_connect", connection_id, authorizer, domain_name, stage
    )
    validate_websocket_event(event)
    return event


def websocket_message(
    connection_id: str,
    body: str,
    *,
    route_key: str,
    authorizer: Mapping[str, Any] | None,
    domain_name: str = DOMAIN_NAME,
    stage: str = STAGE,
) -> dict[str, Any]:
    """A client frame routed to `route_key` (a protocol action, or $default)."""
    event = sample("apigw_websocket_message")
    context = _request_context("apigw_websocket_message", connection_id, authorizer, domain_name, stage)
    context.update(routeKey=route_key, messageId=aws_id())
    event.update(requestContext=context, body=body)
    validate_websocket_event(event)
    return event


def websocket_disconnect(
    connection_id: str,
    *,
    authorizer: Mapping[str, Any] | None,
    status_code: int = 1001,
    reason: str = "",
    domain_name: str = DOMAIN_NAME,
    stage: str = STAGE,
) -> dict[str, Any]:
    event = sample("apigw_websocket_disconnect")
    event["headers"] = {"Host": domain_name}
    event["multiValueHeaders"] = {"Host": [domain_name]}
    context = _request_context("apigw_websocket_disconnect", connection_id, authorizer, domain_name, stage)
    context.update(disconnectStatusCode=status_code, disconnectReason=reason)
    event["requestContext"] = context
    validate_websocket_event(event)
    return event


def websocket_authorizer(
    connection_id: str,
    *,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    domain_name: str = DOMAIN_NAME,
    stage: str = STAGE,
) -> dict[str, Any]:
    """The $connect REQUEST authorizer's input (no Powertools model: see the module's docstring)."""
    event = sample("apigw_websocket_authorizer")
    api_id = domain_name.split(".", 1)[0]
    event["methodArn"] = f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/{stage}/$connect"
    all_headers = {"Host": domain_name, **(headers or {})}
    event["headers"] = all_headers
    event["multiValueHeaders"] = {name: [value] for name, value in all_headers.items()}
    event["queryStringParameters"] = dict(query) if query else None
    event["multiValueQueryStringParameters"] = (
        {name: [value] for name, value in query.items()} if query else None
    )
    context = _request_context("apigw_websocket_authorizer", connection_id, None, domain_name, stage)
    context["identity"] = {"sourceIp": "192.0.2.10"}
    event["requestContext"] = context
    return event


def sqs_record(
    body: str,
    *,
    group_id: str | None = None,
    message_id: str | None = None,
    receive_count: int = 1,
    queue_arn: str = QUEUE_ARN,
) -> dict[str, Any]:
    """One record of an SQS event: FIFO (the sample's FIFO record) when `group_id` is given."""
    standard, fifo = sample("sqs_receive_message")["Records"]
    record: dict[str, Any] = fifo if group_id is not None else standard
    record.update(
        messageId=message_id or str(uuid.uuid4()),
        receiptHandle=f"receipt-{uuid.uuid4().hex}",
        body=body,
        md5OfBody=hashlib.md5(body.encode()).hexdigest(),
        messageAttributes={},
        eventSourceARN=queue_arn,
        awsRegion=queue_arn.split(":")[3],
    )
    record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    if group_id is not None:
        record["attributes"].update(MessageGroupId=group_id, MessageDeduplicationId=record["messageId"])
    return record


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    event = {"Records": list(records)}
    SqsModel.model_validate(event)
    return event
