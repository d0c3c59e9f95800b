"""Composition root: builds the Gateway from its settings, once per container."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from courier_gateway.gateway import Gateway, GatewayLimits
from courier_gateway.queue import SqsTurnQueue, TurnQueue
from courier_gateway.settings import GatewaySettings
from courier_shared.db.models import utcnow
from courier_shared.db.store import ChatStore


def build_gateway(
    settings: GatewaySettings,
    *,
    store: ChatStore | None = None,
    queue: TurnQueue | None = None,
    clock: Callable[[], datetime] = utcnow,
    logger: Logger | None = None,
) -> Gateway:
    """The Gateway; `store` and `queue` replace the ones the settings describe (tests, the local stack)."""
    if store is None:
        from courier_shared.db.aws import connect  # here, not at import: boto3 is slow to import

        store = ChatStore(connect(settings))
    if queue is None:
        import boto3  # here, not at import: the handler module stays cheap to import

        client = boto3.client("sqs", endpoint_url=settings.sqs_endpoint_url)
        queue = SqsTurnQueue(client, settings.turn_queue_url)
    limits = GatewayLimits(
        max_message_chars=settings.max_message_chars,
        max_frame_bytes=settings.max_frame_bytes,
        send_rate_per_minute=settings.send_rate_per_minute,
        max_open_turns=settings.max_open_turns,
        open_turn_window=timedelta(seconds=settings.open_turn_window_s),
    )
    return Gateway(store, queue, limits, clock=clock, logger=logger or Logger(service="courier-gateway"))
