"""IAM proven against real calls: every AWS call the local functions make during the test session is
evaluated against that function's IAM policy as the Pulumi program declares it (dev stack).

The stacks the tests start record their calls into one folder (`--aws-calls-log`, see
tests/e2e/devstack.py). At the end of the session each call is checked (`courier_local.aws_calls`):
a call its function's policy does not allow fails the run; statements no call exercised are listed,
so least privilege stays visible.

Under pytest-xdist the controller makes the folder (its workers inherit the variable) and evaluates
the calls of all its workers once they are done.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

AWS_CALLS_DIR_VARIABLE = "COURIER_TEST_AWS_CALLS_DIR"
_report: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        os.environ[AWS_CALLS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="courier-aws-calls-")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller made the folder, and evaluates every worker's calls
    folder = os.environ.pop(AWS_CALLS_DIR_VARIABLE, None)
    if folder is None:
        return
    logs = sorted(Path(folder).glob("*.jsonl"))
    try:
        if not logs:
            return  # no stack ran in this session (e.g. only unit tests were selected)
        from courier_local.aws_calls import evaluate, read_calls
        from courier_local.stack import load_deployment

        evaluation = evaluate(read_calls(logs), load_deployment("dev"))
        _report[:] = list(evaluation.report())
        if not evaluation.ok:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _report:
        terminalreporter.section("IAM: the functions' AWS calls against their declared policies")
        for line in _report:
            terminalreporter.line(line)
