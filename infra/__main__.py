"""Pulumi entry point (`main: infra/` in Pulumi.yaml): one stage of Courier per stack.

Validates the stack's `courier:` settings and resolves the model before declaring anything,
then builds the Lambda zips that changed and declares the stage.
"""

from courier_infra.config import config_from_pulumi
from courier_infra.stack import CourierStack, default_builder, migrations_hash, resolve_model

config = config_from_pulumi()
model = resolve_model(config)
stack = CourierStack(config, model, build_artifact=default_builder(), migrations_hash=migrations_hash())
stack.export()
