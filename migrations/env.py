"""Alembic environment: the URL comes from Courier's settings unless a caller passes a connection."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from courier_shared.db.engine import build_engine
from courier_shared.db.models import Base
from courier_shared.settings import DatabaseSettings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return DatabaseSettings().resolved_url()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    engine = build_engine(_url())
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()
