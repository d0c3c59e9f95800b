"""Observability: alarms on what breaks a chat: dead letters, worker errors and throttles, a stuck queue.

Prod sends alarms (and recoveries) to an SNS topic, optionally with an e-mail subscription
(`courier:alarmEmail`; none when unset); dev keeps the alarms visible in the console only.

The topic is encrypted with a customer-managed KMS key whose policy lets CloudWatch use it.
The AWS-managed `aws/sns` key can't be used: its policy can't be changed to admit
cloudwatch.amazonaws.com, so CloudWatch's publishes to the topic fail and nobody is told.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from courier_infra import iam
from courier_infra.components.functions import LambdaFunction
from courier_infra.components.queue import TurnQueue
from courier_infra.config import StackConfig

OLDEST_MESSAGE_ALARM_SECONDS = 300


class Alarms(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        *,
        queue: TurnQueue,
        worker: LambdaFunction,
        account_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("courier:observability:Alarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"courier:stage": config.stage}
        self.topic: aws.sns.Topic | None = None
        self.key: aws.kms.Key | None = None
        actions: list[pulumi.Input[str]] = []
        if config.alarm_topic:
            self.key = aws.kms.Key(
                name,
                description=f"Courier {config.stage}: encrypts the alarm topic; CloudWatch may use it",
                enable_key_rotation=True,
                policy=alarm_key_policy(config, account_id),
                tags=tags,
                opts=child,
            )
            aws.kms.Alias(
                name, name=f"alias/courier-{config.stage}-alarms", target_key_id=self.key.key_id, opts=child
            )
            self.topic = aws.sns.Topic(
                name,
                name=f"courier-{config.stage}-alarms",
                kms_master_key_id=self.key.arn,
                tags=tags,
                opts=child,
            )
            actions = [self.topic.arn]
            if config.alarm_email:
                aws.sns.TopicSubscription(
                    f"{name}-email",
                    topic=self.topic.arn,
                    protocol="email",
                    endpoint=config.alarm_email,
                    opts=child,
                )

        def alarm(
            key: str,
            description: str,
            namespace: str,
            metric: str,
            dimensions: dict[str, pulumi.Input[str]],
            statistic: str,
            threshold: float,
        ) -> aws.cloudwatch.MetricAlarm:
            return aws.cloudwatch.MetricAlarm(
                f"{name}-{key}",
                name=f"courier-{config.stage}-{key}",
                alarm_description=description,
                namespace=namespace,
                metric_name=metric,
                dimensions=dimensions,
                statistic=statistic,
                period=60,
                evaluation_periods=1,
                threshold=threshold,
                comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=actions,
                ok_actions=actions,
                tags={"courier:stage": config.stage},
                opts=child,
            )

        self.alarms = {
            "dlq-depth": alarm(
                "dlq-depth",
                "Turns failed 5 times and sit in the dead-letter queue",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                {"QueueName": queue.dead_letter_queue.name},
                "Maximum",
                0,
            ),
            "oldest-turn-age": alarm(
                "oldest-turn-age",
                "A queued turn has waited more than 5 minutes for a worker",
                "AWS/SQS",
                "ApproximateAgeOfOldestMessage",
                {"QueueName": queue.queue.name},
                "Maximum",
                OLDEST_MESSAGE_ALARM_SECONDS,
            ),
            "worker-errors": alarm(
                "worker-errors",
                "The worker Lambda raised",
                "AWS/Lambda",
                "Errors",
                {"FunctionName": worker.function.name},
                "Sum",
                0,
            ),
            "worker-throttles": alarm(
                "worker-throttles",
                "The worker Lambda was throttled",
                "AWS/Lambda",
                "Throttles",
                {"FunctionName": worker.function.name},
                "Sum",
                0,
            ),
        }
        self.register_outputs({})


def alarm_key_policy(config: StackConfig, account_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """The account administers the key (AWS's default policy); CloudWatch may use it to publish."""
    root = pulumi.Output.concat(f"arn:{iam.partition_of(config.region)}:iam::", account_id, ":root")
    return pulumi.Output.json_dumps(
        {
            "Version": iam.POLICY_VERSION,
            "Statement": [
                {
                    "Sid": "AccountAdministersTheKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": root},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchPublishesAlarms",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                },
            ],
        }
    )
