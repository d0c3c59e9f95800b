"""The dev and prod stacks, built from their real stack files under Pulumi's mocks: resources and wiring."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from infra_harness import ACCOUNT, MIGRATIONS_HASH, Declared, Recorded

from courier_infra.iam import RESOURCELESS_ACTIONS
from courier_shared.catalog import invoke_policy
from courier_shared.routes import ROUTE_SELECTION_EXPRESSION, ROUTES

FUNCTION = "aws:lambda/function:Function"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
COMMON_ENV = {"POWERTOOLS_SERVICE_NAME", "LOG_LEVEL", "STAGE"}
DB_ENV = {"DB_HOST", "DB_PORT", "DB_NAME", "DB_IAM_AUTH", "DB_USER"}  # the application role, IAM auth
MIGRATOR_DB_ENV = {"DB_HOST", "DB_PORT", "DB_NAME", "DB_SECRET_ARN", "DB_APP_USER"}  # the master secret
EXPECTED_ENV = {
    "authorizer": COMMON_ENV
    | {"JWT_ISSUER", "JWT_AUDIENCE", "JWKS_URL", "TENANT_CLAIM", "DEV_ISSUER_ENABLED"},
    "gateway": COMMON_ENV
    | DB_ENV
    | {
        "TURN_QUEUE_URL",
        "MAX_MESSAGE_CHARS",
        "SEND_RATE_PER_MINUTE",
        "MAX_OPEN_TURNS",
        "CURSOR_KEY_SECRET_ARN",
    },
    "worker": COMMON_ENV
    | DB_ENV
    | {
        "MODEL_ID",
        "BEDROCK_REGION",
        "CONNECTIONS_ENDPOINT_URL",
        "BODY_BUCKET",
        "FLUSH_INTERVAL_MS",
        "LISTENER_GRACE_S",
        "DEAD_LETTER_QUEUE_ARN",
    },
    "migrator": COMMON_ENV | MIGRATOR_DB_ENV,
}


def function(recorded: Recorded, service: str) -> Declared:
    return recorded.one(FUNCTION, service)


def policy(recorded: Recorded, name: str) -> list[dict[str, Any]]:
    document = json.loads(recorded.one(ROLE_POLICY, name).inputs["policy"])
    assert document["Version"] == "2012-10-17"
    statements: list[dict[str, Any]] = document["Statement"]
    return statements


def by_sid(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {statement["Sid"]: statement for statement in statements}


# --- functions -------------------------------------------------------------------------------------------


def test_every_function_runs_python_313_on_arm64_without_xray_and_with_the_agreed_settings(
    stage: Recorded,
) -> None:
    for service, names in EXPECTED_ENV.items():
        inputs = function(stage, service).inputs
        assert inputs["runtime"] == "python3.13"
        assert inputs["architectures"] == ["arm64"]
        assert inputs["handler"] == f"courier_{service}.handler.lambda_handler"
        assert inputs["tracingConfig"] == {"mode": "PassThrough"}
        assert set(inputs["environment"]["variables"]) == names, service
        assert inputs["environment"]["variables"]["STAGE"] == stage.config.stage
        assert inputs["loggingConfig"]["logGroup"] == f"/aws/lambda/courier-{stage.config.stage}-{service}"


def test_database_users_run_in_the_private_subnets_and_the_authorizer_does_not(stage: Recorded) -> None:
    private = {
        f"{subnet.name}-id"  # the mocks' id scheme
        for subnet in stage.of_type("aws:ec2/subnet:Subnet")
        if "private" in subnet.name
    }
    for service in ("gateway", "worker", "migrator"):
        vpc = function(stage, service).inputs["vpcConfig"]
        assert set(vpc["subnetIds"]) == private
        assert vpc["securityGroupIds"] == ["network-lambda-id"]
    assert "vpcConfig" not in function(stage, "authorizer").inputs


def test_worker_settings_point_at_this_stack(dev: Recorded) -> None:
    env = function(dev, "worker").inputs["environment"]["variables"]
    assert env["CONNECTIONS_ENDPOINT_URL"] == "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/dev"
    assert env["MODEL_ID"] == dev.stack.model.model_id
    assert env["BEDROCK_REGION"] == "eu-west-1"
    assert env["BODY_BUCKET"] == dev.one("aws:s3/bucket:Bucket", "bodies").outputs["bucket"]
    assert (env["DB_IAM_AUTH"], env["DB_USER"]) == ("true", "courier_app")
    gateway_env = function(dev, "gateway").inputs["environment"]["variables"]
    assert gateway_env["TURN_QUEUE_URL"].endswith("/courier-dev-turns.fifo")
    authorizer_env = function(dev, "authorizer").inputs["environment"]["variables"]
    assert authorizer_env["DEV_ISSUER_ENABLED"] == "false"
    assert authorizer_env["JWT_ISSUER"] == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEfGhI"
    assert authorizer_env["JWKS_URL"] == authorizer_env["JWT_ISSUER"] + "/.well-known/jwks.json"
    assert authorizer_env["JWT_AUDIENCE"] == "1example23456789"


# --- WebSocket API ---------------------------------------------------------------------------------------


def test_routes_come_from_the_route_table_and_reach_the_right_functions(stage: Recorded) -> None:
    api = stage.one("aws:apigatewayv2/api:Api", "websocket")
    assert api.inputs["protocolType"] == "WEBSOCKET"
    assert api.inputs["routeSelectionExpression"] == ROUTE_SELECTION_EXPRESSION
    integrations = {
        i.outputs.get("id", f"{i.name}-id"): i
        for i in stage.of_type("aws:apigatewayv2/integration:Integration")
    }
    routes = {route.inputs["routeKey"]: route for route in stage.of_type("aws:apigatewayv2/route:Route")}
    assert set(routes) == {route.key for route in ROUTES}
    authorizer = stage.one("aws:apigatewayv2/authorizer:Authorizer", "websocket")
    for entry in ROUTES:
        route = routes[entry.key]
        integration_id = route.inputs["target"].removeprefix("integrations/")
        integration = stage.one(
            "aws:apigatewayv2/integration:Integration", integration_id.removesuffix("-id")
        )
        assert integration_id in integrations
        assert integration.inputs["integrationType"] == "AWS_PROXY"
        target_function = function(stage, str(entry.function))
        assert integration.inputs["integrationUri"] == target_function.outputs["invokeArn"]
        if entry.key == "$connect":
            assert route.inputs["authorizationType"] == "CUSTOM"
            assert route.inputs["authorizerId"] == "websocket-id"
        else:
            assert route.inputs["authorizationType"] == "NONE"
            assert "authorizerId" not in route.inputs
        assert (route.inputs.get("routeResponseSelectionExpression") == "$default") == entry.two_way
    responses = stage.of_type("aws:apigatewayv2/routeResponse:RouteResponse")
    assert {r.inputs["routeId"] for r in responses} == {
        f"{routes[e.key].name}-id" for e in ROUTES if e.two_way
    }
    assert authorizer.inputs["authorizerType"] == "REQUEST"
    assert authorizer.inputs["authorizerUri"] == function(stage, "authorizer").outputs["invokeArn"]


def test_api_gateway_may_invoke_the_gateway_and_authorizer_only_from_this_api(stage: Recorded) -> None:
    execution_arn = stage.one("aws:apigatewayv2/api:Api", "websocket").outputs["executionArn"]
    permissions = {p.name: p.inputs for p in stage.of_type("aws:lambda/permission:Permission")}
    assert permissions["websocket-gateway"]["sourceArn"] == f"{execution_arn}/{stage.config.stage}/*"
    assert permissions["websocket-gateway"]["function"] == f"courier-{stage.config.stage}-gateway"
    assert permissions["websocket-authorizer"]["sourceArn"] == f"{execution_arn}/authorizers/websocket-id"
    assert {p["principal"] for p in permissions.values()} == {"apigateway.amazonaws.com"}


def test_deployment_follows_the_routes_and_the_stage_throttles_and_logs_safely(stage: Recorded) -> None:
    deployment = stage.one("aws:apigatewayv2/deployment:Deployment", "websocket")
    for route in stage.of_type("aws:apigatewayv2/route:Route"):
        assert stage.depends_on(deployment, route), route.name
    assert set(deployment.inputs["triggers"]) == {"routes", "integrations"}
    api_stage = stage.one("aws:apigatewayv2/stage:Stage", "websocket")
    assert api_stage.inputs["name"] == stage.config.stage
    assert api_stage.inputs["deploymentId"] == "websocket-id"
    settings = api_stage.inputs["defaultRouteSettings"]
    assert settings["throttlingRateLimit"] == stage.config.throttle_rate_limit
    assert settings["throttlingBurstLimit"] == stage.config.throttle_burst_limit
    assert settings["dataTraceEnabled"] is False
    log_format = api_stage.inputs["accessLogSettings"]["format"]
    assert "$context.connectionId" in json.loads(log_format).values()
    assert (
        "querystring" not in log_format and "header" not in log_format and "token" not in log_format.lower()
    )
    if stage.config.api_gateway_logging_role:  # one stack per account and region owns it
        account = stage.one("aws:apigateway/account:Account", "websocket-account")
        assert stage.depends_on(api_stage, account)


def test_changing_the_route_table_changes_the_deployment_trigger(monkeypatch: pytest.MonkeyPatch) -> None:
    from courier_infra.components import websocket_api
    from courier_shared.routes import Function, Route

    before = websocket_api.route_table_digest()
    monkeypatch.setattr(websocket_api, "ROUTES", (*ROUTES, Route("export", Function.GATEWAY, two_way=True)))
    assert websocket_api.route_table_digest() != before


# --- queue and event source ------------------------------------------------------------------------------


def test_queue_is_fifo_encrypted_and_redrives_to_its_fifo_dlq(stage: Recorded) -> None:
    queue = stage.one("aws:sqs/queue:Queue", "turns")
    dlq = stage.one("aws:sqs/queue:Queue", "turns-dlq")
    for item in (queue, dlq):
        assert item.inputs["fifoQueue"] is True
        assert item.inputs["name"].endswith(".fifo")
        assert item.inputs["sqsManagedSseEnabled"] is True
    redrive = json.loads(queue.inputs["redrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dlq.outputs["arn"], "maxReceiveCount": 5}
    worker_timeout = function(stage, "worker").inputs["timeout"]
    assert queue.inputs["visibilityTimeoutSeconds"] >= 6 * worker_timeout


def test_event_source_mapping_drives_the_worker_from_the_queue(stage: Recorded) -> None:
    mapping = stage.one("aws:lambda/eventSourceMapping:EventSourceMapping", "worker-trigger")
    assert mapping.inputs["eventSourceArn"] == stage.one("aws:sqs/queue:Queue", "turns").outputs["arn"]
    assert mapping.inputs["functionName"] == function(stage, "worker").outputs["arn"]
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping.inputs["scalingConfig"] == {"maximumConcurrency": stage.config.worker_max_concurrency}
    assert 1 <= mapping.inputs["batchSize"] <= 10
    assert stage.depends_on(mapping, stage.one(ROLE_POLICY, "worker"))


# --- release ---------------------------------------------------------------------------------------------


def test_migrations_run_after_the_database_and_before_new_gateway_and_worker_code(stage: Recorded) -> None:
    invocation = stage.one("aws:lambda/invocation:Invocation", "migrations")
    assert invocation.inputs["functionName"] == f"courier-{stage.config.stage}-migrator"
    assert invocation.inputs["triggers"]["migrations"] == MIGRATIONS_HASH  # more: test_infra_release.py
    assert json.loads(invocation.inputs["input"]) == {"command": "upgrade", "revision": "head"}
    assert stage.depends_on(invocation, stage.one("aws:rds/instance:Instance", "database"))
    assert stage.depends_on(invocation, function(stage, "migrator"))
    for service in ("gateway", "worker"):
        assert stage.depends_on(function(stage, service), invocation), service
    assert not stage.depends_on(function(stage, "migrator"), invocation)


def test_migration_trigger_is_a_hash_of_the_migrations_folder(tmp_path: Any) -> None:
    from courier_infra.stack import migrations_hash

    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    (tmp_path / "alembic.ini").write_text("[alembic]\n")
    (tmp_path / "migrations" / "versions" / "0001.py").write_text("revision = '0001'\n")
    first = migrations_hash(tmp_path)
    (tmp_path / "migrations" / "versions" / "__pycache__").mkdir()
    (tmp_path / "migrations" / "versions" / "__pycache__" / "0001.cpython-311.pyc").write_bytes(b"\0")
    assert migrations_hash(tmp_path) == first  # caches don't trigger a release
    (tmp_path / "migrations" / "versions" / "0002.py").write_text("revision = '0002'\n")
    assert migrations_hash(tmp_path) != first


# --- stage differences -----------------------------------------------------------------------------------


def test_prod_has_a_nat_per_az_and_dev_shares_one(dev: Recorded, prod: Recorded) -> None:
    assert len(dev.of_type("aws:ec2/natGateway:NatGateway")) == 1
    assert len(prod.of_type("aws:ec2/natGateway:NatGateway")) == 2
    for recorded, expected in ((dev, 1), (prod, 2)):
        private_routes = [t for t in recorded.of_type("aws:ec2/routeTable:RouteTable") if "private" in t.name]
        nats = {t.inputs["routes"][0]["natGatewayId"] for t in private_routes}
        assert len(private_routes) == 2 and len(nats) == expected


def test_prod_database_is_multi_az_protected_and_backed_up(dev: Recorded, prod: Recorded) -> None:
    dev_db = dev.one("aws:rds/instance:Instance", "database").inputs
    prod_db = prod.one("aws:rds/instance:Instance", "database").inputs
    assert (dev_db["multiAz"], prod_db["multiAz"]) == (False, True)
    assert (dev_db["deletionProtection"], prod_db["deletionProtection"]) == (False, True)
    assert (dev_db["skipFinalSnapshot"], prod_db["skipFinalSnapshot"]) == (True, False)
    assert prod_db["backupRetentionPeriod"] > dev_db["backupRetentionPeriod"] >= 1
    for db in (dev_db, prod_db):
        assert db["publiclyAccessible"] is False
        assert db["storageEncrypted"] is True
        assert db["manageMasterUserPassword"] is True
        assert "password" not in db
    pools = [r.one("aws:cognito/userPool:UserPool", "auth").inputs["deletionProtection"] for r in (dev, prod)]
    assert pools == ["INACTIVE", "ACTIVE"]
    for recorded in (dev, prod):
        parameters = recorded.one("aws:rds/parameterGroup:ParameterGroup", "database").inputs
        assert {"name": "rds.force_ssl", "value": "1"} in parameters["parameters"]


def test_log_retention_and_alarm_routing_differ_per_stage(dev: Recorded, prod: Recorded) -> None:
    for recorded, days in ((dev, 7), (prod, 30)):
        groups = recorded.of_type("aws:cloudwatch/logGroup:LogGroup")
        assert len(groups) == 5  # four functions + API access logs
        assert {g.inputs["retentionInDays"] for g in groups} == {days}
    assert dev.of_type("aws:sns/topic:Topic") == []
    topic = prod.one("aws:sns/topic:Topic", "alarms")
    assert topic.inputs["kmsMasterKeyId"] == prod.one("aws:kms/key:Key", "alarms").outputs["arn"]
    names = {a.inputs["metricName"] for a in prod.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert names == {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "Errors",
        "Throttles",
    }
    for alarm in prod.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert alarm.inputs["alarmActions"] == [topic.outputs["arn"]]
    for alarm in dev.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert not alarm.inputs.get("alarmActions")
    dlq_alarm = prod.one("aws:cloudwatch/metricAlarm:MetricAlarm", "alarms-dlq-depth")
    assert dlq_alarm.inputs["dimensions"] == {"QueueName": "courier-prod-turns-dlq.fifo"}


def test_interface_endpoints_are_optional_and_never_execute_api(dev: Recorded, prod: Recorded) -> None:
    assert dev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") == []
    services = {e.inputs["serviceName"] for e in prod.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert services == {"com.amazonaws.eu-west-1.bedrock-runtime", "com.amazonaws.eu-west-1.secretsmanager"}


def test_body_bucket_is_private_encrypted_tls_only_and_expires(stage: Recorded) -> None:
    bucket = stage.one("aws:s3/bucket:Bucket", "bodies").outputs["bucket"]
    block = stage.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "bodies").inputs
    assert block["bucket"] == bucket
    assert all(
        block[k]
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    encryption = stage.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "bodies"
    ).inputs
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    deny = json.loads(stage.one("aws:s3/bucketPolicy:BucketPolicy", "bodies").inputs["policy"])["Statement"][
        0
    ]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    lifecycle = stage.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "bodies").inputs
    expiry = next(rule for rule in lifecycle["rules"] if rule["id"] == "expire-bodies")
    assert expiry["expiration"]["days"] == stage.config.body_expiration_days


# --- IAM -------------------------------------------------------------------------------------------------


def test_every_policy_is_least_privilege_statement_by_statement(stage: Recorded) -> None:
    policies = stage.of_type(ROLE_POLICY)
    assert {p.name for p in policies} == {
        "authorizer",
        "gateway",
        "worker",
        "migrator",
        *(["websocket-cloudwatch"] if stage.config.api_gateway_logging_role else []),
    }
    for item in policies:
        for statement in policy(stage, item.name):
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            assert not [a for a in actions if "*" in a], (item.name, statement)
            if "*" in resources:
                assert set(actions) <= RESOURCELESS_ACTIONS, (item.name, statement)
            for resource in resources:
                assert resource == "*" or resource.startswith("arn:aws:"), (item.name, resource)


def test_each_role_trusts_only_its_service(stage: Recorded) -> None:
    for role in stage.of_type("aws:iam/role:Role"):
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        expected = (
            "apigateway.amazonaws.com" if role.name == "websocket-cloudwatch" else "lambda.amazonaws.com"
        )
        assert trust == [{"Effect": "Allow", "Principal": {"Service": expected}, "Action": "sts:AssumeRole"}]


def test_authorizer_may_only_log(stage: Recorded) -> None:
    assert set(by_sid(policy(stage, "authorizer"))) == {"WriteOwnLogs"}
    logs = by_sid(policy(stage, "authorizer"))["WriteOwnLogs"]
    assert logs["Resource"] == (
        f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/courier-{stage.config.stage}-authorizer:log-stream:*"
    )


def test_gateway_can_send_to_the_queue_but_not_read_it(stage: Recorded) -> None:
    statements = by_sid(policy(stage, "gateway"))
    assert set(statements) == {
        "WriteOwnLogs",
        "ManageVpcNetworkInterfaces",
        "ConnectAsApplication",
        "EnqueueTurns",
        "ReadCursorKey",
    }
    queue_arn = stage.one("aws:sqs/queue:Queue", "turns").outputs["arn"]
    assert statements["EnqueueTurns"]["Action"] == ["sqs:SendMessage"]
    assert statements["EnqueueTurns"]["Resource"] == queue_arn
    all_actions = {a for s in statements.values() for a in s["Action"]}
    assert not {"sqs:ReceiveMessage", "sqs:DeleteMessage"} & all_actions
    assert not any(a.startswith(("bedrock:", "execute-api:", "s3:")) for a in all_actions)


def test_worker_gets_exactly_the_catalog_policy_and_its_own_resources(stage: Recorded) -> None:
    statements = policy(stage, "worker")
    catalog_statements = invoke_policy(stage.stack.model, stage.config.model_region, ACCOUNT)
    bedrock = [s for s in statements if any(a.startswith("bedrock:") for a in s["Action"])]
    assert bedrock == catalog_statements
    named = by_sid([s for s in statements if s not in catalog_statements])
    assert set(named) == {
        "WriteOwnLogs",
        "ManageVpcNetworkInterfaces",
        "ConnectAsApplication",
        "ConsumeTurns",
        "ConsumeDeadLetters",
        "PostToConnections",
        "ReadWriteBodies",
    }
    execution_arn = stage.one("aws:apigatewayv2/api:Api", "websocket").outputs["executionArn"]
    assert named["PostToConnections"] == {
        "Sid": "PostToConnections",
        "Effect": "Allow",
        "Action": ["execute-api:ManageConnections"],
        "Resource": f"{execution_arn}/{stage.config.stage}/*/@connections/*",
    }
    assert named["ConsumeTurns"]["Action"] == [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
    ]
    assert named["ConsumeTurns"]["Resource"] == stage.one("aws:sqs/queue:Queue", "turns").outputs["arn"]
    bucket_arn = stage.one("aws:s3/bucket:Bucket", "bodies").outputs["arn"]
    assert named["ReadWriteBodies"]["Resource"] == f"{bucket_arn}/turns/*"
    assert named["ConnectAsApplication"]["Action"] == ["rds-db:connect"]
    # The exact ARNs: test_infra_database_logins.py.
    assert named["ConnectAsApplication"]["Resource"].endswith("/courier_app")
    assert not any(a.startswith("aws-marketplace:") for s in statements for a in s["Action"])


def test_migrator_reads_only_the_database_secret(stage: Recorded) -> None:
    assert set(by_sid(policy(stage, "migrator"))) == {
        "WriteOwnLogs",
        "ManageVpcNetworkInterfaces",
        "ReadDatabaseSecret",
    }


def test_rds_proxy_option_puts_the_proxy_between_the_application_and_the_database(artifacts: Any) -> None:
    from infra_harness import run_program, stack_file_config

    recorded = run_program("dev", {**stack_file_config("dev"), "courier:rdsProxy": "true"}, artifacts)
    proxy = recorded.one("aws:rds/proxy:Proxy", "database").inputs
    assert proxy["requireTls"] is True and proxy["defaultAuthScheme"] == "IAM_AUTH"
    env = function(recorded, "worker").inputs["environment"]["variables"]
    assert env["DB_HOST"].endswith(".proxy-abcdefghij.eu-west-1.rds.amazonaws.com")
    assert (env["DB_IAM_AUTH"], env["DB_USER"]) == ("true", "courier_app")
    connect = by_sid(policy(recorded, "worker"))["ConnectAsApplication"]
    assert connect["Action"] == ["rds-db:connect"]
    assert (
        connect["Resource"] == f"arn:aws:rds-db:eu-west-1:{ACCOUNT}:dbuser:prx-0123456789abcdef0/courier_app"
    )
    assert "ReadDatabaseSecret" not in by_sid(policy(recorded, "worker"))


def test_the_entry_point_builds_with_the_real_migrations_hash(
    artifacts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra_harness import run_entry_point, stack_file_config

    from courier_infra import stack as stack_module

    monkeypatch.setattr(stack_module, "default_builder", lambda: lambda service, arch: artifacts[service])
    monitor = run_entry_point("prod", stack_file_config("prod"))
    invocation = next(d for d in monitor.declared.values() if d.type == "aws:lambda/invocation:Invocation")
    assert invocation.inputs["triggers"]["migrations"] == stack_module.migrations_hash()
    assert len(stack_module.migrations_hash()) == 64
    functions = [d for d in monitor.declared.values() if d.type == FUNCTION]
    assert {f.name for f in functions} == {"authorizer", "gateway", "worker", "migrator"}


def test_xray_is_off_in_code_infra_and_iam_alike(stage: Recorded) -> None:
    """No function traces (PassThrough), no role may write traces, and no service has a tracer that
    would need either: the three agree (infra/src/courier_infra/components/functions.py says why)."""
    for service in EXPECTED_ENV:
        assert function(stage, service).inputs["tracingConfig"] == {"mode": "PassThrough"}
        assert "xray:" not in json.dumps(policy(stage, service)), service
    root = Path(__file__).resolve().parents[2]
    sources = [*(root / "services").rglob("*.py"), *(root / "shared").rglob("*.py")]
    tracer = re.compile(r"\bTracer\(|aws_xray_sdk|capture_lambda_handler")
    assert [str(path) for path in sources if tracer.search(path.read_text())] == []
