"""Why a model can't be resolved: each refusal says what is wrong and what to use instead."""

from __future__ import annotations

from datetime import date


class CatalogError(ValueError):
    """A model/Region/scope combination that would fail on Bedrock, refused before deploy."""


class UnknownModel(CatalogError):
    def __init__(self, model: str, close_matches: tuple[str, ...]) -> None:
        self.model = model
        self.close_matches = close_matches
        hint = f" Did you mean: {', '.join(close_matches)}?" if close_matches else ""
        super().__init__(
            f"Unknown model {model!r}.{hint} Run `courier models` to list the catalog "
            "(bare ids, profile ids and short names are accepted)."
        )


class UnknownRegion(CatalogError):
    def __init__(self, region: str, close_matches: tuple[str, ...]) -> None:
        self.region = region
        self.close_matches = close_matches
        if region.startswith("cn-"):
            detail = " Amazon Bedrock has no endpoint in the China (aws-cn) partition."
        elif close_matches:
            detail = f" Did you mean: {', '.join(close_matches)}?"
        else:
            detail = ""
        super().__init__(f"{region!r} is not a Region with an Amazon Bedrock runtime endpoint.{detail}")


class RetiredModel(CatalogError):
    """The model reached end of life: every call fails."""

    def __init__(self, model_id: str, eol: date, successor: str | None, successor_id: str | None) -> None:
        self.model_id = model_id
        self.eol = eol
        self.successor = successor
        move = f" Switch to {successor} ({successor_id})." if successor else ""
        super().__init__(
            f"{model_id} reached end of life on {eol.isoformat()}; Bedrock refuses every call.{move}"
        )


class LegacyModel(CatalogError):
    """The model is Legacy: new customers can't use it and it has an end-of-life date."""

    def __init__(
        self,
        model_id: str,
        legacy_since: date,
        eol: date | None,
        successor: str | None,
        successor_id: str | None,
    ) -> None:
        self.model_id = model_id
        self.legacy_since = legacy_since
        self.eol = eol
        self.successor = successor
        until = f", end of life on {eol.isoformat()}" if eol else ""
        move = f" Switch to {successor} ({successor_id})" if successor else " Switch to an active model"
        super().__init__(
            f"{model_id} is Legacy since {legacy_since.isoformat()}{until}: new customers can't use it and "
            f"accounts lose access after 15 days without use.{move}, or pass allow_legacy=True "
            "(--allow-legacy) if this account still uses it."
        )


class ScopeUnavailable(CatalogError):
    """The model has no such profile (or no on-demand id) for callers in this Region."""

    def __init__(
        self, model_id: str, region: str, scope: str, available: tuple[str, ...], offered_in: str
    ) -> None:
        self.model_id = model_id
        self.region = region
        self.scope = scope
        self.available = available
        if scope == "bare":
            what = "on-demand (bare id) access"
        elif scope == "auto":
            what = "inference profile or on-demand access"
        else:
            what = f"{scope}. inference profile"
        instead = (
            f" From {region} use scope {' or '.join(available)}."
            if available
            else f" It can't be called from {region}."
        )
        where = f" {offered_in}" if offered_in else ""
        super().__init__(f"{model_id} has no {what} for callers in {region}.{instead}{where}")


class PartitionMismatch(CatalogError):
    """GovCloud and commercial AWS are separate partitions: nothing crosses between them."""

    def __init__(self, what: str, what_partition: str, region: str, region_partition: str) -> None:
        self.region = region
        super().__init__(
            f"{what} belongs to the {what_partition} partition but {region} is in {region_partition}; "
            f"profiles, ARNs and accounts don't cross partitions. Use a scope of the {region_partition} "
            "partition (GovCloud: us-gov or bare; commercial: global, us, eu, apac, jp, au or bare)."
        )
