"""The Bedrock model catalog: one config value → the region-correct model id and exactly the IAM it needs.

    from courier_shared.catalog import resolve, invoke_policy, policy_document

    model = resolve("claude-haiku-4-5", "ap-northeast-1")      # → jp.anthropic.claude-haiku-4-5-…
    document = policy_document(invoke_policy(model, "ap-northeast-1", "123456789012"))

Data: models.toml in this package (sources and the date it was checked are in the file). Pure Python:
no AWS calls, no boto3. The file is read on first use, not at import.
"""

from courier_shared.catalog.data import (
    CatalogModel,
    Lifecycle,
    RegionSet,
    catalog_models,
    load_catalog,
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
from courier_shared.catalog.policy import INVOKE_ACTIONS, invoke_policy, policy_document
from courier_shared.catalog.resolve import REQUESTABLE_SCOPES, ResolvedModel, resolve

__all__ = [
    "INVOKE_ACTIONS",
    "REQUESTABLE_SCOPES",
    "CatalogError",
    "CatalogModel",
    "LegacyModel",
    "Lifecycle",
    "PartitionMismatch",
    "RegionSet",
    "ResolvedModel",
    "RetiredModel",
    "ScopeUnavailable",
    "UnknownModel",
    "UnknownRegion",
    "catalog_models",
    "invoke_policy",
    "load_catalog",
    "partition_of",
    "policy_document",
    "resolve",
]
