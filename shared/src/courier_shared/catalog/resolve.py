"""resolve(): one config value (bare id, profile id, ARN or short name) → the id to call in a Region.

The rules that deploys most often get wrong are decided here, from the catalog file, before
anything reaches AWS: which inference-profile prefix exists for this model in this Region, whether
a bare on-demand call works, whether the model is retired, and which partition the Region is in.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from pydantic import BaseModel, ConfigDict

from courier_shared.catalog.data import (
    BARE,
    GEO_SCOPES,
    PROFILE_SCOPES,
    SCOPE_PARTITION,
    Catalog,
    CatalogModel,
    Lifecycle,
    Partition,
    load_catalog,
    normalise_name,
    partition_of,
)
from courier_shared.catalog.errors import (
    CatalogError,
    LegacyModel,
    PartitionMismatch,
    RetiredModel,
    ScopeUnavailable,
    UnknownModel,
    UnknownRegion,
)

# Scopes a caller may ask for: "auto" (the default), "geo" (this Region's geographic profile),
# a profile prefix, or "bare" ("in-region" is accepted as a synonym).
REQUESTABLE_SCOPES: tuple[str, ...] = ("auto", "geo", *PROFILE_SCOPES, BARE, "in-region")

_ARN = re.compile(
    r"^arn:(?P<partition>[\w-]+):bedrock:(?P<region>[\w-]*):(?P<account>\d*):"
    r"(?P<kind>inference-profile|foundation-model)/(?P<id>.+)$"
)


class ResolvedModel(BaseModel):
    """The id to call from `region`, and what IAM needs to know about it."""

    model_config = ConfigDict(frozen=True)

    key: str  # catalog key, e.g. "claude-haiku-4-5"
    name: str
    model_id: str  # what to pass as modelId, e.g. "jp.anthropic.claude-haiku-4-5-20251001-v1:0"
    base_model_id: str  # the bare foundation-model id
    scope: str  # "global" | "us" | "eu" | "apac" | "jp" | "au" | "us-gov" | "bare"
    region: str  # the source Region: where the bedrock-runtime endpoint is called
    partition: Partition
    destination_regions: tuple[str, ...]  # where Bedrock may serve the request
    supports_streaming: bool  # ConverseStream
    supports_tools: bool  # tool use inside ConverseStream
    supports_thinking: bool  # extended thinking with a fixed budget (courier:thinkingBudgetTokens)
    lifecycle: Lifecycle
    eol: date | None = None
    successor: str | None = None

    @property
    def is_profile(self) -> bool:
        return self.scope != BARE

    def inference_profile_arn(self, account: str) -> str:
        if not self.is_profile:
            raise CatalogError(f"{self.model_id} is called bare, without an inference profile")
        return f"arn:{self.partition}:bedrock:{self.region}:{account}:inference-profile/{self.model_id}"

    def foundation_model_arn(self, region: str) -> str:
        """The model's ARN in `region`; "" gives the Region-less ARN global profiles are checked on."""
        return f"arn:{self.partition}:bedrock:{region}::foundation-model/{self.base_model_id}"


@dataclass(frozen=True)
class _Named:
    """What the caller's string named: a catalog model, maybe a scope, maybe an ARN's partition/Region."""

    model: CatalogModel
    scope: str | None = None
    arn_partition: str | None = None
    arn_region: str | None = None


def resolve(
    model: str,
    region: str,
    scope: str = "auto",
    *,
    allow_legacy: bool = False,
    today: date | None = None,
) -> ResolvedModel:
    """The model id to call from `region`, or a CatalogError saying why none works and what to do.

    `model` may be a bare id, a profile id ("jp.anthropic…"), an inference-profile or foundation-model
    ARN, or a short name ("claude-haiku-4-5", "haiku-4.5"). `scope="auto"` picks this Region's
    geographic profile when the model has one, else `global`, else the bare id where on-demand works.
    Legacy models are refused unless `allow_legacy`; end-of-life models always. `today` fixes the date
    the lifecycle is judged on (default: today, UTC).
    """
    catalog = load_catalog()
    region = region.strip().lower()
    if region not in catalog.bedrock_regions():
        raise UnknownRegion(region, tuple(difflib.get_close_matches(region, catalog.bedrock_regions(), n=3)))
    partition = partition_of(region)
    named = _identify(model, region, catalog)
    entry = named.model

    if named.arn_partition is not None and named.arn_partition != partition:
        raise PartitionMismatch(f"The ARN {model}", named.arn_partition, region, partition)
    if named.arn_region and named.arn_region != region:
        raise CatalogError(
            f"The ARN {model} is in {named.arn_region}, but the caller is in {region}; "
            f"an inference profile can only be called from its own Region. Pass the model id instead."
        )
    requested = _requested_scope(scope, named.scope, model)
    lifecycle = _check_lifecycle(entry, catalog, allow_legacy, today or datetime.now(UTC).date())
    if requested in SCOPE_PARTITION and SCOPE_PARTITION[requested] != partition:
        raise PartitionMismatch(
            f"The {requested}. inference profile", SCOPE_PARTITION[requested], region, partition
        )

    available = entry.scopes_from(region)
    chosen = _choose(entry, region, requested, available)

    destinations: tuple[str, ...]
    if chosen == BARE:
        model_id, destinations = entry.model_id, (region,)
    elif chosen == "global":
        model_id, destinations = f"global.{entry.model_id}", tuple(sorted(catalog.commercial_regions()))
    else:
        model_id, destinations = f"{chosen}.{entry.model_id}", entry.profiles[chosen].destinations
    return ResolvedModel(
        key=entry.key,
        name=entry.name,
        model_id=model_id,
        base_model_id=entry.model_id,
        scope=chosen,
        region=region,
        partition=partition,
        destination_regions=destinations,
        supports_streaming=entry.streaming,
        supports_tools=entry.tools,
        supports_thinking=entry.thinking,
        lifecycle=lifecycle,
        eol=entry.eol,
        successor=entry.successor,
    )


