"""Who logs in to the database, and how: the gateway and worker as the application role with IAM
authentication (no password to rotate, no access to the master secret); only the migrator uses the
RDS-managed master secret, directly against the instance, and it is told which role to keep in shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from infra_harness import ACCOUNT, Recorded, run_program, stack_file_config

from courier_infra import packaging
from courier_infra.config import ConfigError, load_stack_config

FUNCTION = "aws:lambda/function:Function"
APPLICATION = ("gateway", "worker")
INSTANCE_USER = f"arn:aws:rds-db:eu-west-1:{ACCOUNT}:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXY0/courier_app"
PROXY_USER = f"arn:aws:rds-db:eu-west-1:{ACCOUNT}:dbuser:prx-0123456789abcdef0/courier_app"


@pytest.fixture(scope="module")
def with_proxy(artifacts: Mapping[str, packaging.Artifact]) -> Recorded:
    return run_program("dev", {**stack_file_config("dev"), "courier:rdsProxy": "true"}, artifacts)


def env(recorded: Recorded, service: str) -> dict[str, str]:
    variables: dict[str, str] = recorded.one(FUNCTION, service).inputs["environment"]["variables"]
    return variables


def statements(recorded: Recorded, name: str) -> list[dict[str, Any]]:
    document = json.loads(recorded.one("aws:iam/rolePolicy:RolePolicy", name).inputs["policy"])
    found: list[dict[str, Any]] = document["Statement"]
    return found


def actions(recorded: Recorded, name: str) -> set[str]:
    return {action for s in statements(recorded, name) for action in s["Action"]}


def test_the_application_logs_in_as_its_own_role_with_iam_never_as_master(stage: Recorded) -> None:
    master = stage.config.db_master_username
    for service in APPLICATION:
        variables = env(stage, service)
        assert (variables["DB_IAM_AUTH"], variables["DB_USER"]) == ("true", "courier_app"), service
        assert "DB_SECRET_ARN" not in variables, service
        assert master not in json.dumps(variables), service
        # No secret but the gateway's own cursor key (tests/infra/test_infra_cursor_key.py).
        secret_reads = [
            s for s in statements(stage, service) if any(a.startswith("secretsmanager:") for a in s["Action"])
        ]
        assert [s["Sid"] for s in secret_reads] in ([], ["ReadCursorKey"]), service
        connect = [s for s in statements(stage, service) if "rds-db:connect" in s["Action"]]
        assert connect == [
            {
                "Sid": "ConnectAsApplication",
                "Effect": "Allow",
                "Action": ["rds-db:connect"],
                "Resource": INSTANCE_USER,
            }
        ]


def test_the_instance_accepts_iam_logins(stage: Recorded) -> None:
    instance = stage.one("aws:rds/instance:Instance", "database").inputs
    assert instance["iamDatabaseAuthenticationEnabled"] is True
    assert instance["manageMasterUserPassword"] is True  # the master password: RDS's, rotated by RDS


def test_only_the_migrator_reads_the_master_secret_and_it_names_the_application_role(stage: Recorded) -> None:
    instance = stage.one("aws:rds/instance:Instance", "database").outputs
    secret_arn = instance["masterUserSecrets"][0]["secretArn"]
    variables = env(stage, "migrator")
    assert variables["DB_SECRET_ARN"] == secret_arn
    assert variables["DB_APP_USER"] == "courier_app"
    assert variables["DB_HOST"] == instance["address"]
    assert "DB_IAM_AUTH" not in variables
    read = [s for s in statements(stage, "migrator") if s["Sid"] == "ReadDatabaseSecret"]
    assert read == [
        {
            "Sid": "ReadDatabaseSecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": secret_arn,
        }
    ]
    assert "rds-db:connect" not in actions(stage, "migrator")


def test_through_the_proxy_the_application_uses_iam_end_to_end_and_the_migrator_goes_direct(
    with_proxy: Recorded,
) -> None:
    proxy = with_proxy.one("aws:rds/proxy:Proxy", "database")
    assert proxy.inputs["defaultAuthScheme"] == "IAM_AUTH"
    assert not proxy.inputs.get("auths")  # no secret: the proxy logs in to the database with IAM too
    assert statements(with_proxy, "database-proxy") == [
        {
            "Sid": "ConnectAsApplication",
            "Effect": "Allow",
            "Action": ["rds-db:connect"],
            "Resource": INSTANCE_USER,
        }
    ]
    for service in APPLICATION:
        assert env(with_proxy, service)["DB_HOST"] == proxy.outputs["endpoint"], service
        connect = next(s for s in statements(with_proxy, service) if s["Sid"] == "ConnectAsApplication")
        assert connect["Resource"] == PROXY_USER, service
    instance = with_proxy.one("aws:rds/instance:Instance", "database").outputs
    assert env(with_proxy, "migrator")["DB_HOST"] == instance["address"]


def test_the_application_role_cannot_be_the_master_user() -> None:
    with pytest.raises(ConfigError, match="dbAppUser"):
        load_stack_config("dev", {**stack_file_config("dev"), "courier:dbAppUser": "courier_admin"})
