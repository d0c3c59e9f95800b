"""Functions: one Lambda with its own role, least-privilege inline policy and log group.

Every function gets: Python 3.13 on the stack's architecture (arm64 by default), JSON logs into a
log group with the stage's retention, and an inline policy made of its own statements plus logging
(and ENI management when it runs in the VPC). The role has no managed policies attached, so the
inline policy is everything it may do.

X-Ray is off (PassThrough, no xray:* permission): the code has no tracer, and what an operator
watches is in the Powertools logs (request id, cold start) and EMF metrics of each function.
Active tracing would record only the invocation's own span, which Lambda's metrics already show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from courier_infra import iam
from courier_infra.components.network import Network
from courier_infra.config import StackConfig
from courier_infra.packaging import LAMBDA_RUNTIME, Artifact
from courier_shared.lambda_entry import handler_string


class LambdaFunction(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        *,
        service: str,
        artifact: Artifact,
        timeout_seconds: int,
        memory_mb: int,
        environment: Mapping[str, pulumi.Input[str]],
        statements: Sequence[pulumi.Input[Sequence[iam.Statement]]] = (),
        network: Network | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("courier:functions:LambdaFunction", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"courier:stage": config.stage, "courier:service": service}
        self.function_name = f"courier-{config.stage}-{service}"

        self.log_group = aws.cloudwatch.LogGroup(
            name,
            name=f"/aws/lambda/{self.function_name}",
            retention_in_days=config.log_retention_days,
            tags=tags,
            opts=child,
        )
        self.role = aws.iam.Role(
            name, assume_role_policy=iam.assume_role_policy("lambda.amazonaws.com"), tags=tags, opts=child
        )
        base = [iam.log_statement(self.log_group.arn)]
        if network is not None:
            base.append(iam.vpc_statement())
        self.policy_document = iam.policy_json(base, *statements)
        self.policy = aws.iam.RolePolicy(name, role=self.role.id, policy=self.policy_document, opts=child)

        self.environment = {
            "POWERTOOLS_SERVICE_NAME": f"courier-{service}",
            "LOG_LEVEL": config.log_level,
            "STAGE": config.stage,
            **environment,
        }
        self.function = aws.lambda_.Function(
            name,
            name=self.function_name,
            runtime=LAMBDA_RUNTIME,
            architectures=[config.architecture],
            handler=handler_string(service),
            code=pulumi.FileArchive(str(artifact.path)),
            source_code_hash=artifact.source_code_hash,
            role=self.role.arn,
            timeout=timeout_seconds,
            memory_size=memory_mb,
            environment={"variables": self.environment},
            tracing_config={"mode": "PassThrough"},  # X-Ray off: see the module's docstring
            logging_config={"log_format": "JSON", "log_group": self.log_group.name},
            vpc_config=(
                {
                    "subnet_ids": network.private_subnet_ids,
                    "security_group_ids": [network.lambda_security_group.id],
                }
                if network is not None
                else None
            ),
            tags=tags,
            # The policy must exist before the function runs (ESM, Invocation, the API call it).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy, self.log_group, *depends_on]),
        )
        self.register_outputs({"arn": self.function.arn, "name": self.function.name})
