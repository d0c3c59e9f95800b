"""Fixtures for the infra tests: the real dev and prod stacks, built once per session under mocks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from infra_harness import Recorded, fake_artifacts, run_program, stack_file_config

from courier_infra import packaging


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Mapping[str, packaging.Artifact]:
    return fake_artifacts(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="session")
def dev(artifacts: Mapping[str, packaging.Artifact]) -> Recorded:
    return run_program("dev", stack_file_config("dev"), artifacts)


@pytest.fixture(scope="session")
def prod(artifacts: Mapping[str, packaging.Artifact]) -> Recorded:
    return run_program("prod", stack_file_config("prod"), artifacts)


@pytest.fixture(params=["dev", "prod"])
def stage(request: pytest.FixtureRequest) -> Recorded:
    recorded: Recorded = request.getfixturevalue(request.param)
    return recorded


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("build")
