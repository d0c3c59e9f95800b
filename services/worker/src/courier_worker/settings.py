"""The worker's settings: read from the environment once per cold start, in the composition root."""

from __future__ import annotations

from pydantic import Field, model_validator

from courier_shared.settings import DatabaseSettings

MIN_THINKING_BUDGET_TOKENS = 1024  # Bedrock refuses a smaller extended-thinking budget


class WorkerSettings(DatabaseSettings):
    """Everything the worker Lambda is configured with. Infra sets exactly these variable names."""

    # The model: a Bedrock model id (the stack's one config value). Locally the offline model is
    # injected into the composition root instead, so it may stay unset there.
    model_id: str | None = Field(default=None, alias="MODEL_ID")
    bedrock_region: str | None = Field(default=None, alias="BEDROCK_REGION")
    bedrock_endpoint_url: str | None = Field(default=None, alias="BEDROCK_ENDPOINT_URL")
    # The botocore read timeout is the longest silence tolerated inside one streamed answer; the
    # defaults (60 s, 3 attempts, then strands' 6 attempts with 4..64 s sleeps) can outlast a Lambda.
    bedrock_read_timeout_s: float = Field(default=60.0, gt=0, le=900, alias="BEDROCK_READ_TIMEOUT_S")
    bedrock_connect_timeout_s: float = Field(default=5.0, gt=0, le=60, alias="BEDROCK_CONNECT_TIMEOUT_S")
    bedrock_max_attempts: int = Field(default=2, ge=1, le=5, alias="BEDROCK_MAX_ATTEMPTS")
    model_retry_attempts: int = Field(default=2, ge=1, le=5, alias="MODEL_RETRY_ATTEMPTS")
    model_retry_delay_s: int = Field(default=1, ge=0, le=10, alias="MODEL_RETRY_DELAY_S")
    max_output_tokens: int = Field(default=2048, ge=1, le=64_000, alias="MAX_OUTPUT_TOKENS")
    # Extended thinking: the model may reason in up to this many tokens before answering (streamed
    # as reasoning parts, stored beside the answer). 0 = off. The stack refuses it for a model the
    # catalog says cannot think; Bedrock wants at least 1024, and fewer than MAX_OUTPUT_TOKENS.
    thinking_budget_tokens: int = Field(default=0, ge=0, alias="THINKING_BUDGET_TOKENS")

    # Where frames go: https://{api}.execute-api.{region}.amazonaws.com/{stage}. Unset: the turn
    # request's callback_url (what the gateway saw in its own event).
    connections_endpoint_url: str | None = Field(default=None, alias="CONNECTIONS_ENDPOINT_URL")

    # Large answers go to S3 (key in turns.body_ref); unset bucket = always inline.
    body_bucket: str | None = Field(default=None, alias="BODY_BUCKET")
    s3_endpoint_url: str | None = Field(default=None, alias="S3_ENDPOINT_URL")
    inline_text_max_bytes: int = Field(default=64 * 1024, ge=1024, alias="INLINE_TEXT_MAX_BYTES")

    flush_interval_ms: int = Field(default=100, ge=10, le=2000, alias="FLUSH_INTERVAL_MS")
    listener_grace_s: float = Field(default=5.0, ge=0, le=600, alias="LISTENER_GRACE_S")
    control_poll_ms: int = Field(default=250, ge=20, le=500, alias="CONTROL_POLL_MS")
    save_interval_s: float = Field(default=2.0, gt=0, le=2.0, alias="SAVE_INTERVAL_S")
    history_window: int = Field(default=20, ge=0, le=200, alias="HISTORY_WINDOW")
    # Model calls one turn may make (each tool round trip is one more): a loop ends, not the Lambda.
    max_agent_cycles: int = Field(default=8, ge=1, le=50, alias="MAX_AGENT_CYCLES")
    # Stop this long before the Lambda's deadline: the time to drain the text, store the turn and
    # send its ending (the final write itself waits for the database at most until the deadline).
    deadline_margin_s: float = Field(default=10.0, ge=1, le=300, alias="DEADLINE_MARGIN_S")

    # A streaming turn's lease (renewed by every save): once it expires the turn is abandoned (no
    # longer "in progress"; a retried record may take it over). Longer than the outage we ride out.
    lease_s: float = Field(default=20.0, ge=3, le=900, alias="LEASE_S")
    # How long the database may be unreachable while an answer streams before the attempt gives up
    # (its listeners get an `error`, the record is retried in seconds).
    database_outage_budget_s: float = Field(default=10.0, ge=1, le=300, alias="DATABASE_OUTAGE_BUDGET_S")
    # The first retry of a record given up for a temporary reason, doubled per receive (≤ 60 s).
    retry_backoff_s: int = Field(default=2, ge=0, le=60, alias="RETRY_BACKOFF_S")

    # The dead-letter queue's ARN: its records end their turn as failed instead of running it.
    dead_letter_queue_arn: str | None = Field(default=None, alias="DEAD_LETTER_QUEUE_ARN")
    sqs_endpoint_url: str | None = Field(default=None, alias="SQS_ENDPOINT_URL")
    system_prompt: str = Field(
        default="You are Courier, a helpful assistant. Answer clearly and concisely.",
        min_length=1,
        alias="SYSTEM_PROMPT",
    )
    aws_region: str | None = Field(default=None, alias="AWS_REGION")

    @model_validator(mode="after")
    def _endpoint_is_http(self) -> WorkerSettings:
        url = self.connections_endpoint_url
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError(
                "CONNECTIONS_ENDPOINT_URL must be https://{api}.execute-api.{region}.amazonaws.com/{stage}"
            )
        return self

    @model_validator(mode="after")
    def _thinking_fits_bedrock(self) -> WorkerSettings:
        budget = self.thinking_budget_tokens
        if budget and budget < MIN_THINKING_BUDGET_TOKENS:
            raise ValueError(
                f"THINKING_BUDGET_TOKENS must be 0 (off) or at least {MIN_THINKING_BUDGET_TOKENS} "
                f"(Bedrock's minimum), not {budget}"
            )
        if budget and budget >= self.max_output_tokens:
            raise ValueError(
                f"THINKING_BUDGET_TOKENS ({budget}) must be less than MAX_OUTPUT_TOKENS "
                f"({self.max_output_tokens}): the thinking is part of the output, and the answer needs room"
            )
        return self

    @model_validator(mode="after")
    def _outage_fits_in_the_lease(self) -> WorkerSettings:
        if self.database_outage_budget_s + self.save_interval_s >= self.lease_s:
            raise ValueError(
                "LEASE_S must be longer than DATABASE_OUTAGE_BUDGET_S + SAVE_INTERVAL_S: a turn riding out "
                "an outage must not look abandoned"
            )
        return self

    @property
    def flush_interval_s(self) -> float:
        return self.flush_interval_ms / 1000

    @property
    def control_poll_s(self) -> float:
        return self.control_poll_ms / 1000
