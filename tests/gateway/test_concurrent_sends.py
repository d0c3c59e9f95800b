"""Many connections of one user sending at the same moment: the limits hold exactly, a resent
clientMessageId gets one turn and the same ack everywhere, and turns are queued in history's order.

Real threads against the real databases (each send is its own request, as Lambda runs them); the queue
is slow on purpose, like SQS, so requests overlap for as long as they would in AWS.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from sqlalchemy import func, select

from courier_gateway.composition import build_gateway
from courier_shared.db.models import Turn, TurnListener, utcnow
from courier_shared.db.store import ChatStore, Owner
from courier_shared.queue import TurnRequest

from .conftest import Client, gateway_settings, make_owner

SENDERS = 10


@dataclass
class SlowQueue:
    """The TurnQueue port with SQS-like latency: concurrent sends overlap while they enqueue."""

    delay_s: float = 0.02
    sent: list[TurnRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, request: TurnRequest) -> None:
        time.sleep(self.delay_s)
        with self.lock:
            self.sent.append(request)


def gateway_for(store: ChatStore, queue: SlowQueue, **settings: Any) -> Any:
    return build_gateway(
        gateway_settings(**settings),
        store=store,
        queue=queue,
        clock=utcnow,  # real time: the fake clock of the other tests is not thread-safe
        logger=Logger(service=f"concurrency-{uuid.uuid4().hex[:6]}"),
    )


def all_at_once(calls: list[Callable[[], dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run the calls on their own threads, released together."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def stored_turns(store: ChatStore, owner: Owner) -> int:
    with store.engine.connect() as connection:
        query = select(func.count()).select_from(Turn).where(Turn.user_id == owner.user_id)
        return connection.scalar(query) or 0


def test_concurrent_sends_never_exceed_the_open_turn_limit(store: ChatStore) -> None:
    owner, queue = make_owner(), SlowQueue()
    gateway = gateway_for(store, queue, MAX_OPEN_TURNS=3, SEND_RATE_PER_MINUTE=1000)
    clients = [Client(gateway, owner) for _ in range(SENDERS)]

    answers = all_at_once([lambda c=c: c.send_message("at once") for c in clients])

    kinds = sorted(a["type"] if a["type"] == "ack" else a["code"] for a in answers)
    assert kinds == ["ack"] * 3 + ["rate_limited"] * (SENDERS - 3)
    assert stored_turns(store, owner) == 3 and len(queue.sent) == 3


def test_concurrent_sends_never_exceed_the_rate_per_minute(store: ChatStore) -> None:
    owner, queue = make_owner(), SlowQueue()
    gateway = gateway_for(store, queue, MAX_OPEN_TURNS=1000, SEND_RATE_PER_MINUTE=4)
    clients = [Client(gateway, owner) for _ in range(SENDERS)]

    answers = all_at_once([lambda c=c: c.send_message("at once") for c in clients])

    assert sum(a["type"] == "ack" for a in answers) == 4
    assert {a["code"] for a in answers if a["type"] == "error"} == {"rate_limited"}
    assert stored_turns(store, owner) == 4


def test_concurrent_resends_of_one_client_message_id_all_get_the_same_ack(store: ChatStore) -> None:
    owner, queue = make_owner(), SlowQueue()
    gateway = gateway_for(store, queue)
    one_connection = Client(gateway, owner)
    other_connections = [Client(gateway, owner) for _ in range(SENDERS // 2)]
    frame = {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": "only once"}
    senders = [one_connection] * (SENDERS // 2) + other_connections

    answers = all_at_once([lambda c=c: c.send(frame) for c in senders])

    assert [a["type"] for a in answers] == ["ack"] * SENDERS, answers
    assert len({(a["turnId"], a["conversationId"]) for a in answers}) == 1
    assert stored_turns(store, owner) == 1 and len(queue.sent) == 1
    with store.engine.connect() as connection:
        listeners = connection.scalars(
            select(TurnListener.connection_id).where(TurnListener.turn_id == uuid.UUID(answers[0]["turnId"]))
        )
        assert set(listeners) == {c.connection_id for c in senders}  # every sender hears the turn


@pytest.mark.parametrize("senders", [12])
def test_turns_of_one_conversation_are_queued_in_the_order_history_shows(
    store: ChatStore, senders: int
) -> None:
    owner, queue = make_owner(), SlowQueue(delay_s=0.005)
    gateway = gateway_for(store, queue, MAX_OPEN_TURNS=1000, SEND_RATE_PER_MINUTE=1000)
    first = Client(gateway, owner).send_message("first")
    conversation_id = first["conversationId"]
    clients = [Client(gateway, owner) for _ in range(senders)]

    answers = all_at_once(
        [
            lambda c=c, i=i: c.send_message(f"message {i}", conversationId=conversation_id)
            for i, c in enumerate(clients)
        ]
    )
    assert all(a["type"] == "ack" for a in answers), answers

    history = Client(gateway, owner).send(
        {"action": "getHistory", "conversationId": conversation_id, "limit": 100}
    )
    history_order = [turn["turnId"] for turn in history["turns"]]
    queue_order = [str(request.turn_id) for request in queue.sent]
    assert queue_order == history_order