def _identify(text: str, region: str, catalog: Catalog) -> _Named:
    cleaned = text.strip()
    arn = _ARN.match(cleaned)
    if arn:
        named = _identify_id(arn["id"], region, catalog, cleaned)
        scope = named.scope if arn["kind"] == "inference-profile" else BARE
        return _Named(named.model, scope, arn["partition"], arn["region"] or None)
    return _identify_id(cleaned, region, catalog, cleaned)


def _identify_id(text: str, region: str, catalog: Catalog, original: str) -> _Named:
    by_id = {model.model_id: model for model in catalog.models}
    if text in by_id:
        return _Named(by_id[text])
    prefix, _, rest = text.partition(".")
    if rest in by_id:
        if prefix in PROFILE_SCOPES:
            return _Named(by_id[rest], prefix)
        # e.g. Roo-Code's "ug." for GovCloud: the model is right, the prefix does not exist.
        entry = by_id[rest]
        raise ScopeUnavailable(
            rest, region, prefix, entry.scopes_from(region), f"Known prefixes: {', '.join(PROFILE_SCOPES)}."
        )
    by_name = {
        normalise_name(name): model for model in catalog.models for name in (model.key, *model.aliases)
    }
    if normalise_name(text) in by_name:
        return _Named(by_name[normalise_name(text)])
    candidates = [name for model in catalog.models for name in model.names()]
    close = difflib.get_close_matches(text, candidates, n=3, cutoff=0.6) or difflib.get_close_matches(
        normalise_name(text), [model.key for model in catalog.models], n=3, cutoff=0.5
    )
    raise UnknownModel(original, tuple(close))


def _requested_scope(scope: str, named_scope: str | None, model: str) -> str:
    requested = scope.strip().lower()
    if requested == "in-region":
        requested = BARE
    if requested not in REQUESTABLE_SCOPES:
        raise CatalogError(f"Unknown scope {scope!r}; use one of: {', '.join(REQUESTABLE_SCOPES)}.")
    if named_scope is None:
        return requested
    if requested not in ("auto", named_scope):
        raise CatalogError(
            f"{model!r} already names the {named_scope!r} scope but scope={scope!r} was asked; "
            "pass the bare id or short name with a scope, or the profile id alone."
        )
    return named_scope


def _check_lifecycle(entry: CatalogModel, catalog: Catalog, allow_legacy: bool, today: date) -> Lifecycle:
    lifecycle = entry.lifecycle(today)
    successor_id = _successor_id(entry, catalog)
    if lifecycle is Lifecycle.END_OF_LIFE:
        assert entry.eol is not None
        raise RetiredModel(entry.model_id, entry.eol, entry.successor, successor_id)
    if lifecycle is Lifecycle.LEGACY and not allow_legacy:
        assert entry.legacy_since is not None
        raise LegacyModel(entry.model_id, entry.legacy_since, entry.eol, entry.successor, successor_id)
    return lifecycle


def _successor_id(entry: CatalogModel, catalog: Catalog) -> str | None:
    return next((model.model_id for model in catalog.models if model.key == entry.successor), None)


def _choose(entry: CatalogModel, region: str, requested: str, available: tuple[str, ...]) -> str:
    geo = next((scope for scope in GEO_SCOPES if scope in available), None)
    if requested == "auto":
        for candidate in (
            geo,
            "global" if "global" in available else None,
            BARE if BARE in available else None,
        ):
            if candidate is not None:
                return candidate
        raise ScopeUnavailable(entry.model_id, region, "auto", available, _offered(entry))
    if requested == "geo":
        if geo is None:
            raise ScopeUnavailable(entry.model_id, region, "geo", available, _offered(entry))
        return geo
    if requested not in available:
        raise ScopeUnavailable(entry.model_id, region, requested, available, _offered(entry, requested))
    return requested


def _offered(entry: CatalogModel, scope: str | None = None) -> str:
    """Where the model can be called from, for an error message."""
    if scope == BARE:
        return (
            f"On-demand works in: {', '.join(entry.bare_regions)}."
            if entry.bare_regions
            else ("It has no on-demand access anywhere: use an inference profile.")
        )
    if scope is not None:
        if scope not in entry.profiles:
            return (
                f"It has no {scope}. profile anywhere; its profiles: {', '.join(entry.profiles) or 'none'}."
            )
        return f"Its {scope}. profile can be called from: {', '.join(entry.profiles[scope].sources)}."
    parts = [
        f"{name}. from {len(region_set.sources)} commercial Regions"
        if name == "global"
        else f"{name}. from {', '.join(region_set.sources)}"
        for name, region_set in entry.profiles.items()
    ]
    if entry.bare_regions:
        parts.append(f"bare in {', '.join(entry.bare_regions)}")
    return f"It is offered as: {'; '.join(parts)}."
