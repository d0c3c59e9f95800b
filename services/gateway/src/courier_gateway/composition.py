"""Composition root: builds the Gateway from its settings, once per container."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from courier_gateway.cursors import CursorSigner
from courier_gateway.fair_use import FrameRateLimiter, Rate
from courier_gateway.gateway import Gateway, GatewayLimits
from courier_gateway.observability import logger as service_logger
from courier_gateway.ports import GatewayStore
from courier_gateway.queue import SqsTurnQueue, TurnQueue
from courier_gateway.settings import GatewaySettings
from courier_shared.db.models import utcnow
from courier_shared.db.store import ChatStore


def build_gateway(
    settings: GatewaySettings,
    *,
    store: GatewayStore | None = None,
    queue: TurnQueue | None = None,
    clock: Callable[[], datetime] = utcnow,
    logger: Logger | None = None,
    read_secret: Callable[[str], str] | None = None,
) -> Gateway:
    """The Gateway; `store` and `queue` replace the ones the settings describe (tests, the local stack),
    `read_secret` how a secret's value is read (default: Powertools, from Secrets Manager)."""
    if store is None:
        from courier_shared.db.aws import connect  # here, not at import: boto3 is slow to import

        store = ChatStore(connect(settings, logger=logger or service_logger))
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
    return Gateway(
        store,
        queue,
        limits,
        cursors=CursorSigner(_cursor_key(settings, read_secret or _read_secret)),
        fair_use=FrameRateLimiter(
            per_connection=Rate(settings.frame_rate_per_second, settings.frame_burst),
            per_user=Rate(settings.user_frame_rate_per_second, settings.user_frame_burst),
            clock=lambda: clock().timestamp(),
        ),
        clock=clock,
        logger=logger or service_logger,
    )


def _cursor_key(settings: GatewaySettings, read_secret: Callable[[str], str]) -> bytes:
    if settings.cursor_signing_key is not None:
        return settings.cursor_signing_key.get_secret_value().encode()
    assert settings.cursor_key_secret_arn is not None  # the settings require one of the two
    return read_secret(settings.cursor_key_secret_arn).encode()


def _read_secret(secret_id: str) -> str:
    # Here, not at import: it imports boto3. A provider of its own, read once per cold start.
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    value = SecretsProvider().get(secret_id)
    if not isinstance(value, str):
        raise ValueError(f"the secret {secret_id} holds no string")
    return value
