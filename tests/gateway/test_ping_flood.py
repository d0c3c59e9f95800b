"""One user floods pings over the local API Gateway; another user's pings stay fast.

The real authorizer (dev issuer), the real gateway with its default fair-use limits, the local API
Gateway and real `websockets` clients. The latency bound is deliberately generous: the flood adds
under 100 ms to the median of another user's pings, measured against a third user's pings on the
same stack just before the flood (so a slow or loaded machine costs both sides alike; an idle stack
answers in a few ms, and the bug this guards against cost seconds). It is a user-visible promise, not
a benchmark. That the flood is refused cheaply is proven without timing in test_fair_use.py (no
query) and tests/edge_websocket/test_hardening.py (one connection never takes every handler thread).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from courier_authorizer.composition import build_authorizer
from courier_authorizer.settings import AuthorizerSettings
from courier_gateway.composition import build_gateway
from courier_local.dev_issuer import DevIssuer
from courier_local.edge import LocalWebSocketApi, serve
from courier_shared.db.store import ChatStore
from courier_shared.routes import Function

from .conftest import TEST_CURSOR_KEY, RecordingQueue

FLOOD_FRAMES = 3_000
VICTIM_PINGS = 20
LATENCY_BOUND_S = 0.100  # what the flood may add, generous on purpose: see the module docstring


@pytest.fixture
def edge(store: ChatStore, tmp_path: Path) -> Iterator[tuple[str, DevIssuer]]:
    from courier_gateway.settings import GatewaySettings

    issuer = DevIssuer(tmp_path / "dev-issuer")
    authorizer = build_authorizer(
        AuthorizerSettings.model_validate(
            {"DEV_ISSUER_ENABLED": True, "DEV_JWKS_PATH": str(issuer.ensure_key())}
        )
    )
    settings = GatewaySettings.model_validate(
        {"TURN_QUEUE_URL": "https://sqs.invalid/q.fifo", "CURSOR_SIGNING_KEY": TEST_CURSOR_KEY}
    )  # the default fair-use limits
    gateway = build_gateway(settings, store=store, queue=RecordingQueue())
    api = LocalWebSocketApi(
        authorizer=lambda event, _context: authorizer.authorize(event),
        handlers={Function.GATEWAY: gateway.handle},
    )
    with serve(api.app) as server:
        yield server.ws_url, issuer


def open_as(url: str, issuer: DevIssuer, user: str) -> ClientConnection:
    token = issuer.issue(user, "acme")
    return connect(url, subprotocols=["courier.v1", f"bearer.{token}"], open_timeout=10)  # type: ignore[list-item]


def ping_latencies(connection: ClientConnection, count: int) -> list[float]:
    """Seconds from each ping sent to its pong, one ping at a time."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        connection.send('{"action":"ping"}')
        assert json.loads(connection.recv(timeout=10))["type"] == "pong"
        latencies.append(time.perf_counter() - started)
    return latencies


def test_a_ping_flood_from_one_user_leaves_another_users_pings_fast(edge: Any) -> None:
    url, issuer = edge
    answers: Counter[str] = Counter()
    flooding = threading.Event()

    def flood(connection: ClientConnection) -> None:
        def drain() -> None:
            for _ in range(FLOOD_FRAMES):
                answer = json.loads(connection.recv(timeout=60))
                answers[answer.get("code") or answer["type"]] += 1

        reader = threading.Thread(target=drain)
        reader.start()
        flooding.set()
        for _ in range(FLOOD_FRAMES):
            connection.send('{"action":"ping"}')
        reader.join()

    with open_as(url, issuer, "bob") as bystander:  # this machine, this stack, no flood
        baseline = ping_latencies(bystander, VICTIM_PINGS)  # (the victim's own would spend its burst)
    with open_as(url, issuer, "mallory") as flooder, open_as(url, issuer, "alice") as victim:
        thread = threading.Thread(target=flood, args=(flooder,))
        thread.start()
        flooding.wait()
        latencies = ping_latencies(victim, VICTIM_PINGS)
        thread.join()

    assert answers["rate_limited"] > FLOOD_FRAMES // 2, answers  # the flood was refused, mostly
    assert answers["pong"] + answers["rate_limited"] == FLOOD_FRAMES
    added = statistics.median(latencies) - statistics.median(baseline)
    assert added < LATENCY_BOUND_S, (latencies, baseline)
