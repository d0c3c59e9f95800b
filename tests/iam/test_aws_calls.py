"""The IAM evaluation of recorded calls (courier_local.aws_calls) decides like IAM would.

Checked against the dev stack's real policies, as the Pulumi program declares them: calls each
function makes in AWS are allowed, calls outside its statements are denied, and the Bedrock
inference-profile pattern (profile ARN + foundation models, conditioned on the profile) holds.
"""

from __future__ import annotations

import pytest

from courier_infra.deployment import Deployment
from courier_local.aws_calls import AwsCall, authorizations, evaluate
from courier_local.lambda_runtime import access_key_of
from courier_local.stack import load_deployment


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return load_deployment("dev")


def call_by(deployment: Deployment, function: str, service: str, operation: str, **params: str) -> AwsCall:
    spec = deployment.function(function)
    return AwsCall(access_key_of(spec.function_name), service, operation, deployment.region, params)


def turn_queue(deployment: Deployment) -> str:
    return next(queue.url for queue in deployment.queues if queue.dead_letter_target_arn is not None)


def test_what_each_function_does_in_aws_is_allowed(deployment: Deployment) -> None:
    bucket = deployment.buckets[0]
    model_id = deployment.function("worker").environment["MODEL_ID"]
    calls = [
        call_by(deployment, "gateway", "sqs", "SendMessage", QueueUrl=turn_queue(deployment)),
        call_by(deployment, "worker", "apigatewaymanagementapi", "PostToConnection", ConnectionId="abc="),
        # What the event source mapping does with the worker's role (a batch is its single action).
        call_by(deployment, "worker", "sqs", "ReceiveMessage", QueueUrl=turn_queue(deployment)),
        call_by(deployment, "worker", "sqs", "DeleteMessageBatch", QueueUrl=turn_queue(deployment)),
        call_by(deployment, "worker", "s3", "PutObject", Bucket=bucket, Key="turns/t1/answer.txt"),
        call_by(deployment, "worker", "bedrock-runtime", "ConverseStream", modelId=model_id),
    ]
    evaluation = evaluate(calls, deployment)
    assert evaluation.denied == [] and evaluation.unattributed == []
    assert ("worker", "InvokeInferenceProfile") in evaluation.exercised
    assert ("worker", "InvokeModelInDestinationRegionsViaProfile") in evaluation.exercised
    assert ("gateway", "EnqueueTurns") not in evaluation.unexercised


def test_a_call_outside_the_functions_statements_is_denied(deployment: Deployment) -> None:
    calls = [
        # The gateway may enqueue but never post to connections; the worker may not send to the queue.
        call_by(deployment, "gateway", "apigatewaymanagementapi", "PostToConnection", ConnectionId="abc="),
        call_by(deployment, "worker", "sqs", "SendMessage", QueueUrl=turn_queue(deployment)),
        call_by(deployment, "worker", "s3", "PutObject", Bucket="someone-elses-bucket", Key="k"),
    ]
    evaluation = evaluate(calls, deployment)
    assert [(function, check.action) for function, check in evaluation.denied] == [
        ("gateway", "execute-api:ManageConnections"),
        ("worker", "sqs:SendMessage"),
        ("worker", "s3:PutObject"),
    ]
    assert not evaluation.ok


def test_another_model_than_the_declared_one_is_denied(deployment: Deployment) -> None:
    other = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
    evaluation = evaluate(
        [call_by(deployment, "worker", "bedrock-runtime", "ConverseStream", modelId=other)], deployment
    )
    assert evaluation.denied and all(check.action.startswith("bedrock:") for _, check in evaluation.denied)


def test_the_profile_pattern_is_checked_on_every_destination_region(deployment: Deployment) -> None:
    model_id = deployment.function("worker").environment["MODEL_ID"]
    checks = authorizations(
        call_by(deployment, "worker", "bedrock-runtime", "ConverseStream", modelId=model_id), deployment
    )
    profile, *models = checks
    assert profile.resource.endswith(f":inference-profile/{model_id}")
    assert len(models) >= 2 and all(":foundation-model/" in check.resource for check in models)
    assert {check.context["bedrock:InferenceProfileArn"] for check in models} == {profile.resource}


def test_calls_with_no_functions_credentials_are_reported(deployment: Deployment) -> None:
    stray = AwsCall(
        "AKIASTRAY", "sqs", "SendMessage", deployment.region, {"QueueUrl": turn_queue(deployment)}
    )
    evaluation = evaluate([stray], deployment)
    assert evaluation.unattributed == [stray] and not evaluation.ok
