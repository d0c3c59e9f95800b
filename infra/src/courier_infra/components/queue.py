"""Queue: the SQS FIFO queue of turns (one conversation = one message group) and its FIFO DLQ.

Visibility timeout is 6 x the worker's timeout (Lambda's rule for SQS sources); a message that
fails 5 receives moves to the DLQ, which the worker also consumes (see event_source.py). Both queues
use SQS-managed server-side encryption.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from courier_infra.config import StackConfig

MAX_RECEIVE_COUNT = 5
FOURTEEN_DAYS = 14 * 24 * 3600


class TurnQueue(pulumi.ComponentResource):
    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("courier:queue:TurnQueue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"courier:stage": config.stage}

        self.dead_letter_queue = aws.sqs.Queue(
            f"{name}-dlq",
            name=f"courier-{config.stage}-turns-dlq.fifo",
            fifo_queue=True,
            sqs_managed_sse_enabled=True,
            # The worker consumes the DLQ too (ending dead-lettered turns): Lambda needs a source
            # queue's visibility timeout to be at least the function's timeout.
            visibility_timeout_seconds=config.queue_visibility_timeout_seconds,
            message_retention_seconds=FOURTEEN_DAYS,
            tags=tags,
            opts=child,
        )
        self.queue = aws.sqs.Queue(
            name,
            name=f"courier-{config.stage}-turns.fifo",
            fifo_queue=True,
            content_based_deduplication=False,  # the gateway sends the turn id as deduplication id
            deduplication_scope="messageGroup",
            fifo_throughput_limit="perMessageGroupId",
            sqs_managed_sse_enabled=True,
            visibility_timeout_seconds=config.queue_visibility_timeout_seconds,
            message_retention_seconds=FOURTEEN_DAYS,
            redrive_policy=self.dead_letter_queue.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
            ),
            tags=tags,
            opts=child,
        )
        self.register_outputs({"queueUrl": self.queue.url, "deadLetterQueueUrl": self.dead_letter_queue.url})
