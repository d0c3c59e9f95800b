"""`courier db upgrade|current|history`: Alembic on Courier's database, with the URL Courier uses.

The URL is --database-url, else DATABASE_URL, else the embedded SQLite file under .courier/.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic and SQLAlchemy are imported inside the functions: every `courier` command loads this
# module, and they take a second to import.

db_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Migrate and inspect the database (Alembic)."
)

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL. Default: DATABASE_URL, else .courier/courier.db."),
]


def find_alembic_ini(start: Path | None = None) -> Path:
    """alembic.ini at the repository root: looked for from the working directory up, then beside the code."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "alembic.ini").is_file() and (folder / "migrations").is_dir():
            return folder / "alembic.ini"
    beside_code = Path(__file__).resolve().parents[4] / "alembic.ini"
    if beside_code.is_file():
        return beside_code
    raise FileNotFoundError("alembic.ini not found: run this from the Courier repository")


def database_url(explicit: str | None = None) -> str:
    from courier_shared.settings import DatabaseSettings

    return explicit or DatabaseSettings().resolved_url()


def check_database_url(url: str) -> None:
    """Raise ValueError, saying the fix, for a URL Courier cannot open (before anything tries)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    example = "postgresql+psycopg://user@host:5432/dbname or sqlite:///path/to/file.db"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"not a database URL: use {example}") from None
    if parsed.get_backend_name() in ("postgres", "postgresql") and parsed.drivername != "postgresql+psycopg":
        fixed = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=True)
        raise ValueError(f"Courier talks to Postgres with psycopg 3: use {fixed}")
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise ValueError(f"Courier runs on Postgres or SQLite: use {example}")


def database_problem(url: str, error: Exception) -> str:
    """One line for a database that cannot be opened: which, and what the server said."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return f"cannot open the database {shown(url)}: {reason}"


def shown(url: str) -> str:
    """The URL with any password hidden, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def alembic_config(*, quiet: bool = False) -> Config:
    from courier_migrator.migrations import alembic_config as migrations_config

    # sys.stdout as it is now (tests capture it), and each migration step printed unless quiet.
    return migrations_config(find_alembic_ini().parent, log_steps=not quiet, stdout=sys.stdout)


def current_revision(url: str) -> str | None:
    from courier_migrator.migrations import current_revision as revision_of
    from courier_shared.db.engine import build_engine

    engine = build_engine(url)
    try:
        return revision_of(engine)
    finally:
        engine.dispose()


def upgrade_database(url: str, revision: str = "head", *, quiet: bool = False) -> str | None:
    """Migrate to `revision`; returns the revision the database is at afterwards."""
    from courier_migrator.migrations import upgrade as upgrade_to
    from courier_shared.db.engine import build_engine

    engine = build_engine(url)
    try:
        return upgrade_to(find_alembic_ini().parent, engine, revision, log_steps=not quiet)
    finally:
        engine.dispose()


@db_app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database_url_option: DatabaseUrlOption = None,
) -> None:
    """Migrate the database to a revision (default: the newest)."""
    url = database_url(database_url_option)
    typer.echo(f"Migrating {shown(url)} to {revision}…", err=True)
    started = time.monotonic()
    try:
        at = upgrade_database(url, revision)
    except Exception as error:
        typer.echo(f"error: migration failed: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Done in {time.monotonic() - started:.1f} s: the database is at revision {at}.", err=True)


@db_app.command()
def current(database_url_option: DatabaseUrlOption = None) -> None:
    """Print the revision the database is at ("none" for an empty database)."""
    url = database_url(database_url_option)
    typer.echo(f"Reading the revision of {shown(url)}…", err=True)
    try:
        at = current_revision(url)
    except Exception as error:
        typer.echo(f"error: cannot read the database: {error}", err=True)
        raise typer.Exit(1) from None
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(quiet=True)).get_current_head()
    note = " (head)" if at == head else f" (head is {head}: run `courier db upgrade`)"
    typer.echo(f"{at or 'none'}{note}")


@db_app.command()
def history() -> None:
    """List the migrations, newest first (reads migrations/, not the database)."""
    from alembic import command

    command.history(alembic_config(quiet=True), verbose=False)
