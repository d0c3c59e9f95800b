"""sendMessage against SQS FIFO (moto over HTTP, boto3 unchanged): one turn, one queued message,
whatever happens between the database write and the enqueue."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from courier_gateway.composition import build_gateway
from courier_gateway.queue import SqsTurnQueue
from courier_local.edge.sqs import LocalMoto, create_turn_queues
from courier_shared.db.models import Turn
from courier_shared.db.store import ChatStore
from courier_shared.queue import TurnRequest

from .conftest import Client, gateway_settings, make_owner


@pytest.fixture
def queue_url(moto: LocalMoto) -> str:
    sqs = moto.client("sqs")
    return create_turn_queues(
        sqs, f"gw-{uuid.uuid4().hex[:8]}", visibility_timeout_s=30, max_receive_count=3
    ).queue_url


@dataclass
class CrashingQueue:
    """The SQS adapter, with a crash injected once: before the send reaches SQS, or just after it."""

    real: SqsTurnQueue
    crash: str  # "before-send" | "after-send"
    crashed: bool = False

    def send(self, request: TurnRequest) -> None:
        if not self.crashed and self.crash == "before-send":
            self.crashed = True
            raise ConnectionError("network unreachable")
        self.real.send(request)
        if not self.crashed and self.crash == "after-send":
            self.crashed = True
            raise TimeoutError("read timeout: the message went out but the answer was lost")


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        messages += batch


@pytest.mark.parametrize("crash", ["before-send", "after-send"])
def test_a_retry_after_a_crash_around_the_enqueue_gives_one_turn_and_one_message(
    store: ChatStore, moto: LocalMoto, queue_url: str, crash: str
) -> None:
    sqs = moto.client("sqs")
    queue = CrashingQueue(SqsTurnQueue(sqs, queue_url), crash)
    gateway = build_gateway(gateway_settings(TURN_QUEUE_URL=queue_url), store=store, queue=queue)
    owner = make_owner()
    client = Client(gateway, owner)
    frame = {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": "Deliver me once"}

    failed = client.send(frame)
    assert (failed["type"], failed["code"], failed["retryable"]) == ("error", "internal", True)
    acks = [client.send(frame), client.send(frame), Client(gateway, owner).send(frame)]

    assert all(ack["type"] == "ack" for ack in acks) and len({ack["turnId"] for ack in acks}) == 1
    with store.engine.connect() as connection:
        turns = connection.scalar(
            select(func.count())
            .select_from(Turn)
            .where(Turn.tenant_id == owner.tenant_id, Turn.user_id == owner.user_id)
        )
    assert turns == 1
    [message] = drain(sqs, queue_url)
    request = TurnRequest.model_validate_json(message["Body"])
    assert str(request.turn_id) == acks[0]["turnId"]
    assert message["Attributes"]["MessageGroupId"] == acks[0]["conversationId"]
    assert message["Attributes"]["MessageDeduplicationId"] == acks[0]["turnId"]
    assert "Deliver me once" not in json.dumps(message)  # ids only: no user content on the queue
