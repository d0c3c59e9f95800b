"""The one place the local stack departs from what Pulumi declares: `courier_local.stack.localize`.

Checked on the dev stack's real declarations: every AWS-only value has a local meaning, everything
else passes through unchanged, and a value naming AWS that no rule maps stops the stack.
"""

from __future__ import annotations

import pytest

from courier_infra.deployment import Deployment
from courier_local.stack import LocalEndpoints, StackError, StackOptions, load_deployment, localize


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return load_deployment("dev")


def endpoints(deployment: Deployment) -> LocalEndpoints:
    return LocalEndpoints(
        database_url="sqlite:///local.db",
        queue_urls={
            queue.url: f"http://127.0.0.1:1/123456789012/{queue.name}" for queue in deployment.queues
        },
        sqs_endpoint_url="http://127.0.0.1:1",
        s3_endpoint_url="http://127.0.0.1:1",
        connections_url="http://127.0.0.1:2/dev",
        jwks_url="http://127.0.0.1:2/dev/jwks.json",
        bedrock_endpoint_url="http://127.0.0.1:3",
        model_id=None,
    )


def test_no_declared_function_keeps_a_value_that_names_aws(deployment: Deployment) -> None:
    local = endpoints(deployment)
    for spec in deployment.functions.values():
        environment = localize(spec, local, StackOptions())
        naming_aws = {
            key: value
            for key, value in environment.items()
            if "amazonaws.com" in value or value.startswith("arn:aws:secretsmanager")
        }
        assert naming_aws == {}, spec.name
        assert not any(key.startswith("DB_") and key != "DB_POOL_SIZE" for key in environment), spec.name


def test_what_only_aws_has_becomes_its_stand_in_and_the_rest_passes_through(deployment: Deployment) -> None:
    local = endpoints(deployment)
    gateway, worker = deployment.function("gateway"), deployment.function("worker")
    gateway_env = localize(gateway, local, StackOptions())
    assert gateway_env["DATABASE_URL"] == "sqlite:///local.db"
    assert gateway_env["TURN_QUEUE_URL"] == local.queue_urls[gateway.environment["TURN_QUEUE_URL"]]
    assert gateway_env["MAX_OPEN_TURNS"] == gateway.environment["MAX_OPEN_TURNS"]  # limits as declared
    worker_env = localize(worker, local, StackOptions())
    assert worker_env["MODEL_ID"] == worker.environment["MODEL_ID"]  # the stack's region-correct id
    assert worker_env["BEDROCK_ENDPOINT_URL"] == "http://127.0.0.1:3"
    assert worker_env["CONNECTIONS_ENDPOINT_URL"] == "http://127.0.0.1:2/dev"


def test_a_new_aws_value_without_a_local_rule_stops_the_stack(deployment: Deployment) -> None:
    gateway = deployment.function("gateway")
    added = gateway.model_copy(
        update={"environment": {**gateway.environment, "AUDIT_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:audit"}}
    )
    with pytest.raises(StackError, match="AUDIT_TOPIC_ARN"):
        localize(added, endpoints(deployment), StackOptions())


def test_a_thinking_budget_asked_of_courier_dev_reaches_the_worker_only(deployment: Deployment) -> None:
    local, options = endpoints(deployment), StackOptions(thinking_budget_tokens=1024)
    worker_env = localize(deployment.function("worker"), local, options)
    assert (worker_env["THINKING_BUDGET_TOKENS"], worker_env["MAX_OUTPUT_TOKENS"]) == ("1024", "3072")
    assert "THINKING_BUDGET_TOKENS" not in localize(deployment.function("gateway"), local, options)
    off = localize(deployment.function("worker"), local, StackOptions(thinking_budget_tokens=0))
    assert "THINKING_BUDGET_TOKENS" not in off
