"""WebSocket API: routes from `courier_shared.routes` (the table the local gateway serves too).

A REQUEST authorizer guards `$connect`; two-way routes get a `$default` route response so the
gateway's return value reaches the client; a Deployment that changes whenever the routes or
integrations change; and a stage with throttling and JSON access logs that never include
headers or query strings (the token travels in one of them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from courier_infra import iam
from courier_infra.components.functions import LambdaFunction
from courier_infra.config import StackConfig
from courier_shared.routes import AUTHORIZER_IDENTITY_SOURCES, ROUTES

ACCESS_LOG_GROUP_PREFIX = "/aws/apigateway/courier-"
# Only request metadata: no $request.header.*, no $request.querystring.*, no authorizer claims.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "connectionId": "$context.connectionId",
        "routeKey": "$context.routeKey",
        "eventType": "$context.eventType",
        "status": "$context.status",
        "requestTime": "$context.requestTime",
        "sourceIp": "$context.identity.sourceIp",
        "integrationLatency": "$context.integrationLatency",
        "integrationError": "$context.integrationErrorMessage",
        "authorizerError": "$context.authorizer.error",
        "error": "$context.error.message",
    },
    sort_keys=True,
)


# Each route's own throttle, as a share of the stage's (`courier:throttleRateLimit` and
# `courier:throttleBurstLimit`). A route's budget is its own, so a flood of one action (pings,
# malformed frames) uses up that route's budget and not the others': $connect and sendMessage keep
# theirs. Within a route, the gateway's per-connection and per-user limits refuse a flooding
# client before any query (docs/protocol.md, "Fair use"). $disconnect keeps the stage's default.
ROUTE_THROTTLE_SHARES: dict[str, float] = {
    "$connect": 0.5,
    "sendMessage": 0.5,
    "cancel": 0.25,
    "resume": 0.25,
    "getHistory": 0.25,
    "listConversations": 0.25,
    "ping": 0.1,
    # The AI SDK's chat frames (send, resume, abort) have no `action`: they arrive on $default, so it
    # gets sendMessage's share. Malformed frames share it; the gateway's fair-use limits refuse a
    # flooding client before any query.
    "$default": 0.5,
}


def route_throttles(config: StackConfig) -> list[aws.apigatewayv2.StageRouteSettingArgsDict]:
    """The stage's per-route settings: every route but $disconnect gets its share of the throttle."""
    return [
        {
            "route_key": key,
            "throttling_rate_limit": round(config.throttle_rate_limit * share, 2),
            "throttling_burst_limit": max(1, int(config.throttle_burst_limit * share)),
            "data_trace_enabled": False,
            "detailed_metrics_enabled": True,
        }
        for key, share in ROUTE_THROTTLE_SHARES.items()
    ]


def route_table_digest() -> str:
    """Changes whenever a route is added, removed or re-pointed: forces a new Deployment."""
    rows = [(route.key, str(route.function), route.two_way) for route in ROUTES]
    return hashlib.sha256(json.dumps([*rows, list(AUTHORIZER_IDENTITY_SOURCES)]).encode()).hexdigest()


