"""Bedrock through Strands, with a stream that really stops and retries that fit a Lambda."""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator
from typing import Any

from botocore.config import Config
from strands import ModelRetryStrategy
from strands.models import BedrockModel
from strands.types.streaming import StreamEvent

from courier_worker.settings import WorkerSettings


class _LatchedSignal(threading.Event):
    """The cancel signal the boto3 reader thread sees: the agent's signal, latched.

    Strands clears the agent's cancel signal when the invocation ends, often before the reader
    thread looks at it, so the stock model keeps downloading the answer in the background. Once
    this one has been seen set (or the generator ended), it stays set.
    """

    def __init__(self, outer: threading.Event | None) -> None:
        super().__init__()
        self._outer = outer
        if outer is not None and outer.is_set():
            self.set()

    def is_set(self) -> bool:
        if self._outer is not None and self._outer.is_set():
            self.set()
        return super().is_set()


class AbortableBedrockModel(BedrockModel):
    """A BedrockModel whose ConverseStream HTTP response is closed whenever its stream ends early.

    Depends on BedrockModel.stream passing `cancel_signal` to the reader thread, which closes
    `response["stream"]` at the next event once it is set (strands-agents 1.62): re-test on upgrades.
    """

    async def stream(
        self, *args: Any, cancel_signal: threading.Event | None = None, **kwargs: Any
    ) -> AsyncGenerator[StreamEvent, None]:
        latched = _LatchedSignal(cancel_signal)
        try:
            async for event in super().stream(*args, cancel_signal=latched, **kwargs):
                yield event
        finally:
            latched.set()  # a normal end: harmless; an early exit: the reader closes the HTTP stream


def bedrock_client_config(settings: WorkerSettings) -> Config:
    """botocore settings sized for a Lambda: a deliberate read timeout and few HTTP attempts."""
    return Config(
        read_timeout=settings.bedrock_read_timeout_s,
        connect_timeout=settings.bedrock_connect_timeout_s,
        retries={"total_max_attempts": settings.bedrock_max_attempts, "mode": "standard"},
        user_agent_extra="courier-worker strands-agents",
    )


def thinking_request_fields(settings: WorkerSettings) -> dict[str, Any]:
    """Converse's `additionalModelRequestFields` for extended thinking ({} when it is off).

    With thinking on, Bedrock refuses a temperature or top_k override (and a top_p below 0.95):
    the model is built without them, and max_tokens > budget is checked by the settings.
    """
    budget = settings.thinking_budget_tokens
    if not budget:
        return {}
    return {"additional_request_fields": {"thinking": {"type": "enabled", "budget_tokens": budget}}}


def build_bedrock_model(settings: WorkerSettings) -> AbortableBedrockModel:
    if not settings.model_id:
        raise ValueError("MODEL_ID is not set: the worker needs a Bedrock model id (or an injected model)")
    return AbortableBedrockModel(
        model_id=settings.model_id,
        max_tokens=settings.max_output_tokens,
        region_name=settings.bedrock_region or settings.aws_region,
        endpoint_url=settings.bedrock_endpoint_url,
        boto_client_config=bedrock_client_config(settings),
        **thinking_request_fields(settings),
    )


def model_retry_strategy(settings: WorkerSettings) -> ModelRetryStrategy:
    """Strands' own retries on throttling, on top of botocore's: seconds, not the default minutes."""
    return ModelRetryStrategy(
        max_attempts=settings.model_retry_attempts,
        initial_delay=settings.model_retry_delay_s,
        max_delay=max(settings.model_retry_delay_s * 4, 1),
    )
