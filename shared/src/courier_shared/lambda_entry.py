"""The one entry convention of every Courier Lambda, and the Handler string Pulumi declares for it.

Each service's `courier_<service>/handler.py` defines

    lambda_handler = LambdaEntry(logger, build)

where `build(environ)` validates the service's settings from the environment and composes the
service once per container (the cold start), returning the callable that handles one event.
Importing a handler module does no I/O; the first invocation builds. Every invocation runs inside
Powertools' `inject_lambda_context`, so every log line carries the request id and cold-start flag.

`handler_string(service)` is what the Pulumi program declares as the function's Handler, and what
the local stack resolves (module import + getattr, as the Python Lambda runtime does).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # every service depends on Powertools; this library does not
    from aws_lambda_powertools import Logger

HANDLER_MODULE = "handler"
HANDLER_FUNCTION = "lambda_handler"

Invoke = Callable[[dict[str, Any], Any], Any]
Build = Callable[[Mapping[str, str]], Invoke]


def handler_string(service: str) -> str:
    """The Lambda Handler setting of a service: `courier_<service>.handler.lambda_handler`."""
    return f"courier_{service}.{HANDLER_MODULE}.{HANDLER_FUNCTION}"


class LambdaEntry:
    """A Lambda handler that composes its service on the first invocation and reuses it after."""

    def __init__(self, logger: Logger, build: Build) -> None:
        self.logger = logger
        self._build = build
        self._invoke: Invoke | None = None
        self._lock = threading.Lock()
        self._handle = logger.inject_lambda_context(self._call)

    def cold_start(self, environ: Mapping[str, str] | None = None) -> Invoke:
        """Compose the service from `environ` (default: the process environment), once."""
        with self._lock:
            if self._invoke is None:
                self._invoke = self._build(dict(os.environ) if environ is None else environ)
            return self._invoke

    @property
    def is_warm(self) -> bool:
        return self._invoke is not None

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        return self._handle(event, context)

    def _call(self, event: dict[str, Any], context: Any) -> Any:
        return self.cold_start()(event, context)
