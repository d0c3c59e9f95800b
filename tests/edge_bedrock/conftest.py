from __future__ import annotations

from collections.abc import Iterator

import pytest

from courier_local.edge.bedrock import LocalBedrock


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def bedrock() -> Iterator[LocalBedrock]:
    with LocalBedrock(tokens_per_second=0) as server:
        yield server
