"""The infra tests' view of the program under Pulumi's mocks: `courier_infra.mocks`, the same
evaluation the local stack is assembled from (so what the tests check is what `courier dev` runs).
Add mocked outputs for new resource types in `courier_infra.mocks.AwsMocks`."""

from courier_infra.mocks import (
    ACCOUNT,
    MIGRATIONS_HASH,
    AwsMocks,
    Declared,
    Recorded,
    RecordingMonitor,
    config_for,
    load,
    placeholder_artifacts,
    run_entry_point,
    run_program,
    stack_file_config,
)

fake_artifacts = placeholder_artifacts

__all__ = [
    "ACCOUNT",
    "MIGRATIONS_HASH",
    "AwsMocks",
    "Declared",
    "Recorded",
    "RecordingMonitor",
    "config_for",
    "fake_artifacts",
    "load",
    "placeholder_artifacts",
    "run_entry_point",
    "run_program",
    "stack_file_config",
]
