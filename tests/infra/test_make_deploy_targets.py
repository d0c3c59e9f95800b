"""`make preview|up|refresh|destroy STACK=…` hands Pulumi a PATH on which its language host finds uv.

`Pulumi.yaml` says `toolchain: uv`, and Pulumi runs `uv` from PATH; `make install` puts uv only in
`.tools/bin`. The Pulumi CLI cannot be installed here, so a stand-in `pulumi` on PATH records what it
was given (arguments, and what `uv` and `python3` resolve to on its PATH) and the real Makefile
recipe runs it. The shell's PATH holds no uv, so only the recipe can make it resolvable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
BASE_PATH = "/usr/bin:/bin"  # make and sh, and no uv (checked below)

FAKE_PULUMI = """#!/bin/sh
uv_path=$(command -v uv || true)
python_path=$(command -v python3 || true)
{
  echo "args=$*"
  echo "uv=$uv_path"
  echo "uv_version=$([ -n "$uv_path" ] && uv --version)"
  echo "python3=$python_path"
  echo "pulumi_policy=$("$python_path" -c 'import pulumi_policy; print("importable")' || echo missing)"
  echo "uv_frozen=$UV_FROZEN"
} > "$RECORD"
"""


def read_record(record: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in record.read_text().splitlines())


pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


@pytest.fixture
def fake_pulumi(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(FAKE_PULUMI)
    script.chmod(0o755)
    return bin_dir


def run_make(*args: str, path: str, record: Path) -> subprocess.CompletedProcess[str]:
    # `-o install`: treat the venv as installed (the test environment is `make install`'s own).
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), "RECORD": str(record)}
    return subprocess.run(
        [str(MAKE), "--no-print-directory", "-C", str(ROOT), "-o", "install", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_shell_path_alone_has_no_uv() -> None:
    assert shutil.which("uv", path=BASE_PATH) is None


@pytest.mark.parametrize(("command", "stack"), [("up", "dev"), ("preview", "prod"), ("destroy", "dev")])
def test_pulumi_gets_the_stack_and_a_path_with_the_repos_uv(
    fake_pulumi: Path, tmp_path: Path, command: str, stack: str
) -> None:
    record = tmp_path / "record.json"

    result = run_make(command, f"STACK={stack}", path=f"{fake_pulumi}:{BASE_PATH}", record=record)

    assert result.returncode == 0, result.stderr
    seen = read_record(record)
    assert seen["args"] == f"{command} -s {stack}"
    assert seen["uv"] == str(ROOT / ".tools" / "bin" / "uv")
    assert seen["uv_version"].startswith("uv ")  # resolvable *and* runs
    assert seen["uv_frozen"] == "1"
    # A policy pack runs python3 from PATH: it is the project venv's, which has pulumi-policy.
    assert seen["python3"] == str(ROOT / ".venv" / "bin" / "python3")
    assert seen["pulumi_policy"] == "importable"


def test_extra_arguments_reach_pulumi(fake_pulumi: Path, tmp_path: Path) -> None:
    record = tmp_path / "record.json"

    result = run_make(
        "preview",
        "STACK=dev",
        "PULUMI_ARGS=--policy-pack infra/policy",
        path=f"{fake_pulumi}:{BASE_PATH}",
        record=record,
    )

    assert result.returncode == 0, result.stderr
    assert read_record(record)["args"] == "preview -s dev --policy-pack infra/policy"


def test_without_the_pulumi_cli_the_target_says_so(tmp_path: Path) -> None:
    record = tmp_path / "record.json"

    result = run_make("up", "STACK=dev", path=BASE_PATH, record=record)

    assert result.returncode != 0
    assert "The Pulumi CLI is not installed" in result.stderr
    assert not record.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [((), "Say which stack: make up STACK=dev"), (("STACK=staging",), "there is no Pulumi.staging.yaml")],
)
def test_a_missing_or_unknown_stack_stops_before_pulumi(
    fake_pulumi: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    record = tmp_path / "record.json"

    result = run_make("up", *args, path=f"{fake_pulumi}:{BASE_PATH}", record=record)

    assert result.returncode != 0
    assert message in result.stderr
    assert not record.exists()
