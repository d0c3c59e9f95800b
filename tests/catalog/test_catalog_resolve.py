"""resolve(): the known deploy traps, the accepted spellings, and refusals that say what to do."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest
from catalog_helpers import ACCOUNT, TODAY

from courier_shared.catalog import (
    CatalogError,
    LegacyModel,
    Lifecycle,
    PartitionMismatch,
    RetiredModel,
    ScopeUnavailable,
    UnknownModel,
    UnknownRegion,
    catalog_models,
    invoke_policy,
    policy_document,
    resolve,
)

HAIKU_45 = "anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"


# --- The traps the issue pins -------------------------------------------------------------------


def test_haiku_4_5_from_tokyo_resolves_to_jp_not_apac():
    resolved = resolve("claude-haiku-4-5", "ap-northeast-1", today=TODAY)
    assert resolved.model_id == f"jp.{HAIKU_45}"
    assert resolved.destination_regions == ("ap-northeast-1", "ap-northeast-3")


def test_haiku_4_5_apac_profile_is_refused_from_tokyo_with_the_prefixes_that_work():
    with pytest.raises(ScopeUnavailable) as refused:
        resolve(f"apac.{HAIKU_45}", "ap-northeast-1", today=TODAY)
    assert refused.value.available == ("global", "jp")
    assert "jp" in str(refused.value) and "ap-northeast-1" in str(refused.value)


def test_nova_pro_may_run_bare_in_us_east_1():
    bare = resolve("nova-pro", "us-east-1", "bare", today=TODAY)
    assert bare.model_id == "amazon.nova-pro-v1:0"
    assert bare.destination_regions == ("us-east-1",)
    assert invoke_policy(bare, "us-east-1", ACCOUNT) == [
        {
            "Sid": "InvokeFoundationModel",
            "Effect": "Allow",
            "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            "Resource": ["arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"],
        }
    ]
    # auto prefers the geographic profile, as the issue asks
    assert resolve("nova-pro", "us-east-1", today=TODAY).model_id == "us.amazon.nova-pro-v1:0"


def test_nova_2_lite_has_no_bare_on_demand_call():
    with pytest.raises(ScopeUnavailable) as refused:
        resolve("nova-2-lite", "us-east-1", "bare", today=TODAY)
    assert refused.value.available == ("global", "us")


def test_claude_sonnet_4_5_is_refused_as_legacy_with_its_successor():
    with pytest.raises(LegacyModel) as refused:
        resolve(f"global.{SONNET_45}", "us-east-1", today=TODAY)
    assert refused.value.successor == "claude-sonnet-4-6"
    message = str(refused.value)
    assert "Legacy since 2026-10-08" in message and "2027-04-08" in message
    assert "anthropic.claude-sonnet-4-6" in message and "allow_legacy" in message


def test_claude_sonnet_4_5_is_usable_as_legacy_on_request_until_its_end_of_life():
    resolved = resolve("claude-sonnet-4-5", "us-east-1", allow_legacy=True, today=TODAY)
    assert resolved.model_id == f"us.{SONNET_45}"
    assert resolved.lifecycle is Lifecycle.LEGACY
    assert resolved.eol == date(2027, 4, 8) and resolved.successor == "claude-sonnet-4-6"
    with pytest.raises(RetiredModel):
        resolve("claude-sonnet-4-5", "us-east-1", allow_legacy=True, today=date(2027, 4, 8))
    # before it became Legacy it resolved without asking
    assert resolve("claude-sonnet-4-5", "us-east-1", today=date(2026, 10, 7)).lifecycle is Lifecycle.ACTIVE


@pytest.mark.parametrize(
    "model",
    [
        "apac.anthropic.claude-3-5-sonnet-20240620-v1:0",  # the frequently copied example id
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "claude-3.5-sonnet",
    ],
)
def test_claude_3_5_sonnet_is_refused_as_end_of_life_with_its_successor(model):
    with pytest.raises(RetiredModel) as refused:
        resolve(model, "ap-northeast-1", today=TODAY, allow_legacy=True)
    assert refused.value.successor == "claude-sonnet-4-6"
    assert refused.value.eol == date(2026, 7, 30)
    assert "end of life on 2026-07-30" in str(refused.value)
    assert "claude-sonnet-4-6" in str(refused.value)


def test_global_policy_has_the_three_statements_with_the_region_less_model_arn():
    resolved = resolve("claude-haiku-4-5", "sa-east-1", today=TODAY)  # no geo profile there
    assert resolved.model_id == f"global.{HAIKU_45}"
    profile = f"arn:aws:bedrock:sa-east-1:{ACCOUNT}:inference-profile/global.{HAIKU_45}"
    statements = invoke_policy(resolved, "sa-east-1", ACCOUNT)
    assert [s["Resource"] for s in statements] == [
        [profile],
        [f"arn:aws:bedrock:sa-east-1::foundation-model/{HAIKU_45}"],
        [f"arn:aws:bedrock:::foundation-model/{HAIKU_45}"],
    ]
    assert statements[0]["Condition"] == {"StringEquals": {"aws:RequestedRegion": "sa-east-1"}}
    assert statements[2]["Condition"] == {
        "StringEquals": {"aws:RequestedRegion": "unspecified", "bedrock:InferenceProfileArn": profile}
    }


@pytest.mark.parametrize(
    ("model", "region", "expected_id"),
    [
        ("nova-pro", "us-gov-west-1", "amazon.nova-pro-v1:0"),
        ("claude-sonnet-4-5", "us-gov-east-1", f"us-gov.{SONNET_45}"),
    ],
)
def test_govcloud_regions_use_the_aws_us_gov_partition(model, region, expected_id):
    resolved = resolve(model, region, allow_legacy=True, today=TODAY)
    assert resolved.model_id == expected_id
    assert resolved.partition == "aws-us-gov"
    for statement in invoke_policy(resolved, region, ACCOUNT):
        assert all(arn.startswith("arn:aws-us-gov:bedrock:us-gov-") for arn in statement["Resource"])


@pytest.mark.parametrize(
    ("model", "region", "scope"),
    [
        ("claude-sonnet-4-5", "us-east-1", "us-gov"),  # GovCloud profile from a commercial Region
        ("claude-haiku-4-5", "us-gov-west-1", "global"),  # global. is commercial only
        ("claude-haiku-4-5", "us-gov-west-1", "us"),
        (f"arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/{HAIKU_45}", "us-east-1", "auto"),
    ],
)
def test_partition_mismatches_are_refused(model, region, scope):
    with pytest.raises(PartitionMismatch) as refused:
        resolve(model, region, scope, allow_legacy=True, today=TODAY)
    assert "partition" in str(refused.value)


# --- Accepted spellings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        HAIKU_45,
        "claude-haiku-4-5",
        "Claude Haiku 4.5",
        "haiku-4.5",
        f"jp.{HAIKU_45}",
        f"arn:aws:bedrock:ap-northeast-1:{ACCOUNT}:inference-profile/jp.{HAIKU_45}",
    ],
)
def test_bare_ids_profile_ids_arns_and_short_names_name_the_same_model(spelling):
    assert resolve(spelling, "ap-northeast-1", today=TODAY).model_id == f"jp.{HAIKU_45}"


def test_an_explicit_scope_is_honoured():
    assert (
        resolve("claude-haiku-4-5", "ap-northeast-1", "global", today=TODAY).model_id == f"global.{HAIKU_45}"
    )
    assert resolve("claude-opus-4-6", "ap-northeast-1", "apac", today=TODAY).model_id == (
        "apac.anthropic.claude-opus-4-6-v1"
    )
    assert resolve("claude-opus-4-6", "ap-northeast-1", "geo", today=TODAY).scope == "jp"
    assert resolve("nova-pro", "us-east-1", "in-region", today=TODAY).scope == "bare"


def test_canada_uses_the_us_profile_where_the_model_offers_it_else_global():
    assert resolve("claude-haiku-4-5", "ca-central-1", today=TODAY).scope == "us"
    assert resolve("claude-sonnet-4-6", "ca-central-1", today=TODAY).scope == "global"


def test_a_profile_id_and_a_different_scope_conflict():
    with pytest.raises(CatalogError, match="already names the 'jp' scope"):
        resolve(f"jp.{HAIKU_45}", "ap-northeast-1", "global", today=TODAY)


def test_a_profile_arn_from_another_region_is_refused():
    with pytest.raises(CatalogError, match="only be called from its own Region"):
        resolve(
            f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.{HAIKU_45}", "us-west-2", today=TODAY
        )


# --- Refusals ----------------------------------------------------------------------------------


def test_unknown_model_suggests_the_closest_names():
    with pytest.raises(UnknownModel) as refused:
        resolve("claude-haiku-4.6", "us-east-1", today=TODAY)
    assert "claude-haiku-4-5" in refused.value.close_matches
    assert "courier models" in str(refused.value)


def test_a_made_up_prefix_is_refused_with_the_real_ones():
    # Roo-Code maps GovCloud to "ug."; the real prefix is "us-gov."
    with pytest.raises(ScopeUnavailable) as refused:
        resolve(f"ug.{SONNET_45}", "us-gov-west-1", allow_legacy=True, today=TODAY)
    assert refused.value.available == ("us-gov",)
    assert "us-gov" in str(refused.value)


def test_a_model_with_nothing_in_a_region_says_where_it_is_offered():
    with pytest.raises(ScopeUnavailable) as refused:
        resolve("llama4-scout", "eu-west-1", today=TODAY)
    assert refused.value.available == ()
    assert "us. from us-east-1" in str(refused.value)


def test_unknown_and_china_regions_are_refused():
    with pytest.raises(UnknownRegion) as refused:
        resolve("nova-pro", "us-east-9", today=TODAY)
    assert "us-east-1" in refused.value.close_matches
    with pytest.raises(UnknownRegion, match="aws-cn"):
        resolve("nova-pro", "cn-north-1", today=TODAY)


def test_an_unknown_scope_is_refused_with_the_valid_ones():
    with pytest.raises(CatalogError, match="use one of: auto, geo, global"):
        resolve("nova-pro", "us-east-1", "ca", today=TODAY)


def test_policy_refuses_a_bad_account_or_another_region():
    resolved = resolve("nova-pro", "us-east-1", today=TODAY)
    with pytest.raises(CatalogError, match="12-digit"):
        invoke_policy(resolved, "us-east-1", "1234")
    with pytest.raises(CatalogError, match="resolve it for us-west-2"):
        invoke_policy(resolved, "us-west-2", ACCOUNT)


def test_policy_document_wraps_statements():
    resolved = resolve("nova-pro", "us-east-1", today=TODAY)
    document = policy_document(invoke_policy(resolved, "us-east-1", ACCOUNT))
    assert document["Version"] == "2012-10-17"
    assert [s["Sid"] for s in document["Statement"]] == [
        "InvokeInferenceProfile",
        "InvokeModelInDestinationRegionsViaProfile",
    ]


# --- The catalog itself ------------------------------------------------------------------------


def test_every_active_model_can_be_called_from_some_region_and_successors_are_active():
    by_key = {model.key: model for model in catalog_models()}
    for model in catalog_models():
        if model.successor:
            assert by_key[model.successor].lifecycle(TODAY) is Lifecycle.ACTIVE, model.key
    assert {model.provider for model in catalog_models()} >= {
        "Anthropic",
        "Amazon",
        "Meta",
        "Mistral AI",
        "DeepSeek",
    }


def test_importing_the_catalog_does_not_read_the_data_file():
    code = (
        "import courier_shared.catalog as c, courier_shared.catalog.data as d;"
        "print(d.load_catalog.cache_info().currsize);"
        "c.resolve('nova-pro', 'us-east-1');"
        "print(d.load_catalog.cache_info().currsize)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert output.stdout.split() == ["0", "1"]
