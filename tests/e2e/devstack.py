"""`courier dev` as a user runs it: a subprocess on free ports, in its own working directory.
Shared by tests/e2e and tests/browser.

`DevStack` starts it, waits for `.courier/dev.json` (the stack writes it once everything is up),
and stops it with SIGINT the way Ctrl-C does, checking it exits 0 and frees its port.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from iam_plugin import AWS_CALLS_DIR_VARIABLE

from courier_local.load import stack_environment

READY_WITHIN_S = 45.0  # generous for a loaded machine: it bounds a hang, it is no promise of speed


def courier_command() -> list[str]:
    """The `courier` executable of this environment (COURIER_E2E_COMMAND overrides it for debugging)."""
    override = os.environ.get("COURIER_E2E_COMMAND")
    if override:
        return shlex.split(override)
    return [str(Path(sys.executable).parent / "courier")]


def stack_env(**extra: str) -> dict[str, str]:
    """The environment of a developer with no AWS account: nothing points at real AWS (the one
    `courier dev` environment `make load` uses too)."""
    return {**stack_environment(), **extra}


@dataclass
class DevStack:
    process: subprocess.Popen[bytes]
    workdir: Path
    info: dict[str, Any]
    ready_s: float

    @property
    def ws_url(self) -> str:
        return str(self.info["ws_url"])

    @property
    def port(self) -> int:
        return int(urllib.parse.urlsplit(self.ws_url).port or 0)

    def token(self, user: str = "e2e-user", tenant: str = "e2e") -> str:
        query = urllib.parse.urlencode({"user": user, "tenant": tenant})
        with urllib.request.urlopen(f"{self.info['dev_token_url']}?{query}", timeout=5) as response:
            return str(json.loads(response.read())["token"])

    def chat(self, *args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
        """Run `courier chat ARGS` in the stack's directory (it finds the stack through dev.json)."""
        return subprocess.run(
            [*courier_command(), "chat", *args],
            cwd=self.workdir,
            env=stack_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def chat_process(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*courier_command(), "chat", *args],
            cwd=self.workdir,
            env=stack_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def logs(self) -> str:
        return "".join(
            f"--- {name}\n{(self.workdir / name).read_text(errors='replace')}\n"
            for name in ("dev.out", "dev.err")
            if (self.workdir / name).exists()
        )

    def stop(self, timeout_s: float = 20) -> int:
        """Ctrl-C, then wait: returns the exit code (kills and fails if it does not exit in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"`courier dev` did not exit within {timeout_s} s of SIGINT\n{self.logs()}")
        return int(self.process.returncode)


def aws_calls_log_args() -> list[str]:
    """Every stack of the session records its functions' AWS calls for the IAM evaluation
    (tests/iam_plugin.py) into the folder the plugin named."""
    folder = os.environ.get(AWS_CALLS_DIR_VARIABLE)
    return ["--aws-calls-log", str(Path(folder) / f"{uuid.uuid4().hex}.jsonl")] if folder else []


def start_dev_stack(workdir: Path, *args: str, env: dict[str, str] | None = None) -> DevStack:
    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir / ".courier" / "dev.json"
    started = time.monotonic()
    with (workdir / "dev.out").open("wb") as out, (workdir / "dev.err").open("wb") as err:
        process = subprocess.Popen(
            [*courier_command(), "dev", "--port", "0", *aws_calls_log_args(), *args],
            cwd=workdir,
            env=env or stack_env(),
            stdout=out,
            stderr=err,
        )
    stack = DevStack(process, workdir, {}, 0.0)
    while time.monotonic() - started < READY_WITHIN_S:
        if process.poll() is not None:
            pytest.fail(f"`courier dev` exited with {process.returncode} during start-up\n{stack.logs()}")
        if state.exists():
            try:
                stack.info = json.loads(state.read_text())
            except ValueError:  # written but not flushed yet
                time.sleep(0.05)
                continue
            stack.ready_s = time.monotonic() - started
            return stack
        time.sleep(0.05)
    stack.stop()
    pytest.fail(f"`courier dev` was not ready within {READY_WITHIN_S} s\n{stack.logs()}")


def port_is_free(port: int) -> bool:
    """True when nothing listens on the port (SO_REUSEADDR: closed connections in TIME_WAIT don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
