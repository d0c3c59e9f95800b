"""Common mistakes get one line saying the fix, not a traceback."""

from __future__ import annotations

import uuid

import pytest
from typer.testing import CliRunner

from courier_local.cli import app


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr


def test_an_http_url_for_chat_says_which_websocket_url_to_use() -> None:
    code, err = run(
        "chat", "--url", "https://abc.execute-api.eu-west-1.amazonaws.com/dev", "--token", "t", "hi"
    )

    assert code == 2
    assert err.strip().splitlines() == [
        "error: --url must be a WebSocket URL (ws:// or wss://), e.g. wss://abc.execute-api.eu-west-1.amazonaws.com/dev"
    ]


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("postgres://me@127.0.0.1:5432/chat", "use postgresql+psycopg://me@127.0.0.1:5432/chat"),
        ("postgresql://me@127.0.0.1:5432/chat", "use postgresql+psycopg://me@127.0.0.1:5432/chat"),
        ("mysql://me@127.0.0.1/chat", "Courier runs on Postgres or SQLite"),
        ("not a url", "not a database URL"),
    ],
)
def test_a_database_url_courier_cannot_use_says_the_fix(url: str, fix: str) -> None:
    code, err = run("dev", "--port", "0", "--database-url", url)

    assert code == 1
    assert err.strip().splitlines()[-1].startswith("error: ") and fix in err
    assert "Traceback" not in err


@pytest.mark.postgres
def test_a_database_that_does_not_exist_is_one_line(postgres_url: str) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + f"/courier_missing_{uuid.uuid4().hex[:8]}"

    code, err = run("dev", "--port", "0", "--database-url", missing)

    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: cannot open the database") and "does not exist" in last
    assert "Traceback" not in err
