"""A small local stack for worker end-to-end tests.

Real parts: Postgres, moto's SQS (FIFO + DLQ) with the Lambda-style event source mapping, the local
API Gateway WebSocket API with its @connections HTTP API, boto3 `apigatewaymanagementapi`, and a
real WebSocket client. The gateway Lambda is replaced by a few lines that do what it does for the
worker's sake ($connect/$disconnect bookkeeping, cancel, resume), so these tests only fail when the
worker is wrong; sendMessage is done by `submit()` straight into the store and the queue.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from websockets.sync.client import ClientConnection, connect

from courier_local.edge.server import RunningServer, serve
from courier_local.edge.sqs import EventSourceMapping, LocalMoto, QueueUrls, create_turn_queues
from courier_local.edge.websocket_api import LocalWebSocketApi
from courier_shared.db.store import ChatStore, Owner
from courier_shared.protocol import Snapshot, TurnStatus, dump_frame
from courier_shared.queue import TurnRequest
from courier_shared.routes import Function
from courier_worker.composition import Worker
from courier_worker.settings import WorkerSettings


def now() -> datetime:
    return datetime.now(UTC)


class TestGateway:
    """The gateway Lambda's bookkeeping that the worker depends on, for one test user."""

    def __init__(self, store: ChatStore, owner: Owner) -> None:
        self.store = store
        self.owner = owner

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        context_ = event["requestContext"]
        connection_id, route = context_["connectionId"], context_["routeKey"]
        with self.store.unit_of_work() as repo:
            if route == "$connect":
                repo.register_connection(self.owner, connection_id, now())
            elif route == "$disconnect":
                repo.unregister_connection(connection_id, now())
            elif route == "cancel":
                body = json.loads(event["body"])
                repo.request_cancel(self.owner, uuid.UUID(body["turnId"]), now())
                return {"statusCode": 200, "body": json.dumps({"type": "ack", "action": "cancel"})}
            elif route == "resume":
                body = json.loads(event["body"])
                turn = repo.add_listener(self.owner, uuid.UUID(body["turnId"]), connection_id)
                assert turn is not None
                snapshot = Snapshot(
                    turn_id=turn.id,
                    attempt=max(turn.attempt, 1),
                    seq=turn.last_seq,
                    status=TurnStatus(turn.status),
                    text=turn.assistant_text,
                )
                return {"statusCode": 200, "body": dump_frame(snapshot)}
        return {"statusCode": 200}


