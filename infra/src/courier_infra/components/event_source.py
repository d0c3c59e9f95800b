"""Event source mapping: the turn queue drives the worker.

`ReportBatchItemFailures` lets the worker retry only the turns that failed; `maximum_concurrency`
caps how many workers run at once, which caps database connections.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from courier_infra.components.functions import LambdaFunction
from courier_infra.components.queue import TurnQueue
from courier_infra.config import StackConfig


class WorkerTrigger(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        *,
        queue: TurnQueue,
        worker: LambdaFunction,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("courier:events:WorkerTrigger", name, None, opts)
        self.mapping = aws.lambda_.EventSourceMapping(
            name,
            event_source_arn=queue.queue.arn,
            function_name=worker.function.arn,
            batch_size=config.worker_batch_size,
            function_response_types=["ReportBatchItemFailures"],
            scaling_config={"maximum_concurrency": config.worker_max_concurrency},
            # Lambda checks the role can read the queue when the mapping is created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[worker.policy]),
        )
        self.register_outputs({"uuid": self.mapping.uuid})
