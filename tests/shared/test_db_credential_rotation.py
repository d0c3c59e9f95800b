"""Database credentials survive rotation: after RDS rotates the secret (the role's password changes in
Postgres, then in Secrets Manager), a warm container's engine opens new connections with the new one.

The shared test server trusts 127.0.0.1 (any password works there), so these tests start their own
Postgres cluster that checks passwords (scram-sha-256) on a free port, and talk to moto's Secrets
Manager over HTTP as boto3 does in AWS. Every GetSecretValue the engine makes is counted.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from courier_local.edge.sqs import LocalMoto
from courier_shared.db.aws import connect
from courier_shared.settings import DatabaseSettings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROLE = "courier_rotating"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and a password-checking Postgres cannot be started: {reason}", pytrace=False)
    pytest.skip(f"a password-checking Postgres cannot be started: {reason}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PasswordPostgres:
    """A throwaway cluster whose every login, TCP or socket, needs the right password."""

    port: int
    superuser_password: str

    def url(self, user: str, password: str, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> Engine:
        return create_engine(self.url("postgres", self.superuser_password), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="module")
def password_postgres() -> Iterator[PasswordPostgres]:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        found = Path(bindir.stdout.strip()) if bindir.returncode == 0 else None
        if found is None or not (found / "initdb").exists():
            _unavailable("initdb/pg_ctl not found (install the PostgreSQL server package)")
        assert found is not None
        initdb, pg_ctl = str(found / "initdb"), str(found / "pg_ctl")
    # Postgres refuses to run as root: run it as the `postgres` system user then.
    as_user: list[str] = []
    directory = Path(tempfile.mkdtemp(prefix="courier-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no postgres user to run the server as")
        os.chown(directory, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    password = uuid.uuid4().hex
    password_file = directory / "superuser-password"
    password_file.write_text(password)
    if as_user:
        os.chown(password_file, owner.pw_uid, owner.pw_gid)
    data, port = directory / "data", _free_port()

    def run(*command: str) -> None:
        result = subprocess.run([*as_user, *command], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(directory, ignore_errors=True)
            _unavailable(f"{Path(command[0]).name} failed: {result.stderr.strip()[-500:]}")

    run(initdb, "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={password_file}",
        "-E", "UTF8", "--no-sync")  # fmt: skip
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(directory / "log"), "-w", "start")
    try:
        yield PasswordPostgres(port=port, superuser_password=password)
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, check=False
        )
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Rotation:
    """The role, its secret and a way to rotate both, as RDS's rotation does (database first)."""

    server: PasswordPostgres
    secrets: Any
    secret_arn: str
    password: str

    def change_password_in_postgres(self) -> str:
        self.password = uuid.uuid4().hex
        with self.server.admin().connect() as connection:
            connection.execute(text(f"ALTER ROLE {ROLE} PASSWORD '{self.password}'"))
        return self.password

    def publish(self) -> None:
        self.secrets.put_secret_value(
            SecretId=self.secret_arn, SecretString=json.dumps({"username": ROLE, "password": self.password})
        )


