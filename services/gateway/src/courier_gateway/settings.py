"""The gateway's settings, read from the environment once at cold start by the composition root."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from courier_gateway.cursors import MIN_KEY_BYTES
from courier_shared.protocol import DEFAULT_MAX_MESSAGE_CHARS, MAX_FRAME_BYTES, MAX_MESSAGE_CHARS
from courier_shared.settings import DatabaseSettings


class GatewaySettings(DatabaseSettings):
    turn_queue_url: str = Field(alias="TURN_QUEUE_URL")
    # Local stand-in for SQS (moto); unset in AWS.
    sqs_endpoint_url: str | None = Field(default=None, alias="SQS_ENDPOINT_URL")
    # At most the protocol's MAX_MESSAGE_CHARS: a longer message might not fit one client frame.
    max_message_chars: int = Field(
        default=DEFAULT_MAX_MESSAGE_CHARS, ge=1, le=MAX_MESSAGE_CHARS, alias="MAX_MESSAGE_CHARS"
    )
    max_frame_bytes: int = Field(default=MAX_FRAME_BYTES, ge=256, le=128 * 1024, alias="MAX_FRAME_BYTES")
    # New messages per user per rolling minute; retries of a message already stored don't count.
    send_rate_per_minute: int = Field(default=20, ge=1, alias="SEND_RATE_PER_MINUTE")
    # Answers a user may have queued or streaming at once.
    max_open_turns: int = Field(default=3, ge=1, alias="MAX_OPEN_TURNS")
    # A turn still open this long after it was sent is presumed stuck (e.g. dead-lettered) and stops
    # counting against MAX_OPEN_TURNS, so one lost turn cannot lock a user out for good.
    open_turn_window_s: int = Field(default=900, ge=60, alias="OPEN_TURN_WINDOW_S")
    # Frames of any action, per connection and per user (over all their connections): a token bucket
    # refilled at the rate, holding at most the burst (courier_gateway.fair_use).
    frame_rate_per_second: float = Field(default=5, gt=0, alias="FRAME_RATE_PER_SECOND")
    frame_burst: int = Field(default=20, ge=1, alias="FRAME_BURST")
    user_frame_rate_per_second: float = Field(default=10, gt=0, alias="USER_FRAME_RATE_PER_SECOND")
    user_frame_burst: int = Field(default=40, ge=1, alias="USER_FRAME_BURST")
    # The key that signs pagination cursors: in AWS a Secrets Manager secret, read at cold start;
    # locally and in tests the key itself.
    cursor_key_secret_arn: str | None = Field(default=None, alias="CURSOR_KEY_SECRET_ARN")
    cursor_signing_key: SecretStr | None = Field(
        default=None, min_length=MIN_KEY_BYTES, alias="CURSOR_SIGNING_KEY"
    )

    @model_validator(mode="after")
    def _one_cursor_key(self) -> GatewaySettings:
        if (self.cursor_key_secret_arn is None) == (self.cursor_signing_key is None):
            raise ValueError(
                "set exactly one of CURSOR_KEY_SECRET_ARN (a Secrets Manager secret) and "
                "CURSOR_SIGNING_KEY (the key itself): pagination cursors are signed with it"
            )
        return self
