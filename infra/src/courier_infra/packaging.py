"""Build one deterministic Lambda zip per service for Python 3.13 on Amazon Linux 2023.

    python -m courier_infra.packaging authorizer gateway --arch arm64 --out build/

What goes in a zip: the service's locked third-party dependencies (exactly the versions and hashes
in uv.lock, from `uv export --package courier-<service>`), installed as Linux wheels for the target
architecture whatever the host is; then the service's own package and `courier_shared` from the
work tree (and, for the migrator, `migrations/` and `alembic.ini`). No tests, no `__pycache__`,
no console scripts. Entries are sorted and stamped with one fixed time, so an unchanged service
produces the same bytes and Lambda sees no change.

The installer is `uv pip install --python-platform <arch>-manylinux_2_28 --python-version 3.13
--only-binary :all:`, uv's equivalent of `pip install --platform manylinux_2_28_<arch> --platform
manylinux2014_<arch> --implementation cp --only-binary=:all: --python-version 3.13`. uv is used
because it evaluates the lock's environment markers for the *target* (pip evaluates them against
the host interpreter) and checks the locked hashes. manylinux_2_28 accepts every older manylinux
tag too; AL2023 has glibc 2.34, and some wheels (psycopg-binary for aarch64) exist only as 2_28.

Builds are cached in the output folder by a fingerprint of everything that goes in, so
`pulumi up` rebuilds only services whose inputs changed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SERVICES = ("authorizer", "gateway", "worker", "migrator")
ARCHITECTURES = ("arm64", "x86_64")
Architecture = Literal["arm64", "x86_64"]

PYTHON_VERSION = "3.13"
LAMBDA_RUNTIME = "python3.13"
# uv's platform names; each accepts manylinux_2_28 and every older manylinux tag (incl. manylinux2014).
UV_PLATFORMS = {"arm64": "aarch64-manylinux_2_28", "x86_64": "x86_64-manylinux_2_28"}
MACHINE_NAMES = {"arm64": "aarch64", "x86_64": "x86_64"}

MAX_ZIPPED_BYTES = 50 * 1024 * 1024  # Lambda: direct upload of a deployment package
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024  # Lambda: unzipped deployment package, layers included
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
# Bump when the zip layout changes, so cached builds are not reused across layouts.
PACKAGER_VERSION = "2"

REPO_ROOT = Path(__file__).resolve().parents[3]
_SKIPPED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
# Top-level folders some wheels install that a Lambda never needs (console scripts, stray tests).
_SKIPPED_TOP_LEVEL = frozenset({"bin", "tests", "test"})


class PackagingError(RuntimeError):
    """The build could not produce a valid Lambda package."""


@dataclass(frozen=True)
class Artifact:
    """A built Lambda zip."""

    service: str
    architecture: Architecture
    path: Path
    sha256: str  # hex digest of the zip
    zipped_bytes: int
    unzipped_bytes: int

    @property
    def source_code_hash(self) -> str:
        """The zip's SHA-256, base64-encoded, as Lambda reports it (`CodeSha256`)."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()

    def describe(self) -> str:
        return (
            f"{self.path.name}: {self.zipped_bytes / 1e6:.1f} MB zipped, "
            f"{self.unzipped_bytes / 1e6:.1f} MB unzipped (sha256 {self.sha256[:12]})"
        )


