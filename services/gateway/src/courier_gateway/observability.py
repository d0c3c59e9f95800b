"""The gateway's one Powertools Logger (every module logs through it) and its EMF metric: Refusals,
by ErrorCode (every frame answered with an `error`, and every refused $connect), in namespace
"Courier" with dimension service=courier-gateway.

Never log message text or tokens: ids, routes, actions and codes only.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = "courier-gateway"
NAMESPACE = "Courier"

logger = Logger(service=SERVICE)


def record_refusal(code: str) -> None:
    """One Refusals count with the error code as its own dimension (refusals by code)."""
    with single_metric(
        name="Refusals",
        unit=MetricUnit.Count,
        value=1,
        namespace=NAMESPACE,
        default_dimensions={"service": SERVICE},
    ) as metric:
        metric.add_dimension(name="ErrorCode", value=code)
