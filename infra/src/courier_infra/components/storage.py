"""Storage: the S3 bucket for message bodies too large for a WebSocket frame.

Private (all public access blocked, bucket-owner objects), encrypted (SSE-S3), TLS only (a Deny
on aws:SecureTransport=false), and objects expire after `courier:bodyExpirationDays`.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from courier_infra.config import StackConfig

# The worker writes large bodies under turns/{conversation}/{turn}/ (courier_worker.turn).
BODY_PREFIX = "turns/"


class BodyStorage(pulumi.ComponentResource):
    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("courier:storage:BodyStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.bucket = aws.s3.Bucket(
            name,
            bucket_prefix=f"courier-{config.stage}-bodies-",
            force_destroy=config.profile == "dev",
            tags={"courier:stage": config.stage},
            opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            name,
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            name, bucket=self.bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            name,
            bucket=self.bucket.id,
            rules=[
                {
                    "id": "expire-bodies",
                    "status": "Enabled",
                    "filter": {"prefix": BODY_PREFIX},
                    "expiration": {"days": config.body_expiration_days},
                },
                {
                    "id": "abort-incomplete-uploads",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                },
            ],
            opts=child,
        )
        aws.s3.BucketPolicy(
            name,
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "DenyInsecureTransport",
                                "Effect": "Deny",
                                "Principal": "*",
                                "Action": "s3:*",
                                "Resource": [arn, f"{arn}/*"],
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        self.body_objects_arn = pulumi.Output.concat(self.bucket.arn, f"/{BODY_PREFIX}*")
        self.register_outputs({"bucket": self.bucket.bucket})
