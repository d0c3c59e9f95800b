"""What one stack deploys, as plain data: the part of the Pulumi program the local stack runs.

`courier_infra.manifest` fills this in by running the real program under Pulumi's mocks; the local
stack (`courier_local.stack`) is assembled from it: each function invoked through its declared
Handler with its declared environment, the WebSocket routes and authorizer, the queues' settings
and the event source mappings. Nothing here imports Pulumi, so reading a cached manifest is cheap.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FunctionSpec(Spec):
    """One Lambda function as declared (`name` is its Pulumi resource name, e.g. "gateway")."""

    name: str
    function_name: str
    arn: str
    handler: str
    runtime: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, str]
    policy: dict[str, Any]  # the role's inline policy document: everything the function may do


class RouteSpec(Spec):
    key: str
    function: str  # the FunctionSpec.name its integration invokes
    authorization_type: str
    route_response_selection_expression: str | None = None

    @property
    def two_way(self) -> bool:
        return self.route_response_selection_expression is not None


class ApiSpec(Spec):
    api_id: str
    execution_arn: str
    route_selection_expression: str
    stage: str
    authorizer: str | None  # the FunctionSpec.name of the $connect authorizer
    routes: tuple[RouteSpec, ...]
    throttling_rate_limit: float | None = None
    throttling_burst_limit: int | None = None


class QueueSpec(Spec):
    name: str
    url: str
    arn: str
    fifo: bool
    content_based_deduplication: bool
    visibility_timeout_s: int
    message_retention_s: int
    dead_letter_target_arn: str | None = None
    max_receive_count: int | None = None


class EventSourceMappingSpec(Spec):
    queue_arn: str
    function: str  # FunctionSpec.name
    batch_size: int
    function_response_types: tuple[str, ...]
    maximum_concurrency: int | None


class Deployment(Spec):
    """Everything the local stack takes from one stack of the Pulumi program."""

    stack: str
    region: str
    account_id: str
    functions: dict[str, FunctionSpec]
    api: ApiSpec
    queues: tuple[QueueSpec, ...]
    event_source_mappings: tuple[EventSourceMappingSpec, ...]
    buckets: tuple[str, ...]
    fingerprint: str  # of the inputs it was evaluated from (infra/, stack files, catalog)

    def function(self, name: str) -> FunctionSpec:
        return self.functions[name]

    def queue_by_arn(self, arn: str) -> QueueSpec:
        return next(queue for queue in self.queues if queue.arn == arn)
