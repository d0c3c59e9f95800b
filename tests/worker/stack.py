"""The worker end to end on the one local assembly (`courier_local.stack.LocalStack`, what `courier dev`
runs, built from the Pulumi program) with the Worker under test polling the declared turn queue.

Real parts: Postgres, moto's SQS with the declared queues (FIFO, visibility, redrive to the DLQ), the
local API Gateway with the declared routes, the real authorizer and gateway Lambdas behind it (a
client connects with a dev token; cancel and resume are the gateway's), @connections, and a real
WebSocket client. The stack's own event source mappings are off (`start_mappings=False`): each test
starts one for the Worker it builds (scripted model, proxied database, short settings).
sendMessage is done by `submit()` straight into the store and the queue, so a turn's request is the
test's to shape (no conversation limits, duplicate deliveries, poison records).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from websockets.sync.client import ClientConnection, connect

from courier_local.edge.sqs import EventSourceMapping, QueueUrls, create_declared_queues
from courier_local.stack import LocalStack
from courier_shared.db.store import ChatStore, Owner
from courier_shared.protocol import TurnStatus
from courier_shared.queue import TurnRequest
from courier_worker.composition import Worker
from courier_worker.settings import WorkerSettings

REGION = "eu-west-1"  # the dev stack's Region (Pulumi.dev.yaml): moto's queues live there


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Client:
    """A real WebSocket client on the local gateway."""

    websocket: ClientConnection
    connection_id: str
    frames: list[dict[str, Any]] = field(default_factory=list)

    def read_until_end(self, turn_id: uuid.UUID, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Frames of the turn until its finish, abort or error chunk, or a snapshot of the ended turn
        (what a resume after the end gets: no chunks follow)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            frame = self.read(deadline - time.monotonic())
            if frame.get("turnId") != str(turn_id):
                continue
            if frame["type"] == "chunk" and frame["chunk"]["type"] in ("finish", "abort", "error"):
                return self.turn_frames(turn_id)
            if frame["type"] == "snapshot" and TurnStatus(frame["status"]).is_terminal:
                return self.turn_frames(turn_id)
        raise TimeoutError(f"no end of turn {turn_id} within {timeout_s} s; got {self.frames[-5:]}")

    def read(self, timeout_s: float) -> dict[str, Any]:
        raw = self.websocket.recv(timeout=timeout_s)
        frame: dict[str, Any] = json.loads(raw)
        self.frames.append(frame)
        return frame

    def turn_frames(self, turn_id: uuid.UUID) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("turnId") == str(turn_id)]


def chunks(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == "chunk"]


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(f["chunk"]["delta"] for f in chunks(frames) if f["chunk"]["type"] == "text-delta")


class WorkerStack:
    """A running LocalStack, for one test: the Worker under test on its turn queue, one test user."""

    def __init__(self, local: LocalStack, *, engine: Engine, owner: Owner) -> None:
        assert local.deployment is not None and local.info is not None
        self.local = local
        self.deployment = local.deployment
        self.moto = local.moto
        self.engine = engine
        self.store = ChatStore(engine)
        self.owner = owner
        self.sqs = local.moto.client("sqs")
        self.callback_url = local.info.callback_url
        # The worker's turn queue: of the queues the declared mappings to the worker poll, the one that
        # redrives to a DLQ (the worker polls the DLQ too, to end dead-lettered turns; the program's
        # declaration order is not the mappings' order).
        polled = [
            self.deployment.queue_by_arn(m.queue_arn)
            for m in self.deployment.event_source_mappings
            if m.function == "worker"
        ]
        (queue,) = [q for q in polled if q.dead_letter_target_arn is not None]
        assert queue.dead_letter_target_arn is not None
        self.turn_queue = queue
        self.queues = QueueUrls(
            queue_url=local.queue_urls[queue.name],
            dlq_url=local.queue_urls[self.deployment.queue_by_arn(queue.dead_letter_target_arn).name],
        )
        self.esm: EventSourceMapping | None = None

    def __enter__(self) -> WorkerStack:
        self.reset_queues()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.esm is not None:
            self.esm.stop()

    def reset_queues(self) -> None:
        """The declared queues, empty: deleted and created again as declared (moto refuses a second
        purge within 60 s, as SQS does, and a purge leaves FIFO deduplication ids behind)."""
        for url in self.local.queue_urls.values():
            self.sqs.delete_queue(QueueUrl=url)
        assert create_declared_queues(self.sqs, self.deployment.queues) == self.local.queue_urls

    @property
    def max_receive_count(self) -> int:
        """Deliveries before the queue moves a record to the DLQ, as declared."""
        assert self.turn_queue.max_receive_count is not None
        return self.turn_queue.max_receive_count

    def redrive_after(self, deliveries: int) -> None:
        """Let the turn queue give a record up after `deliveries` (instead of the declared count), for
        a test about what happens then: the worker's retry backoff doubles with each delivery."""
        assert self.turn_queue.dead_letter_target_arn is not None
        policy = {
            "deadLetterTargetArn": self.turn_queue.dead_letter_target_arn,
            "maxReceiveCount": deliveries,
        }
        self.sqs.set_queue_attributes(
            QueueUrl=self.queues.queue_url, Attributes={"RedrivePolicy": json.dumps(policy)}
        )

    def start_worker(
        self,
        worker: Worker,
        *,
        visibility_timeout_s: int = 1,
        function_timeout_s: float | None = None,
        context: Callable[[], Any] | None = None,
    ) -> EventSourceMapping:
        """Poll the turn queue with `worker.handle`, one batch at a time. `visibility_timeout_s` is
        how long a failed record stays hidden (short: fast retries); `function_timeout_s` is the
        remaining time each invocation's Lambda context starts with (default: the declared timeout);
        `context`, if given, builds each invocation's Lambda context instead (e.g. on a test's clock)."""
        spec = self.deployment.function("worker")

        def handle(event: dict[str, Any], lambda_context: Any = None) -> dict[str, Any]:
            return worker.handle(event, lambda_context if context is None else context())

        self.esm = EventSourceMapping(
            self.sqs,
            self.queues.queue_url,
            handle,
            visibility_timeout_s=visibility_timeout_s,
            wait_time_s=0.2,
            max_concurrency=1,
            function_name=spec.function_name,
            function_timeout_s=function_timeout_s or spec.timeout_s,
        )
        return self.esm.start()

    @contextmanager
    def client(self) -> Iterator[Client]:
        """A WebSocket client signed in as the test's user, through the authorizer and the gateway."""
        assert self.local.info is not None
        token = self.local.issue_token(user=self.owner.user_id, tenant=self.owner.tenant_id)
        before = set(self.local.api.connection_ids())
        with connect(
            self.local.info.ws_url,
            subprotocols=["courier.v1", f"bearer.{token}"],  # type: ignore[list-item]
            compression=None,
            open_timeout=10,
        ) as websocket:
            deadline = time.monotonic() + 5
            while not (new := set(self.local.api.connection_ids()) - before):
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
                callback_url=self.callback_url,
            )
        if enqueue:
            self.enqueue(
                request.model_dump_json(), group_id=request.group_id, dedup_id=request.deduplication_id
            )
        return request

    def enqueue(self, body: str, *, group_id: str, dedup_id: str) -> None:
        self.sqs.send_message(
            QueueUrl=self.queues.queue_url,
            MessageBody=body,
            MessageGroupId=group_id,
            MessageDeduplicationId=dedup_id,
        )

    def dlq_bodies(self) -> list[str]:
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
        "AWS_REGION": REGION,
    }
    values.update(overrides)
    return WorkerSettings.model_validate(values)
