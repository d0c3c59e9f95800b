"""Connecting a Lambda to RDS: with the login in a Secrets Manager secret, or with an IAM token.

Needs the `aws` extra (boto3, Powertools). Composition roots call `connect` once per container;
the domain never sees boto3.

A secret (the RDS-managed master secret the migrator uses) is rotated by RDS every 7 days, so
its password is not fixed for a container's life: each new pool connection takes the login
from Powertools' parameter cache (re-read at most every `secret_max_age` seconds), and when
Postgres refuses the password the secret is read again at once and the connection retried once.
That is logged through the service's own logger, passed in (every Courier service logs through one
Powertools Logger: its observability module's).
With IAM authentication (the application role, directly or through RDS Proxy) each new
connection gets a fresh token, so there is nothing to rotate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import boto3
import psycopg
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from pydantic import BaseModel, ConfigDict, SecretStr
from sqlalchemy import Engine, event

from courier_shared.db.engine import build_engine
from courier_shared.settings import DatabaseSettings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class InfoLogger(Protocol):
    """What this module needs of a logger: the service's Powertools Logger (or a stdlib one) fits."""

    def info(self, msg: str, /) -> object: ...


# How long a container trusts its cached copy of the secret before reading it again.
SECRET_MAX_AGE_SECONDS = 300
# Postgres' SQLSTATE for a wrong password. psycopg reports errors raised while connecting as text
# only (libpq gives no SQLSTATE before a session exists), so the server's message is matched too.
REFUSED_LOGIN_SQLSTATE = "28P01"
REFUSED_LOGIN_MESSAGE = "password authentication failed"


class DatabaseLogin(BaseModel):
    """The part of the secret's JSON a login needs (RDS also stores engine, host, port...)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    username: str
    password: SecretStr


def refused_password(error: psycopg.OperationalError) -> bool:
    """True when Postgres refused the password (not when it is unreachable or the database is wrong)."""
    sqlstate = getattr(error, "sqlstate", None)
    return sqlstate == REFUSED_LOGIN_SQLSTATE or (sqlstate is None and REFUSED_LOGIN_MESSAGE in str(error))


class SecretLogin:
    """The current login from a secret: cached for `max_age` seconds, re-read when Postgres refuses it."""

    def __init__(
        self, provider: SecretsProvider, secret_id: str, *, max_age: int, logger: InfoLogger
    ) -> None:
        self._provider = provider
        self._secret_id = secret_id
        self._max_age = max_age
        self._logger = logger

    def current(self, *, refresh: bool = False) -> DatabaseLogin:
        value = self._provider.get(
            self._secret_id, max_age=self._max_age, transform="json", force_fetch=refresh
        )
        return DatabaseLogin.model_validate(value)

    def connect(self, dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        """SQLAlchemy's `do_connect` hook: open each new DBAPI connection with the current login."""
        login = self.current()
        try:
            return dialect.connect(*cargs, **_with_login(cparams, login))
        except psycopg.OperationalError as error:
            if not refused_password(error):
                raise
            fresh = self.current(refresh=True)
            if fresh == login:
                raise  # mid-rotation: the secret isn't updated yet; the next connection reads it again
            self._logger.info("the database refused the cached password: using the rotated secret")
            return dialect.connect(*cargs, **_with_login(cparams, fresh))


def _with_login(cparams: dict[str, Any], login: DatabaseLogin) -> dict[str, Any]:
    return {**cparams, "user": login.username, "password": login.password.get_secret_value()}


def connect(
    settings: DatabaseSettings,
    *,
    logger: InfoLogger,
    region: str | None = None,
    secrets_client: SecretsManagerClient | None = None,
    secret_max_age: int = SECRET_MAX_AGE_SECONDS,
) -> Engine:
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
    if not settings.needs_secret:
        return build_engine(settings.resolved_url(), pool_size=settings.db_pool_size)
    client = secrets_client or boto3.client("secretsmanager", region_name=region)
    login = SecretLogin(
        SecretsProvider(boto3_client=client),
        str(settings.db_secret_arn),
        max_age=secret_max_age,
        logger=logger,
    )
    # Read once now: an unreadable or malformed secret fails the cold start, not the first request.
    user = login.current().username
    engine = build_engine(settings.url_for_user(user), pool_size=settings.db_pool_size)
    event.listen(engine, "do_connect", login.connect)
    return engine
