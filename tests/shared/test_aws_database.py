"""Connecting like a Lambda in AWS: the RDS-managed secret from Secrets Manager, or an IAM token.

Both run against the real Postgres server (trust auth accepts any password, so the test inspects
the password each new connection actually presented) and moto's Secrets Manager over HTTP.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from courier_local.edge.sqs import LocalMoto
from courier_shared.db.aws import connect
from courier_shared.settings import DatabaseSettings

# `connect` logs through the service's logger; nothing here (rotation: test_db_credential_rotation.py).
LOGGER = logging.getLogger(__name__)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto: LocalMoto) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.endpoint_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)


def _target(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = make_url(postgres_url)
    monkeypatch.setenv("DB_HOST", url.host or "127.0.0.1")
    monkeypatch.setenv("DB_PORT", str(url.port or 5432))
    monkeypatch.setenv("DB_NAME", url.database or "postgres")
    monkeypatch.setenv("DB_SSLMODE", "disable")  # the test server has no TLS; AWS defaults to require


def _passwords_presented(engine: Any) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine, "do_connect")
    def remember(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        seen.append(params.get("password", ""))

    return seen


def test_the_rds_managed_secret_logs_in_and_its_password_is_never_kept_in_the_url(
    aws_env, moto, postgres_url, monkeypatch
):
    secrets = moto.client("secretsmanager")
    arn = secrets.create_secret(
        Name="rds!db-courier", SecretString=json.dumps({"username": "postgres", "password": "s3cr/et"})
    )["ARN"]
    _target(postgres_url, monkeypatch)
    monkeypatch.setenv("DB_SECRET_ARN", arn)

    engine = connect(DatabaseSettings(), logger=LOGGER)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM turns")) is not None
    # Presented per connection from the cached secret (rotation: test_db_credential_rotation.py).
    assert engine.url.password is None and engine.url.username == "postgres"
    engine.dispose()


def test_iam_auth_presents_a_fresh_token_for_every_new_connection(aws_env, postgres_url, monkeypatch):
    _target(postgres_url, monkeypatch)
    monkeypatch.setenv("DB_IAM_AUTH", "true")
    monkeypatch.setenv("DB_USER", "postgres")
    monkeypatch.setenv("DB_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:not-readable")

    engine = connect(DatabaseSettings(), logger=LOGGER, region="us-east-1")
    presented = _passwords_presented(engine)
    with engine.connect() as first, engine.connect() as second:
        assert first.scalar(text("SELECT 1")) == second.scalar(text("SELECT 1")) == 1
    engine.dispose()

    assert engine.url.password is None  # never a password in the URL
    assert len(presented) == 2
    for token in presented:
        assert "Action=connect" in token and "DBUser=postgres" in token and "X-Amz-Signature=" in token


def test_iam_auth_without_a_user_is_refused_at_cold_start(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DB_USER", raising=False)
    monkeypatch.setenv("DB_HOST", "proxy.internal")
    monkeypatch.setenv("DB_IAM_AUTH", "true")
    with pytest.raises(ValueError, match="DB_USER"):
        DatabaseSettings()
