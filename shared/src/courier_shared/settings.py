"""Settings shared by every service, read from the environment once, at cold start.

Each service composes the pieces it needs into its own settings class and builds it once in its
composition root; nothing here reads the environment or touches the disk at import time.
"""

from __future__ import annotations

import json
from pathlib import Path
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
    """Where the chat-turn database is.

    Locally: `DATABASE_URL`, or nothing for the embedded SQLite file. In AWS: host, name and the
    ARN of the Secrets Manager secret RDS manages; the service resolves the secret at cold start.
    """

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    db_host: str | None = Field(default=None, alias="DB_HOST")
    db_port: int = Field(default=5432, alias="DB_PORT")
    db_name: str = Field(default="courier", alias="DB_NAME")
    db_secret_arn: str | None = Field(default=None, alias="DB_SECRET_ARN")
    db_pool_size: int = Field(default=2, ge=1, le=50, alias="DB_POOL_SIZE")

    @model_validator(mode="after")
    def _host_needs_secret(self) -> DatabaseSettings:
        if self.database_url is None and self.db_host is not None and self.db_secret_arn is None:
            raise ValueError("DB_HOST is set but DB_SECRET_ARN is not: set both, or DATABASE_URL")
        return self

    @property
    def needs_secret(self) -> bool:
        return self.database_url is None and self.db_host is not None

    def resolved_url(self, secret_string: str | None = None) -> str:
        """The SQLAlchemy URL; `secret_string` is the RDS-managed secret's JSON when `needs_secret`."""
        if self.database_url is not None:
            return self.database_url
        if self.db_host is None:
            return embedded_database_url()
        if secret_string is None:
            raise ValueError("the database secret is needed to build the URL")
        secret = json.loads(secret_string)
        user, password = quote(secret["username"], safe=""), quote(secret["password"], safe="")
        return (
            f"postgresql+psycopg://{user}:{password}@{self.db_host}:{self.db_port}/{self.db_name}"
            "?sslmode=require"
        )
