"""The WebSocket API's route table: the one source of truth for route keys.

The Pulumi program deploys exactly these routes and the local gateway serves exactly these, so
the two can never disagree about which actions exist or which Lambda answers them.
"""

from dataclasses import dataclass
from enum import StrEnum

ROUTE_SELECTION_EXPRESSION = "$request.body.action"


class Function(StrEnum):
    """The Lambda functions that sit behind the WebSocket API."""

    AUTHORIZER = "authorizer"
    GATEWAY = "gateway"


@dataclass(frozen=True)
class Route:
    key: str
    function: Function
    two_way: bool  # True: the handler's returned body is sent back as a route response


ROUTES: tuple[Route, ...] = (
    Route("$connect", Function.GATEWAY, two_way=False),
    Route("$disconnect", Function.GATEWAY, two_way=False),
    Route("$default", Function.GATEWAY, two_way=True),
    Route("sendMessage", Function.GATEWAY, two_way=True),
    Route("cancel", Function.GATEWAY, two_way=True),
    Route("resume", Function.GATEWAY, two_way=True),
    Route("getHistory", Function.GATEWAY, two_way=True),
    Route("listConversations", Function.GATEWAY, two_way=True),
    Route("ping", Function.GATEWAY, two_way=True),
)

ROUTE_KEYS: frozenset[str] = frozenset(route.key for route in ROUTES)

# Empty on purpose: the token may arrive in the Sec-WebSocket-Protocol header *or* in ?token=, and
# API Gateway answers 401 without calling the authorizer when any listed identity source is missing.
AUTHORIZER_IDENTITY_SOURCES: tuple[str, ...] = ()


def select_route(action: object) -> str:
    """Route selection as API Gateway does it: the action's value if it names a route, else $default."""
    if isinstance(action, str) and action in ROUTE_KEYS and not action.startswith("$"):
        return action
    return "$default"
