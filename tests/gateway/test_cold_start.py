"""Cold start: the handler module imports nothing heavy; the gateway never imports Strands."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("strands", "boto3", "sqlalchemy", "pydantic")
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
    assert imported_after("import courier_gateway.handler") & set(HEAVY) == set()


def test_the_gateway_composition_never_imports_strands() -> None:
    loaded = imported_after("import courier_gateway.composition, boto3")
    assert {"sqlalchemy", "boto3"} <= loaded
    assert loaded & {"strands", "courier_worker", "courier_local"} == set()
