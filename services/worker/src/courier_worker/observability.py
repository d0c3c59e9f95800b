"""Powertools Logger and Metrics for the worker (JSON logs; EMF metrics in namespace "Courier").

Never log message text or tokens at INFO: ids, counts and timings only.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = "courier-worker"
NAMESPACE = "Courier"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def record_failure(error_code: str) -> None:
    """One Failures metric with the error code as its own dimension (failures by code)."""
    with single_metric(
        name="Failures",
        unit=MetricUnit.Count,
        value=1,
        namespace=NAMESPACE,
        default_dimensions={"service": SERVICE},
    ) as metric:
        metric.add_dimension(name="ErrorCode", value=error_code)


__all__ = ["MetricUnit", "logger", "metrics", "record_failure"]
