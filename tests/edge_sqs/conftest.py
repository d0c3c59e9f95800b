from __future__ import annotations

import uuid
from typing import Any

import pytest

from courier_local.edge.sqs import LocalMoto, QueueUrls, create_turn_queues


@pytest.fixture
def sqs(moto: LocalMoto) -> Any:
    return moto.client("sqs")


@pytest.fixture
def turn_queues(sqs: Any) -> QueueUrls:
    """A fresh FIFO turn queue + DLQ: 1 s visibility so retries are quick, maxReceiveCount 2."""
    return create_turn_queues(
        sqs, f"turns-{uuid.uuid4().hex[:8]}", visibility_timeout_s=1, max_receive_count=2
    )
