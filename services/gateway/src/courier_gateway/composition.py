"""Composition root: builds the Gateway from its settings, once per container."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from courier_gateway.gateway import Gateway, GatewayLimits
from courier_gateway.queue import SqsTurnQueue, TurnQueue
from courier_gateway.settings import GatewaySettings
from courier_shared.db.engine import build_engine
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
        engine = build_engine(
            database_url(settings), pool_size=settings.db_pool_size, rds_proxy=settings.needs_secret
        )
        store = ChatStore(engine)
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


def database_url(settings: GatewaySettings) -> str:
    """DATABASE_URL, or the RDS host with the credentials from the RDS-managed secret."""
    if not settings.needs_secret:
        return settings.resolved_url()
    import boto3

    secrets = boto3.client("secretsmanager")
    secret = secrets.get_secret_value(SecretId=str(settings.db_secret_arn))["SecretString"]
    return settings.resolved_url(secret)
