"""The dead-letter queue drives the worker too, and the worker may hand records back early."""

from __future__ import annotations

import json
from typing import Any

from infra_harness import Recorded

FUNCTION = "aws:lambda/function:Function"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
QUEUE = "aws:sqs/queue:Queue"
CONSUME = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]


def worker_statements(stage: Recorded) -> dict[str, dict[str, Any]]:
    document = json.loads(stage.one(ROLE_POLICY, "worker").inputs["policy"])
    return {statement["Sid"]: statement for statement in document["Statement"] if "Sid" in statement}


def test_the_dead_letter_queue_has_its_own_small_mapping_to_the_worker(stage: Recorded) -> None:
    dlq = stage.one(QUEUE, "turns-dlq")
    worker = stage.one(FUNCTION, "worker")
    mapping = stage.one(MAPPING, "worker-trigger-dead-letters")
    assert mapping.inputs["eventSourceArn"] == dlq.outputs["arn"]
    assert mapping.inputs["functionName"] == worker.outputs["arn"]
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= mapping.inputs["batchSize"] <= 5
    assert mapping.inputs["scalingConfig"] == {"maximumConcurrency": 2}  # Lambda's least
    assert stage.depends_on(mapping, stage.one(ROLE_POLICY, "worker"))
    # Lambda refuses a source queue whose visibility timeout is shorter than the function's timeout.
    assert dlq.inputs["visibilityTimeoutSeconds"] >= worker.inputs["timeout"]
    assert len(stage.of_type(MAPPING)) == 2


def test_the_worker_knows_which_records_are_dead_letters(stage: Recorded) -> None:
    env = stage.one(FUNCTION, "worker").inputs["environment"]["variables"]
    assert env["DEAD_LETTER_QUEUE_ARN"] == stage.one(QUEUE, "turns-dlq").outputs["arn"]


def test_the_worker_may_consume_both_queues_and_hand_records_back_early(stage: Recorded) -> None:
    statements = worker_statements(stage)
    assert statements["ConsumeTurns"]["Action"] == CONSUME
    assert statements["ConsumeTurns"]["Resource"] == stage.one(QUEUE, "turns").outputs["arn"]
    assert statements["ConsumeDeadLetters"]["Action"] == CONSUME
    assert statements["ConsumeDeadLetters"]["Resource"] == stage.one(QUEUE, "turns-dlq").outputs["arn"]
    gateway = json.loads(stage.one(ROLE_POLICY, "gateway").inputs["policy"])["Statement"]
    assert not any(stage.one(QUEUE, "turns-dlq").outputs["arn"] == s["Resource"] for s in gateway)
