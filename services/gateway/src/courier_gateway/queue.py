"""The turn queue port, and its SQS FIFO adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from courier_shared.queue import TurnRequest

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class TurnQueue(Protocol):
    def send(self, request: TurnRequest) -> None:
        """Enqueue the turn for the worker; raises if the queue did not take it."""


class SqsTurnQueue:
    """SQS FIFO: one message group per conversation (turns run in order), deduplicated by turn id."""

    def __init__(self, client: SQSClient | Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, request: TurnRequest) -> None:
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=request.model_dump_json(),
            MessageGroupId=request.group_id,
            MessageDeduplicationId=request.deduplication_id,
        )