@pytest.fixture
def rotation(
    password_postgres: PasswordPostgres, moto: LocalMoto, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Rotation]:
    for name, value in {
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto.endpoint_url,
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(password_postgres.port),
        "DB_NAME": "postgres",
        "DB_SSLMODE": "disable",  # the throwaway cluster has no TLS; AWS defaults to require
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("DATABASE_URL", "DB_IAM_AUTH", "DB_USER"):
        monkeypatch.delenv(name, raising=False)
    password = uuid.uuid4().hex
    admin = password_postgres.admin()
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'"))
    secrets = moto.client("secretsmanager")
    secret_arn = secrets.create_secret(
        Name=f"rds!db-{uuid.uuid4().hex[:8]}",
        SecretString=json.dumps({"username": ROLE, "password": password}),
    )["ARN"]
    monkeypatch.setenv("DB_SECRET_ARN", secret_arn)
    yield Rotation(password_postgres, secrets, secret_arn, password)
    with admin.connect() as connection:
        connection.execute(text(f"DROP ROLE {ROLE}"))
    admin.dispose()


class RecordingLogger:
    """The service's logger as `connect` sees it: what it was told, in order."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, /) -> None:
        self.lines.append(msg)


ROTATED = "the database refused the cached password: using the rotated secret"


@pytest.fixture
def logger() -> RecordingLogger:
    return RecordingLogger()


def counting_client() -> tuple[Any, list[str]]:
    """A Secrets Manager client (to moto, by the environment) that records each GetSecretValue."""
    client = boto3.client("secretsmanager", region_name="us-east-1")
    calls: list[str] = []
    client.meta.events.register(
        "before-call.secrets-manager.GetSecretValue", lambda **kwargs: calls.append("GetSecretValue")
    )
    return client, calls


def whoami(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.scalar(text("SELECT current_user")))


def test_the_cluster_really_checks_passwords(password_postgres: PasswordPostgres, rotation: Rotation) -> None:
    wrong = create_engine(password_postgres.url(ROLE, "not-the-password"))
    with pytest.raises(OperationalError, match="password authentication failed"):
        wrong.connect()
    wrong.dispose()


def test_a_warm_engine_opens_new_connections_after_the_password_rotates(
    rotation: Rotation, logger: RecordingLogger
) -> None:
    engine = connect(DatabaseSettings(), logger=logger, region="us-east-1")  # cold start: reads the secret
    held = engine.connect()  # a connection from before the rotation stays open, as in a warm container
    assert held.scalar(text("SELECT current_user")) == ROLE

    rotation.change_password_in_postgres()
    rotation.publish()

    with engine.connect() as fresh:  # the pool must open a new connection: the old password is dead
        assert fresh.scalar(text("SELECT current_user")) == ROLE
    assert logger.lines == [ROTATED]  # told through the service's logger, which was passed in
    held.close()
    engine.dispose()


def test_a_refused_password_rereads_the_secret_once_and_the_cache_spares_secrets_manager(
    rotation: Rotation, monkeypatch: pytest.MonkeyPatch, logger: RecordingLogger
) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "3")  # three connections open at once
    client, calls = counting_client()
    engine = connect(DatabaseSettings(), logger=logger, secrets_client=client, secret_max_age=3600)
    first, second = engine.connect(), engine.connect()  # two new connections, one read (cold start)
    assert len(calls) == 1

    rotation.change_password_in_postgres()
    rotation.publish()
    third = engine.connect()  # refused with the cached password: one forced re-read, then in

    assert third.scalar(text("SELECT current_user")) == ROLE
    assert len(calls) == 2
    for connection in (first, second, third):
        connection.close()
    engine.dispose()


def test_the_cache_is_bounded_by_max_age(rotation: Rotation, logger: RecordingLogger) -> None:
    client, calls = counting_client()
    engine = connect(DatabaseSettings(), logger=logger, secrets_client=client, secret_max_age=0)
    first, second = engine.connect(), engine.connect()
    assert len(calls) == 3  # cold start, then each new connection: an expired copy is read again
    first.close()
    second.close()
    engine.dispose()


def test_mid_rotation_the_error_surfaces_and_the_next_connection_recovers(
    rotation: Rotation, logger: RecordingLogger
) -> None:
    client, calls = counting_client()
    engine = connect(DatabaseSettings(), logger=logger, secrets_client=client, secret_max_age=3600)
    held = engine.connect()
    rotation.change_password_in_postgres()  # Postgres has the new password, the secret not yet

    with pytest.raises(OperationalError, match="password authentication failed"):
        engine.connect()
    assert len(calls) == 2  # one forced re-read found the same password: no retry loop
    assert logger.lines == []  # nothing rotated yet

    rotation.publish()
    with engine.connect() as fresh:
        assert fresh.scalar(text("SELECT current_user")) == ROLE
    held.close()
    engine.dispose()


def test_other_connection_errors_do_not_reread_the_secret(
    rotation: Rotation, monkeypatch: pytest.MonkeyPatch, logger: RecordingLogger
) -> None:
    monkeypatch.setenv("DB_NAME", "no_such_database")
    client, calls = counting_client()
    engine = connect(DatabaseSettings(), logger=logger, secrets_client=client, secret_max_age=3600)
    with pytest.raises(OperationalError, match="no_such_database"):
        engine.connect()
    assert len(calls) == 1  # the cold-start read only
    engine.dispose()
