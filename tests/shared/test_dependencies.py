"""Each workspace member declares exactly the third-party packages its code imports.

A Lambda package is built from its own declared dependencies only, so an undeclared import would
work here (one shared venv) and crash in AWS. This reads every import in a member's sources and
compares it with the member's pyproject.toml.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = [ROOT / "shared", *sorted((ROOT / "services").glob("*/")), ROOT / "local", ROOT / "infra"]
# Declared but never imported by name, on purpose.
LOADED_INDIRECTLY = {
    "psycopg": "SQLAlchemy loads it as the postgresql+psycopg driver",
    "cryptography": "PyJWT's RS256 backend",
    "uvicorn": "serves the local ASGI apps",
    "tzdata": "zoneinfo's time zone data where the system has none (Lambda)",
    "courier-gateway": "the local stack loads it by the Handler string Pulumi declares",
    "courier-migrator": "the local stack loads it by the Handler string Pulumi declares",
}
_distributions = importlib.metadata.packages_distributions()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(member: Path) -> set[str]:
    project = tomllib.loads((member / "pyproject.toml").read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_normalise(re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0]) for req in requirements}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:` (type-only imports never run in Lambda)."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def _imported(member: Path) -> dict[str, str]:
    """Distribution name → one file that imports it."""
    found: dict[str, str] = {}
    sources = [s for s in member.rglob("*.py") if not {".venv", "build"} & set(s.parts)]
    own = {path.name for path in (member / "src").glob("*/")} | {source.stem for source in sources}
    for source in sources:
        for node in _runtime_nodes(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in own or top == "__future__":
                    continue
                for distribution in _distributions.get(top, [_normalise(top)]):
                    found.setdefault(_normalise(distribution), str(source.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("member", MEMBERS, ids=lambda path: str(path.relative_to(ROOT)))
def test_member_imports_only_what_it_declares_and_declares_only_what_it_imports(member):
    declared, imported = _declared(member), _imported(member)
    undeclared = {name: where for name, where in imported.items() if name not in declared}
    assert not undeclared, f"imported but not declared in {member.name}/pyproject.toml: {undeclared}"
    unused = declared - set(imported) - set(LOADED_INDIRECTLY)
    assert not unused, f"declared but never imported by {member.name}: {sorted(unused)}"
