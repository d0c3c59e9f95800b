"""Lambda entry point of the worker (`courier_shared.lambda_entry` convention).

The first invocation validates `WorkerSettings` from the environment and builds the Worker (model,
boto3 clients, engine); every later batch of the container reuses it.
"""

from __future__ import annotations

from collections.abc import Mapping

from courier_shared.lambda_entry import Invoke, LambdaEntry
from courier_worker.observability import logger


def build(environ: Mapping[str, str]) -> Invoke:
    from courier_worker.composition import build_worker
    from courier_worker.settings import WorkerSettings

    return build_worker(WorkerSettings.model_validate(environ)).handle


lambda_handler = LambdaEntry(logger, build)
