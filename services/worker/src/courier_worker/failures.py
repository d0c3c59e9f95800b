"""How a turn can fail: the stored error codes, the texts its listeners see, and which exceptions
mean "the model failed" versus "the database is away" (retry the record soon)."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from strands.types.exceptions import ContextWindowOverflowException, ModelThrottledException


@dataclass(frozen=True)
class TurnFailure:
    code: str
    safe_text: str


FAILURES: dict[str, TurnFailure] = {
    f.code: f
    for f in (
        TurnFailure("model_throttled", "The model is busy right now. Please try again in a moment."),
        TurnFailure("model_rejected", "The model could not process this request."),
        TurnFailure("model_access_denied", "The model is not available to this service right now."),
        TurnFailure("model_not_found", "The configured model does not exist in this region."),
        TurnFailure(
            "context_overflow", "This conversation is too long for the model. Please start a new one."
        ),
        TurnFailure("model_unavailable", "The model did not answer in time. Please try again."),
        TurnFailure("model_error", "The model failed to answer. Please try again."),
        TurnFailure("no_callback_url", "The answer could not be delivered."),
        TurnFailure(
            "deadline", "This answer took too long and was stopped. Ask a narrower question, or try again."
        ),
        TurnFailure(
            "too_many_steps",
            "This answer needed more steps than Courier allows and was stopped. Try a simpler question.",
        ),
        TurnFailure(
            "database_unavailable",
            "Courier lost its database while answering. The answer will be retried in a few seconds.",
        ),
        TurnFailure(
            "dead_lettered", "This answer could not be produced after several tries. Please try again."
        ),
        TurnFailure("abandoned", "This answer stopped when its worker did. Please try again."),
        TurnFailure("internal", "Something went wrong while answering. Please try again."),
    )
}
CLIENT_ERROR_CODES = {
    "ThrottlingException": "model_throttled",
    "throttlingException": "model_throttled",
    "ServiceQuotaExceededException": "model_throttled",
    "ModelNotReadyException": "model_throttled",
    "ValidationException": "model_rejected",
    "validationException": "model_rejected",
    "AccessDeniedException": "model_access_denied",
    "ResourceNotFoundException": "model_not_found",
    "ModelTimeoutException": "model_unavailable",
    "ServiceUnavailableException": "model_unavailable",
    "serviceUnavailableException": "model_unavailable",
}


def is_database_outage(error: BaseException) -> bool:
    """The database is away (refused, reset, terminated, pool or call timed out): worth waiting
    for, and never the turn's fault. A constraint or SQL error is not an outage."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout | TimeoutError | ConnectionError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


class RetryLater(Exception):
    """Give this record back to the queue, to be retried after `delay_s` (not the visibility timeout)."""

    def __init__(self, reason: str, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s  # None: the worker's backoff for this receive count


def classify_model_error(error: BaseException) -> TurnFailure:
    """The failure to store for an exception out of the agent loop (strands may wrap the cause)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ModelThrottledException):
            return FAILURES["model_throttled"]
        if isinstance(seen, ContextWindowOverflowException):
            return FAILURES["context_overflow"]
        if isinstance(seen, ClientError):
            code = str(seen.response.get("Error", {}).get("Code", ""))
            return FAILURES[CLIENT_ERROR_CODES.get(code, "model_error")]
        if isinstance(seen, BotoCoreError):
            return FAILURES["model_unavailable"]
        seen = seen.__cause__
    return FAILURES["internal"]
