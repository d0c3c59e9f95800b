"""Connecting a Lambda to RDS: with the RDS-managed secret, or with an IAM token through RDS Proxy.

Needs the `aws` extra (boto3). Composition roots call `connect` once per container; the domain
never sees boto3.
"""

from __future__ import annotations

import boto3
from sqlalchemy import Engine

from courier_shared.db.engine import build_engine
from courier_shared.settings import DatabaseSettings


def connect(settings: DatabaseSettings, *, region: str | None = None) -> Engine:
    """The engine the settings describe (DATABASE_URL and the embedded file need no AWS call)."""
    if settings.uses_iam_auth:
        rds = boto3.client("rds", region_name=region)

        def iam_token() -> str:
            token: str = rds.generate_db_auth_token(
                DBHostname=str(settings.db_host), Port=settings.db_port, DBUsername=str(settings.db_user)
            )
            return token

        return build_engine(
            settings.resolved_url(), pool_size=settings.db_pool_size, rds_proxy=True, password=iam_token
        )
    secret = None
    if settings.needs_secret:
        secrets = boto3.client("secretsmanager", region_name=region)
        secret = secrets.get_secret_value(SecretId=str(settings.db_secret_arn))["SecretString"]
    return build_engine(settings.resolved_url(secret), pool_size=settings.db_pool_size)
