"""The worker Lambda's entry point: builds the Worker once per container, then delegates each batch.

Nothing happens at import; settings are read and validated on the first invocation (the cold start).
"""

from __future__ import annotations

from typing import Any

from courier_worker.composition import Worker, build_worker
from courier_worker.observability import logger
from courier_worker.settings import WorkerSettings

_worker: Worker | None = None


def get_worker() -> Worker:
    global _worker
    if _worker is None:
        _worker = build_worker(WorkerSettings())
    return _worker


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return get_worker().handle(event, context)
