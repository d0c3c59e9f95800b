"""Settings shared by every service, read from the environment once, at cold start.

Each service composes the pieces it needs into its own settings class and builds it once in its
composition root; nothing here reads the environment or touches the disk at import time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_DATABASE_DIR = Path(".courier")


def embedded_database_url(directory: Path = EMBEDDED_DATABASE_DIR) -> str:
    """The default database: an SQLite file under .courier/, so a new user needs no server."""
    return f"sqlite:///{directory / 'courier.db'}"


class CourierSettings(BaseSettings):
    """Base for every service's settings: environment only, unknown variables ignored."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class DatabaseSettings(CourierSettings):
    """Where the chat-turn database is and how to log in.

    Locally: `DATABASE_URL`, or nothing for the embedded SQLite file. In AWS: the host and name,
    and either the ARN of a secret holding the login (`DB_SECRET_ARN`: the migrator, with the
    RDS-managed master secret), or IAM authentication as `DB_USER` (`DB_IAM_AUTH=true`: the
    gateway and worker, as the application role, directly or through RDS Proxy).
    `courier_shared.db.aws` turns these into an engine at cold start.
    """

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    db_host: str | None = Field(default=None, alias="DB_HOST")
    db_port: int = Field(default=5432, alias="DB_PORT")
    db_name: str = Field(default="courier", alias="DB_NAME")
    db_secret_arn: str | None = Field(default=None, alias="DB_SECRET_ARN")
    db_iam_auth: bool = Field(default=False, alias="DB_IAM_AUTH")
    db_user: str | None = Field(default=None, alias="DB_USER")
    db_sslmode: Literal["require", "verify-ca", "verify-full", "prefer", "disable"] = Field(
        default="require", alias="DB_SSLMODE"
    )
    db_pool_size: int = Field(default=2, ge=1, le=50, alias="DB_POOL_SIZE")

    @model_validator(mode="after")
    def _host_needs_credentials(self) -> DatabaseSettings:
        if self.database_url is not None or self.db_host is None:
            return self
        if self.db_iam_auth and self.db_user is None:
            raise ValueError("DB_IAM_AUTH is true but DB_USER is not set: IAM authentication needs the user")
        if not self.db_iam_auth and self.db_secret_arn is None:
            raise ValueError("DB_HOST is set but DB_SECRET_ARN is not: set both, or DATABASE_URL")
        return self

    @property
    def needs_secret(self) -> bool:
        """True when the login comes from a Secrets Manager secret (re-read when it rotates)."""
        return self.database_url is None and self.db_host is not None and not self.db_iam_auth

    @property
    def uses_iam_auth(self) -> bool:
        """True when each new connection logs in with an IAM token (to the instance or RDS Proxy)."""
        return self.database_url is None and self.db_host is not None and self.db_iam_auth

    def resolved_url(self, secret_string: str | None = None) -> str:
        """The SQLAlchemy URL; `secret_string` is the RDS-managed secret's JSON when `needs_secret`.

        With IAM authentication the URL has no password: the engine asks for a token per connection.
        """
        if self.database_url is not None:
            return self.database_url
        if self.db_host is None:
            return embedded_database_url()
        if self.db_iam_auth:
            return self.url_for_user(str(self.db_user))
        if secret_string is None:
            raise ValueError("the database secret is needed to build the URL")
        secret = json.loads(secret_string)
        user, password = quote(secret["username"], safe=""), quote(secret["password"], safe="")
        return self._postgres_url(f"{user}:{password}")

    def url_for_user(self, user: str) -> str:
        """The Postgres URL for `user` with no password in it: the engine supplies one per connection."""
        return self._postgres_url(quote(user, safe=""))

    def _postgres_url(self, login: str) -> str:
        return (
            f"postgresql+psycopg://{login}@{self.db_host}:{self.db_port}/{self.db_name}"
            f"?sslmode={self.db_sslmode}"
        )
