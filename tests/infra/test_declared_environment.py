"""Every function's environment, as the Pulumi program declares it for each shipped stack, is a valid
configuration of the service it runs: the settings each service validates at cold start accept it.

A limit the code tightened but infra still sets (or a variable infra forgot) fails here, in
seconds, instead of as a cold-start crash of every invocation after `pulumi up`.
"""

from __future__ import annotations

import pytest
from infra_harness import Recorded
from pydantic import BaseModel

from courier_authorizer.settings import AuthorizerSettings
from courier_gateway.settings import GatewaySettings
from courier_shared.settings import DatabaseSettings
from courier_worker.settings import WorkerSettings

SETTINGS: dict[str, type[BaseModel]] = {
    "authorizer": AuthorizerSettings,
    "gateway": GatewaySettings,
    "worker": WorkerSettings,
    "migrator": DatabaseSettings,
}


def test_every_declared_environment_is_a_valid_configuration(stage: Recorded) -> None:
    functions = stage.of_type("aws:lambda/function:Function")
    assert {function.inputs["tags"]["courier:service"] for function in functions} == set(SETTINGS)
    for function in functions:
        service = function.inputs["tags"]["courier:service"]
        environment = function.inputs["environment"]["variables"]
        SETTINGS[service].model_validate(environment)  # raises with the offending variable


def test_a_value_the_code_refuses_fails_here(dev: Recorded) -> None:
    (gateway,) = [f for f in dev.of_type("aws:lambda/function:Function") if f.name == "gateway"]
    environment = {**gateway.inputs["environment"]["variables"], "MAX_MESSAGE_CHARS": "16000"}
    with pytest.raises(ValueError, match="MAX_MESSAGE_CHARS"):
        GatewaySettings.model_validate(environment)
