"""Every catalog model x every Region with a Bedrock endpoint: the id exists there, the IAM is exact.

Expectations come from models.toml read as plain TOML (catalog_helpers.raw_catalog), not from the
code under test; the lifecycle is judged on the date the catalog was checked.
"""

from __future__ import annotations

from typing import Any

import pytest
from catalog_helpers import ACCOUNT, INVOKE_ACTIONS, TODAY, expected_partition, parse_arn, raw_catalog

from courier_shared.catalog import (
    LegacyModel,
    RetiredModel,
    ScopeUnavailable,
    invoke_policy,
    resolve,
)

RAW = raw_catalog()
REGIONS = [region for regions in RAW["regions"].values() for region in regions]
COMMERCIAL = set(RAW["regions"]["aws"])
GEO_PREFERENCE = ("us-gov", "jp", "au", "us", "eu", "apac")  # country profiles beat apac
PAIRS = [(model["key"], region) for model in RAW["models"] for region in REGIONS]


def _raw_model(key: str) -> dict[str, Any]:
    return next(model for model in RAW["models"] if model["key"] == key)


def _region_set(name: str) -> dict[str, Any]:
    return RAW["region_sets"][name]


def _scopes_from(model: dict[str, Any], region: str) -> list[str]:
    scopes = [
        scope for scope, name in model.get("profiles", {}).items() if region in _region_set(name)["sources"]
    ]
    if region in model.get("bare_regions", []):
        scopes.append("bare")
    return scopes


def _lifecycle(model: dict[str, Any]) -> str:
    if model.get("eol") and model["eol"] <= TODAY:
        return "end-of-life"
    if model.get("legacy_since") and model["legacy_since"] <= TODAY:
        return "legacy"
    return "active"


def _expected_auto_scope(scopes: list[str]) -> str:
    for scope in (*GEO_PREFERENCE, "global", "bare"):
        if scope in scopes:
            return scope
    raise AssertionError("no scope")


def test_the_matrix_covers_the_catalog():
    assert len(RAW["models"]) >= 30
    assert {"us-east-1", "ap-northeast-1", "eu-west-1", "us-gov-west-1", "sa-east-1"} <= set(REGIONS)
    assert len(PAIRS) == len(RAW["models"]) * len(REGIONS)


@pytest.mark.parametrize(("key", "region"), PAIRS)
def test_resolution_and_policy_for_every_model_in_every_region(key: str, region: str):
    model = _raw_model(key)
    lifecycle = _lifecycle(model)
    if lifecycle == "end-of-life":
        with pytest.raises(RetiredModel) as retired:
            resolve(key, region, today=TODAY)
        assert retired.value.successor == model["successor"]
        assert _lifecycle(_raw_model(model["successor"])) == "active"
        return
    if lifecycle == "legacy":
        with pytest.raises(LegacyModel):
            resolve(key, region, today=TODAY)

    scopes = _scopes_from(model, region)
    if not scopes:
        with pytest.raises(ScopeUnavailable) as unavailable:
            resolve(key, region, today=TODAY, allow_legacy=True)
        assert unavailable.value.available == ()
        return

    resolved = resolve(key, region, today=TODAY, allow_legacy=True)
    # The id exists for this Region according to the catalog, with the preferred scope.
    assert resolved.scope == _expected_auto_scope(scopes)
    assert resolved.base_model_id == model["id"]
    assert resolved.partition == expected_partition(region)
    if resolved.scope == "bare":
        assert resolved.model_id == model["id"]
        assert region in model["bare_regions"]
        expected_destinations = {region}
    else:
        assert resolved.model_id == f"{resolved.scope}.{model['id']}"
        region_set = _region_set(model["profiles"][resolved.scope])
        assert region in region_set["sources"]
        if resolved.scope == "global":
            expected_destinations = COMMERCIAL
        else:
            expected_destinations = {*region_set["sources"], *region_set.get("extra_destinations", [])}
    assert set(resolved.destination_regions) == expected_destinations
    assert region in resolved.destination_regions

    # Every explicitly requestable scope from this Region resolves too, to its own prefix.
    for scope in scopes:
        explicit = resolve(key, region, scope, today=TODAY, allow_legacy=True)
        assert explicit.model_id == (model["id"] if scope == "bare" else f"{scope}.{model['id']}")

    _assert_exact_policy(
        resolved.model_id,
        model["id"],
        resolved.scope,
        region,
        expected_destinations,
        invoke_policy(resolved, region, ACCOUNT),
    )


def _assert_exact_policy(
    model_id: str,
    base_id: str,
    scope: str,
    region: str,
    destinations: set[str],
    statements: list[dict[str, Any]],
) -> None:
    partition = expected_partition(region)
    profile_arn = f"arn:{partition}:bedrock:{region}:{ACCOUNT}:inference-profile/{model_id}"
    model_regions: set[str] = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == INVOKE_ACTIONS  # no wildcard, no marketplace, no bedrock:Converse
        for arn in statement["Resource"]:
            parts = parse_arn(arn)
            assert parts["partition"] == partition
            if parts["kind"] == "inference-profile":
                assert arn == profile_arn
            else:
                assert parts["id"] == base_id and parts["account"] == ""
                model_regions.add(parts["region"])
                if scope != "bare":  # a model reached through a profile only via that profile
                    assert (
                        statement["Condition"]["StringEquals"]["bedrock:InferenceProfileArn"] == profile_arn
                    )

    if scope == "bare":
        assert len(statements) == 1 and "Condition" not in statements[0]
        assert model_regions == {region}
    elif scope == "global":
        assert len(statements) == 3
        assert model_regions == {region, ""}  # source Region + the Region-less ARN
        regionless = next(
            s
            for s in statements
            if s["Resource"] == [f"arn:{partition}:bedrock:::foundation-model/{base_id}"]
        )
        assert regionless["Condition"]["StringEquals"]["aws:RequestedRegion"] == "unspecified"
    else:
        assert len(statements) == 2
        assert model_regions == destinations  # every destination, nothing else
