"""boto3 adapters for the worker's ports: API Gateway @connections, S3, SQS visibility."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from courier_worker.ports import ConnectionGone, ConnectionUnavailable
from courier_worker.settings import WorkerSettings

# boto3 clients are typed as Any: the stub packages are dev-only, and a Lambda package declares
# exactly what it imports.
ApiGatewayManagementApiClient = Any
S3Client = Any

# Retried in place (the caller waits, so frames keep their order): throttling and server errors.
TRANSIENT_CODES = frozenset({"LimitExceededException", "TooManyRequestsException", "ThrottlingException"})


def _is_transient(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in TRANSIENT_CODES or status == 429 or status >= 500


class ApiGatewayConnections:
    """ConnectionPoster over boto3 `apigatewaymanagementapi.post_to_connection`.

    One client per endpoint URL (built once, then shared by threads: boto3 clients are thread-safe).
    Transient errors are retried with exponential backoff inside `post`, so the next frame is
    not sent before this one: order is kept and nothing is lost.
    """

    def __init__(
        self,
        *,
        region_name: str | None,
        attempts: int = 4,
        base_delay_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._region_name = region_name
        self._attempts = attempts
        self._base_delay_s = base_delay_s
        self._sleep = sleep
        self._clients: dict[str, ApiGatewayManagementApiClient] = {}
        self._lock = threading.Lock()
        # Our own retry loop owns backoff; botocore's would double it. Short timeouts: a post is tiny.
        self._config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=2,
            read_timeout=5,
            max_pool_connections=32,
        )

    def client(self, endpoint_url: str) -> ApiGatewayManagementApiClient:
        with self._lock:
            client = self._clients.get(endpoint_url)
            if client is None:
                client = boto3.client(
                    "apigatewaymanagementapi",
                    endpoint_url=endpoint_url,
                    region_name=self._region_name,
                    config=self._config,
                )
                self._clients[endpoint_url] = client
            return client

    def post(self, endpoint_url: str, connection_id: str, data: bytes) -> None:
        client = self.client(endpoint_url)
        for attempt in range(1, self._attempts + 1):
            try:
                client.post_to_connection(ConnectionId=connection_id, Data=data)
                return
            except client.exceptions.GoneException as error:
                raise ConnectionGone(connection_id) from error
            except ClientError as error:
                if not _is_transient(error) or attempt == self._attempts:
                    raise ConnectionUnavailable(connection_id) from error
            except BotoCoreError as error:  # connection reset, timeout: worth another try
                if attempt == self._attempts:
                    raise ConnectionUnavailable(connection_id) from error
            self._sleep(self._base_delay_s * 2 ** (attempt - 1))


class S3BodyStore:
    """BodyStore over S3: one object per answer, text/plain UTF-8. The ref is the object key."""

    def __init__(self, *, bucket: str, client: S3Client) -> None:
        self._bucket = bucket
        self._client = client

    def put_text(self, key: str, text: str) -> str:
        self._client.put_object(
            Bucket=self._bucket, Key=key, Body=text.encode(), ContentType="text/plain; charset=utf-8"
        )
        return key

    def get_text(self, ref: str) -> str:
        body = self._client.get_object(Bucket=self._bucket, Key=ref)["Body"].read()
        return bytes(body).decode()


class SqsVisibility:
    """QueueVisibility over boto3 SQS. The queue URL is derived from the record's eventSourceARN
    (arn:aws:sqs:{region}:{account}:{name}); clients are built on first use, one per region."""

    def __init__(self, *, endpoint_url: str | None = None) -> None:
        self._endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        # A failed call only means a later retry: no reason to wait long for it.
        self._config = Config(
            retries={"total_max_attempts": 2, "mode": "standard"}, connect_timeout=2, read_timeout=5
        )

    def queue_url(self, queue_arn: str) -> tuple[str, str]:
        """(region, URL) of the queue an ARN names."""
        _arn, _partition, _service, region, account, name = queue_arn.split(":", 5)
        base = self._endpoint_url or f"https://sqs.{region}.amazonaws.com"
        return region, f"{base.rstrip('/')}/{account}/{name}"

    def retry_after(self, queue_arn: str, receipt_handle: str, delay_s: int) -> None:
        region, url = self.queue_url(queue_arn)
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                client = boto3.client(
                    "sqs", region_name=region, endpoint_url=self._endpoint_url, config=self._config
                )
                self._clients[region] = client
        client.change_message_visibility(
            QueueUrl=url, ReceiptHandle=receipt_handle, VisibilityTimeout=delay_s
        )


def build_s3_body_store(settings: WorkerSettings) -> S3BodyStore | None:
    if settings.body_bucket is None:
        return None
    client: S3Client = boto3.client(
        "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.aws_region
    )
    return S3BodyStore(bucket=settings.body_bucket, client=client)
