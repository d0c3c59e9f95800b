"""Extended thinking's setting: validated once at cold start, and the Bedrock request it makes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from courier_worker.bedrock import build_bedrock_model
from courier_worker.settings import WorkerSettings

MODEL = {"MODEL_ID": "eu.anthropic.claude-haiku-4-5-20251001-v1:0", "BEDROCK_REGION": "eu-west-1"}


def request_of(settings: WorkerSettings) -> dict[str, object]:
    model = build_bedrock_model(settings)
    return model.format_request([{"role": "user", "content": [{"text": "hi"}]}])


def test_thinking_is_off_by_default_and_the_request_asks_for_none() -> None:
    settings = WorkerSettings.model_validate(MODEL)

    assert settings.thinking_budget_tokens == 0
    assert "additionalModelRequestFields" not in request_of(settings)


def test_a_thinking_budget_asks_bedrock_to_think_without_a_sampling_override() -> None:
    settings = WorkerSettings.model_validate(
        {**MODEL, "THINKING_BUDGET_TOKENS": "2048", "MAX_OUTPUT_TOKENS": "4096"}
    )

    request = request_of(settings)
    assert request["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert request["inferenceConfig"] == {"maxTokens": 4096}  # no temperature/topP: Bedrock refuses them


@pytest.mark.parametrize(
    ("environment", "complaint"),
    [
        ({"THINKING_BUDGET_TOKENS": "512"}, "at least 1024"),
        ({"THINKING_BUDGET_TOKENS": "2048", "MAX_OUTPUT_TOKENS": "2048"}, "less than MAX_OUTPUT_TOKENS"),
        ({"THINKING_BUDGET_TOKENS": "-1"}, "greater than or equal to 0"),
    ],
)
def test_a_budget_bedrock_would_refuse_stops_the_cold_start(
    environment: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        WorkerSettings.model_validate({**MODEL, **environment})