@dataclass
class Client:
    """A real WebSocket client on the local gateway."""

    websocket: ClientConnection
    connection_id: str
    frames: list[dict[str, Any]] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)

    def read_until_end(self, turn_id: uuid.UUID, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """Frames of the turn until its finish, abort or error chunk."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            frame = self.read(deadline - time.monotonic())
            ours = frame.get("turnId") == str(turn_id) and frame.get("type") == "chunk"
            if ours and frame["chunk"]["type"] in ("finish", "abort", "error"):
                return self.turn_frames(turn_id)
        raise TimeoutError(f"no end of turn {turn_id} within {timeout_s} s; got {self.frames[-5:]}")

    def read(self, timeout_s: float) -> dict[str, Any]:
        raw = self.websocket.recv(timeout=timeout_s)
        frame: dict[str, Any] = json.loads(raw)
        self.frames.append(frame)
        self.received_at.append(time.monotonic())
        return frame

    def turn_frames(self, turn_id: uuid.UUID) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("turnId") == str(turn_id)]


def chunks(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == "chunk"]


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(f["chunk"]["delta"] for f in chunks(frames) if f["chunk"]["type"] == "text-delta")


class WorkerStack:
    """Gateway + queue + poller around a Worker, for one test."""

    def __init__(self, *, moto: LocalMoto, engine: Engine, owner: Owner) -> None:
        self.moto = moto
        self.engine = engine
        self.store = ChatStore(engine)
        self.owner = owner
        self.sqs = moto.client("sqs")
        self.api = LocalWebSocketApi(
            authorizer=None, handlers={Function.GATEWAY: TestGateway(self.store, owner)}
        )
        self._exit = ExitStack()
        self.server: RunningServer | None = None
        self.queues: QueueUrls | None = None
        self.esm: EventSourceMapping | None = None

    def __enter__(self) -> WorkerStack:
        self.server = self._exit.enter_context(serve(self.api.app))
        self.queues = create_turn_queues(
            self.sqs, f"turns-{uuid.uuid4().hex[:10]}", visibility_timeout_s=30, max_receive_count=2
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.esm is not None:
            self.esm.stop()
        self._exit.close()

    def start_worker(self, worker: Worker, *, visibility_timeout_s: int = 1) -> EventSourceMapping:
        assert self.queues is not None
        self.esm = EventSourceMapping(
            self.sqs,
            self.queues.queue_url,
            worker.handle,
            visibility_timeout_s=visibility_timeout_s,
            wait_time_s=0.2,
            max_concurrency=1,
        )
        return self.esm.start()

    @contextmanager
    def client(self) -> Iterator[Client]:
        assert self.server is not None
        before = set(self.api.connection_ids())
        with connect(self.server.ws_url, compression=None, open_timeout=5) as websocket:
            deadline = time.monotonic() + 5
            while not (new := set(self.api.connection_ids()) - before):
                if time.monotonic() > deadline:
                    raise TimeoutError("the gateway did not register the connection")
                time.sleep(0.005)
            yield Client(websocket, new.pop())

    def submit(
        self,
        text: str,
        connection_id: str | None,
        *,
        conversation_id: uuid.UUID | None = None,
        enqueue: bool = True,
    ) -> TurnRequest:
        """What the gateway does for sendMessage: store the turn (queued) and enqueue its request."""
        assert self.server is not None
        with self.store.unit_of_work() as repo:
            conversation = (
                repo.find_conversation(self.owner, conversation_id) if conversation_id else None
            ) or repo.create_conversation(self.owner, text, now(), conversation_id)
            turn, _ = repo.create_turn(self.owner, conversation, uuid.uuid4(), text, connection_id, now())
            request = TurnRequest(
                turn_id=turn.id,
                conversation_id=conversation.id,
                tenant_id=self.owner.tenant_id,
                user_id=self.owner.user_id,
                origin_connection_id=connection_id,
                callback_url=self.server.callback_url,
            )
        if enqueue:
            self.enqueue(
                request.model_dump_json(), group_id=request.group_id, dedup_id=request.deduplication_id
            )
        return request

    def enqueue(self, body: str, *, group_id: str, dedup_id: str) -> None:
        assert self.queues is not None
        self.sqs.send_message(
            QueueUrl=self.queues.queue_url,
            MessageBody=body,
            MessageGroupId=group_id,
            MessageDeduplicationId=dedup_id,
        )

    def dlq_bodies(self) -> list[str]:
        assert self.queues is not None
        messages = self.sqs.receive_message(
            QueueUrl=self.queues.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        return [m["Body"] for m in messages]

    def turn(self, turn_id: uuid.UUID) -> Any:
        with self.store.unit_of_work() as repo:
            turn = repo.find_turn(self.owner, turn_id)
            assert turn is not None
            return turn

    def tool_invocations(self, turn_id: uuid.UUID) -> list[Any]:
        with self.store.unit_of_work() as repo:
            return list(repo.tool_invocations(self.owner, turn_id))


def worker_settings(postgres_url: str, **overrides: object) -> WorkerSettings:
    values: dict[str, object] = {
        "DATABASE_URL": postgres_url,
        "FLUSH_INTERVAL_MS": 50,
        "CONTROL_POLL_MS": 50,
        "LISTENER_GRACE_S": 0.3,
        "MODEL_RETRY_DELAY_S": 0,
        "AWS_REGION": "us-east-1",
    }
    values.update(overrides)
    return WorkerSettings.model_validate(values)
