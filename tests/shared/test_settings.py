"""Database settings: embedded by default, DATABASE_URL when given, the RDS secret in AWS."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from courier_shared.settings import DatabaseSettings


def test_no_configuration_means_the_embedded_sqlite_file(monkeypatch):
    for name in ("DATABASE_URL", "DB_HOST", "DB_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    assert DatabaseSettings().resolved_url() == "sqlite:///.courier/courier.db"


def test_database_url_wins(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("DB_HOST", "ignored")
    monkeypatch.setenv("DB_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:x")
    assert DatabaseSettings().resolved_url() == "postgresql+psycopg://u@h/db"


def test_in_aws_the_url_is_built_from_the_rds_secret_with_tls_required(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DB_HOST", "db.internal")
    monkeypatch.setenv("DB_NAME", "courier")
    monkeypatch.setenv("DB_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:x")
    settings = DatabaseSettings()
    secret = json.dumps({"username": "courier", "password": "p@ss/word"})
    assert settings.needs_secret
    assert settings.resolved_url(secret) == (
        "postgresql+psycopg://courier:p%40ss%2Fword@db.internal:5432/courier?sslmode=require"
    )
    with pytest.raises(ValueError, match="secret is needed"):
        settings.resolved_url()


def test_a_host_without_a_secret_is_refused_at_cold_start(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DB_SECRET_ARN", raising=False)
    monkeypatch.setenv("DB_HOST", "db.internal")
    with pytest.raises(ValidationError, match="DB_SECRET_ARN"):
        DatabaseSettings()
