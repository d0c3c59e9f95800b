"""The catalog's data: models.toml, validated once on first use.

The file is read lazily (not at import) so importing courier_shared.catalog costs nothing in a
Lambda cold start that never resolves a model.
"""

from __future__ import annotations

import functools
import re
import tomllib
from datetime import date
from enum import StrEnum
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Partition = Literal["aws", "aws-us-gov", "aws-cn"]

# Profile scopes, in the order `auto` prefers them: a country profile (jp, au) beats the wider
# apac one, because newer models offer only the country profile and `apac.` then fails [notes §1].
GEO_SCOPES: tuple[str, ...] = ("us-gov", "jp", "au", "us", "eu", "apac")
PROFILE_SCOPES: tuple[str, ...] = ("global", *GEO_SCOPES)
BARE = "bare"

# The partition a profile scope lives in; "bare" takes the Region's partition.
SCOPE_PARTITION: dict[str, Partition] = {
    **{scope: "aws" for scope in PROFILE_SCOPES if scope != "us-gov"},
    "us-gov": "aws-us-gov",
}


class Lifecycle(StrEnum):
    ACTIVE = "active"
    LEGACY = "legacy"
    END_OF_LIFE = "end-of-life"


def partition_of(region: str) -> Partition:
    """The AWS partition a Region name belongs to."""
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


def normalise_name(name: str) -> str:
    """How short names are compared: case, dots, underscores and spaces don't matter."""
    return re.sub(r"[\s._]+", "-", name.strip().lower())


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegionSet(_Frozen):
    """Who may call a profile (sources) and where Bedrock may route it (destinations)."""

    name: str
    sources: tuple[str, ...]
    extra_destinations: tuple[str, ...] = ()

    @property
    def destinations(self) -> tuple[str, ...]:
        return tuple(sorted({*self.sources, *self.extra_destinations}))


class CatalogModel(_Frozen):
    """One chat model as the catalog file describes it."""

    key: str
    name: str
    provider: str
    model_id: str = Field(alias="id")
    aliases: tuple[str, ...] = ()
    profiles: dict[str, RegionSet] = Field(default_factory=dict)
    bare_regions: tuple[str, ...] = ()
    streaming: bool
    tools: bool
    thinking: bool = False  # extended thinking with a fixed token budget (Converse `thinking`)
    legacy_since: date | None = None
    eol: date | None = None
    successor: str | None = None
    sources: tuple[str, ...] = ()
    note: str = ""

    def lifecycle(self, today: date) -> Lifecycle:
        if self.eol is not None and today >= self.eol:
            return Lifecycle.END_OF_LIFE
        if self.legacy_since is not None and today >= self.legacy_since:
            return Lifecycle.LEGACY
        return Lifecycle.ACTIVE

    def scopes_from(self, region: str) -> tuple[str, ...]:
        """Every scope (profile prefixes, then "bare") this model can be called with from `region`."""
        scopes = [scope for scope in PROFILE_SCOPES if region in self.profile_sources(scope)]
        if region in self.bare_regions:
            scopes.append(BARE)
        return tuple(scopes)

    def profile_sources(self, scope: str) -> tuple[str, ...]:
        region_set = self.profiles.get(scope)
        return region_set.sources if region_set else ()

    def names(self) -> tuple[str, ...]:
        """Every name a user may type for this model (bare id, key, aliases)."""
        return (self.model_id, self.key, *self.aliases)


class Catalog(_Frozen):
    checked: date
    sources: dict[str, str]
    regions: dict[Partition, tuple[str, ...]]
    region_sets: dict[str, RegionSet]
    models: tuple[CatalogModel, ...]

    @model_validator(mode="before")
    @classmethod
    def _link_region_sets(cls, raw: Any) -> Any:
        """Replace each model's region-set names with the sets themselves, refusing unknown names."""
        if not isinstance(raw, dict):
            return raw
        sets = {name: {"name": name, **spec} for name, spec in raw.get("region_sets", {}).items()}
        models = []
        for model in raw.get("models", []):
            profiles = {}
            for scope, set_name in model.get("profiles", {}).items():
                if set_name not in sets:
                    raise ValueError(f"{model.get('key')}: unknown region set {set_name!r} for {scope}")
                profiles[scope] = sets[set_name]
            models.append({**model, "profiles": profiles})
        return {**raw, "region_sets": sets, "models": models}

    @model_validator(mode="after")
    def _check_consistency(self) -> Catalog:
        known_regions = {region for regions in self.regions.values() for region in regions}
        for region_set in self.region_sets.values():
            unknown = set(region_set.destinations) - known_regions
            if unknown:
                raise ValueError(f"region set {region_set.name}: unknown Regions {sorted(unknown)}")
        keys = {model.key for model in self.models}
        seen: dict[str, str] = {}
        for model in self.models:
            for name in {normalise_name(n) for n in model.names()}:
                if name in seen:
                    raise ValueError(f"name {name!r} is used by both {seen[name]} and {model.key}")
                seen[name] = model.key
            if set(model.profiles) - set(PROFILE_SCOPES):
                raise ValueError(
                    f"{model.key}: unknown scopes {sorted(set(model.profiles) - set(PROFILE_SCOPES))}"
                )
            for scope, region_set in model.profiles.items():
                wrong = [r for r in region_set.destinations if partition_of(r) != SCOPE_PARTITION[scope]]
                if wrong:
                    raise ValueError(
                        f"{model.key}: {scope} profile lists Regions of another partition {wrong}"
                    )
            if set(model.bare_regions) - known_regions:
                raise ValueError(
                    f"{model.key}: unknown bare Regions {sorted(set(model.bare_regions) - known_regions)}"
                )
            if model.successor is not None and model.successor not in keys:
                raise ValueError(f"{model.key}: successor {model.successor!r} is not in the catalog")
            if model.eol is None and model.legacy_since is None and model.successor is not None:
                raise ValueError(f"{model.key}: an active model has no successor")
            if not model.profiles and not model.bare_regions:
                raise ValueError(f"{model.key}: no profile and no bare Region: it can't be called anywhere")
            if set(model.sources) - set(self.sources):
                raise ValueError(
                    f"{model.key}: unknown sources {sorted(set(model.sources) - set(self.sources))}"
                )
        return self

    def bedrock_regions(self) -> tuple[str, ...]:
        return tuple(region for regions in self.regions.values() for region in regions)

    def commercial_regions(self) -> tuple[str, ...]:
        return self.regions.get("aws", ())


@functools.cache
def load_catalog() -> Catalog:
    """The catalog, read and validated on first use."""
    text = resources.files("courier_shared.catalog").joinpath("models.toml").read_text(encoding="utf-8")
    return Catalog.model_validate(tomllib.loads(text))


def catalog_models() -> tuple[CatalogModel, ...]:
    """Every model in the catalog, in file order."""
    return load_catalog().models
