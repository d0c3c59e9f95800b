"""Prod's final snapshot has a name a second teardown cannot collide with.

RDS refuses to delete an instance when its final snapshot's name already exists, so the fixed
`courier-prod-final` made every teardown after the first (and every replacement of the database)
fail. The name now ends with a suffix drawn once per instance (pulumi_random.RandomId, kept while
the settings that replace the instance stay the same).
"""

from __future__ import annotations

import re

from infra_harness import Recorded

INSTANCE = "aws:rds/instance:Instance"
RANDOM_ID = "random:index/randomId:RandomId"
# RDS: 1-255 letters, digits or hyphens; a letter first; no two hyphens in a row; no hyphen last.
SNAPSHOT_NAME = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,254}(?<!-)$")


def test_prod_final_snapshot_name_carries_a_per_instance_suffix(prod: Recorded) -> None:
    instance = prod.one(INSTANCE, "database")
    suffix = prod.one(RANDOM_ID, "database-final-snapshot")

    name = instance.inputs["finalSnapshotIdentifier"]
    assert instance.inputs["skipFinalSnapshot"] is False
    assert name == f"courier-prod-final-{suffix.outputs['hex']}"
    assert re.fullmatch(r"courier-prod-final-[0-9a-f]{8}", name)
    assert SNAPSHOT_NAME.match(name)
    assert suffix.inputs["byteLength"] == 4
    assert suffix.parent == prod.one("courier:database:Database", "database").urn


def test_the_suffix_is_redrawn_with_the_settings_that_replace_the_instance(prod: Recorded) -> None:
    keepers = prod.one(RANDOM_ID, "database-final-snapshot").inputs["keepers"]

    assert keepers == {"identifier": "courier-prod", "dbName": "courier", "username": "courier_admin"}


def test_dev_skips_the_final_snapshot_and_draws_no_suffix(dev: Recorded) -> None:
    instance = dev.one(INSTANCE, "database")

    assert instance.inputs["skipFinalSnapshot"] is True
    assert "finalSnapshotIdentifier" not in instance.inputs
    assert dev.of_type(RANDOM_ID) == []