def find_uv() -> str:
    """The uv binary: $UV, the repo's pinned .tools/bin/uv, or uv on PATH."""
    candidates = [os.environ.get("UV"), str(REPO_ROOT / ".tools" / "bin" / "uv"), shutil.which("uv")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise PackagingError("uv not found: run `make install`, or set UV=/path/to/uv")


def locked_requirements(service: str, *, root: Path = REPO_ROOT, uv: str | None = None) -> str:
    """The service's third-party dependencies as pinned, hashed requirements from uv.lock."""
    _check_service(service)
    command = [
        uv or find_uv(),
        "export",
        "--package",
        f"courier-{service}",
        "--no-dev",
        "--frozen",
        "--no-emit-workspace",  # workspace code is copied from the work tree, not installed
        "--no-header",
        "--no-annotate",
        "--quiet",
    ]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise PackagingError(f"uv export for {service} failed:\n{result.stderr}")
    return result.stdout


def source_trees(service: str, root: Path = REPO_ROOT) -> list[tuple[Path, str]]:
    """(path on disk, path in the zip) for the code copied from the work tree."""
    trees = [
        (root / "services" / service / "src" / f"courier_{service}", f"courier_{service}"),
        (root / "shared" / "src" / "courier_shared", "courier_shared"),
    ]
    if service == "migrator":
        trees += [(root / "migrations", "migrations"), (root / "alembic.ini", "alembic.ini")]
    return trees


def build(
    service: str,
    architecture: Architecture,
    out_dir: Path,
    *,
    root: Path = REPO_ROOT,
    uv: str | None = None,
    log: bool = True,
    python_version: str = PYTHON_VERSION,
) -> Artifact:
    """Build (or reuse) `<out_dir>/courier-<service>-<architecture>.zip`.

    `python_version` other than the runtime's is for tests that import the package on this host.
    """
    _check_service(service)
    if architecture not in ARCHITECTURES:
        raise PackagingError(f"unknown architecture {architecture!r}; choose from {ARCHITECTURES}")
    uv = uv or find_uv()
    requirements = locked_requirements(service, root=root, uv=uv)
    trees = source_trees(service, root)
    fingerprint = _fingerprint(architecture, requirements, trees, python_version)

    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"courier-{service}-{architecture}.zip"
    fingerprint_path = zip_path.with_suffix(".fingerprint")
    if zip_path.is_file() and fingerprint_path.is_file() and fingerprint_path.read_text() == fingerprint:
        artifact = _describe_zip(service, architecture, zip_path)
    else:
        with tempfile.TemporaryDirectory(prefix=f"courier-{service}-") as scratch:
            staging = Path(scratch) / "package"
            _install_dependencies(requirements, architecture, staging, Path(scratch), uv, python_version)
            for source, target in trees:
                _copy_source(source, staging / target)
            partial = zip_path.with_suffix(".zip.partial")
            _write_zip(staging, partial)
            partial.replace(zip_path)
        fingerprint_path.write_text(fingerprint)
        artifact = _describe_zip(service, architecture, zip_path)
    if log:
        print(artifact.describe(), file=sys.stderr)
    _check_limits(artifact)
    return artifact


def _check_service(service: str) -> None:
    if service not in SERVICES:
        raise PackagingError(f"unknown service {service!r}; choose from {SERVICES}")


def _install_dependencies(
    requirements: str, architecture: Architecture, staging: Path, scratch: Path, uv: str, python_version: str
) -> None:
    requirements_file = scratch / "requirements.txt"
    requirements_file.write_text(requirements)
    staging.mkdir(parents=True)
    command = [
        uv,
        "pip",
        "install",
        "--target",
        str(staging),
        "--python-platform",
        UV_PLATFORMS[architecture],
        "--python-version",
        python_version,
        "--only-binary",
        ":all:",
        "--no-deps",  # the export is the complete, locked closure
        "--require-hashes",
        "--no-installer-metadata",  # no INSTALLER / direct_url.json: they differ between machines
        "--no-compile-bytecode",
        "--quiet",
        "-r",
        str(requirements_file),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise PackagingError(f"installing dependencies for {architecture} failed:\n{result.stderr}")


def _included_files(top: Path) -> Iterator[Path]:
    for path in sorted(top.rglob("*")):
        relative = path.relative_to(top)
        if any(part in _SKIPPED_DIRS for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(_SKIPPED_SUFFIXES):
            yield path


def _copy_source(source: Path, target: Path) -> None:
    if not source.exists():
        raise PackagingError(f"missing source {source}")
    if source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return
    for path in _included_files(source):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        if path.stat().st_mode & stat.S_IXUSR:
            destination.chmod(0o755)


def zip_entries(staging: Path) -> list[tuple[str, Path]]:
    """(name in the zip, file) in a stable order, without caches and top-level scripts/tests."""
    entries = []
    for path in _included_files(staging):
        relative = path.relative_to(staging)
        if len(relative.parts) > 1 and relative.parts[0] in _SKIPPED_TOP_LEVEL:
            continue
        if relative.parts[0].startswith("."):  # uv's .lock and other installer state
            continue
        entries.append((relative.as_posix(), path))
    return sorted(entries)


def _write_zip(staging: Path, zip_path: Path) -> None:
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, path in zip_entries(staging):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.create_system = 3  # Unix, whatever the build host
            archive.writestr(info, path.read_bytes(), compresslevel=6)


def _describe_zip(service: str, architecture: Architecture, zip_path: Path) -> Artifact:
    data = zip_path.read_bytes()
    with zipfile.ZipFile(zip_path) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    return Artifact(
        service=service,
        architecture=architecture,
        path=zip_path,
        sha256=hashlib.sha256(data).hexdigest(),
        zipped_bytes=len(data),
        unzipped_bytes=unzipped,
    )


def _check_limits(artifact: Artifact) -> None:
    if artifact.zipped_bytes > MAX_ZIPPED_BYTES:
        raise PackagingError(
            f"{artifact.path.name} is {artifact.zipped_bytes:,} bytes zipped; "
            f"Lambda's direct-upload limit is {MAX_ZIPPED_BYTES:,}"
        )
    if artifact.unzipped_bytes > MAX_UNZIPPED_BYTES:
        raise PackagingError(
            f"{artifact.path.name} is {artifact.unzipped_bytes:,} bytes unzipped; "
            f"Lambda's limit is {MAX_UNZIPPED_BYTES:,}"
        )


def _fingerprint(
    architecture: str, requirements: str, trees: Iterable[tuple[Path, str]], python_version: str
) -> str:
    digest = hashlib.sha256()
    for part in (PACKAGER_VERSION, python_version, architecture, requirements):
        digest.update(part.encode() + b"\0")
    for source, target in trees:
        files = [source] if source.is_file() else list(_included_files(source))
        for path in files:
            relative = target if source.is_file() else f"{target}/{path.relative_to(source).as_posix()}"
            digest.update(relative.encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
            digest.update(b"x" if path.stat().st_mode & stat.S_IXUSR else b"-")
    return digest.hexdigest()


def tree_hash(paths: Sequence[Path], root: Path = REPO_ROOT) -> str:
    """SHA-256 over files' relative paths and contents: the release trigger for migrations."""
    digest = hashlib.sha256()
    for top in paths:
        files = [top] if top.is_file() else list(_included_files(top))
        for path in files:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m courier_infra.packaging", description=__doc__.split("\n")[0]
    )
    parser.add_argument("services", nargs="+", choices=[*SERVICES, "all"], metavar="service")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="arm64")
    parser.add_argument("--out", type=Path, default=Path("build"))
    args = parser.parse_args(argv)
    services = SERVICES if "all" in args.services else tuple(dict.fromkeys(args.services))
    try:
        for service in services:
            artifact = build(service, args.arch, args.out, log=False)
            print(artifact.describe())
    except PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
