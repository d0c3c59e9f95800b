"""Per-route throttles: each route has its share of the stage's budget, so one flooded action leaves
the others theirs."""

from __future__ import annotations

from infra_harness import Recorded

from courier_infra.components.websocket_api import ROUTE_THROTTLE_SHARES
from courier_shared.routes import ROUTES


def test_every_route_but_disconnect_has_its_own_share_of_the_stage_throttle(stage: Recorded) -> None:
    settings = stage.one("aws:apigatewayv2/stage:Stage", "websocket").inputs
    by_route = {route["routeKey"]: route for route in settings["routeSettings"]}

    assert set(by_route) == {route.key for route in ROUTES} - {"$disconnect"}
    rate, burst = stage.config.throttle_rate_limit, stage.config.throttle_burst_limit
    for key, route in by_route.items():
        share = ROUTE_THROTTLE_SHARES[key]
        assert route["throttlingRateLimit"] == round(rate * share, 2)
        assert route["throttlingBurstLimit"] == max(1, int(burst * share))
        assert route["dataTraceEnabled"] is False  # full request logging would record tokens
    # A ping or garbage flood has the smallest budgets; connecting and sending keep the largest.
    assert by_route["ping"]["throttlingRateLimit"] < by_route["sendMessage"]["throttlingRateLimit"]
    # $default carries the AI SDK's chat frames (no `action`): as much as sendMessage.
    assert by_route["$default"]["throttlingRateLimit"] == by_route["sendMessage"]["throttlingRateLimit"]
