"""`courier login` against Cognito's wire protocol (moto's cognito-idp server over HTTP).

The pool and client are set up the way docs/deploy.md tells an operator to (admin-create-user with
the tenant attribute, admin-set-user-password --permanent), and the client allows the flows the
stack's app client allows.
"""

from __future__ import annotations

from typing import Any

import boto3
import jwt
import pytest
from typer.testing import CliRunner

from courier_local.cli import app
from courier_local.edge.sqs import LocalMoto

REGION = "eu-west-1"
PASSWORD = "Correct-Horse-42"  # meets the stack's policy: 12+ characters, upper, lower, digit
runner = CliRunner()


@pytest.fixture
def cognito(moto: LocalMoto, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", moto.endpoint_url)
    monkeypatch.delenv("COURIER_PASSWORD", raising=False)
    return boto3.client("cognito-idp", region_name=REGION)


@pytest.fixture
def pool(cognito: Any) -> dict[str, str]:
    pool_id = cognito.create_user_pool(
        PoolName="courier-dev",
        UsernameAttributes=["email"],
        Schema=[{"Name": "tenant_id", "AttributeDataType": "String", "Mutable": False}],
    )["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="auth",
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    return {"pool_id": pool_id, "client_id": client_id}


def create_user(cognito: Any, pool_id: str, email: str, *, permanent_password: bool) -> None:
    cognito.admin_create_user(
        UserPoolId=pool_id,
        Username=email,
        UserAttributes=[
            {"Name": "email", "Value": email},
            {"Name": "email_verified", "Value": "true"},
            {"Name": "custom:tenant_id", "Value": "acme"},
        ],
        TemporaryPassword="Temporary-Pass-1",
        MessageAction="SUPPRESS",
    )
    if permanent_password:
        cognito.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=PASSWORD, Permanent=True)


def login(
    client_id: str, username: str, *, password: str | None = None, env: dict[str, str] | None = None
) -> Any:
    args = ["login", "--client-id", client_id, "--region", REGION, "--username", username]
    return runner.invoke(app, args, input=None if password is None else f"{password}\n", env=env)


def test_login_prints_an_id_token_the_authorizer_can_read(cognito: Any, pool: dict[str, str]) -> None:
    create_user(cognito, pool["pool_id"], "ada@example.com", permanent_password=True)

    result = login(pool["client_id"], "ada@example.com", password=PASSWORD)

    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]  # after the hidden password prompt
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["token_use"] == "id"
    assert claims["aud"] == pool["client_id"]
    assert claims["custom:tenant_id"] == "acme"
    assert claims["iss"].endswith(pool["pool_id"])
    assert PASSWORD not in result.output


def test_the_password_can_come_from_the_environment(cognito: Any, pool: dict[str, str]) -> None:
    create_user(cognito, pool["pool_id"], "grace@example.com", permanent_password=True)

    result = login(pool["client_id"], "grace@example.com", env={"COURIER_PASSWORD": PASSWORD})

    assert result.exit_code == 0, result.output
    assert result.stdout.count(".") == 2  # only the token (header.payload.signature), no prompt


def test_a_wrong_password_is_refused_with_exit_code_4(cognito: Any, pool: dict[str, str]) -> None:
    create_user(cognito, pool["pool_id"], "alan@example.com", permanent_password=True)

    result = login(pool["client_id"], "alan@example.com", password="Wrong-Password-9")

    assert result.exit_code == 4
    assert "Sign-in refused (NotAuthorizedException)" in result.stderr
    assert "Wrong-Password-9" not in result.output


def test_a_user_without_a_permanent_password_is_told_what_to_do(cognito: Any, pool: dict[str, str]) -> None:
    create_user(cognito, pool["pool_id"], "edsger@example.com", permanent_password=False)

    result = login(pool["client_id"], "edsger@example.com", password="Temporary-Pass-1")

    assert result.exit_code == 5
    assert "NEW_PASSWORD_REQUIRED" in result.stderr
    assert "admin-set-user-password" in result.stderr


def test_an_unreachable_cognito_exits_with_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "http://127.0.0.1:9")  # discard port

    result = login("1example23456789", "ada@example.com", password=PASSWORD)

    assert result.exit_code == 3
    assert "Cannot reach Cognito" in result.stderr
