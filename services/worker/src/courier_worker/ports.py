"""What the worker needs from the outside world, as small interfaces (no boto3 here).

Adapters (adapters.py) implement them with boto3; tests implement them with in-memory fakes.
"""

from __future__ import annotations

from typing import Protocol


class ConnectionGone(Exception):
    """The WebSocket connection no longer exists (API Gateway's GoneException, HTTP 410)."""


class ConnectionUnavailable(Exception):
    """A post kept failing with a transient error after the adapter's retries; the frame is not delivered."""


class ConnectionPoster(Protocol):
    """Posts one frame to one WebSocket connection (the @connections API). Blocking; thread-safe."""

    def post(self, endpoint_url: str, connection_id: str, data: bytes) -> None:
        """Deliver `data`, retrying transient errors. Raises ConnectionGone or ConnectionUnavailable."""
        ...


class BodyStore(Protocol):
    """Keeps assistant answers too large to store inline (S3)."""

    def put_text(self, key: str, text: str) -> str:
        """Store the text; returns the reference to keep in turns.body_ref."""
        ...

    def get_text(self, ref: str) -> str: ...


class QueueVisibility(Protocol):
    """Hands a received record back to its queue early (SQS ChangeMessageVisibility)."""

    def retry_after(self, queue_arn: str, receipt_handle: str, delay_s: int) -> None:
        """The record becomes visible again in `delay_s` seconds (0..43,200)."""
        ...
