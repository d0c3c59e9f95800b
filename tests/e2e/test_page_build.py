"""The page shipped in the Python package is exactly what its sources build.

`make dev` serves local/src/courier_local/web without Node; `make web` rebuilds it from web/ and its
committed lockfile. A change to web/ that was not rebuilt (or a hand edit of the build) fails here.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "web"
SHIPPED = ROOT / "local/src/courier_local/web"


def digests(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def npm_exec(*command: str) -> None:
    """Run one of web/'s locked tools (`npm exec`), failing the test with its output."""
    npm = shutil.which("npm")
    if npm is None or not (SOURCES / "node_modules").is_dir():
        pytest.fail("web/node_modules is missing: `make e2e` installs it (npm ci from web/package-lock.json)")
    done = subprocess.run(
        [npm, "exec", "--", *command], cwd=SOURCES, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_shipped_page_is_what_the_sources_build(tmp_path: Path) -> None:
    npm_exec("tsc", "--noEmit")
    out = tmp_path / "page"
    npm_exec("vite", "build", "--outDir", str(out), "--emptyOutDir", "--logLevel", "error")

    built, shipped = digests(out), digests(SHIPPED)
    assert sorted(built) == sorted(shipped), "run `make web`: the shipped files differ from the build's"
    changed = [name for name in built if built[name] != shipped[name]]
    assert not changed, f"run `make web`: these shipped files differ from what web/ builds: {changed}"
