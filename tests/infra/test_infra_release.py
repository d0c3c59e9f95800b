"""When migrations run: the migrator Invocation (lifecycle CREATE_ONLY) is re-created, and so invokes
the migrator, exactly when its triggers change. They must change on every release (any Lambda's
code) and when the database is replaced (a new, empty database), and stay put otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pulumi
from infra_harness import AwsMocks, RecordingMonitor, run_program, stack_file_config

from courier_infra import packaging

INVOCATION = "aws:lambda/invocation:Invocation"


class DatabaseMocks(AwsMocks):
    """The harness's mocks, with the RDS resource id AWS assigns to each new instance."""

    def __init__(self, region: str, resource_id: str) -> None:
        super().__init__(region)
        self.resource_id = resource_id

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id, outputs = super().new_resource(args)
        if args.typ == "aws:rds/instance:Instance":
            outputs["resourceId"] = self.resource_id
        return resource_id, outputs


def triggers(
    artifacts: Mapping[str, packaging.Artifact],
    *,
    database: str = "db-AAAAAAAAAAAAAAAAAAAAAAAAAA",
    stack: str = "dev",
    **config: str,
) -> dict[str, str]:
    values = {**stack_file_config(stack), **config}
    monitor = RecordingMonitor(DatabaseMocks(values["aws:region"], database))
    recorded = run_program(stack, values, artifacts, monitor=monitor)
    (invocation,) = recorded.of_type(INVOCATION)
    assert invocation.inputs.get("lifecycleScope", "CREATE_ONLY") == "CREATE_ONLY"
    result: dict[str, str] = invocation.inputs["triggers"]
    return result


def with_new_code(artifacts: Mapping[str, packaging.Artifact], service: str) -> dict[str, packaging.Artifact]:
    changed = dataclasses.replace(artifacts[service], sha256="ab" * 32)
    return {**artifacts, service: changed}


def test_a_pulumi_up_with_nothing_new_does_not_rerun_migrations(
    artifacts: Mapping[str, packaging.Artifact],
) -> None:
    assert triggers(artifacts) == triggers(artifacts)


def test_a_replaced_database_reruns_migrations(artifacts: Mapping[str, packaging.Artifact]) -> None:
    before = triggers(artifacts, database="db-AAAAAAAAAAAAAAAAAAAAAAAAAA")
    after = triggers(artifacts, database="db-BBBBBBBBBBBBBBBBBBBBBBBBBB")
    assert before != after
    assert before["database"] == "db-AAAAAAAAAAAAAAAAAAAAAAAAAA"


def test_every_release_reruns_migrations(artifacts: Mapping[str, packaging.Artifact]) -> None:
    """A release is any change to any function's code (the migrator's zip carries migrations/)."""
    before = triggers(artifacts)
    for service in packaging.SERVICES:
        assert triggers(with_new_code(artifacts, service)) != before, service


def test_a_config_only_change_does_not_rerun_migrations(artifacts: Mapping[str, packaging.Artifact]) -> None:
    assert triggers(artifacts, **{"courier:logRetentionDays": "14"}) == triggers(artifacts)


def test_prod_triggers_the_same_way(artifacts: Mapping[str, packaging.Artifact]) -> None:
    before = triggers(artifacts, stack="prod")
    assert triggers(with_new_code(artifacts, "worker"), stack="prod") != before
    assert triggers(artifacts, stack="prod", database="db-CCCCCCCCCCCCCCCCCCCCCCCCCC") != before
