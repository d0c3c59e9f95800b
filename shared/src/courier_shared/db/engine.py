"""Building the SQLAlchemy engine: called once per process by a composition root, never at import."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def build_engine(
    url: str,
    *,
    pool_size: int = 2,
    rds_proxy: bool = False,
    password: Callable[[], str] | None = None,
) -> Engine:
    """An engine for Postgres (production) or SQLite (the embedded default).

    SQLite gets foreign keys, WAL and a busy timeout, so the local stack's gateway and worker can
    share the file. Behind RDS Proxy, psycopg must not use server-side prepared statements.
    `password`, when given, is asked for each new connection (IAM tokens expire after 15 minutes).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    if rds_proxy:
        connect_args["prepare_threshold"] = None
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        connect_args=connect_args,
        hide_parameters=True,  # a failed statement's parameters (message text) never reach a log
    )
    if password is not None:

        def fresh_password(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
            params["password"] = password()

        event.listen(engine, "do_connect", fresh_password)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
