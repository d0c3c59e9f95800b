"""Fixtures for the catalog tests (helpers live in catalog_helpers.py)."""

from __future__ import annotations

from typing import Any

import pytest
from catalog_helpers import raw_catalog


@pytest.fixture(scope="session")
def raw() -> dict[str, Any]:
    """models.toml as plain TOML, independent of the code under test."""
    return raw_catalog()
