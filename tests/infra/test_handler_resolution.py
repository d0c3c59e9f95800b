"""Every Handler the Pulumi program declares exists in the package that deploys it.

Each service is built the way `make package` builds it (uv.lock's wheels into a zip), for this
host's architecture and for Lambda's Python (3.13) when this machine has it. The zip is unpacked
and the declared Handler resolved exactly as the Python Lambda runtime does: a fresh interpreter in
isolated mode, only the package (and the standard library) on sys.path, the module imported and
the attribute fetched. A Handler that names a missing module or function fails here, as it would
fail every invocation in AWS (Runtime.ImportModuleError / Runtime.HandlerNotFound).
"""

from __future__ import annotations

import functools
import json
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from infra_harness import Recorded

from courier_infra import packaging

HOST_ARCHITECTURE: packaging.Architecture = (
    "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
)

# What the Lambda runtime's bootstrap does with the Handler setting (awslambdaric's _get_handler).
RESOLVE = """
import importlib, json, sys
sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p and "site-packages" not in p]
module_name, _, attribute = sys.argv[2].rpartition(".")
module = importlib.import_module(module_name)
handler = getattr(module, attribute)
print(json.dumps({
    "callable": callable(handler),
    "module_file": module.__file__,
    "cold_start": callable(getattr(handler, "cold_start", None)),
}))
"""


@functools.cache
def lambda_python() -> tuple[str, str]:
    """(interpreter, version): Lambda's Python 3.13 if installed here, else this interpreter."""
    candidates = [
        *map(str, Path("/root/.pyenv/versions").glob("3.13*/bin/python3.13")),
        shutil.which("python3.13"),
    ]
    for candidate in candidates:
        if (
            candidate
            and subprocess.run([candidate, "-c", ""], capture_output=True, check=False).returncode == 0
        ):
            return candidate, packaging.PYTHON_VERSION
    return sys.executable, f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    _, version = lambda_python()
    out = tmp_path_factory.mktemp("host-build")
    folders = {}
    for service in packaging.SERVICES:
        artifact = packaging.build(service, HOST_ARCHITECTURE, out, python_version=version, log=False)
        folder = out / service
        with zipfile.ZipFile(artifact.path) as archive:
            archive.extractall(folder)
        folders[service] = folder
    return folders


def resolve(package: Path, handler: str) -> subprocess.CompletedProcess[str]:
    interpreter, _ = lambda_python()
    return subprocess.run(
        [interpreter, "-I", "-c", RESOLVE, str(package), handler],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("service", packaging.SERVICES)
def test_the_declared_handler_resolves_inside_its_built_package(
    dev: Recorded, unpacked: dict[str, Path], service: str
) -> None:
    (function,) = [
        declared
        for declared in dev.of_type("aws:lambda/function:Function")
        if declared.inputs["tags"]["courier:service"] == service
    ]
    handler = function.inputs["handler"]
    result = resolve(unpacked[service], handler)
    assert result.returncode == 0, f"{handler} does not resolve in the {service} package:\n{result.stderr}"
    found = json.loads(result.stdout)
    assert found["callable"] and found["cold_start"]
    assert found["module_file"].startswith(str(unpacked[service]))  # from the package, not the workspace


def test_a_handler_the_package_does_not_define_fails_like_lambda(unpacked: dict[str, Path]) -> None:
    """The check itself: the name the program used to declare (`handler.handler`) is refused."""
    missing_function = resolve(unpacked["gateway"], "courier_gateway.handler.handler")
    assert missing_function.returncode != 0 and "AttributeError" in missing_function.stderr
    missing_module = resolve(unpacked["authorizer"], "courier_authorizer.lambda_function.lambda_handler")
    assert missing_module.returncode != 0 and "ModuleNotFoundError" in missing_module.stderr
