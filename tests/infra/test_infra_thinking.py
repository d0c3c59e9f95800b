"""`courier:thinkingBudgetTokens`: the worker gets a budget Bedrock accepts, and a model the catalog
says cannot think is refused by the program before anything is declared (at `pulumi preview`)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from infra_harness import AwsMocks, Recorded, RecordingMonitor, config_for, run_program

from courier_infra import packaging
from courier_infra.config import ConfigError
from courier_worker.settings import WorkerSettings


def worker_environment(recorded: Recorded) -> dict[str, str]:
    worker = recorded.one("aws:lambda/function:Function", "worker")
    return dict(worker.inputs["environment"]["variables"])


def test_a_budget_reaches_the_worker_with_room_left_for_the_answer(
    artifacts: Mapping[str, packaging.Artifact],
) -> None:
    config = config_for(
        "dev", **{"courier:model": "claude-haiku-4-5", "courier:thinkingBudgetTokens": "4096"}
    )
    environment = worker_environment(run_program("dev", config, artifacts))

    assert (environment["THINKING_BUDGET_TOKENS"], environment["MAX_OUTPUT_TOKENS"]) == ("4096", "6144")
    settings = WorkerSettings.model_validate(environment)  # what the worker's cold start accepts
    assert settings.thinking_budget_tokens == 4096


def test_thinking_is_off_unless_asked_for(artifacts: Mapping[str, packaging.Artifact]) -> None:
    environment = worker_environment(run_program("dev", config_for("dev"), artifacts))

    assert "THINKING_BUDGET_TOKENS" not in environment
    assert WorkerSettings.model_validate(environment).thinking_budget_tokens == 0


@pytest.mark.parametrize("model", ["nova-pro", "claude-opus-4-7"])  # no thinking; adaptive thinking only
def test_a_budget_for_a_model_that_cannot_think_fails_before_any_resource_is_declared(
    artifacts: Mapping[str, packaging.Artifact], model: str
) -> None:
    region = "us-east-1"
    monitor = RecordingMonitor(AwsMocks(region))
    config = config_for(
        "dev",
        **{"aws:region": region, "courier:model": model, "courier:thinkingBudgetTokens": "2048"},
    )
    with pytest.raises(ConfigError, match="courier:thinkingBudgetTokens is 2048") as refused:
        run_program("dev", config, artifacts, monitor=monitor)
    assert "claude-haiku-4-5" in str(refused.value)  # it names the models that can
    assert monitor.declared == {}
