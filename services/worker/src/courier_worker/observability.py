"""The worker's one Powertools Logger (every module logs through it) and its EMF Metrics
(namespace "Courier", dimension service=courier-worker).

Per turn: TimeToFirstToken (from the turn's createdAt to its first answer text posted, as stored and
sent in `finish`), OutputTokens, FramesPosted, PostLatency (mean) and PostLatencyMax of the
@connections calls, Duration, and TurnOutcomes by Outcome (the error code of a failed turn, else
its status). Never log message text or tokens: ids, counts and timings only.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = "courier-worker"
NAMESPACE = "Courier"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def record_outcome(outcome: str) -> None:
    """One TurnOutcomes count with the outcome as its own dimension (turns by how they ended)."""
    with single_metric(
        name="TurnOutcomes",
        unit=MetricUnit.Count,
        value=1,
        namespace=NAMESPACE,
        default_dimensions={"service": SERVICE},
    ) as metric:
        metric.add_dimension(name="Outcome", value=outcome)


__all__ = ["MetricUnit", "logger", "metrics", "record_outcome"]
