"""A local Lambda runtime: invokes a function through its declared Handler, with its declared environment.

As the Python runtime does, the Handler string (`courier_gateway.handler.lambda_handler`) is split
into a module and an attribute, the module imported and the attribute called with (event, context).
Each container of a `LocalFunction` loads its own copy of the handler module, so two invocations (or
two local stacks in one process) never share a warm service, as in Lambda. The cold start happens
with the function's own environment (the Pulumi-declared variables, localised) and its own
credentials, so every AWS call its clients make can be attributed to it (`courier_local.aws_calls`)
and checked against its policy.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from courier_infra.deployment import FunctionSpec
from courier_local.edge.lambda_context import LambdaContext

# Cold starts patch the process environment for the clients they build: one at a time.
_environment_lock = threading.Lock()


class HandlerNotFound(Exception):
    """Runtime.HandlerNotFound / Runtime.ImportModuleError, as Lambda reports them."""


def load_handler(handler: str) -> Any:
    """Import a fresh copy of the Handler's module and return the handler callable."""
    module_name, _, attribute = handler.rpartition(".")
    spec = importlib.util.find_spec(module_name) if module_name else None
    if spec is None or spec.loader is None:
        raise HandlerNotFound(f"Runtime.ImportModuleError: Unable to import module '{module_name}'")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function = getattr(module, attribute, None)
    if not callable(function):
        raise HandlerNotFound(f"Runtime.HandlerNotFound: {handler} is undefined or not exported")
    return function


# What the stack itself signs with when it creates the declared queues and buckets (Pulumi's part).
PROVISIONING_ACCESS_KEY = "LOCAL-PROVISIONING"


def access_key_of(function_name: str) -> str:
    """The dummy access key a local function's clients sign with: it names the function."""
    return f"LOCAL-{function_name}"


@contextmanager
def _process_environment(values: Mapping[str, str]) -> Iterator[None]:
    import boto3

    with _environment_lock:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        # boto3's default session caches what it resolved first: one of the container's own, built from
        # its values (not read back from os.environ, which other threads, tests included, may change).
        saved_session = boto3.DEFAULT_SESSION
        boto3.setup_default_session(
            aws_access_key_id=values["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
            region_name=values["AWS_REGION"],
        )
        try:
            yield
        finally:
            boto3.DEFAULT_SESSION = saved_session
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


class LocalFunction:
    """One deployed function, run in this process as Lambda runs it: in containers, each with its own
    copy of the handler module (its own cold start, its own warm state), each serving one invocation
    at a time. Concurrent invocations get concurrent containers, up to `max_containers`; beyond that
    an invocation waits for a container to come free."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: Mapping[str, str],
        *,
        region: str,
        account_id: str,
        max_containers: int = 8,
    ):
        self.spec = spec
        self.region = region
        self.account_id = account_id
        self.environment = {
            **environment,
            # What the Lambda runtime sets for every function.
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_ACCESS_KEY_ID": access_key_of(spec.function_name),
            "AWS_SECRET_ACCESS_KEY": "local",
        }
        load_handler(spec.handler)  # a Handler that does not resolve fails here, at start
        self._idle: list[Any] = []  # warm containers' handlers
        self._containers = threading.BoundedSemaphore(max_containers)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.spec.name

    def cold_start(self) -> Any:
        """Make sure one container is warm (Lambda's init, ahead of the first request); its handler."""
        handler = self._take()
        self._give_back(handler)
        return handler

    def _take(self) -> Any:
        self._containers.acquire()
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            return self._new_container()
        except BaseException:
            self._containers.release()
            raise

    def _give_back(self, handler: Any) -> None:
        with self._lock:
            self._idle.append(handler)
        self._containers.release()

    def _new_container(self) -> Any:
        """Lambda's init: a fresh handler module composed with this function's environment."""
        handler = load_handler(self.spec.handler)
        cold_start = getattr(handler, "cold_start", None)
        if cold_start is not None:
            with _process_environment(self._client_environment()):
                cold_start(self.environment)
        return handler

    def _client_environment(self) -> dict[str, str]:
        """What boto3 reads from the process while the service builds its clients."""
        keys = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        return {key: self.environment[key] for key in keys}

    def context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.spec.function_name,
            memory_limit_in_mb=self.spec.memory_mb,
            timeout_s=float(self.spec.timeout_s),
            region=self.region,
            account_id=self.account_id,
        )

    def __call__(self, event: dict[str, Any], _caller_context: Any = None) -> Any:
        """Invoke in a free container with the function's own context (its timeout, memory, name)."""
        handler = self._take()
        try:
            return handler(event, self.context())
        finally:
            self._give_back(handler)
