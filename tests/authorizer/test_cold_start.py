"""Cold start: the handler module imports nothing heavy, and the authorizer never imports Strands,
boto3 or SQLAlchemy (it verifies a JWT: PyJWT, Powertools and the settings are all it needs)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("strands", "boto3", "sqlalchemy", "jwt", "cryptography", "pydantic")
# Powertools' Logger is part of the entry convention (request id, cold-start flag on every line):
# it is imported with the handler module, in the init phase.


def imported_after(statement: str) -> set[str]:
    probe = (
        f"import sys, json; {statement}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(output.stdout))


def test_importing_the_handler_imports_nothing_heavy() -> None:
    assert imported_after("import courier_authorizer.handler") & set(HEAVY) == set()


def test_the_built_authorizer_never_imports_strands_boto3_or_sqlalchemy() -> None:
    loaded = imported_after(
        "import courier_authorizer.composition as c, courier_authorizer.settings as s; "
        "c.build_authorizer(s.AuthorizerSettings(JWT_ISSUER='https://issuer.example', JWT_AUDIENCE='a'))"
    )
    assert {"jwt", "aws_lambda_powertools"} <= loaded
    assert loaded & {"strands", "boto3", "sqlalchemy", "courier_local"} == set()
