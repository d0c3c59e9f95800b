"""The Lambda build: Linux-only wheels for the target architecture, nothing undeclared, reproducible.

Packages the authorizer (the smallest service) for arm64 and x86_64 from uv.lock; uv's cache
keeps this to seconds after the first run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from courier_infra import packaging

ELF_MACHINE = {"arm64": 0xB7, "x86_64": 0x3E}  # e_machine: EM_AARCH64, EM_X86_64
PLATFORM_WORDS = {"arm64": "aarch64", "x86_64": "x86_64"}
HANDLER_MODULE = "courier_authorizer.handler"


@pytest.fixture(scope="module")
def built(package_dir: Path) -> dict[str, packaging.Artifact]:
    return {arch: packaging.build("authorizer", arch, package_dir / arch) for arch in packaging.ARCHITECTURES}


def names(artifact: packaging.Artifact) -> list[str]:
    with zipfile.ZipFile(artifact.path) as archive:
        return archive.namelist()


@pytest.mark.parametrize("arch", packaging.ARCHITECTURES)
def test_binaries_are_linux_elf_for_the_target_architecture(
    built: dict[str, packaging.Artifact], arch: str
) -> None:
    artifact = built[arch]
    with zipfile.ZipFile(artifact.path) as archive:
        shared_objects = [n for n in archive.namelist() if n.endswith(".so") or ".so." in n]
        assert shared_objects, "the authorizer's crypto stack has compiled extensions"
        for name in shared_objects:
            header = archive.read(name)[:20]
            assert header[:4] == b"\x7fELF", name
            assert int.from_bytes(header[18:20], "little") == ELF_MACHINE[arch], name
            suffix = PurePosixPath(name).name
            if ".cpython-" in suffix:
                assert suffix.endswith(f"cpython-313-{PLATFORM_WORDS[arch]}-linux-gnu.so"), name
        assert not [n for n in archive.namelist() if n.endswith((".pyd", ".dll", ".dylib"))]
        for wheel in [n for n in archive.namelist() if n.endswith(".dist-info/WHEEL")]:
            tags = [
                line.split(":", 1)[1].strip()
                for line in archive.read(wheel).decode().splitlines()
                if line.startswith("Tag:")
            ]
            for tag in tags:
                _interpreter, _abi, platform = tag.split("-")
                assert platform == "any" or (
                    "manylinux" in platform and platform.endswith(PLATFORM_WORDS[arch])
                ), (wheel, tag)


@pytest.mark.parametrize("arch", packaging.ARCHITECTURES)
def test_zip_holds_the_handler_and_no_tests_caches_or_scripts(
    built: dict[str, packaging.Artifact], arch: str
) -> None:
    entries = names(built[arch])
    assert "courier_authorizer/handler.py" in entries
    assert "courier_shared/settings.py" in entries
    assert entries == sorted(entries)
    assert not [n for n in entries if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in entries if n.split("/")[0] in {"tests", "bin"} or n.startswith(".")]
    assert not [
        n
        for n in entries
        if n.startswith(("courier_gateway", "courier_worker", "courier_local", "alembic.ini"))
    ]
    with zipfile.ZipFile(built[arch].path) as archive:
        assert {info.date_time for info in archive.infolist()} == {packaging.ZIP_TIMESTAMP}


def top_level_modules(entries: Iterable[str]) -> set[str]:
    """What `import X` can find at the zip root: packages, modules, extension modules."""
    found = set()
    for entry in entries:
        first = entry.split("/")[0]
        if "/" in entry:
            found.add(first)
        elif first.endswith(".py"):
            found.add(first.removesuffix(".py"))
        elif ".so" in first:
            found.add(first.split(".")[0])
    return found


def imports_of(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute module names imported anywhere in a module (except under `if TYPE_CHECKING:`)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def undeclared_imports(archive: zipfile.ZipFile, entry_module: str, first_party: set[str]) -> set[str]:
    """Follow first-party imports from `entry_module`; return third-party roots not in the zip."""
    entries = set(archive.namelist())
    available = top_level_modules(entries)
    pending, seen, missing = [entry_module], set(), set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module.replace(".", "/")
        source_name = f"{path}.py" if f"{path}.py" in entries else f"{path}/__init__.py"
        if source_name not in entries:
            continue  # a name imported from a module (`from pkg import name`), not a module
        tree = ast.parse(archive.read(source_name))
        for name in imports_of(tree, module, source_name.endswith("__init__.py")):
            root = name.split(".")[0]
            if root in first_party:
                pending.append(name)
            elif root not in sys.stdlib_module_names and root not in available:
                missing.add(root)
    return missing


def test_handler_imports_only_what_the_zip_holds(built: dict[str, packaging.Artifact]) -> None:
    with zipfile.ZipFile(built["arm64"].path) as archive:
        assert undeclared_imports(archive, HANDLER_MODULE, {"courier_authorizer", "courier_shared"}) == set()


def test_the_import_check_catches_an_undeclared_import(tmp_path: Path) -> None:
    zip_path = tmp_path / "fake.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("courier_authorizer/__init__.py", "")
        archive.writestr("courier_authorizer/handler.py", "from . import verifier\nimport json\n")
        archive.writestr(
            "courier_authorizer/verifier.py", "import jwt\nfrom courier_shared.db import store\n"
        )
        archive.writestr("courier_shared/__init__.py", "")
        archive.writestr("courier_shared/db/__init__.py", "")
        archive.writestr("courier_shared/db/store.py", "from sqlalchemy import select\n")
        archive.writestr("jwt/__init__.py", "")
    with zipfile.ZipFile(zip_path) as archive:
        assert undeclared_imports(archive, HANDLER_MODULE, {"courier_authorizer", "courier_shared"}) == {
            "sqlalchemy"
        }


def test_zip_alone_serves_its_pure_python_modules_and_no_host_binaries(
    built: dict[str, packaging.Artifact], tmp_path: Path
) -> None:
    """The host (CPython 3.11 x86_64) is not the target, so it can import only the pure-Python part
    from the unpacked zip, with nothing else on sys.path; the compiled part must not load here."""
    with zipfile.ZipFile(built["arm64"].path) as archive:
        archive.extractall(tmp_path)
    script = (
        "import sys; sys.path[:] = [sys.argv[1]] + [p for p in sys.path if 'site-packages' not in p]\n"
        "import jmespath, dotenv, annotated_types, courier_shared.routes\n"
        "assert courier_shared.routes.__file__.startswith(sys.argv[1])\n"
        "try:\n    import pydantic_core._pydantic_core\nexcept ImportError:\n    print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_build_is_byte_identical_when_repeated(built: dict[str, packaging.Artifact], tmp_path: Path) -> None:
    again = packaging.build("authorizer", "arm64", tmp_path)  # an empty folder: a real second build
    assert again.sha256 == built["arm64"].sha256
    assert again.path.read_bytes() == built["arm64"].path.read_bytes()
    assert built["arm64"].sha256 != built["x86_64"].sha256


def test_unchanged_inputs_reuse_the_zip(built: dict[str, packaging.Artifact]) -> None:
    before = built["x86_64"].path.stat().st_mtime_ns
    assert packaging.build("authorizer", "x86_64", built["x86_64"].path.parent) == built["x86_64"]
    assert built["x86_64"].path.stat().st_mtime_ns == before


def test_cli_prints_each_artifact_size(
    built: dict[str, packaging.Artifact], capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = built["arm64"].path.parent
    assert packaging.main(["authorizer", "--arch", "arm64", "--out", str(out_dir)]) == 0
    assert "courier-authorizer-arm64.zip:" in capsys.readouterr().out
    assert "MB zipped" in built["arm64"].describe()


def test_packages_past_lambda_limits_fail(built: dict[str, packaging.Artifact]) -> None:
    too_big = replace(built["arm64"], zipped_bytes=packaging.MAX_ZIPPED_BYTES + 1)
    with pytest.raises(packaging.PackagingError, match="direct-upload limit"):
        packaging._check_limits(too_big)
    too_big = replace(built["arm64"], unzipped_bytes=packaging.MAX_UNZIPPED_BYTES + 1)
    with pytest.raises(packaging.PackagingError, match="unzipped"):
        packaging._check_limits(too_big)
    packaging._check_limits(built["arm64"])


def test_migrator_package_carries_migrations_and_alembic_ini() -> None:
    targets = {target for _, target in packaging.source_trees("migrator")}
    assert targets == {"courier_migrator", "courier_shared", "migrations", "alembic.ini"}
    assert {target for _, target in packaging.source_trees("authorizer")} == {
        "courier_authorizer",
        "courier_shared",
    }


def test_only_the_services_own_locked_dependencies_are_exported() -> None:
    requirements = packaging.locked_requirements("authorizer")
    pinned = {line.split("==")[0] for line in requirements.splitlines() if "==" in line}
    assert {"pyjwt", "aws-lambda-powertools", "pydantic"} <= pinned
    assert not {"sqlalchemy", "boto3", "strands-agents", "pulumi", "pytest"} & pinned
    assert "--hash=sha256:" in requirements


def test_unknown_service_or_architecture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(packaging.PackagingError, match="unknown service"):
        packaging.build("frontend", "arm64", tmp_path)
    with pytest.raises(packaging.PackagingError, match="unknown architecture"):
        packaging.build("authorizer", "ppc64le", tmp_path)  # type: ignore[arg-type]
