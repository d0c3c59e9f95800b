"""resolve() and invoke_policy() against answers AWS and Anthropic publish, plus invariants.

The table rows are written out by hand from the published lists (tags are the `[S#]` sources in
models.toml and ../shared/notes/bedrock.md), not computed from the catalog: a row says which id a
deploy in that Region must call and which Regions the IAM must cover. The IAM shapes are the ones
AWS documents (notes §3.2 geographic profile, §3.3 global profile, a bare id on its own).

The property tests then check invariants over models, Regions, scopes and dates drawn from the
whole catalog, without restating the resolver's rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from catalog_helpers import (
    ACCOUNT,
    INVOKE_ACTIONS,
    TODAY,
    expected_partition,
    parse_arn,
    raw_catalog,
)
from hypothesis import event, given, settings
from hypothesis import strategies as st

from courier_shared.catalog import (
    REQUESTABLE_SCOPES,
    CatalogError,
    LegacyModel,
    RetiredModel,
    ScopeUnavailable,
    invoke_policy,
    resolve,
)

HAIKU_45 = "anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"

# Destination Regions as the sources list them.
US_CORE = ("us-east-1", "us-east-2", "us-west-2")  # older models [S4][S6][S7]
US_WEST1 = (*US_CORE, "us-west-1")  # Sonnet 4.5+, Llama 4 [S7][S22]
US_WEST1_CA = (*US_WEST1, "ca-central-1")  # Haiku 4.5, Opus 4.5 [S7][S8]
US_WEST1_CA2 = (*US_WEST1_CA, "ca-west-1")  # Opus 4.6 [S7][S8]
EU_CORE = ("eu-central-1", "eu-north-1", "eu-west-1", "eu-west-3")  # Claude 3.7 [S7]
EU_WIDE = (*EU_CORE, "eu-central-2", "eu-south-1", "eu-south-2", "eu-west-2")  # Haiku 4.5 [S7]
EU_NOVA = (*EU_CORE, "eu-south-1", "eu-south-2")  # Nova [S35]
# Claude 3.5 era, Nova [S7][S35]
APAC_CORE = ("ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2")
# Claude 3.7 / Sonnet 4 / Opus 4.6: wider sources, and Melbourne as a destination only [S7]
APAC_CLAUDE4 = (*APAC_CORE, "ap-northeast-3", "ap-south-2", "ap-southeast-4")
JP = ("ap-northeast-1", "ap-northeast-3")  # [S7][S15f]
AU = ("ap-southeast-2", "ap-southeast-4")  # [S4][S7]
US_GOV = ("us-gov-west-1", "us-gov-east-1")  # [S7]
EVERY_COMMERCIAL_REGION = "every commercial Region"  # global. [S6]


@dataclass(frozen=True)
class Answer:
    model: str
    region: str
    scope: str
    model_id: str  # what to pass as modelId
    destinations: tuple[str, ...] | str  # the Regions the IAM must cover; a bare id: its own Region
    source: str
    today: date = TODAY
    allow_legacy: bool = False

    def __str__(self) -> str:
        return f"{self.model}@{self.region}/{self.scope}"


ANSWERS = [
    # Claude Haiku 4.5: us (with us-west-1 and Canada), eu, jp, au, global; no apac [S9][S7][S8][S15f]
    Answer("claude-haiku-4-5", "us-east-1", "auto", f"us.{HAIKU_45}", US_WEST1_CA, "S7 S8"),
    Answer("claude-haiku-4-5", "ca-central-1", "auto", f"us.{HAIKU_45}", US_WEST1_CA, "S8: Canada uses us."),
    Answer("claude-haiku-4-5", "ap-northeast-1", "auto", f"jp.{HAIKU_45}", JP, "S15f: apac. fails"),
    Answer("claude-haiku-4-5", "ap-northeast-3", "geo", f"jp.{HAIKU_45}", JP, "S7"),
    Answer("claude-haiku-4-5", "ap-southeast-4", "auto", f"au.{HAIKU_45}", AU, "S4 S7"),
    Answer("claude-haiku-4-5", "eu-central-2", "auto", f"eu.{HAIKU_45}", EU_WIDE, "S7"),
    Answer("claude-haiku-4-5", "ap-south-1", "auto", f"global.{HAIKU_45}", EVERY_COMMERCIAL_REGION, "S27"),
    Answer("claude-haiku-4-5", "af-south-1", "auto", f"global.{HAIKU_45}", EVERY_COMMERCIAL_REGION, "S27"),
    Answer("claude-haiku-4-5", "us-west-2", "global", f"global.{HAIKU_45}", EVERY_COMMERCIAL_REGION, "S3"),
    # Claude Sonnet 4.6: global, us, eu, jp; "apac: No"; au only in LiteLLM [S9]
    Answer("claude-sonnet-4-6", "us-west-1", "auto", "us.anthropic.claude-sonnet-4-6", US_WEST1, "S9 S7"),
    Answer("claude-sonnet-4-6", "ap-northeast-1", "auto", "jp.anthropic.claude-sonnet-4-6", JP, "S9"),
    Answer(
        "claude-sonnet-4-6",
        "ap-southeast-2",
        "auto",
        "global.anthropic.claude-sonnet-4-6",
        EVERY_COMMERCIAL_REGION,
        "S9: no au., no apac.",
    ),
    # Claude Opus 4.6: id without a date; us reaches both Canadian Regions; apac too [S9][S7][S8]
    Answer("claude-opus-4-6", "ca-west-1", "auto", "us.anthropic.claude-opus-4-6-v1", US_WEST1_CA2, "S7 S8"),
    Answer(
        "claude-opus-4-6", "ap-south-2", "auto", "apac.anthropic.claude-opus-4-6-v1", APAC_CLAUDE4, "S9 S7"
    ),
    Answer(
        "claude-opus-4-5",
        "us-east-2",
        "auto",
        "us.anthropic.claude-opus-4-5-20251101-v1:0",
        US_WEST1_CA,
        "S7",
    ),
    # Claude Sonnet 4.5 (Legacy, on request): GovCloud's us-gov. profile, partition aws-us-gov [S7][S10]
    Answer(
        "claude-sonnet-4-5",
        "us-gov-east-1",
        "auto",
        f"us-gov.{SONNET_45}",
        US_GOV,
        "S7",
        allow_legacy=True,
    ),
    # Before their end of life: Sonnet 4 had apac. (no jp.), Claude 3.7 the four-Region eu. [S7][S10]
    Answer(
        "claude-sonnet-4",
        "ap-northeast-1",
        "auto",
        "apac.anthropic.claude-sonnet-4-20250514-v1:0",
        APAC_CLAUDE4,
        "S7",
        today=date(2026, 9, 1),
    ),
    Answer(
        "claude-3-7-sonnet",
        "eu-west-3",
        "auto",
        "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
        EU_CORE,
        "S7",
        today=date(2026, 6, 1),
    ),
    # AWS's own example: us.…claude-3-haiku from us-east-2 routes to us-east-1/2 and us-west-2 [S6]
    Answer(
        "claude-3-haiku",
        "us-east-2",
        "auto",
        "us.anthropic.claude-3-haiku-20240307-v1:0",
        US_CORE,
        "S6",
        today=date(2026, 6, 1),
    ),
    # Amazon Nova: bare in the listed Regions [S22], profiles from [S35]; Nova 2 Lite profile only
    Answer("nova-pro", "us-east-1", "bare", "amazon.nova-pro-v1:0", ("us-east-1",), "S22"),
    Answer("nova-pro", "us-east-1", "auto", "us.amazon.nova-pro-v1:0", US_CORE, "S35"),
    Answer("nova-pro", "me-central-1", "auto", "amazon.nova-pro-v1:0", ("me-central-1",), "S22"),
    Answer("nova-pro", "us-gov-west-1", "auto", "amazon.nova-pro-v1:0", ("us-gov-west-1",), "S22"),
    Answer("nova-lite", "eu-north-1", "auto", "eu.amazon.nova-lite-v1:0", EU_NOVA, "S35"),
    Answer("nova-lite", "eu-north-1", "in-region", "amazon.nova-lite-v1:0", ("eu-north-1",), "S22"),
    Answer("nova-micro", "ap-southeast-2", "auto", "apac.amazon.nova-micro-v1:0", APAC_CORE, "S35"),
    Answer("nova-2-lite", "ap-northeast-1", "auto", "jp.amazon.nova-2-lite-v1:0", JP, "S37"),
    Answer(
        "nova-2-lite",
        "ap-south-1",
        "auto",
        "global.amazon.nova-2-lite-v1:0",
        EVERY_COMMERCIAL_REGION,
        "S37: from Mumbai only global. works",
    ),
    # Meta, DeepSeek: single-Region bare ids [S22]; Llama 4 us. includes us-west-1 [S22]
    Answer("llama3-3-70b", "us-east-2", "bare", "meta.llama3-3-70b-instruct-v1:0", ("us-east-2",), "S22"),
    Answer("llama3-1-8b", "us-west-2", "bare", "meta.llama3-1-8b-instruct-v1:0", ("us-west-2",), "S22"),
    Answer("llama4-scout", "us-west-1", "auto", "us.meta.llama4-scout-17b-instruct-v1:0", US_WEST1, "S22"),
    Answer("deepseek-v3-1", "ap-south-1", "auto", "deepseek.v3-v1:0", ("ap-south-1",), "S22"),
]


def _fm(partition: str, region: str, base_id: str) -> str:
    return f"arn:{partition}:bedrock:{region}::foundation-model/{base_id}"


def documented_policy(answer: Answer) -> list[dict[str, Any]]:
    """The statements AWS documents for this kind of id (Sids left out: they are our names)."""
    partition = expected_partition(answer.region)
    scope, _, rest = answer.model_id.partition(".")
    actions = {"Effect": "Allow", "Action": INVOKE_ACTIONS}
    if scope not in ("us", "eu", "apac", "jp", "au", "us-gov", "global"):  # a bare id
        return [{**actions, "Resource": [_fm(partition, answer.region, answer.model_id)]}]
    profile = f"arn:{partition}:bedrock:{answer.region}:{ACCOUNT}:inference-profile/{answer.model_id}"
    if scope == "global":  # notes §3.3: three statements, the last on the Region-less model ARN
        return [
            {
                **actions,
                "Resource": [profile],
                "Condition": {"StringEquals": {"aws:RequestedRegion": answer.region}},
            },
            {
                **actions,
                "Resource": [_fm(partition, answer.region, rest)],
                "Condition": {
                    "StringEquals": {
                        "aws:RequestedRegion": answer.region,
                        "bedrock:InferenceProfileArn": profile,
                    }
                },
            },
            {
                **actions,
                "Resource": [_fm(partition, "", rest)],
                "Condition": {
                    "StringEquals": {
                        "aws:RequestedRegion": "unspecified",
                        "bedrock:InferenceProfileArn": profile,
                    }
                },
            },
        ]
    # notes §3.2: the profile, then the model in every destination, only through that profile
    return [
        {**actions, "Resource": [profile]},
        {
            **actions,
            "Resource": [_fm(partition, region, rest) for region in sorted(answer.destinations)],
            "Condition": {"StringEquals": {"bedrock:InferenceProfileArn": profile}},
        },
    ]


@pytest.mark.parametrize("answer", ANSWERS, ids=str)
def test_the_published_answer_and_exactly_the_documented_iam(answer: Answer) -> None:
    resolved = resolve(
        answer.model, answer.region, answer.scope, today=answer.today, allow_legacy=answer.allow_legacy
    )
    assert resolved.model_id == answer.model_id, answer.source
    if answer.destinations == EVERY_COMMERCIAL_REGION:
        assert set(resolved.destination_regions) == set(raw_catalog()["regions"]["aws"])
    else:
        assert sorted(resolved.destination_regions) == sorted(answer.destinations), answer.source
    statements = [
        {key: value for key, value in statement.items() if key != "Sid"}
        for statement in invoke_policy(resolved, answer.region, ACCOUNT)
    ]
    assert statements == documented_policy(answer)


@dataclass(frozen=True)
class Refusal:
    model: str
    region: str
    scope: str
    error: type[CatalogError]
    source: str
    available: tuple[str, ...] | None = None  # what ScopeUnavailable offers instead

    def __str__(self) -> str:
        return f"{self.model}@{self.region}/{self.scope}"


REFUSALS = [
    Refusal(
        "claude-haiku-4-5", "us-east-1", "bare", ScopeUnavailable, "S22: profile required", ("global", "us")
    ),
    Refusal("claude-sonnet-4-6", "ap-south-1", "apac", ScopeUnavailable, "S9: apac. No", ("global",)),
    Refusal("claude-opus-4-7", "eu-west-1", "auto", ScopeUnavailable, "S15e: only us. confirmed", ()),
    Refusal("nova-2-lite", "ap-south-1", "apac", ScopeUnavailable, "S37: Mumbai only global.", ("global",)),
    Refusal("deepseek-v3-1", "us-east-1", "auto", ScopeUnavailable, "S22: single-Region, not here", ()),
    Refusal("claude-3-7-sonnet", "us-east-1", "auto", RetiredModel, "S10: EOL 2026-07-30"),
    Refusal("nova-premier", "us-east-1", "auto", RetiredModel, "S10: EOL 2026-09-14"),
    Refusal("claude-opus-4-1", "us-east-1", "auto", LegacyModel, "S10: Legacy since 2026-07-08"),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=str)
def test_the_published_refusal(refusal: Refusal) -> None:
    with pytest.raises(refusal.error) as refused:
        resolve(refusal.model, refusal.region, refusal.scope, today=TODAY)
    if refusal.available is not None:
        assert isinstance(refused.value, ScopeUnavailable)
        assert refused.value.available == refusal.available, refusal.source


# ---------------------------------------------------------------- invariants, over everything

RAW = raw_catalog()
RAW_MODELS = {model["key"]: model for model in RAW["models"]}
REGIONS = [region for regions in RAW["regions"].values() for region in regions]

# The geographic prefixes a Region can belong to, from the published source lists (notes §1):
# this is geography, not the catalog, so it also catches a region set put under the wrong prefix.
GEO_PREFIXES = {
    **{region: {"us-gov"} for region in ("us-gov-west-1", "us-gov-east-1")},
    **{region: {"us"} for region in RAW["regions"]["aws"] if region.startswith(("us-", "ca-"))},
    **{region: {"eu"} for region in RAW["regions"]["aws"] if region.startswith("eu-")},
    **{region: {"apac"} for region in RAW["regions"]["aws"] if region.startswith("ap-")},
    "ap-northeast-1": {"jp", "apac"},
    "ap-northeast-3": {"jp", "apac"},
    "ap-southeast-2": {"au", "apac"},
    "ap-southeast-4": {"au", "apac"},
}

PROFILES = ("global", "us", "eu", "apac", "jp", "au", "us-gov")
models = st.sampled_from(sorted(RAW_MODELS))
scopes = st.sampled_from(REQUESTABLE_SCOPES)
days = st.dates(date(2025, 6, 1), date(2027, 6, 30))
properties = settings(max_examples=300, deadline=None)


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, str, str]:
    """A model, a Region and a scope; half the time ones its entry lists, so many draws resolve."""
    model = draw(models)
    raw_model = RAW_MODELS[model]
    listed = sorted(set().union(*(_listed_sources(raw_model, s) for s in (*PROFILES, "bare"))))
    region = draw(st.sampled_from(listed) | st.sampled_from(REGIONS))
    offered = [s for s in (*PROFILES, "bare") if region in _listed_sources(raw_model, s)]
    return model, region, draw(st.sampled_from(["auto", *offered]) | scopes)


def _listed_sources(raw_model: dict[str, Any], scope: str) -> set[str]:
    """Where models.toml says `scope` of this model may be called from (read as plain TOML)."""
    if scope == "bare":
        return set(raw_model.get("bare_regions", []))
    set_name = raw_model.get("profiles", {}).get(scope)
    return set(RAW["region_sets"][set_name]["sources"]) if set_name else set()


@properties
@given(call=calls(), today=days, allow_legacy=st.booleans())
def test_whatever_resolves_is_listed_for_the_region_and_its_policy_grants_exactly_that_id(
    call: tuple[str, str, str], today: date, allow_legacy: bool
) -> None:
    model, region, scope = call
    try:
        resolved = resolve(model, region, scope, today=today, allow_legacy=allow_legacy)
    except CatalogError as refused:
        event(f"refused: {type(refused).__name__}")
        return
    event(f"resolved: {resolved.scope}")
    raw_model = RAW_MODELS[model]

    # Never an id for a Region the model's catalog entry doesn't list for that scope.
    assert region in _listed_sources(raw_model, resolved.scope)
    assert region in resolved.destination_regions
    # Geographic profile ids carry a prefix of the caller's geography; bare ids carry none.
    if resolved.scope == "bare":
        assert resolved.model_id == raw_model["id"]
    else:
        prefix, _, rest = resolved.model_id.partition(".")
        assert rest == raw_model["id"] and prefix == resolved.scope
        if prefix != "global":
            assert prefix in GEO_PREFIXES.get(region, set()), (prefix, region)
        else:
            assert region in RAW["regions"]["aws"]
    # Never past end of life; Legacy only when asked for.
    assert raw_model.get("eol") is None or today < raw_model["eol"]
    if raw_model.get("legacy_since") is not None and today >= raw_model["legacy_since"]:
        assert allow_legacy

    # The policy grants the resource the id names, in the caller's Region and partition, and the
    # foundation model only ever under its own id; nothing but the two invoke actions.
    statements = invoke_policy(resolved, region, ACCOUNT)
    arns = [parse_arn(arn) for statement in statements for arn in statement["Resource"]]
    named = arns[0]
    assert (named["region"], named["id"]) == (region, resolved.model_id)
    assert named["kind"] == ("foundation-model" if resolved.scope == "bare" else "inference-profile")
    assert all(arn["partition"] == expected_partition(region) for arn in arns)
    assert all(arn["id"] == raw_model["id"] for arn in arns if arn["kind"] == "foundation-model")
    assert all(statement["Action"] == INVOKE_ACTIONS for statement in statements)


@properties
@given(call=calls(), today=days)
def test_a_scope_refusal_offers_exactly_the_scopes_that_work(call: tuple[str, str, str], today: date) -> None:
    model, region, scope = call
    try:
        resolve(model, region, scope, today=today, allow_legacy=True)
    except ScopeUnavailable as refused:
        working = set()
        for candidate in (*PROFILES, "bare"):
            try:
                resolve(model, region, candidate, today=today, allow_legacy=True)
            except CatalogError:
                continue
            working.add(candidate)
        assert set(refused.available) == working
        if scope == "auto":
            assert working == set()  # auto refuses only when nothing at all works
        event(f"refused, {len(working)} alternatives")
    except CatalogError:
        return


@properties
@given(call=calls(), today=days)
def test_the_resolved_id_and_its_arn_resolve_to_themselves(call: tuple[str, str, str], today: date) -> None:
    model, region, scope = call
    try:
        resolved = resolve(model, region, scope, today=today, allow_legacy=True)
    except CatalogError:
        return
    # A profile id names its scope; a bare id names only the model, its Region's ARN names "bare".
    if resolved.is_profile:
        spellings = [resolved.model_id, resolved.inference_profile_arn(ACCOUNT)]
    else:
        spellings = [resolved.foundation_model_arn(region)]
    for spelling in spellings:
        assert resolve(spelling, region, today=today, allow_legacy=True) == resolved, spelling
    # "auto" is one of the explicit answers, never a scope of its own.
    if scope == "auto":
        assert resolve(model, region, resolved.scope, today=today, allow_legacy=True) == resolved
