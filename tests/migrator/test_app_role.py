"""The application role the migrator keeps: on real Postgres, it reads and writes chat turns through the
store, and it cannot drop or create tables, create roles, or touch Alembic's version table.

Roles are cluster-wide, so each test makes a uniquely named one and drops it afterwards. The local
server trusts 127.0.0.1, so the test logs in as the role with no password (on RDS: an IAM token).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from courier_migrator.app_role import ensure_app_role
from courier_migrator.handler import migrate
from courier_shared.db.engine import build_engine
from courier_shared.db.store import ChatStore, Owner

ROOT = Path(__file__).resolve().parents[2]
INSUFFICIENT_PRIVILEGE = "42501"


@pytest.fixture
def database(postgres_database_factory) -> Iterator[tuple[str, Engine, str]]:
    """A fresh database migrated by the migrator (as the server's admin), with a new application role."""
    url: str = postgres_database_factory()
    admin = build_engine(url)
    role = f"courier_app_{uuid.uuid4().hex[:10]}"
    result = migrate(ROOT, admin, app_user=role)
    assert result["appRole"] == role and result["after"] is not None
    yield url, admin, role
    with admin.begin() as connection:
        connection.execute(text(f'DROP OWNED BY "{role}"'))
        connection.execute(text(f'DROP ROLE "{role}"'))
    admin.dispose()


def login_as(url: str, role: str) -> Engine:
    return build_engine(make_url(url).set(username=role, password=None).render_as_string(hide_password=False))


def refused(engine: Engine, statement: str) -> bool:
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    except ProgrammingError as error:
        return getattr(error.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE
    return False


def test_the_application_role_reads_and_writes_turns(database) -> None:
    url, _admin, role = database
    app = login_as(url, role)
    store, owner, now = ChatStore(app), Owner("acme", "ada"), datetime.now(UTC)
    with store.unit_of_work() as chats:
        conversation = chats.create_conversation(owner, "hello", now)
        turn, created = chats.create_turn(owner, conversation, uuid.uuid4(), "hi", None, now)
    with store.unit_of_work() as chats:
        assert created and chats.find_turn(owner, turn.id) is not None
    with app.begin() as connection:
        assert connection.scalar(text("SELECT current_user")) == role
        connection.execute(text("UPDATE turns SET user_text = 'edited' WHERE id = :id"), {"id": turn.id})
        connection.execute(text("DELETE FROM turns WHERE id = :id"), {"id": turn.id})
    app.dispose()


def test_the_application_role_cannot_change_the_schema_or_make_roles(database) -> None:
    url, _admin, role = database
    app = login_as(url, role)
    assert refused(app, "DROP TABLE turns")
    assert refused(app, "ALTER TABLE turns ADD COLUMN x integer")
    assert refused(app, "TRUNCATE turns")
    assert refused(app, "CREATE TABLE scratch (x integer)")
    assert refused(app, f'CREATE ROLE "{role}_friend"')
    assert refused(app, "SELECT * FROM alembic_version")  # the schema's history is the migrator's
    assert refused(app, "UPDATE alembic_version SET version_num = 'x'")
    with app.connect() as connection:
        flags = connection.execute(
            text("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user")
        ).one()
    assert tuple(flags) == (False, False, False)
    app.dispose()


def test_tables_a_later_migration_adds_are_granted_too(database) -> None:
    url, admin, role = database
    with admin.begin() as connection:  # what a later revision, run by the migrator, would do
        connection.execute(text("CREATE TABLE later_feature (id serial PRIMARY KEY, note text)"))
    app = login_as(url, role)
    with app.begin() as connection:
        connection.execute(text("INSERT INTO later_feature (note) VALUES ('ok')"))  # sequence usable too
        assert connection.scalar(text("SELECT count(*) FROM later_feature")) == 1
    app.dispose()


def test_running_the_migrator_again_keeps_the_role_and_its_grants(database) -> None:
    url, admin, role = database
    again = ensure_app_role(admin, role)
    assert (again.created, again.iam_auth) == (False, False)  # no rds_iam outside RDS
    app = login_as(url, role)
    with app.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM turns")) == 0
    app.dispose()


def test_on_rds_the_role_is_granted_iam_login(database) -> None:
    """RDS has an `rds_iam` role; granting it makes the role log in with IAM tokens only."""
    _url, admin, role = database
    with admin.begin() as connection:
        made_here = not connection.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'"))
        if made_here:
            connection.execute(text("CREATE ROLE rds_iam NOLOGIN"))
    try:
        assert ensure_app_role(admin, role).iam_auth
        with admin.connect() as connection:
            assert connection.scalar(text("SELECT pg_has_role(:role, 'rds_iam', 'MEMBER')"), {"role": role})
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'REVOKE rds_iam FROM "{role}"'))
            if made_here:
                connection.execute(text("DROP ROLE rds_iam"))


def test_a_role_name_that_is_not_a_plain_identifier_is_refused(postgres_database_factory) -> None:
    admin = build_engine(postgres_database_factory())
    with pytest.raises(ValueError, match="invalid application role name"):
        ensure_app_role(admin, 'app"; DROP TABLE turns; --')
    admin.dispose()
