"""`/dev/token` of the local stack's page mints tokens for this stack's own page only: a page on another
origin, or one whose DNS name was rebound to 127.0.0.1, is refused."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from courier_local.dev_issuer import DevIssuer
from courier_local.edge import serve
from courier_local.stack import StackOptions, page_app


@dataclass
class FakeStack:
    """What page_app reads of a LocalStack."""

    dev_issuer: DevIssuer
    options: StackOptions = field(default_factory=StackOptions)
    info: None = None

    def issue_token(self, user: str, tenant: str) -> str:
        return self.dev_issuer.issue(user, tenant)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[int]:
    with serve(page_app(FakeStack(DevIssuer(tmp_path / "dev-issuer")))) as server:
        yield server.port


def get_token(port: int, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.putrequest("GET", "/dev/token?user=ada", skip_host=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    return response.status, body


def test_the_stacks_own_page_gets_a_token(page: int) -> None:
    for host in (f"127.0.0.1:{page}", f"localhost:{page}"):
        status, body = get_token(page, {"Host": host, "Origin": f"http://{host}"})
        assert status == 200 and body["user"] == "ada"
    assert get_token(page, {"Host": f"127.0.0.1:{page}"})[0] == 200  # `courier chat` sends no Origin


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Host": "rebound.attacker.example:8000"}, id="dns-rebinding-host"),
        pytest.param({"Host": "127.0.0.1:{port}", "Origin": "https://attacker.example"}, id="other-origin"),
        pytest.param({"Host": "127.0.0.1:{port}", "Origin": "http://localhost:3000"}, id="other-local-page"),
        pytest.param({"Host": "127.0.0.1:{port}", "Origin": "null"}, id="sandboxed-frame"),
    ],
)
def test_any_other_page_is_refused(page: int, headers: dict[str, str]) -> None:
    status, body = get_token(page, {name: value.format(port=page) for name, value in headers.items()})
    assert status == 403
    assert "token" not in body and "own page" in body["message"]