class WebSocketApi(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        *,
        api: aws.apigatewayv2.Api,
        functions: Mapping[str, LambdaFunction],
        authorizer: LambdaFunction,
        account_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("courier:api:WebSocketApi", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.api = api

        self.authorizer = aws.apigatewayv2.Authorizer(
            name,
            api_id=api.id,
            name=f"courier-{config.stage}-connect",
            authorizer_type="REQUEST",
            authorizer_uri=authorizer.function.invoke_arn,
            identity_sources=list(AUTHORIZER_IDENTITY_SOURCES) or None,
            opts=child,
        )
        aws.lambda_.Permission(
            f"{name}-authorizer",
            action="lambda:InvokeFunction",
            function=authorizer.function.name,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(api.execution_arn, "/authorizers/", self.authorizer.id),
            opts=child,
        )

        self.integrations: dict[str, aws.apigatewayv2.Integration] = {}
        for service in sorted({str(route.function) for route in ROUTES}):
            function = functions[service]
            self.integrations[service] = aws.apigatewayv2.Integration(
                f"{name}-{service}",
                api_id=api.id,
                integration_type="AWS_PROXY",
                integration_method="POST",
                integration_uri=function.function.invoke_arn,
                opts=child,
            )
            aws.lambda_.Permission(
                f"{name}-{service}",
                action="lambda:InvokeFunction",
                function=function.function.name,
                principal="apigateway.amazonaws.com",
                # WebSocket route ARNs are {api}/{stage}/{route-key}: two segments.
                source_arn=pulumi.Output.concat(api.execution_arn, f"/{config.stage}/*"),
                opts=child,
            )

        self.routes: dict[str, aws.apigatewayv2.Route] = {}
        route_responses: list[aws.apigatewayv2.RouteResponse] = []
        for route in ROUTES:
            slug = route.key.strip("$").lower()
            integration = self.integrations[str(route.function)]
            is_connect = route.key == "$connect"
            self.routes[route.key] = aws.apigatewayv2.Route(
                f"{name}-{slug}",
                api_id=api.id,
                route_key=route.key,
                target=integration.id.apply(lambda integration_id: f"integrations/{integration_id}"),
                authorization_type="CUSTOM" if is_connect else "NONE",
                authorizer_id=self.authorizer.id if is_connect else None,
                route_response_selection_expression="$default" if route.two_way else None,
                opts=child,
            )
            if route.two_way:
                route_responses.append(
                    aws.apigatewayv2.RouteResponse(
                        f"{name}-{slug}",
                        api_id=api.id,
                        route_id=self.routes[route.key].id,
                        route_response_key="$default",
                        opts=child,
                    )
                )

        self.deployment = aws.apigatewayv2.Deployment(
            name,
            api_id=api.id,
            description=f"routes {route_table_digest()[:12]}",
            triggers={
                "routes": route_table_digest(),
                "integrations": pulumi.Output.all(
                    *[self.integrations[key].integration_uri for key in sorted(self.integrations)]
                ).apply(lambda uris: hashlib.sha256("|".join(uris).encode()).hexdigest()),
            },
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*self.routes.values(), *route_responses, self.authorizer]
            ),
        )

        self.access_logs = aws.cloudwatch.LogGroup(
            f"{name}-access",
            name=f"{ACCESS_LOG_GROUP_PREFIX}{config.stage}-websocket",
            retention_in_days=config.log_retention_days,
            tags={"courier:stage": config.stage},
            opts=child,
        )
        stage_dependencies: list[pulumi.Resource] = []
        if config.api_gateway_logging_role:
            stage_dependencies.append(self._account_logging_role(name, config, account_id))
        self.stage = aws.apigatewayv2.Stage(
            name,
            api_id=api.id,
            name=config.stage,
            deployment_id=self.deployment.id,
            default_route_settings={
                "throttling_rate_limit": config.throttle_rate_limit,
                "throttling_burst_limit": config.throttle_burst_limit,
                "data_trace_enabled": False,  # full request logging would record tokens
                "detailed_metrics_enabled": True,
            },
            route_settings=route_throttles(config),
            access_log_settings={"destination_arn": self.access_logs.arn, "format": ACCESS_LOG_FORMAT},
            tags={"courier:stage": config.stage},
            opts=pulumi.ResourceOptions(parent=self, depends_on=stage_dependencies),
        )
        self.url = pulumi.Output.concat(api.api_endpoint, f"/{config.stage}")
        self.register_outputs({"url": self.url})

    def _account_logging_role(
        self, name: str, config: StackConfig, account_id: pulumi.Input[str]
    ) -> aws.apigateway.Account:
        """API Gateway writes WebSocket access logs with one role per account and region.

        Only the stack with `courier:apiGatewayLoggingRole` sets it (prod by default), for every
        Courier stage in the region, and it is retained on delete: with pulumi-aws 7, deleting
        the Account resource resets the account's role, which would break the other stages'
        access logging and their next stage update. Removing it is a manual step (docs/deploy.md).
        """
        retained = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        logs_arn = pulumi.Output.concat(
            f"arn:{iam.partition_of(config.region)}:logs:{config.region}:", account_id, ":log-group:"
        )
        role = aws.iam.Role(
            f"{name}-cloudwatch",
            assume_role_policy=iam.assume_role_policy("apigateway.amazonaws.com"),
            opts=retained,
        )
        aws.iam.RolePolicy(
            f"{name}-cloudwatch",
            role=role.id,
            policy=iam.policy_json(
                [
                    iam.statement(
                        "WriteApiLogs",
                        [
                            "logs:CreateLogGroup",
                            "logs:CreateLogStream",
                            "logs:DescribeLogStreams",
                            "logs:PutLogEvents",
                        ],
                        [
                            # Every Courier stage's access logs: the role serves the whole region.
                            pulumi.Output.concat(logs_arn, f"{ACCESS_LOG_GROUP_PREFIX}*-websocket:*"),
                            pulumi.Output.concat(logs_arn, "API-Gateway-Execution-Logs_*"),
                        ],
                    ),
                    iam.statement(
                        "FindLogGroups", ["logs:DescribeLogGroups"], pulumi.Output.concat(logs_arn, "*")
                    ),
                ]
            ),
            opts=retained,
        )
        return aws.apigateway.Account(f"{name}-account", cloudwatch_role_arn=role.arn, opts=retained)


def connections_endpoint(api: aws.apigatewayv2.Api, config: StackConfig) -> pulumi.Output[str]:
    """CONNECTIONS_ENDPOINT_URL: where the worker posts frames (stage included, as boto3 needs)."""
    return pulumi.Output.concat(
        "https://", api.id, f".execute-api.{config.region}.{iam.dns_suffix_of(config.region)}/{config.stage}"
    )


def manage_connections_arn(api: aws.apigatewayv2.Api, config: StackConfig) -> pulumi.Output[str]:
    """This API's stage's @connections, any method (POST to send, GET/DELETE to inspect/close)."""
    return pulumi.Output.concat(api.execution_arn, f"/{config.stage}/*/@connections/*")
