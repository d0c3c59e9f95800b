"""Event source mappings: the turn queue drives the worker, and so does its dead-letter queue.

`ReportBatchItemFailures` lets the worker retry only the turns that failed; `maximum_concurrency`
caps how many workers run at once, which caps database connections. A record the turn queue gives
up on lands in the DLQ; the worker recognises it (DEAD_LETTER_QUEUE_ARN) and ends its turn `failed`,
telling its listeners, so no turn stays open because its record died.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from courier_infra.components.functions import LambdaFunction
from courier_infra.components.queue import TurnQueue
from courier_infra.config import StackConfig

# Ending a dead-lettered turn is one short transaction and a few posts: small batches, and the
# least concurrency Lambda allows (dead letters are rare; they must not crowd out live turns).
DEAD_LETTER_BATCH_SIZE = 5
DEAD_LETTER_MAX_CONCURRENCY = 2


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
        self.dead_letters = aws.lambda_.EventSourceMapping(
            f"{name}-dead-letters",
            event_source_arn=queue.dead_letter_queue.arn,
            function_name=worker.function.arn,
            batch_size=DEAD_LETTER_BATCH_SIZE,
            function_response_types=["ReportBatchItemFailures"],
            scaling_config={"maximum_concurrency": DEAD_LETTER_MAX_CONCURRENCY},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[worker.policy]),
        )
        self.register_outputs({"uuid": self.mapping.uuid, "deadLettersUuid": self.dead_letters.uuid})
