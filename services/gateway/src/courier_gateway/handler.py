"""Lambda entry point of every WebSocket route (`courier_shared.lambda_entry` convention).

The first invocation validates `GatewaySettings` from the environment and builds the Gateway
(engine, SQS client); every later invocation of the container reuses it.
"""

from __future__ import annotations

from collections.abc import Mapping

from courier_gateway.observability import logger
from courier_shared.lambda_entry import Invoke, LambdaEntry


def build(environ: Mapping[str, str]) -> Invoke:
    from courier_gateway.composition import build_gateway
    from courier_gateway.settings import GatewaySettings

    return build_gateway(GatewaySettings.model_validate(environ), logger=logger).handle


lambda_handler = LambdaEntry(logger, build)
